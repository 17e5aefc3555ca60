"""SliceSuperRes engine: geometry, slice profiles, baselines, SA-INR inference (ONNX Runtime),
tiling, slabs, cancel, bad inputs, the command line, and the shipped model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medsynth import Cancelled, CancelToken, InputError, Volume, make_ijk_to_ras
from medsynth.io import read_volume, write_volume
from medsynth.superres import (
    MissingModelError,
    SUPERRES_PARAMS,
    SuperResPreview,
    degrade_volume,
    load_sainr,
    output_grid,
    superres,
    superres_file,
    superres_slab,
)
from medsynth.superres.baselines import interpolate_axis
from medsynth.superres.degrade import integral_slice_count, profile_matrix, thick_slices
from medsynth.superres.sainr import SAINRRunner

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "Resources" / "Models"


def _phantom(shape_kji=(9, 40, 36), spacing=(0.9, 0.8, 4.0), directions=None, seed=0) -> Volume:
    """Smooth blobs (an MRI-like intensity range), thick slices along k."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape_kji], indexing="ij")
    arr = np.zeros(shape_kji, np.float32)
    for _ in range(6):
        c = [rng.uniform(0, n) for n in shape_kji]
        r = rng.uniform(3, 10)
        arr += rng.uniform(50, 200) * np.exp(-(((k - c[0]) * 3) ** 2 + (j - c[1]) ** 2 + (i - c[2]) ** 2) / (2 * r * r))
    if directions is None:
        from conftest import rotation

        directions = rotation("z", 25) @ rotation("x", 10)
    return Volume(arr, make_ijk_to_ras(spacing, (10.0, -20.0, 5.0), directions), name="phantom", modality="MR")


@pytest.fixture(scope="module")
def sainr_model():
    try:
        return load_sainr()
    except MissingModelError as exc:
        pytest.fail(f"the shipped SA-INR model must load: {exc}")


# ----------------------------------------------------------------------------- params and geometry
def test_params_declared():
    names = [p.name for p in SUPERRES_PARAMS]
    assert names == ["spacing", "axis", "method", "adapt_steps", "gate"]
    assert SUPERRES_PARAMS[3].default == 0 and not SUPERRES_PARAMS[3].live  # off by default, Apply only
    assert SUPERRES_PARAMS[4].default == 0 and SUPERRES_PARAMS[4].minimum == 0  # the gate: off by default
    spacing = SUPERRES_PARAMS[0]
    assert spacing.minimum <= 0.3 and spacing.maximum >= 10 and spacing.unit == "mm"
    assert set(SUPERRES_PARAMS[1].choices) == {"auto", "i", "j", "k"}
    assert set(SUPERRES_PARAMS[2].choices) == {"sainr", "bspline", "linear"}


@pytest.mark.parametrize("spacing", [1.0, 1.3, 0.7, 2.9])
def test_grid_first_and_last_planes_coincide(spacing):
    vol = _phantom()
    g = output_grid(vol, spacing, "auto")
    assert g.axis == "k" and g.array_axis == 0
    first_in = vol.ijk_to_ras_points([0, 0, 0])[0]
    last_in = vol.ijk_to_ras_points([0, 0, vol.shape_ijk[2] - 1])[0]
    out = Volume(np.zeros(g.shape_kji, np.uint8), g.ijk_to_ras)
    np.testing.assert_allclose(out.ijk_to_ras_points([0, 0, 0])[0], first_in, atol=1e-9)
    np.testing.assert_allclose(out.ijk_to_ras_points([0, 0, g.n_out - 1])[0], last_in, atol=1e-9)
    # exact spacing: divides the span evenly, near the request, reported
    span = (vol.shape_ijk[2] - 1) * 4.0
    assert g.spacing * (g.n_out - 1) == pytest.approx(span, abs=1e-9)
    assert abs(g.spacing - spacing) <= g.spacing / 2 + 1e-9
    assert out.spacing[2] == pytest.approx(g.spacing, abs=1e-9)
    # other axes untouched, bit for bit
    np.testing.assert_array_equal(g.ijk_to_ras[:, :2], vol.ijk_to_ras[:, :2])
    assert g.shape_ijk[:2] == vol.shape_ijk[:2]
    pos = g.positions()
    assert pos[0] == 0 and pos[-1] == vol.shape_ijk[2] - 1 and np.all(np.diff(pos) > 0)


def test_grid_rounding_reported_and_axes():
    vol = _phantom()
    g = output_grid(vol, 1.5, "k")  # span 32 mm: 21.33 -> 21 intervals
    assert g.n_out == 22 and g.spacing == pytest.approx(32 / 21)
    assert "asked 1.5" in g.describe()
    gi = output_grid(vol, 0.4, "i")
    assert gi.axis == "i" and gi.array_axis == 2 and gi.shape_ijk[1:] == vol.shape_ijk[1:]


# ----------------------------------------------------------------------------- degradation
def test_profiles_sum_to_one_and_box_is_window_mean():
    for profile in ("box", "gaussian"):
        w = profile_matrix(50, np.arange(0, 49, 3.7), 3.7, profile)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    arr = np.arange(40, dtype=np.float32)[:, None, None] * np.ones((1, 3, 2), np.float32)
    thick = thick_slices(arr, 0, 4.0, "box")
    # slice 2 centred at 8, thickness 4: voxels 6.5 .. 9.5 -> 6 and 10 count half
    expected = (0.5 * 6 + 7 + 8 + 9 + 0.5 * 10) / 4
    assert thick[2, 0, 0] == pytest.approx(expected)
    assert thick.shape[0] == 10  # centres 0, 4, ..., 36
    # Gaussian: FWHM = thickness
    w = profile_matrix(101, np.array([50.0]), 6.0, "gaussian")[0]
    half = w.max() / 2
    above = np.where(w >= half)[0]
    assert 5 <= above.size <= 7
    const = thick_slices(np.full((30, 4, 4), 7.0, np.float32), 0, 2.5, "gaussian")
    np.testing.assert_allclose(const, 7.0, rtol=1e-6)


def test_degrade_volume_geometry():
    fine = _phantom(shape_kji=(41, 20, 18), spacing=(1, 1, 1))
    thick, span = degrade_volume(fine, "k", 4, "box")
    assert thick.shape_ijk == (18, 20, 11) and span == 40
    assert thick.spacing[2] == pytest.approx(4.0)
    np.testing.assert_allclose(thick.origin, fine.origin)
    thick25, span25 = degrade_volume(fine, "k", 2.5, "gaussian")
    assert span25 == 40 and thick25.shape_ijk[2] == 17
    assert integral_slice_count(41, 2.5) == 17


# ----------------------------------------------------------------------------- baselines
def test_linear_baseline_exact_on_ramp_and_other_axes_untouched():
    ramp = np.arange(6, dtype=np.float32)[:, None, None] * 10 + np.random.default_rng(1).random((1, 5, 4))
    pos = np.linspace(0, 5, 16)
    out = interpolate_axis(ramp.astype(np.float32), pos, "linear")
    assert out.shape == (16, 5, 4)
    expected = pos[:, None, None] * 10 + ramp[0] - 0
    np.testing.assert_allclose(out, expected, atol=1e-4)


@pytest.mark.parametrize("method", ["linear", "bspline"])
def test_baselines_reproduce_input_slices(method):
    vol = _phantom()
    res = superres(vol, 1.0, "auto", method)
    assert res.grid.factor == pytest.approx(4.0)
    out = res.volume.array
    np.testing.assert_allclose(out[::4], vol.array, atol=1e-3)
    assert out.dtype == np.float32 and res.volume.array.shape == res.grid.shape_kji
    np.testing.assert_array_equal(res.volume.ijk_to_ras, res.grid.ijk_to_ras)


def test_bspline_beats_linear_on_smooth_signal():
    z = np.arange(0, 61, dtype=np.float64)
    fine = np.sin(z / 6.0)[:, None, None] * np.ones((1, 3, 3))
    lr = fine[::5].astype(np.float32)
    pos = np.arange(61) / 5.0
    inner = slice(10, 51)  # away from the ends, where ITK mirrors the signal
    err = {m: np.abs(interpolate_axis(lr, pos, m) - fine)[inner].max() for m in ("linear", "bspline")}
    assert err["bspline"] < err["linear"] / 3


# ----------------------------------------------------------------------------- SA-INR (ONNX Runtime)
def test_shipped_model_checksum_and_ort_run(sainr_model):
    entry = sainr_model.entry
    for part in (sainr_model.encoder, sainr_model.decoder):
        assert part.entry.checksum_ok(), f"sha256 in the manifest must match {part.entry.path}"
    size = sainr_model.encoder.entry.path.stat().st_size + sainr_model.decoder.entry.path.stat().st_size
    assert size < 2 * 1024 * 1024
    assert entry.metrics and entry.card and (entry.folder / entry.card).is_file()
    assert entry.extra["receptive_field"]["axis"] >= 1
    rng = np.random.default_rng(0)
    lr = rng.random((1, 1, 6, 20, 17), dtype=np.float32)
    scale = np.array([3.0], np.float32)
    feats = sainr_model.encoder.run({"lr": lr, "scale": scale})[0]
    assert feats.shape[0] == 6 and feats.shape[2:] == (20, 17)
    pos = np.linspace(0, 5, 11).astype(np.float32)
    out = sainr_model.decoder.run({"features": feats, "lr": lr, "pos": pos, "scale": scale})[0]
    assert out.shape == (1, 1, 11, 20, 17) and np.all(np.isfinite(out))
    # at the input slices the output stays near the input (a correction of the linear estimate)
    assert np.abs(out[0, 0, ::2] - lr[0, 0]).mean() < 0.2
    assert sainr_model.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")


def test_sainr_keeps_geometry_and_is_close_to_input_slices(sainr_model):
    vol = _phantom()
    res = superres(vol, 1.3, "k", "sainr", model=sainr_model)
    assert res.volume.array.shape == res.grid.shape_kji
    assert np.all(np.isfinite(res.volume.array))
    lin = superres(vol, 1.3, "k", "linear").volume.array
    drange = float(vol.array.max() - vol.array.min())
    assert np.sqrt(np.mean((res.volume.array - lin) ** 2)) < 0.1 * drange  # a correction, not a different image


def test_tiled_equals_untiled(sainr_model):
    vol = _phantom(shape_kji=(12, 70, 64))
    whole = superres(vol, 1.0, "k", "sainr", model=sainr_model, encoder_voxels=10**9, decoder_voxels=10**9)
    grid = whole.grid
    runner = SAINRRunner(vol.array, grid.anisotropy, sainr_model, encoder_voxels=9000, decoder_voxels=1500)
    items = runner.plan(grid.positions(), (0, grid.n_out, 0, 70, 0, 64))
    assert len(items) > 8 and len({it[0][2:] for it in items}) > 1  # tiles both across slices and in-plane
    tiled = superres(vol, 1.0, "k", "sainr", model=sainr_model, encoder_voxels=9000, decoder_voxels=1500)
    a = whole.volume.array
    np.testing.assert_allclose(tiled.volume.array, a, rtol=0, atol=1e-4 * float(np.abs(a).max()))


def test_preview_reuses_encoder_features(sainr_model):
    vol = _phantom(shape_kji=(12, 70, 64))
    preview = SuperResPreview(vol, sainr_model)
    first = preview.slab(1.0, 20, "k", 1, "k")
    runner = preview._runners["k"]
    calls = []
    orig = runner._encode_block
    runner._encode_block = lambda block: calls.append(block) or orig(block)
    for sp in (0.9, 1.1, 1.3, 0.8):  # slider moves around the same place: decoder only
        idx = int(round(first.grid.positions()[20] * 4.0 / output_grid(vol, sp, "k").spacing))
        res = preview.slab(sp, idx, "k", 1, "k")
        whole = superres(vol, sp, "k", "sainr", model=sainr_model).volume.array
        np.testing.assert_allclose(res.volume.array, whole[idx - 1 : idx + 2], atol=1e-4 * float(np.abs(whole).max()))
    assert calls == []


@pytest.mark.parametrize("view_axis,index", [("k", 17), ("j", 5), ("i", 30), ("k", 0)])
@pytest.mark.parametrize("method", ["sainr", "linear"])
def test_slab_equals_whole(sainr_model, method, view_axis, index):
    vol = _phantom()
    whole = superres(vol, 1.0, "k", method, model=sainr_model if method == "sainr" else None)
    slab = superres_slab(vol, 1.0, index, view_axis, 1, "k", method, model=sainr_model)
    arr = slab.volume.array
    a = "ijk".index(view_axis)
    lo = max(0, index - 1)
    ref = np.take(whole.volume.array, np.arange(lo, lo + arr.shape[2 - a]), axis=2 - a)
    np.testing.assert_allclose(arr, ref, atol=1e-3 * float(np.abs(ref).max()))
    # the slab sits where its slices lie in the whole output
    corner = whole.volume.ijk_to_ras_points([[lo if a == 0 else 0, lo if a == 1 else 0, lo if a == 2 else 0]])[0]
    np.testing.assert_allclose(slab.volume.origin, corner, atol=1e-9)


def test_cancel_raises_and_leaves_no_file(tmp_path, sainr_model, monkeypatch):
    from medsynth.superres import sainr

    src = write_volume(_phantom(shape_kji=(12, 70, 64)), tmp_path / "in.nii.gz")
    out = tmp_path / "out.nii.gz"
    monkeypatch.setattr(sainr, "ENCODER_VOXELS", 9000)  # many blocks, so the cancel lands in the middle
    token = CancelToken()
    calls = []

    def progress(fraction, message):
        calls.append(fraction)
        if len(calls) == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        superres_file(src, out, 1.0, "k", "sainr", progress, token)
    assert 0 < max(calls) < 1
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz"]


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_are_clear_and_leave_input_untouched():
    vol = _phantom()
    before = vol.array.copy()
    two_d = Volume(np.zeros((1, 20, 20), np.float32), make_ijk_to_ras((1, 1, 3)))
    with pytest.raises(InputError, match="2D image"):
        superres(two_d, 1.0, "k", "bspline")
    rgb = Volume(np.zeros((5, 8, 8, 3), np.uint8), make_ijk_to_ras((1, 1, 3)))
    with pytest.raises(InputError, match="vector volume"):
        superres(rgb, 1.0, "auto", "bspline")
    with pytest.raises(InputError, match="not smaller than the current spacing"):
        superres(vol, 4.0, "k", "bspline")
    with pytest.raises(InputError, match="not smaller"):
        superres(vol, 5.0, "auto", "linear")
    iso = Volume(np.zeros((6, 6, 6), np.float32), make_ijk_to_ras((1.2, 1.2, 1.2)))
    with pytest.raises(InputError, match="isotropic.*choose the axis"):
        superres(iso, 0.5, "auto", "linear")
    assert superres(iso, 0.6, "j", "linear").grid.axis == "j"
    with pytest.raises(InputError, match="method"):
        superres(vol, 1.0, "k", "cubic")
    with pytest.raises(MissingModelError, match="not found") as info:
        load_sainr("no-such-model")
    assert isinstance(info.value, InputError)
    np.testing.assert_array_equal(vol.array, before)


def test_missing_model_file(tmp_path, monkeypatch):
    import json

    from medsynth import runtime

    folder = tmp_path / "Models"
    folder.mkdir()
    manifest = json.loads((MODELS / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(manifest))  # entries whose files are absent
    monkeypatch.setenv("MEDSYNTH_RESOURCES", str(tmp_path))
    runtime.clear_cache()
    with pytest.raises(MissingModelError, match="missing"):
        superres(_phantom(), 1.0, "k", "sainr")
    runtime.clear_cache()


# ----------------------------------------------------------------------------- command line
def test_cli_superres_and_errors(tmp_path, capsys):
    from medsynth.cli import main

    src = write_volume(_phantom(), tmp_path / "thick.nrrd")
    for method in ("sainr", "bspline"):
        out = tmp_path / f"fine_{method}.nii.gz"
        assert main(["superres", str(src), str(out), "--spacing", "1.5", "--method", method]) == 0
        vol = read_volume(out)
        assert vol.shape_ijk[2] == 22 and vol.spacing[2] == pytest.approx(32 / 21, abs=1e-4)
    text = capsys.readouterr().out
    assert "rounded" in text and "1.52381" in text
    assert main(["superres", str(src), str(tmp_path / "x.nii.gz"), "--spacing", "6"]) == 2
    assert "not smaller" in capsys.readouterr().err
    assert not (tmp_path / "x.nii.gz").exists()
    with pytest.raises(SystemExit):
        main(["superres", str(src), str(tmp_path / "y.nii.gz")])  # --spacing is required


def test_cli_evaluate_superres(tmp_path, capsys):
    from medsynth.cli import main

    fine = _phantom(shape_kji=(33, 40, 36), spacing=(1, 1, 1))
    ref = write_volume(fine, tmp_path / "ref.nii.gz")
    assert main(["evaluate", "superres", "--reference", str(ref), "--factors", "2", "4", "--axis", "k",
                 "--json", str(tmp_path / "rows.json")]) == 0
    out = capsys.readouterr().out
    for word in ("sainr", "bspline", "linear", "PSNR", "SSIM", "time"):
        assert word in out
    import json

    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert len(rows) == 6 and all(r["seconds"] >= 0 for r in rows)


def test_demo_part(tmp_path):
    from medsynth.superres.demo import SAMPLE, demo_part
    from medsynth.progress import Reporter
    from medsynth.runtime import resources_dir

    if not (resources_dir() / "SampleData" / SAMPLE).is_file():
        pytest.skip(f"sample data Resources/SampleData/{SAMPLE} not present yet")
    paths = demo_part(tmp_path, Reporter())
    names = {p.name for p in paths}
    assert "sainr_overview.png" in names and "superres.txt" in names


def test_inference_does_not_import_torch():
    code = (
        "import sys, numpy as np; from medsynth import Volume, make_ijk_to_ras; "
        "from medsynth.superres import superres; "
        "v = Volume(np.random.rand(6, 30, 30).astype('float32'), make_ijk_to_ras((1, 1, 3))); "
        "superres(v, 1.0, 'k', 'sainr'); assert 'torch' not in sys.modules and 'monai' not in sys.modules; "
        "assert 'slicer' not in sys.modules and 'qt' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- with ../shared/data
@pytest.mark.shared
def test_sainr_beats_bspline_on_held_out_crop(sainr_model):
    from conftest import shared_file
    from medsynth.superres.data import HELD_OUT
    from medsynth.superres.evaluate import evaluate_reference, gains

    ref = read_volume(shared_file(HELD_OUT[0]))
    k, j, i = ref.array.shape
    crop = ref.with_array(ref.array)  # noqa: F841 - geometry reused below
    arr = np.ascontiguousarray(ref.array[k // 2 - 30 : k // 2 + 31, j // 2 - 50 : j // 2 + 50, i // 2 - 50 : i // 2 + 50])
    sub = Volume(arr, ref.ijk_to_ras, "colin_crop")
    rows = evaluate_reference(sub, (4,), "k", "box", ("sainr", "bspline"), model=sainr_model)
    assert gains(rows)["x4"] > 0.5


@pytest.mark.heavy
@pytest.mark.shared
def test_training_smoke_tiny(tmp_path):
    from conftest import SHARED_DATA, shared_file

    shared_file("mri/MNI152_T1_1mm_brain.nii.gz")
    cmd = [sys.executable, "-m", "medsynth.superres.train", "--out", str(tmp_path), "--seed", "0", "--tiny",
           "--data", str(SHARED_DATA)]
    subprocess.run(cmd, check=True, timeout=120, cwd=tmp_path)
    import json

    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entry = manifest["models"][0]
    assert entry["id"] == "sainr-tiny" and entry["metrics"]["rows"]
    assert (tmp_path / "sainr-tiny.onnx").is_file() and (tmp_path / "sainr-tiny.md").is_file()
    assert "--tiny" in entry["training_command"]


# ----------------------------------------------------------------------------- adapt to this volume (torch)
def _adapt_phantom() -> Volume:
    return _phantom(shape_kji=(10, 44, 40), spacing=(1.0, 1.0, 4.0))


@pytest.mark.heavy
def test_adapt_fine_tunes_a_copy_and_leaves_input_and_shipped_model(sainr_model):
    pytest.importorskip("torch", reason="adapting needs torch")
    pytest.importorskip("monai", reason="adapting needs MONAI")
    from medsynth.runtime import sha256_of
    from medsynth.superres.adapt import adapt_model

    vol = _adapt_phantom()
    before = vol.array.copy()
    shipped = sha256_of(sainr_model.entry.path)
    seen = []
    adapted = adapt_model(vol, "k", sainr_model, steps=3, progress=lambda f, m: seen.append(f))
    np.testing.assert_array_equal(vol.array, before)
    assert sha256_of(sainr_model.entry.path) == shipped and adapted.entry.id == "sainr-adapted"
    assert adapted.entry.extra["adapted_from"]["sha256"] == sainr_model.entry.sha256
    base = superres(vol, 1.0, "k", "sainr", model=sainr_model).volume.array
    out = superres(vol, 1.0, "k", "sainr", model=adapted).volume.array
    assert out.shape == base.shape and np.all(np.isfinite(out))
    assert 0 < np.abs(out - base).max() < 0.5 * float(np.ptp(base))  # changed, but still a reconstruction
    assert seen and seen[-1] == pytest.approx(1.0)


@pytest.mark.heavy
def test_cli_adapt_and_its_errors(tmp_path, capsys):
    pytest.importorskip("torch", reason="adapting needs torch")
    pytest.importorskip("monai", reason="adapting needs MONAI")
    from medsynth.cli import main

    src = write_volume(_adapt_phantom(), tmp_path / "thick.nii.gz")
    out = tmp_path / "fine.nii.gz"
    assert main(["superres", str(src), str(out), "--spacing", "1", "--adapt-steps", "2"]) == 0
    assert read_volume(out).shape_ijk[2] == 37
    for args, words in (
        (["--spacing", "1", "--adapt-steps", "2", "--method", "bspline"], "does not apply"),
        (["--spacing", "9", "--adapt-steps", "2"], "not smaller"),
    ):
        assert main(["superres", str(src), str(tmp_path / "bad.nii.gz"), *args]) == 2
        assert words in capsys.readouterr().err
    assert main(["superres", str(src), str(tmp_path / "bad.txt"), "--spacing", "1", "--adapt-steps", "2"]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert not any(p.name.startswith("bad") for p in tmp_path.iterdir())


def test_adapt_without_torch_says_so(monkeypatch):
    from medsynth.superres.adapt import adapt_model

    monkeypatch.setitem(sys.modules, "monai", None)  # import monai now raises ImportError
    with pytest.raises(InputError, match="needs torch and MONAI"):
        adapt_model(_adapt_phantom(), "k", steps=2)


@pytest.mark.heavy
def test_training_can_continue_from_the_shipped_onnx(tmp_path):
    torch = pytest.importorskip("torch", reason="training needs torch")
    pytest.importorskip("monai", reason="training needs MONAI")
    from medsynth.superres.model import SAINR
    from medsynth.superres.train import load_weights

    import json

    arch = json.loads((MODELS / "manifest.json").read_text())
    entry = [m for m in arch["models"] if m["id"] == "sainr"][0]
    net = SAINR(**entry["architecture"])
    load_weights(net, MODELS / "sainr.onnx")
    lr = torch.rand(1, 1, 6, 20, 18)
    got = net(lr, torch.linspace(0, 5, 11), torch.tensor([4.0])).detach().numpy()
    from medsynth.runtime import get_entry, load_entry
    from medsynth.superres.sainr import SAINRModel

    model = SAINRModel(load_entry(get_entry("sainr")), load_entry(get_entry("sainr-decoder")))
    feats = model.encoder.run({"lr": lr.numpy(), "scale": np.array([4.0], np.float32)})[0]
    ref = model.decoder.run({"features": feats, "lr": lr.numpy(), "pos": np.linspace(0, 5, 11).astype(np.float32),
                             "scale": np.array([4.0], np.float32)})[0]
    np.testing.assert_allclose(got, ref, atol=1e-3)
    with pytest.raises(ValueError, match="does not match"):
        load_weights(SAINR(channels=8, blocks=1), MODELS / "sainr.onnx")

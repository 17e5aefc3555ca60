"""CrossModality, MR part: mu-map, MR -> CT synthesis (shipped mr2ct model), tiling, cancel, bad input, CLI,
evaluation on the template pair and tiny training.

Tests that need ../shared/data skip with a reason when it is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import shared_file
from medsynth import CancelToken, Cancelled, InputError, Volume, make_ijk_to_ras
from medsynth.cli import main
from medsynth.io import read_volume, write_volume
from medsynth.mrct import MRCT_PARAMS, hu_to_mu, mu_map, synthesize_ct
from medsynth.mrct.mumap import CARNEY_2006
from medsynth.mrct.synthesis import HALO, check_mr, normalise_mr, run_tiled, synthesize
from medsynth.progress import Reporter


def head_phantom(shape=(44, 52, 40), spacing=2.0, t2=False) -> Volume:
    """A small MR-like head: scalp, dark skull, CSF, grey and white matter ellipsoids ([k, j, i])."""
    k, j, i = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(k ** 2 + j ** 2 + i ** 2)
    values = (0.8, 0.05, 0.3, 0.6, 1.0) if not t2 else (0.5, 0.05, 1.0, 0.7, 0.45)  # scalp, skull, csf, gm, wm
    arr = np.zeros(shape, np.float32)
    for radius, v in zip((0.9, 0.82, 0.74, 0.68, 0.5), values):
        arr[r < radius] = v
    rng = np.random.default_rng(0)
    arr = arr * 200 + rng.normal(0, 2, shape).astype(np.float32)
    return Volume(np.abs(arr), make_ijk_to_ras((spacing,) * 3, (-40, -50, -30)), name="phantom", modality="MR")


# --------------------------------------------------------------------------- mu-map
def test_mu_map_water_air_bone():
    mu = hu_to_mu(np.array([-1000.0, -1200.0, 0.0, 1000.0, 47.0]))
    assert mu[0] == pytest.approx(0.0, abs=1e-7)
    assert mu[1] == 0.0  # never negative
    assert mu[2] == pytest.approx(0.096, abs=1e-6)  # water at 511 keV
    assert mu[3] == pytest.approx(5.10e-5 * 2000 + 4.71e-2, abs=1e-6)  # 120 kVp bone line (Carney 2006)
    assert 0.14 < mu[3] < 0.16
    for kvp, (a, b, bp) in CARNEY_2006.items():  # the two lines meet at the break point
        lo = hu_to_mu(np.array([bp - 1e-3]), kvp)[0]
        hi = hu_to_mu(np.array([bp + 1e-3]), kvp)[0]
        assert abs(hi - lo) < 3e-4, kvp
    with pytest.raises(InputError):
        hu_to_mu(np.zeros(3), kvp=90)


def test_mu_map_volume_and_bad_ct():
    ct = Volume(np.array([[[-1000, 0, 1000]]] * 4, np.float32), make_ijk_to_ras((1, 1, 1)), "ct", "CT")
    mu = mu_map(ct)
    assert mu.array.shape == ct.array.shape and mu.array.dtype == np.float32
    np.testing.assert_allclose(mu.array[0, 0], [0.0, 0.096, 0.1491], atol=1e-4)
    np.testing.assert_array_equal(mu.ijk_to_ras, ct.ijk_to_ras)
    with pytest.raises(InputError, match="Hounsfield"):
        mu_map(ct.with_array(ct.array + 1024))  # offset CT (0..4095), not HU


# --------------------------------------------------------------------------- synthesis
def test_synthesize_ct_grid_and_hu():
    mr = head_phantom()
    before = mr.array.copy()
    ct = synthesize_ct(mr)
    assert ct.array.shape == mr.array.shape
    np.testing.assert_array_equal(ct.ijk_to_ras, mr.ijk_to_ras)
    assert ct.modality == "CT"
    np.testing.assert_array_equal(mr.array, before)  # input untouched
    a = ct.array
    assert a.min() >= -1024 and a.max() <= 3071
    assert np.median(a[:3, :3, :3]) < -700  # air in the corner
    k, j, i = (s // 2 for s in a.shape)
    assert -200 < np.median(a[k - 3:k + 3, j - 3:j + 3, i - 3:i + 3]) < 200  # brain: soft tissue
    mu = mu_map(ct)
    assert mu.array.min() >= 0 and mu.array.max() < 0.25


def test_synthesize_other_grid_and_contrast():
    """An oblique, 1.5 mm, T2-like MR: output on the input's grid."""
    from conftest import rotation

    base = head_phantom((50, 60, 46), t2=True)
    m = make_ijk_to_ras((1.5, 1.5, 1.5), (-30, -40, -20), rotation("z", 15))
    mr = Volume(base.array, m, "oblique", "MR")
    ct = synthesize_ct(mr)
    assert ct.array.shape == mr.array.shape
    np.testing.assert_array_equal(ct.ijk_to_ras, m)


def test_tiling_equals_untiled():
    mr = head_phantom((60, 64, 52))
    whole, _, _ = synthesize(mr, tile=None)
    tiled, _, _ = synthesize(mr, tile=32)
    np.testing.assert_allclose(tiled.array, whole.array, atol=0.5)  # HU; float32 rounding only


def test_run_tiled_with_a_local_operator():
    """The tiling arithmetic on its own: a 5-voxel box filter gives the same voxels tiled and whole."""
    rng = np.random.default_rng(1)
    x = rng.random((37, 41, 29)).astype(np.float32)

    def run(b):
        from numpy.lib.stride_tricks import sliding_window_view

        p = np.pad(b[0, 0], 2)
        s = sliding_window_view(p, (5, 5, 5)).mean(axis=(-1, -2, -3))
        return np.stack([s, -s])[None]

    whole = run_tiled(x, run, None, Reporter())
    tiled = run_tiled(x, run, 12, Reporter(), halo=HALO)
    np.testing.assert_allclose(tiled, whole, atol=1e-6)


def test_cancel_raises_and_writes_nothing(tmp_path):
    mr = head_phantom((60, 64, 52))
    token = CancelToken()
    seen = []

    def progress(f, msg):
        seen.append(msg)
        if "tile" in msg:
            token.cancel()

    with pytest.raises(Cancelled):
        synthesize(mr, progress=progress, cancel=token, tile=32)
    assert any("tile 1/" in s for s in seen)
    # command line: a cancelled or failed run writes no file
    bad = Volume(mr.array[:1], mr.ijk_to_ras, "one_slice")
    path = tmp_path / "mr2d.nrrd"
    write_volume(bad, path)
    out = tmp_path / "ct.nii.gz"
    assert main(["mr2ct", str(path), str(out), "--mu-map", str(tmp_path / "mu.nii.gz")]) == 2
    assert not out.exists() and not (tmp_path / "mu.nii.gz").exists()
    assert not list(tmp_path.glob(".*partial*"))


def test_bad_inputs():
    mr = head_phantom()
    ct_like = mr.with_array(np.where(mr.array > 10, 40.0, -1000.0).astype(np.float32), modality=None)
    with pytest.raises(InputError, match="CT"):
        check_mr(ct_like)
    with pytest.raises(InputError, match="tagged as CT"):
        check_mr(mr.with_array(mr.array, modality="CT"))
    with pytest.raises(InputError, match="2D|3D"):
        check_mr(Volume(np.ones((1, 64, 64), np.float32), make_ijk_to_ras((1, 1, 1)), "slice"))
    with pytest.raises(InputError, match="components"):
        check_mr(Volume(np.ones((20, 20, 20, 3), np.float32), make_ijk_to_ras((4, 4, 4)), "rgb"))
    with pytest.raises(InputError, match="constant"):
        check_mr(mr.with_array(np.ones(mr.array.shape, np.float32)))
    # a blurred emission-like image (8 mm FWHM) is recognised as PET
    from medsynth.pet._img import blur_fwhm

    pet = mr.with_array(blur_fwhm(mr, 10.0), modality=None)
    with pytest.raises(InputError, match="PET"):
        check_mr(pet)
    # missing model: a clear InputError
    with pytest.raises(InputError, match="not available"):
        synthesize(mr, model_id="no-such-model")
    check_mr(mr)  # the phantom itself is fine


def test_pet_template_rejected_as_mr():
    pet = read_volume(shared_file("pet_templates/spm_PET.nii"))
    with pytest.raises(InputError, match="PET"):
        check_mr(pet)


def test_normalisation_and_params():
    a = np.zeros((10, 10, 10), np.float32)
    a[2:8, 2:8, 2:8] = 500
    n = normalise_mr(a)
    assert n.max() == pytest.approx(1.0) and n.min() == 0.0
    assert {p.name for p in MRCT_PARAMS} == {"tile", "kvp"}


# --------------------------------------------------------------------------- CLI
def test_cli_mr2ct_and_mumap(tmp_path, capsys):
    mr = head_phantom()
    mr_path = write_volume(mr, tmp_path / "mr.nii.gz")
    out, mu_out = tmp_path / "sct.nii.gz", tmp_path / "mu.nrrd"
    assert main(["mr2ct", str(mr_path), str(out), "--mu-map", str(mu_out)]) == 0
    ct = read_volume(out)
    assert ct.array.shape == mr.array.shape
    mu = read_volume(mu_out)
    assert 0 <= mu.array.min() and mu.array.max() < 0.25
    mu2 = tmp_path / "mu2.nii.gz"
    assert main(["mumap", str(out), str(mu2), "--kvp", "140"]) == 0
    assert read_volume(mu2).array.shape == mr.array.shape
    assert main(["mumap", str(mr_path), str(tmp_path / "x.nii.gz")]) == 2  # an MR is not a CT in HU
    assert "Hounsfield" in capsys.readouterr().err
    assert not (tmp_path / "x.nii.gz").exists()


def test_demo_part(tmp_path):
    from medsynth.mrct.demo import mrct_part

    paths = mrct_part(tmp_path, Reporter())
    assert all(p.is_file() for p in paths)
    assert read_volume(paths[0]).array.max() > 0


# --------------------------------------------------------------------------- template pair (../shared/data)
def test_ct_template_scaling():
    from medsynth.mrct.evaluate import cormack_to_hu

    shared_file("mr_ct_template/scct.nii")
    np.testing.assert_allclose(cormack_to_hu(np.array([0.0, 900.0, 2530.0, 3100.0, 3794.0])),
                               [-1024, -124, 24.18, 76, 770], atol=0.1)


@pytest.mark.heavy
def test_evaluate_cli(tmp_path, capsys):
    shared_file("mr_ct_template/avg152T1.nii")
    report = tmp_path / "r.json"
    assert main(["evaluate", "mr2ct", "--report", str(report)]) == 0
    data = json.loads(report.read_text())
    methods = {r["method"].split(":")[0].split(" ")[0] for r in data["rows"]}
    assert len(data["rows"]) == 9 and "baseline" in methods
    for r in data["rows"]:
        assert 0 < r["mae_hu"] < 1000 and 0 <= r["bone_dice"] <= 1
    assert "| T1 |" in capsys.readouterr().out


@pytest.mark.heavy
def test_anatomy_from_shared_data():
    shared_file("mri/colin27_ch2_1mm.nii.gz")
    from medsynth.mrct.anatomy import TISSUES, build_anatomy

    fr, grid = build_anatomy()
    assert fr.shape[0] == len(TISSUES) and fr.shape[1:] == grid.array.shape
    np.testing.assert_allclose(fr.sum(0), 1.0, atol=1e-3)
    vol_ml = fr.sum(axis=(1, 2, 3)) * 8 / 1000
    assert 300 < vol_ml[TISSUES.index("bone")] < 1500  # a skull of a few hundred ml


@pytest.mark.heavy
def test_tiny_training(tmp_path):
    shared_file("mri/colin27_ch2_1mm.nii.gz")
    import time

    from medsynth import runtime
    from medsynth.mrct.train import main as train_main

    t = time.time()
    assert train_main(["--out", str(tmp_path), "--seed", "0", "--tiny"]) == 0
    assert time.time() - t < 60
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entry = [m for m in manifest["models"] if m["id"] == "mr2ct"][0]
    assert entry["normalization"]["input"].startswith("MR resampled")
    old = list(runtime.model_dirs()[1:])
    try:
        runtime.set_user_model_dirs([tmp_path])
        runtime.clear_cache()
        ct = synthesize_ct(head_phantom())
        assert np.isfinite(ct.array).all()
    finally:
        runtime.set_user_model_dirs(old)
        runtime.clear_cache()

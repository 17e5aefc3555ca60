"""Model files: every file a model reads is in the manifest with its sha256 and checked before use; a malformed
manifest, a changed or corrupt side file and a checkpoint holding Python objects are refused with a clear
ModelError (exit 2 on the command line, no traceback).  Tests work on copies of the shipped models in a user
model folder; Resources/Models is never changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medsynth import ModelError, runtime

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "Resources" / "Models"
NODULE = "nodule-shape-vae"
METAAD = "metaad-cycle"


def shipped_entries():
    return {m["id"]: m for m in json.loads((MODELS / "manifest.json").read_text(encoding="utf-8"))["models"]}


def write_manifest(folder: Path, models) -> None:
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "models": models}, indent=2), encoding="utf-8")


def copy_models(folder: Path, ids) -> Path:
    """A user model folder with the shipped entries ``ids``, their model files and side files."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = shipped_entries()
    models = [entries[i] for i in ids]
    for m in models:
        names = [m["file"]] + [s["file"] for s in m.get("files", {}).values()]
        for name in names:
            shutil.copyfile(MODELS / name, folder / name)
    write_manifest(folder, models)
    return folder


def set_side_sha(folder: Path, model_id: str, role: str) -> None:
    """Record the side file's present sha256 (a file whose checksum holds but whose content is bad)."""
    data = json.loads((folder / "manifest.json").read_text())
    m = [e for e in data["models"] if e["id"] == model_id][0]
    m["files"][role]["sha256"] = runtime.sha256_of(folder / m["files"][role]["file"])
    (folder / "manifest.json").write_text(json.dumps(data, indent=2))


@pytest.fixture
def user_dir(tmp_path):
    """Register ``tmp_path / 'models'`` as a user model folder for the test (restored afterwards)."""
    before = runtime.model_dirs()[1:]
    folder = tmp_path / "models"
    folder.mkdir()
    runtime.set_user_model_dirs(list(before) + [folder])
    runtime.clear_cache()
    yield folder
    runtime.set_user_model_dirs(before)
    runtime.clear_cache()


def tamper_stats(path: Path) -> None:
    """The NC regional SDs scaled by 0.1 (made a normal FDG "ABNORMAL" before side files were checked)."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["region_sd"] = arrays["region_sd"] * 0.1
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


# --------------------------------------------------------------------------- the shipped manifest
def test_shipped_side_files_are_listed_with_their_sha256():
    entries = {e.id: e for e in runtime.read_manifest(MODELS)}
    assert entries[NODULE].files["latent"]["file"] == "nodule-shape-vae.json"
    assert entries[METAAD].files["stats"]["file"] == "metaad_stats.npz"
    listed = {"manifest.json"}
    for e in entries.values():
        assert not {"latent_file", "latent_sha256", "stats_file"} & set(e.extra), e.id  # only the "files" form
        assert e.problems() == [], e.id
        assert all(s == "checksum OK" for s in e.side_files_status().values())
        for role, spec in e.files.items():
            assert runtime.sha256_of(MODELS / spec["file"]) == spec["sha256"], (e.id, role)
        listed |= {e.file, e.card} | {s["file"] for s in e.files.values()}
    # every file in the folder is a model file, a side file, a model card or the manifest
    assert sorted(p.name for p in MODELS.iterdir() if p.is_file()) == sorted(listed)


def test_model_cards_mention_the_side_file_checksums():
    for card, name in (("metaad.md", "metaad_stats.npz"), ("nodule-shape-vae.md", "nodule-shape-vae.json")):
        text = (MODELS / card).read_text(encoding="utf-8")
        assert name in text and "sha256" in text, card


# --------------------------------------------------------------------------- changed side files (API)
def test_changed_latent_json_is_refused(user_dir):
    from medsynth.nodule.shape import ShapeModel, default_shape_model

    copy_models(user_dir, [NODULE])
    entry = runtime.get_entry(NODULE)
    assert entry.folder == user_dir
    assert ShapeModel(entry).latent.latent_size > 0  # the intact copy loads
    path = user_dir / "nodule-shape-vae.json"
    data = json.loads(path.read_text())
    data["latent_mean"] = [v + 0.5 for v in data["latent_mean"]]  # still valid JSON, other shapes
    path.write_text(json.dumps(data))
    entry = runtime.get_entry(NODULE)
    assert not entry.checksum_ok()
    assert "does not hold" in entry.side_files_status()["latent"]
    with pytest.raises(ModelError, match=r"checksum of side file 'nodule-shape-vae\.json' \(latent\).*does not hold"):
        ShapeModel(entry)
    with pytest.raises(ModelError, match="nodule-shape-vae.json"):
        default_shape_model()
    with pytest.raises(ModelError, match="does not hold"):
        entry.side_file("latent")


def test_changed_metaad_stats_are_refused(user_dir):
    from medsynth.metaad.core import load_stats

    copy_models(user_dir, [METAAD])
    good = load_stats()
    assert np.all(good["region_sd"] > 0) and good["score"]
    tamper_stats(user_dir / "metaad_stats.npz")
    with pytest.raises(ModelError, match=r"checksum of side file 'metaad_stats\.npz' \(stats\).*does not hold"):
        load_stats()
    assert not runtime.get_entry(METAAD).checksum_ok()


def test_missing_side_file_and_missing_sha256(user_dir):
    from medsynth.metaad.core import load_stats

    copy_models(user_dir, [METAAD])
    (user_dir / "metaad_stats.npz").unlink()
    with pytest.raises(ModelError, match="metaad_stats.npz.*is missing"):
        load_stats()
    m = shipped_entries()[METAAD]
    m["files"] = {"stats": {"file": "metaad_stats.npz"}}
    shutil.copyfile(MODELS / "metaad_stats.npz", user_dir / "metaad_stats.npz")
    write_manifest(user_dir, [m])
    with pytest.raises(ModelError, match="has no sha256 in the manifest"):
        load_stats()
    # a manifest of an earlier version (stats_file, no sha256) is refused the same way
    del m["files"]
    m["stats_file"] = "metaad_stats.npz"
    write_manifest(user_dir, [m])
    with pytest.raises(ModelError, match="has no sha256 in the manifest"):
        load_stats()
    del m["stats_file"]
    write_manifest(user_dir, [m])
    with pytest.raises(ModelError, match="lists no side file 'stats'"):
        load_stats()


def test_earlier_latent_fields_are_read_as_a_side_file(user_dir):
    from medsynth.nodule.shape import ShapeModel

    copy_models(user_dir, [NODULE])
    m = shipped_entries()[NODULE]
    spec = m.pop("files")["latent"]
    m["latent_file"], m["latent_sha256"] = spec["file"], spec["sha256"]
    write_manifest(user_dir, [m])
    entry = runtime.get_entry(NODULE)
    assert entry.files == {"latent": spec} and "latent_file" not in entry.to_dict()
    assert ShapeModel(entry).latent.latent_size > 0
    (user_dir / spec["file"]).write_text("{}")
    with pytest.raises(ModelError, match="does not hold"):
        ShapeModel(runtime.get_entry(NODULE))


# --------------------------------------------------------------------------- corrupt side files whose checksum holds
@pytest.mark.parametrize("how", ["random", "truncated", "keys", "nan"])
def test_corrupt_stats_are_refused_even_when_the_checksum_holds(user_dir, how):
    from medsynth.metaad.core import load_stats

    copy_models(user_dir, [METAAD])
    path = user_dir / "metaad_stats.npz"
    if how == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        if how == "keys":
            del arrays["region_sd"]
        else:
            arrays["region_mean"] = arrays["region_mean"] * np.nan
        np.savez(path, **arrays)
    with pytest.raises(ModelError, match="does not hold"):  # the checksum is checked first
        load_stats()
    set_side_sha(user_dir, METAAD, "stats")
    expected = {"random": "cannot be read", "truncated": "cannot be read", "keys": "lack region_sd",
                "nan": "non-finite"}[how]
    with pytest.raises(ModelError, match=expected):
        load_stats()


@pytest.mark.parametrize("how", ["truncated", "not-an-object", "sizes"])
def test_corrupt_latent_json_is_refused_even_when_the_checksum_holds(user_dir, how):
    from medsynth.nodule.shape import ShapeModel

    copy_models(user_dir, [NODULE])
    path = user_dir / "nodule-shape-vae.json"
    if how == "truncated":
        path.write_text(path.read_text()[:500])
    elif how == "not-an-object":
        path.write_text("[1, 2, 3]")
    else:
        data = json.loads(path.read_text())
        data["latent_mean"] = data["latent_mean"][:-1]
        path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="does not hold"):
        ShapeModel(runtime.get_entry(NODULE))
    set_side_sha(user_dir, NODULE, "latent")
    expected = "are inconsistent" if how == "sizes" else "cannot be read"
    with pytest.raises(ModelError, match=f"latent directions of '{NODULE}'.*{expected}"):
        ShapeModel(runtime.get_entry(NODULE))


# --------------------------------------------------------------------------- malformed manifests
BAD_MANIFESTS = {
    "list": ([], "is a JSON list; expected an object"),
    "string": ("models", "is a JSON string"),
    "no models": ({"format": 1}, 'has no "models" list'),
    "models not a list": ({"format": 1, "models": {"id": "x"}}, '"models" is a JSON object, not a list'),
    "entry not an object": ({"format": 1, "models": [3]}, r"models\[0\] is a JSON number, not an object"),
    "entry without id": ({"format": 1, "models": [{"file": "x.onnx"}]}, r'models\[0\] has no "id"'),
    "missing fields": ({"format": 1, "models": [{"id": "x", "version": "1"}]}, "lacks file, sha256, inputs, outputs"),
    "bad sha256": ({"format": 1, "models": [{"id": "x", "version": "1", "file": "x.onnx", "sha256": "abc",
                                             "inputs": [], "outputs": []}]}, "not 64 lowercase hex"),
    "file outside": ({"format": 1, "models": [{"id": "x", "version": "1", "file": "../x.onnx", "sha256": "0" * 64,
                                               "inputs": [], "outputs": []}]}, "inside the model folder"),
    "inputs not a list": ({"format": 1, "models": [{"id": "x", "version": "1", "file": "x.onnx", "sha256": "0" * 64,
                                                    "inputs": "image", "outputs": []}]}, "'inputs' of 'x' must be"),
    "side file not an object": ({"format": 1, "models": [{"id": "x", "version": "1", "file": "x.onnx",
                                                          "sha256": "0" * 64, "inputs": [], "outputs": [],
                                                          "files": {"stats": "x.npz"}}]}, "side file 'stats'"),
    "side file outside": ({"format": 1, "models": [{"id": "x", "version": "1", "file": "x.onnx", "sha256": "0" * 64,
                                                    "inputs": [], "outputs": [],
                                                    "files": {"stats": {"file": "/etc/hostname", "sha256": "0" * 64}}}
                                                   ]}, "inside the model folder"),
    "duplicate id": ({"format": 1, "models": [{"id": "x"}, {"id": "x"}]}, "lists 'x' more than once"),
    "format": ({"format": 2, "models": []}, "has format 2"),
}


@pytest.mark.parametrize("name", sorted(BAD_MANIFESTS))
def test_malformed_manifest_is_a_model_error(user_dir, name):
    content, message = BAD_MANIFESTS[name]
    (user_dir / "manifest.json").write_text(json.dumps(content))
    with pytest.raises(ModelError, match=message):
        runtime.read_manifest(user_dir)
    with pytest.raises(ModelError, match=message):
        runtime.get_entry(METAAD)
    entries, problems = runtime.scan_models()
    assert METAAD in entries and len(problems) == 1 and str(user_dir / "manifest.json") in problems[0]
    if name == "list":  # writing an entry never replaces a manifest it cannot read
        with pytest.raises(ModelError, match="JSON list"):
            runtime.write_manifest_entry(user_dir, runtime.read_manifest(MODELS)[0])
        assert json.loads((user_dir / "manifest.json").read_text()) == []


def test_manifest_that_is_not_json_or_text(user_dir):
    (user_dir / "manifest.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(ModelError, match="not UTF-8 text|not valid JSON"):
        runtime.read_manifest(user_dir)
    (user_dir / "manifest.json").write_text('{"format": 1, "models": [')
    with pytest.raises(ModelError, match="not valid JSON"):
        runtime.read_manifest(user_dir)


def test_written_side_files_carry_their_sha256(tmp_path):
    entry = runtime.read_manifest(MODELS)[0]
    entry.folder = tmp_path
    (tmp_path / "extra.npz").write_bytes(b"abc")
    entry.files["extra"] = {"file": "extra.npz"}
    with pytest.raises(ModelError, match="has no sha256"):
        runtime.write_manifest_entry(tmp_path, entry)
    assert not (tmp_path / "manifest.json").exists()
    entry.add_side_file("extra", tmp_path / "extra.npz")
    runtime.write_manifest_entry(tmp_path, entry)
    (back,) = runtime.read_manifest(tmp_path)
    assert back.files == {"extra": {"file": "extra.npz", "sha256": runtime.sha256_of(tmp_path / "extra.npz")}}
    assert back.side_file("extra") == tmp_path / "extra.npz"
    (tmp_path / "extra.npz").write_bytes(b"abd")
    with pytest.raises(ModelError, match="'extra.npz' \\(extra\\).*does not hold"):
        back.side_file("extra")


# --------------------------------------------------------------------------- command line
def run_cli(args, model_dir: Path, timeout=240):
    env = dict(os.environ, PYTHONPATH=str(REPO / "MedSynthExtension"), MEDSYNTH_MODEL_DIRS=str(model_dir),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env.pop("MEDSYNTH_RESOURCES", None)
    return subprocess.run([sys.executable, "-m", "medsynth"] + list(args), capture_output=True, text=True, env=env,
                          timeout=timeout)


def write_image(path: Path, shape, spacing, low, high) -> Path:
    import SimpleITK as sitk

    arr = np.random.default_rng(0).uniform(low, high, shape).astype(np.float32)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin([-s * n / 2 for s, n in zip(spacing, shape[::-1])])
    sitk.WriteImage(img, str(path))
    return path


def assert_refused(r, *words):
    text = r.stdout + r.stderr
    assert r.returncode == 2, text[-2000:]
    assert "Traceback" not in text, text[-2000:]
    for w in words:
        assert w in r.stderr, (w, r.stderr[-2000:])


@pytest.mark.parametrize("how", ["tampered", "random", "list-manifest"])
def test_cli_metaad_refuses_bad_model_files(tmp_path, how):
    models = copy_models(tmp_path / "models", [METAAD])
    stats = models / "metaad_stats.npz"
    if how == "tampered":
        tamper_stats(stats)
        words = ["metaad_stats.npz", "does not hold"]
    elif how == "random":
        stats.write_bytes(os.urandom(2048))
        set_side_sha(models, METAAD, "stats")
        words = ["metaad_stats.npz", "cannot be read"]
    else:
        (models / "manifest.json").write_text("[]")
        words = ["manifest.json", "is a JSON list"]
    fdg = write_image(tmp_path / "fdg.nii.gz", (24, 28, 24), (6.0, 6.0, 6.0), 0.5, 2.0)
    before = runtime.sha256_of(fdg)
    out = tmp_path / "out" / "anomaly.nii.gz"
    out.parent.mkdir()
    r = run_cli(["metaad", str(fdg), str(out), "--report", str(tmp_path / "out" / "r.json")], models)
    assert_refused(r, *words)
    assert list(out.parent.iterdir()) == [] and runtime.sha256_of(fdg) == before


@pytest.mark.parametrize("how", ["tampered", "truncated"])
def test_cli_nodule_refuses_bad_latent_json(tmp_path, how):
    models = copy_models(tmp_path / "models", [NODULE])
    latent = models / "nodule-shape-vae.json"
    latent.write_text(latent.read_text()[:300])
    if how == "truncated":
        set_side_sha(models, NODULE, "latent")
        words = ["nodule-shape-vae.json", "cannot be read"]
    else:
        words = ["nodule-shape-vae.json", "does not hold"]
    ct = write_image(tmp_path / "ct.nii.gz", (40, 48, 48), (2.0, 2.0, 2.0), -900.0, -800.0)
    out = tmp_path / "out" / "ct_nodule.nii.gz"
    out.parent.mkdir()
    r = run_cli(["nodule", str(ct), str(out), "--ras", "0", "0", "0", "--diameter", "8"], models)
    assert_refused(r, *words)
    assert list(out.parent.iterdir()) == []


def test_cli_info_lists_side_files_and_problems(tmp_path):
    models = copy_models(tmp_path / "models", [METAAD, NODULE])
    r = run_cli(["info"], models, timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert f"side file stats: checksum OK ({models / 'metaad_stats.npz'})" in r.stdout
    assert f"side file latent: checksum OK ({models / 'nodule-shape-vae.json'})" in r.stdout
    tamper_stats(models / "metaad_stats.npz")
    r = run_cli(["info", "--json"], models, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    info = json.loads(r.stdout)
    (m,) = [m for m in info["models"] if m["id"] == METAAD]
    assert not m["checksum_ok"] and "does not hold" in m["side_files"]["stats"]["state"]
    assert any("metaad_stats.npz" in p for p in m["problems"])
    (n,) = [m for m in info["models"] if m["id"] == NODULE]
    assert n["checksum_ok"] and n["side_files"]["latent"]["state"] == "checksum OK"
    # a manifest that is a JSON list: listed as a problem, the shipped models still shown
    (models / "manifest.json").write_text("[]")
    r = run_cli(["info"], models, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert "manifest problem:" in r.stdout and "is a JSON list" in r.stdout
    assert f"{METAAD} " in r.stdout and str(MODELS / "metaad-cycle.onnx") in r.stdout


# --------------------------------------------------------------------------- training checkpoints
def test_checkpoints_load_with_weights_only_and_resume(tmp_path):
    torch = pytest.importorskip("torch", reason="checkpoints need torch")
    from medsynth.cyto.data import CellSet
    from medsynth.cyto.train import generator_of, load_checkpoint, save_checkpoint, train_gan
    from medsynth.export import load_checkpoint_file, plain_checkpoint

    rng = np.random.default_rng(0)
    cells = CellSet([rng.integers(0, 255, (64, 70, 3), dtype=np.uint8) for _ in range(7)], np.arange(7))
    ck = train_gan("baseline", cells, steps=1, batch=2, seed=0, device="cpu", width=2, d_width=2)
    ck["numpy_value"] = np.float64(1.5)  # numpy values are stored as plain numbers
    path = save_checkpoint(ck, tmp_path)
    back = load_checkpoint(path)
    assert back["numpy_value"] == 1.5 and type(back["numpy_value"]) is float
    assert type(back["torch"]) is str and back["steps_done"] == 1
    g0, g1 = generator_of(ck), generator_of(back)
    z, y = torch.randn(2, 64), torch.tensor([0, 6])
    with torch.no_grad():
        assert torch.equal(g0(z, y), g1(z, y))
    # a checkpoint holding a Python object is refused (weights_only=True never runs stored code)
    evil = tmp_path / "evil.pt"
    torch.save({"state": Path("x")}, str(evil))
    with pytest.raises(ModelError, match="weights_only=True"):
        load_checkpoint_file(evil)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot be read"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(TypeError, match="plain types"):
        plain_checkpoint({"a": [object()]})


def test_superres_checkpoint_resumes_with_weights_only(tmp_path):
    torch = pytest.importorskip("torch", reason="checkpoints need torch")
    from medsynth.export import save_checkpoint_file
    from medsynth.superres.model import SAINR
    from medsynth.superres.train import load_weights

    torch.manual_seed(0)
    net = SAINR(channels=8, blocks=1)
    path = save_checkpoint_file({"config": net.config, "state_dict": net.state_dict()}, tmp_path / "sr.pt")
    torch.manual_seed(1)
    other = SAINR(channels=8, blocks=1)
    assert any(not torch.equal(a, b) for a, b in zip(net.state_dict().values(), other.state_dict().values()))
    load_weights(other, path)  # --init CHECKPOINT.pt
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), other.state_dict().values()))
    torch.save({"config": net.config, "state_dict": net.state_dict(), "note": Path("x")}, str(tmp_path / "obj.pt"))
    with pytest.raises(ModelError, match="weights_only=True"):
        load_weights(other, tmp_path / "obj.pt")

"""MetaAD (medsynth.metaad): anomaly maps NC vs PD, regional table, threshold, baselines, CLI, evaluation, bad input,
inference without torch, tiny training (heavy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from medsynth import InputError, Volume
from medsynth.cli import main
from medsynth.io import read_volume, write_volume
from medsynth.runtime import list_models

needs_model = pytest.mark.skipif("metaad-cycle" not in list_models(), reason="metaad-cycle is not in Resources/Models")


@pytest.fixture(scope="module")
def subjects():
    """A simulated NC and an advanced PD FDG (MNI 2 mm), seeded; and their MetaAD results."""
    from medsynth.metaad.detect import detect
    from medsynth.pet.simulate import example_subject

    out = {}
    for group in ("NC", "PD"):
        fdg = example_subject(group).fdg
        out[group] = {"fdg": fdg, "res": detect(fdg) if "metaad-cycle" in list_models() else None}
    return out


@needs_model
def test_pd_scores_higher_than_nc_and_maps_on_input_grid(subjects):
    nc, pd = subjects["NC"]["res"], subjects["PD"]["res"]
    assert pd.score > nc.score
    for g in ("NC", "PD"):
        r, fdg = subjects[g]["res"], subjects[g]["fdg"]
        assert r.signed.array.shape == fdg.array.shape and np.allclose(r.signed.ijk_to_ras, fdg.ijk_to_ras)
        assert np.all(np.isfinite(r.signed.array)) and np.allclose(r.absolute.array, np.abs(r.signed.array))
        assert r.space == "mni"


@needs_model
def test_report_threshold_and_score_are_stated(subjects):
    rep = subjects["PD"]["res"].report()
    s = rep["subject_score"]
    from medsynth.metaad.core import SCORES

    assert s["name"] in SCORES
    assert "95th percentile" in s["threshold_rule"] and "normal-control" in s["threshold_rule"]
    assert s["score_choice"] and s["threshold"] > 0
    assert isinstance(s["abnormal"], bool)
    assert "simulated" in rep["note"]
    json.dumps(rep)


@needs_model
def test_regional_table(subjects):
    for g in ("NC", "PD"):
        t = subjects[g]["res"].table
        assert len(t) == 21 and {r["region"] for r in t} >= {"putamen_posterior_L", "pons", "occipital_R"}
        for r in t:
            assert np.isfinite(r["z"]) and len(r["centroid_ras"]) == 3 and r["nc_sd_percent"] > 0
    zmax = {g: max(abs(r["z"]) for r in subjects[g]["res"].table) for g in ("NC", "PD")}
    assert zmax["PD"] > zmax["NC"]


@needs_model
def test_baselines(subjects):
    b = {g: subjects[g]["res"].baselines for g in ("NC", "PD")}
    for g in b:
        assert set(b[g]) == {"voxel_z_mean_abs", "ssm_pca_pdrp", "fdg_region_z_rms"}
        assert all(np.isfinite(v) for v in b[g].values())
    assert b["PD"]["ssm_pca_pdrp"] > b["NC"]["ssm_pca_pdrp"]
    assert b["PD"]["fdg_region_z_rms"] > b["NC"]["fdg_region_z_rms"]
    assert b["PD"]["voxel_z_mean_abs"] > b["NC"]["voxel_z_mean_abs"]


@needs_model
def test_native_input_is_registered_and_map_returns_to_its_grid(subjects):
    from medsynth.metaad.detect import detect

    fdg = subjects["PD"]["fdg"]
    c, s = np.cos(np.radians(6)), np.sin(np.radians(6))
    rot = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    native = Volume(fdg.array, rot @ fdg.ijk_to_ras, "native", "PET")
    r = detect(native)
    assert r.space == "registered" and r.registration is not None
    assert r.signed.array.shape == native.array.shape and np.allclose(r.signed.ijk_to_ras, native.ijk_to_ras)
    assert r.z.array.shape == native.array.shape and np.allclose(r.z.ijk_to_ras, native.ijk_to_ras)
    assert abs(r.score - subjects["PD"]["res"].score) < 0.5 * subjects["PD"]["res"].score
    assert r.report()["registration"]["method"].startswith("affine")


@needs_model
def test_cli_writes_map_and_report(subjects, tmp_path, capsys):
    src = write_volume(subjects["PD"]["fdg"], tmp_path / "fdg.nii.gz")
    out, rep = tmp_path / "map.nii.gz", tmp_path / "r.json"
    assert main(["metaad", str(src), str(out), "--report", str(rep)]) == 0
    assert "threshold" in capsys.readouterr().out
    m = read_volume(out)
    assert m.array.shape == subjects["PD"]["fdg"].array.shape
    r = json.loads(rep.read_text())
    assert {"subject_score", "regional_table", "baselines", "map"} <= set(r)


@needs_model
def test_z_map_is_the_signed_map_over_the_regional_nc_sd(subjects):
    """Regional-SD z: signed / NC SD of the regional residual of the voxel's atlas region (median SD outside the 21
    regions), on the input grid and in MNI; NC mostly below |z| 2, PD with hypo- and hypermetabolic regions."""
    from medsynth.metaad.core import crop_layout, load_stats, region_sd_map
    from medsynth.pet.synthesis import crop

    stats, lay = load_stats(), crop_layout()
    sd = region_sd_map(stats)
    for i, rid in enumerate(lay["region_ids"]):
        assert np.allclose(sd[lay["labels"] == rid], stats["region_sd"][i])
    other = lay["brain"] & ~np.isin(lay["labels"], lay["region_ids"])
    assert other.any() and np.allclose(sd[other], np.median(stats["region_sd"]))
    region_mean_z = {}
    for g in ("NC", "PD"):
        r, fdg = subjects[g]["res"], subjects[g]["fdg"]
        assert r.z.array.shape == fdg.array.shape and np.allclose(r.z.ijk_to_ras, fdg.ijk_to_ras)
        assert r.z_mni.array.shape == r.signed_mni.array.shape and np.all(np.isfinite(r.z.array))
        zc, sc = crop(r.z_mni.array), crop(r.signed_mni.array)
        brain = lay["brain"]
        assert np.allclose(zc[brain] * sd[brain], sc[brain], atol=1e-4) and np.all(zc[~brain] == 0)
        assert np.allclose(r.z.array, r.z_mni.array, atol=1e-5)  # MNI input: the same grid
        zb = zc[brain]
        region_mean_z[g] = {n: float(zc[lay["labels"] == rid].mean())
                            for n, rid in zip(lay["region_names"], lay["region_ids"])}
        rep = r.report()["z_map"]
        assert "regional-SD z" in rep["definition"] and rep["unit"] == "z (regional NC SD)"
        assert rep["brain_fraction_z_below_minus_2"] == pytest.approx((zb < -2).mean(), abs=0.02)
        if g == "NC":
            assert (np.abs(zb) < 2).mean() > 0.75  # normal control: most of the brain below the threshold
    nc, pd = region_mean_z["NC"], region_mean_z["PD"]
    assert max(abs(v) for v in pd.values()) > max(abs(v) for v in nc.values())
    assert min(pd.values()) < -2 and max(pd.values()) > 2  # signed: hypo- and hypermetabolic regions
    assert sum(abs(v) > 2 for v in pd.values()) > sum(abs(v) > 2 for v in nc.values())


@needs_model
def test_cli_z_map_on_the_input_grid_and_other_outputs_unchanged(subjects, tmp_path, capsys):
    fdg = subjects["PD"]["fdg"]
    # a native grid (rotated, cropped; registered): the z map comes back onto it
    c, s = np.cos(np.radians(4)), np.sin(np.radians(4))
    rot = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    native = Volume(fdg.array[:, 4:-4], rot @ fdg.ijk_to_ras, "native", "PET")
    src = write_volume(native, tmp_path / "native.nii.gz")
    zpath, mpath = tmp_path / "z.nrrd", tmp_path / "n_map.nii.gz"
    assert main(["metaad", str(src), str(mpath), "--z-map", str(zpath)]) == 0
    assert "z map (regional-SD z" in capsys.readouterr().out
    z, signed = read_volume(zpath), read_volume(mpath).array
    assert z.array.shape == native.array.shape and np.allclose(z.ijk_to_ras, native.ijk_to_ras, atol=1e-4)
    inside = np.abs(z.array) > 0.05
    # resampled separately: at a region border near a zero crossing the two interpolations may differ in sign
    assert inside.mean() > 0.05 and (np.sign(z.array[inside]) == np.sign(signed[inside])).mean() > 0.995
    # the other outputs are the same with and without --z-map (MNI input: no registration, deterministic)
    src = write_volume(fdg, tmp_path / "fdg.nii.gz")
    runs = {}
    for tag, extra in (("a", []), ("b", ["--z-map", str(tmp_path / "b_z.nii.gz")])):
        out = {k: tmp_path / f"{tag}_{k}" for k in ("map.nii.gz", "abs.nii.gz", "r.json")}
        assert main(["metaad", str(src), str(out["map.nii.gz"]), "--abs-map", str(out["abs.nii.gz"]),
                     "--report", str(out["r.json"])] + extra) == 0
        runs[tag] = out
    for k in ("map.nii.gz", "abs.nii.gz"):
        np.testing.assert_array_equal(read_volume(runs["a"][k]).array, read_volume(runs["b"][k]).array)
    ra, rb = (json.loads(runs[t]["r.json"].read_text()) for t in ("a", "b"))
    assert set(ra) == set(rb) and "z_map" in rb and rb["z_map"]["unit"] == "z (regional NC SD)"
    for k in set(ra) - {"seconds"}:
        assert ra[k] == rb[k], k
    zb = read_volume(tmp_path / "b_z.nii.gz").array
    assert zb.shape == fdg.array.shape
    np.testing.assert_allclose(zb, subjects["PD"]["res"].z.array, atol=1e-4)
    # never over the input, only the PET suffixes; a refused call writes nothing
    assert main(["metaad", str(src), str(tmp_path / "m.nii.gz"), "--z-map", str(src)]) == 2
    assert main(["metaad", str(src), str(tmp_path / "m.nii.gz"), "--z-map", str(tmp_path / "z.png")]) == 2
    assert not (tmp_path / "m.nii.gz").exists()


@needs_model
def test_bad_input_is_refused_and_writes_nothing(subjects, tmp_path):
    from medsynth.metaad.detect import detect, detect_file
    from medsynth.volume import make_ijk_to_ras

    with pytest.raises(InputError):
        detect(Volume(np.zeros((1, 64, 64), np.float32), make_ijk_to_ras((2, 2, 2)), name="flat"))
    fdg = subjects["NC"]["fdg"]
    cut = fdg.array.copy()
    cut[: cut.shape[0] // 2] = 0.0  # the lower half of the head is outside the field of view
    with pytest.raises(InputError, match="does not cover the brain"):
        detect(fdg.with_array(cut))
    ct = fdg.with_array(np.where(fdg.array > 0, 40.0, -1000.0).astype(np.float32))
    with pytest.raises(InputError):
        detect(ct)
    src = write_volume(fdg, tmp_path / "fdg.nii.gz")
    with pytest.raises(InputError, match="cannot write"):
        detect_file(src, tmp_path / "map.png")
    assert not (tmp_path / "map.png").exists()


@needs_model
def test_cli_evaluate_metaad(tmp_path, capsys):
    from medsynth.pet.simulate import simulate_cohort

    folder = tmp_path / "cohort"
    simulate_cohort(folder, 4, 0.5, 5, groups=["NC", "PD", "NC", "PD"])
    rep = tmp_path / "eval.json"
    assert main(["evaluate", "metaad", "--cohort", str(folder), "--report", str(rep)]) == 0
    s = json.loads(rep.read_text())["summary"]
    for m in ("metaad", "ssm_pca", "voxel_z", "region_z"):
        assert 0.0 <= s[f"auc_{m}"] <= 1.0 and len(s[f"auc_{m}_ci95"]) == 2
    assert s["n_nc"] == 2 and s["n_pd"] == 2


def test_auc_and_bootstrap():
    from medsynth.metaad.calibrate import auc
    from medsynth.metaad.evaluate import bootstrap_ci

    assert auc([0, 1], [2, 3]) == 1.0 and auc([2, 3], [0, 1]) == 0.0 and auc([1], [1]) == 0.5
    lo, hi = bootstrap_ci([0.0, 0.2, 0.5, 0.6], [0.4, 0.7, 0.9, 1.0], n=200)
    assert 0.0 <= lo <= hi <= 1.0


def test_smoothing_keeps_constant_inside_mask():
    from medsynth.metaad.core import smooth

    m = np.zeros((20, 20, 20), bool)
    m[5:15, 5:15, 5:15] = True
    s = smooth(np.full(m.shape, 3.0, np.float32), m)
    assert np.allclose(s[m], 3.0, atol=1e-4) and np.all(s[~m] == 0)


@needs_model
def test_inference_needs_no_torch(subjects, tmp_path):
    src = write_volume(subjects["NC"]["fdg"], tmp_path / "fdg.nii.gz")
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['monai'] = None\n"
        "from medsynth.io import read_volume\n"
        "from medsynth.metaad import detect\n"
        f"r = detect(read_volume({str(src)!r}))\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print(r.score)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "MedSynthExtension"), OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.heavy
def test_tiny_training_exports_a_working_model(tmp_path):
    pytest.importorskip("torch", reason="training needs torch")
    pytest.importorskip("monai", reason="training needs MONAI")
    from medsynth.pet.simulate import simulate_cohort

    data = tmp_path / "cohort"
    simulate_cohort(data, 4, 0.5, 3, groups=["NC", "PD", "NC", "PD"])
    out = tmp_path / "models"
    env = dict(os.environ, PYTHONPATH=str(REPO / "MedSynthExtension"), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    r = subprocess.run(
        [sys.executable, "-m", "medsynth.metaad.train", "--tiny", "--threads", "1", "--data", str(data),
         "--train-fraction", "0.5", "--steps", "2", "--out", str(out), "--seed", "0"],
        capture_output=True, text=True, env=env, timeout=170,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for f in ("metaad-cycle.onnx", "metaad_stats.npz", "metaad.md", "manifest.json"):
        assert (out / f).is_file(), f
    assert "simulated" in (out / "metaad.md").read_text()
    entry = [e for e in json.loads((out / "manifest.json").read_text())["models"] if e["id"] == "metaad-cycle"][0]
    assert entry["calibration"]["threshold"] >= 0 and "95th percentile" in entry["calibration"]["threshold_rule"]
    # the statistics are a side file with its sha256, read back through the checked path
    from medsynth.runtime import read_manifest, sha256_of

    assert entry["files"]["stats"] == {"file": "metaad_stats.npz", "sha256": sha256_of(out / "metaad_stats.npz")}
    assert "stats_file" not in entry
    (back,) = [e for e in read_manifest(out) if e.id == "metaad-cycle"]
    assert back.side_file("stats") == out / "metaad_stats.npz" and back.checksum_ok()


def test_pseudo_anomaly_changes_regions_and_keeps_the_brain_mean():
    from medsynth.metaad.calibrate import pseudo_anomaly
    from medsynth.metaad.core import crop_layout
    from medsynth.pet.simulate import example_subject
    from medsynth.pet.synthesis import crop, normalise

    x = crop(normalise(example_subject("NC").fdg.array, "FDG")[0])
    brain = crop_layout()["brain"]
    y = pseudo_anomaly(x, np.random.default_rng(3))
    assert y.shape == x.shape and not np.shares_memory(x, y)
    assert abs(float(y[brain].mean()) - float(x[brain].mean())) < 1e-3 * float(x[brain].mean())
    rel = np.abs(y[brain] / np.maximum(x[brain], 1e-6) - 1)
    assert rel.max() > 0.06  # some region changed by 8-15 %
    assert np.median(rel) < 0.03  # most of the brain did not


@needs_model
def test_calibration_uses_normal_controls_only():
    """The score and threshold come from NC crops and pseudo-anomalies; no PD crop or label is an argument."""
    import inspect

    from medsynth.metaad.calibrate import THRESHOLD_PERCENTILE, calibrate_scores
    from medsynth.metaad.core import SCORES
    from medsynth.pet.simulate import draw_params, simulate_subject, subject_rng
    from medsynth.pet.synthesis import crop, normalise
    from medsynth.runtime import load_model

    assert list(inspect.signature(calibrate_scores).parameters)[:2] == ["nc", "model"]
    crops = []
    for i in range(4):
        rng = subject_rng(77, i)
        crops.append(crop(normalise(simulate_subject(draw_params(rng, "NC"), rng).fdg.array, "FDG")[0]))
    stats, summary = calibrate_scores(crops, load_model("metaad-cycle", "cpu"), log=lambda m: None)
    assert summary["score"] in SCORES and summary["calibration_pd"] == 0
    assert set(summary["pseudo_anomaly_auc_by_score"]) == set(SCORES)
    best = max(summary["pseudo_anomaly_auc_by_score"].values())
    assert summary["pseudo_anomaly_auc_by_score"][summary["score"]] == best
    assert summary["threshold"] == pytest.approx(np.percentile(summary["nc_scores"], THRESHOLD_PERCENTILE), abs=1e-3)
    assert stats["region_mean"].shape == stats["region_sd"].shape and np.all(stats["region_sd"] >= 0.05)


@needs_model
def test_shipped_calibration_says_it_used_no_pd():
    from medsynth.metaad.core import load_stats

    meta = load_stats()["meta"]
    assert meta["calibration_pd"] == 0 and "no PD scan or label" in meta["score_choice"]
    assert "pd_scores" not in meta and "calibration_auc_by_score" not in meta

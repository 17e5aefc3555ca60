"""PD classifier on FDG + synthetic CFT (medsynth.pet.classify, train_classifier, classify_evaluate): features,
scoring, a tiny training with resume and export, the shipped models through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medsynth import InputError
from medsynth.cli import main
from medsynth.io import read_volume, write_volume
from medsynth.runtime import list_models

needs_models = pytest.mark.skipif(
    not {"pd-classifier", "pd-classifier-fdg", "fdg2cft"} <= set(list_models()), reason="PD classifier not shipped"
)


def test_pool2_averages_blocks():
    from medsynth.pet.classify import pool2

    a = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    p = pool2(a)
    assert p.shape == (2, 3, 4)
    assert p[0, 0, 0] == pytest.approx(a[:2, :2, :2].mean())
    assert pool2(np.stack([a, 2 * a])).shape == (2, 2, 3, 4)


def test_features_layout():
    from medsynth.pet.atlas import load_atlas
    from medsynth.pet.classify import FEATURE_SHAPE, features
    from medsynth.pet.synthesis import brain_mask

    shape = load_atlas().labels.array.shape
    fdg = np.where(brain_mask(), 5.0, 0.0).astype(np.float32)
    cft = np.full(shape, 2.0, np.float32)
    f = features(fdg, cft)
    assert f.shape == (2, *FEATURE_SHAPE) and f.dtype == np.float32
    assert f[0].max() == pytest.approx(1.0, abs=1e-5)  # FDG divided by its brain mean
    assert f[1].max() == pytest.approx(2.0, abs=1e-5) and f[1].min() == 0.0  # CFT kept, masked


def test_scoring_auc_threshold_and_paired_difference():
    from medsynth.pet.classify_evaluate import paired_auc_difference, score_arms
    from medsynth.pet.train_classifier import youden_threshold

    y = np.array([0] * 10 + [1] * 10)
    good = np.r_[np.linspace(0.0, 0.4, 10), np.linspace(0.6, 1.0, 10)]
    poor = np.r_[np.linspace(0.0, 1.0, 10), np.linspace(0.0, 1.0, 10)]
    test = {"label": y, "link": np.array(["typical"] * 18 + ["pd_normal_fdg"] * 2),
            "sbr_synthetic": -good, "sbr_true": 3.0 - 2.0 * y}  # lower SBR = PD
    res = score_arms(test, {"fdg_cft": good, "fdg": poor}, {"fdg_cft": 0.5, "fdg": 0.5})
    assert res["fdg_cft"]["auc"] == 1.0 and res["fdg"]["auc"] == pytest.approx(0.5)
    assert res["sbr_synthetic_cft"]["auc"] == 1.0 and res["sbr_true_cft"]["auc"] == 1.0
    assert res["fdg_cft"]["sensitivity"] == 1.0 and res["fdg_cft"]["specificity"] == 1.0
    assert res["fdg_cft"]["called_pd_by_link"]["pd_normal_fdg"] == {"n": 2, "called_pd": 1.0}
    d = res["auc_difference_fdg_cft_minus_fdg"]
    assert d["difference"] == pytest.approx(0.5) and d["ci95"][0] <= 0.5 <= d["ci95"][1]
    assert paired_auc_difference(y, good, good)["difference"] == 0.0
    t = youden_threshold(good[:10], good[10:])
    assert 0.4 < t < 0.6


def _fake_features(folder, seed, n=8):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    f = rng.normal(size=(n, 2, 40, 48, 40)).astype(np.float16)
    f[y == 1, 1] += 1.0  # PD differ in the second channel
    np.savez(folder / "features.npz", meta_json=np.array(json.dumps({"seed": seed, "simulator": 2})), features=f,
             label=y, link=np.array(["typical"] * n, dtype="U16"), stage=y * 0.5, fdg_pdrp=y * 1.0,
             sbr_synthetic=3.0 - y, sbr_true=3.0 - 2.0 * y, index=np.arange(n))


def test_training_resumes_exactly_and_exports(tmp_path):
    pytest.importorskip("monai")
    import torch

    from medsynth.pet.train_classifier import load_features, main as train_main, split_validation, train_arm

    _fake_features(tmp_path / "a", 1)
    _fake_features(tmp_path / "b", 2)
    data = load_features(tmp_path / "a")
    split = split_validation(data["label"], 0)
    assert not set(split["train"]) & set(split["val"]) and len(split["val"]) == 2
    torch.set_num_threads(1)
    whole = train_arm(data, "fdg_cft", 0, split, 2, tmp_path / "ck1", log=lambda m: None)
    train_arm(data, "fdg_cft", 0, split, 1, tmp_path / "ck2", log=lambda m: None)
    resumed = train_arm(data, "fdg_cft", 0, split, 2, tmp_path / "ck2", log=lambda m: None)
    for k, v in whole["net"].state_dict().items():
        assert torch.equal(v, resumed["net"].state_dict()[k]), k
    # the command: both arms, test scoring, ONNX export (checked against torch by export_onnx), card
    out = tmp_path / "model"
    assert train_main(["train", "--data", str(tmp_path / "a"), "--test", str(tmp_path / "b"), "--out", str(out),
                       "--seeds", "0", "--epochs", "1", "--threads", "1"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    ids = {m["id"]: m for m in man["models"]}
    assert {"pd-classifier", "pd-classifier-fdg"} <= set(ids)
    assert 0.0 <= ids["pd-classifier"]["threshold"] <= 1.0
    card = (out / "pd-classifier.md").read_text()
    assert "simulated PET only" in card and "seed 2" in card
    with pytest.raises(InputError, match="training cohort's seed"):
        train_main(["train", "--data", str(tmp_path / "a"), "--test", str(tmp_path / "a"), "--out", str(tmp_path / "x")])


@pytest.fixture(scope="module")
def fdg_pair():
    from medsynth.pet.simulate import example_subject

    return {g: example_subject(g).fdg for g in ("NC", "PD")}


@needs_models
def test_shipped_classifier_ranks_advanced_pd_above_nc(fdg_pair):
    from medsynth.pet.classify import classify

    nc, pd = classify(fdg_pair["NC"]), classify(fdg_pair["PD"])
    assert pd.probability > nc.probability
    assert pd.sbr_posterior_putamen_lower < nc.sbr_posterior_putamen_lower
    assert 0.0 < nc.threshold < 1.0 and pd.space == "mni"
    assert "not a diagnosis" in pd.line() and pd.label in ("PD", "NC")
    json.dumps(pd.report())


@needs_models
def test_cli_pd_classify(fdg_pair, tmp_path, capsys):
    src = write_volume(fdg_pair["PD"], tmp_path / "fdg.nii.gz")
    before = src.read_bytes()
    rep, cft = tmp_path / "r.json", tmp_path / "cft.nii.gz"
    assert main(["pd-classify", str(src), "--report", str(rep), "--cft-out", str(cft)]) == 0
    assert "PD probability" in capsys.readouterr().out
    d = json.loads(rep.read_text())
    assert 0.0 <= d["pd_probability"] <= 1.0 and d["model"]["id"] == "pd-classifier"
    assert read_volume(cft).array.shape == fdg_pair["PD"].array.shape
    assert src.read_bytes() == before
    # a CT given as FDG: exit 2, nothing written
    ct = fdg_pair["PD"].with_array(np.where(fdg_pair["PD"].array > 0, 40.0, -1000.0).astype(np.float32))
    bad = write_volume(ct, tmp_path / "ct.nii.gz")
    assert main(["pd-classify", str(bad), "--report", str(tmp_path / "r2.json")]) == 2
    assert not (tmp_path / "r2.json").exists()


@needs_models
def test_cli_evaluate_pd_classify_on_its_own_cohort(tmp_path, capsys):
    rep = tmp_path / "e.json"
    assert main(["evaluate", "pd-classify", "--subjects", "4", "--seed", "5", "--report", str(rep)]) == 0
    out = capsys.readouterr().out
    assert "seed 5" in out and "AUC" in out
    d = json.loads(rep.read_text())
    assert d["cohort_seed"] == 5 and d["command"] == "medsynth evaluate pd-classify --subjects 4 --seed 5"
    s = d["summary"]
    assert s["n_nc"] == 2 and s["n_pd"] == 2
    for k in ("fdg_cft", "fdg", "sbr_synthetic_cft", "sbr_true_cft"):
        assert 0.0 <= s[k]["auc"] <= 1.0

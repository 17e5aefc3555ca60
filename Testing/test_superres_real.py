"""SA-INR on real scans: subject-group folds, realistic degradations, exact resume of training, and the
leave-subject-out evaluation (on a small stand-in scan so that it runs in seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medsynth import Volume, make_ijk_to_ras
from medsynth.io import write_volume
from medsynth.superres import realdata
from medsynth.superres.data import PairSampler, bias_field, degrade_like_a_scanner


def test_folds_keep_every_subject_group_together_and_hold_out_their_own_scans():
    realdata.check_folds()
    for fold in realdata.FOLDS:
        train = {s.file for s in realdata.training_scans(fold)}
        test = {s.file for s in realdata.scans_in([fold])}
        assert test and train and not train & test
        assert not {s.subject for s in realdata.scans_in([fold])} & {s.subject for s in realdata.training_scans(fold)}
    shipped = {s.file for s in realdata.training_scans(None)}
    assert shipped and not shipped & set(realdata.NOT_SHIPPED)
    assert shipped | set(realdata.NOT_SHIPPED) == {s.file for s in realdata.REAL_SCANS}
    assert not set(realdata.EXCLUDED) & {s.file for s in realdata.REAL_SCANS}
    with pytest.raises(ValueError, match="fold must be"):
        realdata.training_scans(7)


def test_check_folds_catches_a_subject_in_two_folds(monkeypatch):
    scans = realdata.REAL_SCANS + (realdata.RealScan("mri/real/x.nii.gz", realdata.REAL_SCANS[0].subject, "T1", 2),)
    monkeypatch.setattr(realdata, "REAL_SCANS", scans)
    with pytest.raises(ValueError, match="in folds"):
        realdata.check_folds()


def test_realistic_degradations():
    rng = np.random.default_rng(3)
    field = bias_field((20, 30, 30), rng, 0.25)
    assert field.shape == (20, 30, 30) and 0.3 < field.min() < 1.0 < field.max() < 3.0
    assert np.abs(np.diff(np.log(field), axis=2)).max() < 0.1  # smooth: a few per cent a voxel at most
    flat = np.full((4, 32, 32), 0.5, np.float32)
    noisy = [degrade_like_a_scanner(flat, np.random.default_rng(s)) for s in range(12)]
    assert any(n.std() > 0.005 for n in noisy)  # Rician noise
    assert all(n.min() >= 0 for n in noisy)  # magnitude images stay non-negative
    levels = [len(np.unique(n)) for n in noisy]
    assert min(levels) <= 256  # some draws are quantised to 8 bits
    vol = {"a": np.random.default_rng(0).uniform(0, 1, (60, 60, 60)).astype(np.float32)}
    s = PairSampler(vol, np.random.default_rng(1), patch=24, slices=5, realistic=True).sample()
    assert s.lr.shape[0] == 5 and s.target.shape[1:] == (24, 24) and np.isfinite(s.lr).all()


@pytest.mark.shared
def test_training_resumes_exactly_where_it_stopped(tmp_path):
    torch = pytest.importorskip("torch", reason="training needs torch")
    pytest.importorskip("monai", reason="training needs MONAI")
    from conftest import SHARED_DATA, shared_file

    shared_file("mri/MNI152_T1_1mm_brain.nii.gz")
    shared_file(realdata.REAL_SCANS[0].file)
    base = [sys.executable, "-m", "medsynth.superres.train", "--tiny", "--real-fold", "0", "--steps", "6",
            "--no-eval", "--threads", "1", "--data", str(SHARED_DATA), "--seed", "4"]
    whole = tmp_path / "whole"
    subprocess.run(base + ["--out", str(whole), "--checkpoint", str(whole / "ck.pt")], check=True, timeout=300,
                   capture_output=True)
    part = tmp_path / "part"
    first = subprocess.run(base + ["--out", str(part), "--checkpoint", str(part / "ck.pt"), "--max-minutes", "1e-6"],
                           check=True, timeout=300, capture_output=True, text=True)
    assert "time limit: stopped after 1 of 6" in first.stdout
    second = subprocess.run(base + ["--out", str(part), "--checkpoint", str(part / "ck.pt"), "--resume"], check=True,
                            timeout=300, capture_output=True, text=True)
    assert "resumed from" in second.stdout and "at step 1" in second.stdout
    a = torch.load(whole / "ck.pt", weights_only=True)
    b = torch.load(part / "ck.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(v, b["state_dict"][k], rtol=0, atol=1e-6, msg=k)


def _rows():
    rows = []
    for scan, subject, contrast, gain, ssim_d in (("a", "s1", "T1", 1.0, 0.01), ("b", "s1", "T1", 3.0, 0.01),
                                                 ("c", "s2", "T2", -0.5, -0.01)):
        for method, psnr, ssim in (("bspline", 30.0, 0.9), ("sainr-fold", 30.0 + gain, 0.9 + ssim_d)):
            rows.append(dict(scan=scan, subject=subject, contrast=contrast, fold=0, axis="k", profile="box",
                             factor=4.0, method=method, psnr_db=psnr, ssim=ssim, seconds=1.0))
    return rows


def test_summary_averages_within_a_subject_then_over_subjects():
    from medsynth.superres.evaluate_real import by_contrast, format_summary, summarise

    (s,) = summarise(_rows())
    assert s["subjects"] == 2 and s["scans"] == 3
    assert s["mean_gain_db"] == pytest.approx((2.0 - 0.5) / 2)  # s1: mean of +1 and +3; s2: -0.5
    assert s["worst_gain_db"] == pytest.approx(-0.5) and s["worst_subject"] == "s2"
    assert s["ssim_higher"] == "2/3"
    assert by_contrast(_rows(), 4.0) == {"T1": 2.0, "T2": -0.5}
    assert "| box | k | 4 | sainr-fold | 2 | +0.75 |" in format_summary([s])


def test_leave_subject_out_evaluation_runs_each_fold_model_on_its_own_scans(tmp_path, monkeypatch):
    import shutil

    from medsynth.runtime import get_entry, write_manifest_entry
    from medsynth.superres import evaluate_real

    k, j, i = np.meshgrid(np.arange(24), np.arange(28), np.arange(26), indexing="ij")
    arr = (100 + 60 * np.sin(i / 3.0) * np.cos(j / 4.0) + k).astype(np.float32)
    arr[:2] = 0
    (tmp_path / "mri").mkdir()
    write_volume(Volume(arr, make_ijk_to_ras((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)), name="s"), tmp_path / "mri" / "s.nii.gz")
    scans = (realdata.RealScan("mri/s.nii.gz", "stand-in", "T1", 1),)
    monkeypatch.setattr(evaluate_real, "REAL_SCANS", scans)
    monkeypatch.setattr(realdata, "REAL_SCANS", scans)
    models = tmp_path / "models" / "fold1"
    models.mkdir(parents=True)
    for model_id in ("sainr-decoder", "sainr"):  # the shipped weights stand in for a fold model
        entry = get_entry(model_id)
        shutil.copy(entry.path, models / entry.file)
        write_manifest_entry(models, entry)
    rows = evaluate_real.evaluate_folds(tmp_path / "models", tmp_path, [3], ["k"], ["box"], folds=[1], shipped=True,
                                        log=lambda r: None)
    assert {r["method"] for r in rows} == {"bspline", "sainr-fold", "sainr-shipped"}
    assert all(r["scan"] == "s.nii.gz" and r["fold"] == 1 and np.isfinite(r["psnr_db"]) for r in rows)
    fold, shipped = (next(r for r in rows if r["method"] == m) for m in ("sainr-fold", "sainr-shipped"))
    assert fold["psnr_db"] == pytest.approx(shipped["psnr_db"], abs=1e-6)  # the same weights give the same result
    out = tmp_path / "lso.json"
    assert evaluate_real.main(["--models", str(tmp_path / "models"), "--data", str(tmp_path), "--factors", "3",
                               "--axes", "k", "--folds", "1", "--json", str(out)]) == 0
    assert out.is_file() and "summary" in out.read_text()

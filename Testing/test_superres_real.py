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
    assert "| box | k | 4 | SA-INR templates + real scans (fold model) | 2 | +0.75 |" in format_summary([s])


def test_combine_summarises_folds_run_separately(tmp_path, capsys):
    import json

    from medsynth.superres import evaluate_real

    rows = _rows()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"command": "x", "rows": [r for r in rows if r["subject"] == "s1"]}))
    b.write_text(json.dumps({"command": "y", "rows": [r for r in rows if r["subject"] != "s1"]}))
    assert evaluate_real.main(["--combine", str(a), str(b)]) == 0
    assert "| 2 | +0.75 | " in capsys.readouterr().out  # both subjects, as if run together
    (tmp_path / "bad.json").write_text("{}")
    assert evaluate_real.main(["--combine", str(tmp_path / "bad.json")]) == 2
    assert "not a file written by --json" in capsys.readouterr().err


def test_card_of_a_real_scan_model_names_its_scans_terms_and_leave_subject_out_figures(tmp_path):
    import shutil

    from medsynth.runtime import get_entry, read_manifest, write_manifest_entry
    from medsynth.superres.evaluate_real import summarise
    from medsynth.superres.train import write_card

    for model_id in ("sainr-decoder", "sainr"):
        entry = get_entry(model_id)
        shutil.copy(entry.path, tmp_path / entry.file)
        write_manifest_entry(tmp_path, entry)
    entry = {e.id: e for e in read_manifest(tmp_path)}["sainr"]
    lso = {"command": "python -m medsynth.superres.evaluate_real --models M", "summary": summarise(_rows())}
    text = write_card(tmp_path, entry, None, "", "python -m medsynth.superres.train --real-fold all", lso).read_text()
    shipped = realdata.training_scans(None)
    assert all(s.file in text for s in shipped)
    assert all(f"`{f}` ({why})" in text for f, why in realdata.NOT_SHIPPED.items())  # named as left out
    assert realdata.REAL_TERMS in text and "Rician" in text
    assert "leave-subject-out" in text and "| +0.75 |" in text and "evaluate_real --models M" in text
    fold_card = write_card(tmp_path, entry, None, "", "python -m medsynth.superres.train --real-fold 1").read_text()
    held = [s.file for s in realdata.scans_in([1])]
    assert all(f"Left out: " in fold_card and f in fold_card.split("Left out: ")[1].split("\n")[0] for f in held)
    plain = write_card(tmp_path, entry, None, "", "python -m medsynth.superres.train").read_text()
    assert "Real scans" not in plain and realdata.REAL_TERMS not in plain and "templates only" not in plain


@pytest.mark.parametrize("case", ["uint8", "uint16", "thick-i", "oblique", "two-slices"])
def test_awkward_real_world_inputs_give_a_clear_result_and_leave_the_input_alone(case):
    from medsynth.superres import superres

    rng = np.random.default_rng(3)
    arr = rng.uniform(0, 200, (6, 20, 22)).astype(np.float32)
    spacing, axis = (1.0, 1.0, 4.0), "k"
    if case == "uint8":
        arr = arr.astype(np.uint8)
    elif case == "uint16":
        arr = (arr * 150).astype(np.uint16)
    elif case == "thick-i":
        arr, spacing, axis = np.ascontiguousarray(arr.transpose(1, 2, 0)), (4.0, 1.0, 1.0), "i"
    elif case == "two-slices":
        arr = arr[:2]
    m = make_ijk_to_ras(spacing, (3.0, -2.0, 1.0))
    if case == "oblique":
        c, s_ = np.cos(0.4), np.sin(0.4)
        m[:3, :3] = np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1]]) @ m[:3, :3]
    vol = Volume(arr, m, name=case)
    before, matrix = arr.copy(), m.copy()
    res = superres(vol, 1.0, "auto", "sainr")
    out = res.volume
    assert np.array_equal(vol.array, before) and vol.array.dtype == before.dtype and np.array_equal(vol.ijk_to_ras, matrix)
    assert out.array.dtype == np.float32 and np.isfinite(out.array).all()
    assert res.grid.axis == axis  # the thick axis is found whatever its place
    n_in = arr.shape[2 - "ijk".index(axis)]
    assert out.array.shape[2 - "ijk".index(axis)] == 4 * (n_in - 1) + 1
    # the same physical box: first and last output slices sit on the input's
    assert np.allclose(out.ijk_to_ras[:3, 3], matrix[:3, 3])
    assert np.allclose(out.ijk_to_ras[:3, :3] @ np.array(out.array.shape[::-1]) - out.ijk_to_ras[:3, :3] @ np.ones(3),
                       matrix[:3, :3] @ np.array(arr.shape[::-1]) - matrix[:3, :3] @ np.ones(3), atol=1e-4)
    if case == "oblique":
        d_in = matrix[:3, :3] / np.linalg.norm(matrix[:3, :3], axis=0)
        d_out = out.ijk_to_ras[:3, :3] / np.linalg.norm(out.ijk_to_ras[:3, :3], axis=0)
        assert np.allclose(d_in, d_out)
    # within the input's range but for interpolation overshoot (as cubic B-spline's)
    lo, hi = float(before.min()), float(before.max())
    assert out.array.min() > lo - 0.5 * (hi - lo) and out.array.max() < hi + 0.5 * (hi - lo)


def test_one_slice_is_refused_clearly():
    from medsynth import InputError
    from medsynth.superres import superres

    with pytest.raises(InputError, match="at least 2 slices"):
        superres(Volume(np.ones((1, 8, 8), np.uint8), make_ijk_to_ras((1, 1, 4))), 1.0, "auto", "sainr")


def test_leave_subject_out_evaluation_runs_each_fold_model_on_its_own_scans(tmp_path, monkeypatch):
    import dataclasses
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
    # the template-only model's weights stand in for a fold model (under the ids a fold folder holds)
    encoder = evaluate_real.template_model().entry
    for model_id, entry in (("sainr-decoder", get_entry(encoder.extra["decoder"])), ("sainr", encoder)):
        shutil.copy(entry.path, models / f"{model_id}.onnx")
        extra = dict(entry.extra, **({"decoder": "sainr-decoder"} if "decoder" in entry.extra else {}),
                     **({"encoder": "sainr"} if "encoder" in entry.extra else {}))
        write_manifest_entry(models, dataclasses.replace(entry, id=model_id, file=f"{model_id}.onnx", extra=extra))
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


def test_gradient_gate_is_exact_where_it_decodes_and_cubic_where_flat():
    from medsynth import InputError
    from medsynth.superres import superres
    from medsynth.superres.core import _runner, output_grid

    rng = np.random.default_rng(5)
    arr = rng.uniform(0, 200, (8, 30, 34)).astype(np.float32)
    arr[:, :10, :] = 50.0  # a flat band, as background or the inside of a tissue
    vol = Volume(arr, make_ijk_to_ras((1, 1, 4)))
    dense = superres(vol, 1.0, "k", "sainr").volume.array
    gated = superres(vol, 1.0, "k", "sainr", gate=0.05).volume.array
    assert np.array_equal(gated[:, 12:, :], dense[:, 12:, :])  # decoded pixels: the very same values
    assert np.abs(gated[:, :8, :] - 50.0).max() < 1e-3  # flat: the cubic estimate of a constant is the constant
    assert np.abs(dense[:, :8, :] - 50.0).max() > 1e-3  # where the network alone would have added its correction
    grid = output_grid(vol, 1.0, "k")
    runner = _runner(vol, grid, None, gate=0.05)
    runner.run(grid.positions())
    decoded, total = runner.gate_counts
    assert total == gated.size and 0.5 * total < decoded < 0.8 * total  # rows 0..8 of 30 skipped, one more grown
    noisy = Volume(rng.uniform(0, 200, (8, 30, 34)).astype(np.float32), make_ijk_to_ras((1, 1, 4)))
    assert np.array_equal(superres(noisy, 1.0, "k", "sainr", gate=1e-9).volume.array,
                          superres(noisy, 1.0, "k", "sainr").volume.array)  # nothing flat: everything decoded
    with pytest.raises(InputError, match="gate"):
        superres(vol, 1.0, "k", "sainr", gate=float("nan"))


def test_template_only_comparison_never_uses_a_model_that_saw_real_scans(monkeypatch):
    import dataclasses

    from medsynth import runtime
    from medsynth.errors import ModelError
    from medsynth.superres import evaluate_real

    real_get = runtime.get_entry
    shipped = real_get("sainr")

    def fake(model_id, *a, **k):
        if model_id == evaluate_real.TEMPLATE_MODEL_ID:
            raise ModelError("not installed")
        if model_id == "sainr":
            return dataclasses.replace(shipped, training_command="python -m medsynth.superres.train --real-fold all")
        return real_get(model_id, *a, **k)

    monkeypatch.setattr(runtime, "get_entry", fake)
    with pytest.raises(ModelError, match="trained on real scans"):
        evaluate_real.template_model()
    templates_only = dataclasses.replace(shipped, training_command="python -m medsynth.superres.train --out x")
    monkeypatch.setattr(runtime, "get_entry", lambda model_id, *a, **k: templates_only if model_id == "sainr"
                        else (_ for _ in ()).throw(ModelError("x")) if model_id == evaluate_real.TEMPLATE_MODEL_ID
                        else real_get(model_id, *a, **k))
    model = evaluate_real.template_model()  # the shipped model while it is template-only
    assert model.entry.sha256 == shipped.sha256


def test_shipped_models_real_scan_sainr_and_template_only_beside_it():
    """The shipped ``sainr`` saw real scans (every shippable one); the comparison model is the template-only one."""
    from medsynth import runtime
    from medsynth.superres import evaluate_real, realdata

    shipped = runtime.get_entry("sainr")
    assert "--real-fold all" in shipped.training_command
    assert not set(realdata.NOT_SHIPPED) & set(shipped.extra["training"]["train_files"])
    assert {s.file for s in realdata.training_scans(None)} <= set(shipped.extra["training"]["train_files"])
    assert "IXI" in shipped.data_terms and "AFNI" in shipped.data_terms
    templates = evaluate_real.template_model()
    assert templates.entry.id == evaluate_real.TEMPLATE_MODEL_ID
    assert "--real-fold" not in templates.entry.training_command
    assert templates.entry.sha256 != shipped.sha256

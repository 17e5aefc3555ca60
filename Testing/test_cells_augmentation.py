"""``medsynth evaluate cells-augmentation``: a tiny real run on made-up cell folders, the metrics, bad input.

The made-up cells are small coloured discs on a pale background (size and colour depend on the class);
nothing here reads ../shared/data. Needs torch, MONAI and the shipped CellGAN (skips otherwise).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
from conftest import run_cli, tree_state

pytest.importorskip("torch", reason="the classifier trainings need torch")
pytest.importorskip("monai", reason="the classifier is a MONAI ResNet")
import SimpleITK as sitk  # noqa: E402

from medsynth import runtime  # noqa: E402
from medsynth.cyto.augmentation import ARMS, metrics  # noqa: E402
from medsynth.cyto.classes import BETHESDA_CLASSES, HERLEV_CLASSES  # noqa: E402
from medsynth.cyto.data import is_heldout  # noqa: E402

needs_model = pytest.mark.skipif("cellgan" not in runtime.list_models(),
                                 reason="needs the shipped CellGAN model (Resources/Models/cellgan.onnx)")
FOLDER = {c: c for c in HERLEV_CLASSES}
FOLDER["normal_superficial"] = "normal_superficiel"  # the data's spelling


# --------------------------------------------------------------------------- made-up cells
def cell(ci: int, seed: int, size: Tuple[int, int] = (40, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.float64)
    img[:] = (225, 205, 215)
    r = 4 + 2 * ci + rng.uniform(-1, 1)
    disc = np.hypot(yy - h / 2 + rng.uniform(-2, 2), xx - w / 2 + rng.uniform(-2, 2)) <= r
    img[disc] = (90 + 15 * ci, 40, 120 - 10 * ci)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    vector = arr.ndim == 3
    sitk.WriteImage(sitk.GetImageFromArray(arr, isVector=vector), str(path))


def make_folder(root: Path, per_class: int, seed0: int, names=None) -> Path:
    for ci, c in enumerate(HERLEV_CLASSES):
        for n in range(per_class):
            name = names(ci, n) if names else f"cell{n}"
            write_png(root / FOLDER[c] / f"{name}.png", cell(ci, seed0 + 100 * ci + n))
    return root


def herlev_name(heldout: bool, start: int = 100) -> str:
    """A Herlev-like file stem whose group is held out (or a training group)."""
    g = start
    while is_heldout(str(g)) != heldout:
        g += 1
    return f"{g}-{g + 7}-001"


TINY = ["--seeds", "2", "--seed", "5", "--steps", "3", "--batch", "4", "--gan-per-class", "2"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Tuple[Path, Path]:
    base = tmp_path_factory.mktemp("cells")
    train = make_folder(base / "train", 3, 0)
    # an opaque RGBA cell is converted (alpha dropped)
    rgba = np.concatenate([cell(3, 999), np.full((40, 48, 1), 255, np.uint8)], axis=-1)
    write_png(train / "light_dysplastic" / "rgba.png", rgba)
    test = make_folder(base / "test", 2, 50000)
    # a Herlev-named cell of a *training* group: CellGAN saw that group, so it must not be tested on
    write_png(test / "severe_dysplastic" / f"{herlev_name(False)}.png", cell(5, 77))
    # and one of a held-out group, which is kept
    write_png(test / "severe_dysplastic" / f"{herlev_name(True)}.png", cell(5, 78))
    return train, test


# --------------------------------------------------------------------------- metrics
def test_metrics_by_hand() -> None:
    classes = ("a", "b", "c", "d")
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])  # no "d" in the test set
    p = np.array([0, 0, 1, 3, 1, 0, 2, 2])
    m = metrics(y, p, classes)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["recall"] == {"a": 0.5, "b": 0.5, "c": 1.0, "d": None}
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    # F1: a: P 2/3 R 1/2 -> 4/7; b: P 1/2 R 1/2 -> 1/2; c: 1
    assert m["macro_f1"] == pytest.approx((4 / 7 + 0.5 + 1.0) / 3)


# --------------------------------------------------------------------------- a tiny real run
@needs_model
def test_tiny_run_reports_every_arm_with_the_same_budget(folders, tmp_path) -> None:
    train, test = folders
    before = (tree_state(train, mtimes=True), tree_state(test, mtimes=True))
    out = tmp_path / "res" / "aug.json"
    rc, stdout, err = run_cli(["evaluate", "cells-augmentation", "--real-train", str(train), "--real-test", str(test),
                               *TINY, "--json", str(out)])
    assert rc == 0, err
    assert "Traceback" not in err
    assert (tree_state(train, mtimes=True), tree_state(test, mtimes=True)) == before  # inputs unchanged
    res = json.loads(out.read_text())
    assert res["train_cells"] == 7 * 3 + 1 and res["test_cells"] == 7 * 2 + 1
    assert res["test_left_out"] == 1  # the training-group cell
    assert res["seeds"] == [5, 6]
    assert set(res["arms"]) == set(ARMS) and res["arm_order"] == list(ARMS)
    assert "CPU" in res["device"] and "1 thread" in res["device"]
    for arm in ARMS:
        runs = res["arms"][arm]["runs"]
        assert [r["seed"] for r in runs] == [5, 6]
        for r in runs:
            # counted in the training loop, not copied from the options
            assert r["optimizer_steps"] == 3 and r["batch"] == 4 and r["samples_seen"] == 12, (arm, r)
            for grouping, classes in (("herlev", HERLEV_CLASSES), ("bethesda", BETHESDA_CLASSES)):
                m = r[grouping]
                assert m["cells"] == 15
                assert set(m["recall"]) == set(classes)
                for k in ("accuracy", "balanced_accuracy", "macro_f1"):
                    assert 0.0 <= m[k] <= 1.0
                assert m["accuracy"] * 15 == pytest.approx(round(m["accuracy"] * 15))  # a whole number of cells
                rec = [v for v in m["recall"].values() if v is not None]
                assert len(rec) == len(classes)  # every class is in the made-up test set
                assert m["balanced_accuracy"] == pytest.approx(np.mean(rec))
        for grouping in ("herlev", "bethesda"):
            s = res["arms"][arm][grouping]
            for k in ("accuracy", "balanced_accuracy", "macro_f1"):
                vals = [r[grouping][k] for r in runs]
                assert s[k]["mean"] == pytest.approx(np.mean(vals))
                assert s[k]["sd"] == pytest.approx(np.std(vals, ddof=1))
    # the printed tables: both groupings, every arm
    assert "Herlev classes (7)" in stdout and "Bethesda grouping (4)" in stdout
    for arm in ARMS:
        assert f"| {arm} |" in stdout
    assert "gain_points_over_real" in res["target"]


@needs_model
def test_bethesda_named_test_folder(folders, tmp_path) -> None:
    train, _ = folders
    test = tmp_path / "beth"
    for bi, b in enumerate(BETHESDA_CLASSES):
        for n in range(2):
            write_png(test / b / f"c{n}.png", cell(min(6, 2 * bi), 7000 + 10 * bi + n))
    out = tmp_path / "b.json"
    rc, _, err = run_cli(["evaluate", "cells-augmentation", "--real-train", str(train), "--real-test", str(test),
                          "--seeds", "1", "--steps", "2", "--batch", "4", "--gan-per-class", "1", "--quiet",
                          "--json", str(out)])
    assert rc == 0, err
    res = json.loads(out.read_text())
    run = res["arms"]["real"]["runs"][0]
    assert run["herlev"] is None and run["bethesda"]["cells"] == 8
    assert res["arms"]["real"]["herlev"] is None and res["target"]["grouping"] == "bethesda"


# --------------------------------------------------------------------------- bad input
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _bad_cases(train: Path, tmp: Path):
    """(id, --real-train folder, --real-test folder, message pattern) with the bad folder made here."""
    cases = []

    t = _copy(train, tmp / "empty")
    for f in (t / "carcinoma_in_situ").iterdir():
        f.unlink()
    cases.append(("empty-class-folder", t, train, "has no images"))

    t = _copy(train, tmp / "unknown")
    (t / "koilocytes").mkdir()
    write_png(t / "koilocytes" / "a.png", cell(0, 1))
    cases.append(("unknown-class", t, train, "unknown class folder koilocytes"))

    t = _copy(train, tmp / "grey1")
    write_png(t / "normal_columnar" / "grey.png", cell(2, 3).mean(axis=-1).astype(np.uint8))
    cases.append(("grey-one-channel", t, train, r"grey image \(1 channel\)"))

    t = _copy(train, tmp / "grey3")
    g = cell(2, 4).mean(axis=-1).astype(np.uint8)
    write_png(t / "normal_columnar" / "grey3.png", np.repeat(g[..., None], 3, axis=-1))
    cases.append(("grey-three-equal-channels", t, train, "three channels are equal"))

    t = _copy(train, tmp / "rgba")
    a = np.concatenate([cell(1, 5), np.full((40, 48, 1), 128, np.uint8)], axis=-1)
    write_png(t / "normal_intermediate" / "rgba.png", a)
    cases.append(("rgba-transparent", t, train, "transparent pixels"))

    t = _copy(train, tmp / "tiny")
    write_png(t / "severe_dysplastic" / "tiny.png", cell(5, 6, size=(8, 10)))
    cases.append(("tiny-image", t, train, r"10 x 8 px; cell images must be at least 16 px"))

    t = _copy(train, tmp / "noclass")
    shutil.rmtree(t / "moderate_dysplastic")
    cases.append(("missing-training-class", t, train, "no training cells of moderate_dysplastic"))

    t = tmp / "bethesda_train"
    for b in BETHESDA_CLASSES:
        write_png(t / b / "a.png", cell(0, 9))
    cases.append(("bethesda-training-folder", t, train, "must be Herlev classes"))

    t = tmp / "testdup"
    t.mkdir()
    shutil.copytree(train / "normal_columnar", t / "normal_columnar")
    cases.append(("test-is-training", train, t, r"also training images"))

    t = tmp / "trainonly"
    write_png(t / "light_dysplastic" / f"{herlev_name(False)}.png", cell(3, 11))
    cases.append(("test-only-training-groups", train, t, "no test cells"))

    cases.append(("missing-folder", tmp / "nothere", train, "cell folder not found"))
    return cases


@needs_model
def test_bad_input_is_one_clear_line(folders, tmp_path) -> None:
    train, _ = folders
    cases = _bad_cases(train, tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    states = {str(p): tree_state(p, mtimes=True) for _, a, b, _ in cases for p in (a, b) if p.exists()}
    for cid, tr, te, pattern in cases:
        rc, stdout, err = run_cli(["evaluate", "cells-augmentation", "--real-train", str(tr), "--real-test", str(te),
                                   *TINY, "--json", str(out / "r.json")])
        assert rc == 2, (cid, rc, err)
        assert "Traceback" not in err, cid
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("medsynth evaluate: error:"), (cid, err)
        assert re.search(pattern, lines[0]), (cid, lines[0])
        assert list(out.iterdir()) == [], cid  # no output after an error
    assert {p: tree_state(Path(p), mtimes=True) for p in states} == states  # inputs unchanged


def test_bad_options_exit_2(folders, tmp_path) -> None:
    train, test = folders
    base = ["evaluate", "cells-augmentation", "--real-train", str(train), "--real-test", str(test)]
    for extra, pattern in ((["--steps", "0"], "outside"), (["--seeds", "nan"], "not a whole number"),
                           (["--json", str(tmp_path / "x.txt")], r"cannot write 'x\.txt'"),
                           (["--json", str(train / "normal_columnar" / "cell0.png")], "input")):
        rc, _, err = run_cli(base + extra)
        assert rc == 2 and re.search(pattern, err) and "Traceback" not in err, (extra, err)
    rc, out, _ = run_cli(["evaluate", "cells-augmentation", "--help"])
    assert rc == 0 and "--real-train" in out


@needs_model
def test_two_workers_give_the_same_figures(folders, tmp_path) -> None:
    """Each (seed, arm) run is a task; on 2 Dask workers the runs and their summaries are those of one process."""
    pytest.importorskip("distributed")
    train, test = folders
    res = {}
    for name, extra in (("one", []), ("two", ["--workers", "2"])):
        out = tmp_path / f"{name}.json"
        rc, _, err = run_cli(["evaluate", "cells-augmentation", "--real-train", str(train), "--real-test", str(test),
                              *TINY, "--json", str(out), "--quiet", *extra])
        assert rc == 0, err
        res[name] = json.loads(out.read_text())
    for r in res.values():
        for arm in r["arms"].values():
            for run in arm["runs"]:
                run.pop("seconds")
    assert res["one"]["arms"] == res["two"]["arms"]
    assert "2 worker processes" in res["two"]["workers"] and "--workers 2" in res["two"]["command"]

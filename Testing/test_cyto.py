"""CytoSynth engine: padding removal, class namings, the shipped generator (shapes, seeds), blending, bad input,
the cells CLI, the demo part, the evaluation's measures; a tiny training run (heavy)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, shared_file
from medsynth import InputError, Volume, make_ijk_to_ras, runtime
from medsynth.cli import main
from medsynth.cyto import (
    BETHESDA_CLASSES,
    HERLEV_CLASSES,
    HERLEV_TO_BETHESDA,
    canonical_class,
    classes_of,
    find_content_box,
    gallery,
    generate_cells,
    insert_cell,
    label_of,
    padding_mask,
    remove_padding,
    write_cells,
)
from medsynth.cyto.classes import herlev_members, to_naming
from medsynth.cyto.data import class_folders, group_of, is_heldout, load_herlev, read_rgb
from medsynth.cyto.evaluate import frechet_distance, precision_recall
from medsynth.cyto.generate import check_count

IMAGE_DIRECTIONS = np.diag([-1.0, -1.0, 1.0])  # what reading a PNG gives: upright in the axial view

needs_model = pytest.mark.skipif(
    "cellgan" not in runtime.list_models(),
    reason="the cellgan model is not in Resources/Models (export it: python -m medsynth.cyto.train --from-checkpoint ...)",
)


def herlev_dir():
    return shared_file("cytology/herlev")


def smear(h=120, w=140, seed=0):
    """A smooth pink RGB background with texture, uint8."""
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.standard_normal((h, w)), 4)
    noise /= np.abs(noise).max()
    base = np.array([210, 185, 205], np.float32)
    return np.clip(base + 25 * noise[..., None], 0, 255).astype(np.uint8)


def rgb_volume(arr, name="smear", origin=(0.0, 0.0, 0.0), spacing=(0.5, 0.5, 1.0)):
    return Volume(np.asarray(arr)[np.newaxis], make_ijk_to_ras(spacing, origin, IMAGE_DIRECTIONS), name=name)


def blob_patch(size=64, seed=0):
    """A cell-like patch: dark nucleus in a lighter cytoplasm on a pale background."""
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    img = np.full((size, size, 3), (225, 215, 225), np.float32)
    img[r < 0.35 * size] = (170, 150, 200)
    img[r < 0.12 * size] = (70, 40, 110)
    img += np.random.default_rng(seed).normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- padding
@pytest.mark.parametrize("pad", [(30, 30, 0, 0), (0, 0, 25, 25), (12, 20, 7, 3)])
def test_padding_removal_synthetic(pad):
    top, bottom, left, right = pad
    content = smear(100, 90, seed=1)
    colour = np.array([40, 200, 60], np.uint8)
    img = np.empty((100 + top + bottom, 90 + left + right, 3), np.uint8)
    img[:] = colour
    img[top : top + 100, left : left + 90] = content
    img = np.clip(img.astype(int) + np.random.default_rng(0).integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
    r0, r1, c0, c1 = find_content_box(img)
    # inside the content, at most the safety margin (2 px) cut off on padded sides
    assert top <= r0 <= top + 2 and top + 100 - 2 <= r1 <= top + 100
    assert left <= c0 <= left + 2 and left + 90 - 2 <= c1 <= left + 90
    cropped = remove_padding(img)
    assert cropped.shape[:2] == (r1 - r0, c1 - c0)
    mask = padding_mask(img)
    assert mask[0, 0] and not mask[top + 50, left + 45]
    assert mask.sum() == mask.size - cropped.shape[0] * cropped.shape[1]


def test_no_padding_keeps_the_whole_image():
    img = smear(64, 80, seed=3)
    assert find_content_box(img) == (0, 64, 0, 80)
    with pytest.raises(InputError):
        find_content_box(img[..., 0])


def test_padding_removal_on_herlev_images():
    root = herlev_dir()
    folders = class_folders(root)
    assert set(folders) == set(HERLEV_CLASSES)
    for cls in ("normal_columnar", "severe_dysplastic"):
        for path in sorted(folders[cls].glob("*.jpg"))[:3]:
            img = read_rgb(path)
            r0, r1, c0, c1 = find_content_box(img)
            assert (r1 - r0) * (c1 - c0) < img.shape[0] * img.shape[1], f"{path.name}: no padding found"
            # the border of what is kept is not one flat colour any more
            kept = img[r0:r1, c0:c1].astype(np.float32)
            border = np.concatenate([kept[0], kept[-1], kept[:, 0], kept[:, -1]])
            assert border.std(axis=0).max() > 5.0, path.name


def test_split_is_fixed_and_disjoint():
    root = herlev_dir()
    train = load_herlev(root, 64, "train", limit_per_class=None)
    test = load_herlev(root, 64, "test")
    assert len(train) + len(test) == 716
    assert 0.1 < len(test) / 716 < 0.3
    assert not set(train.groups) & set(test.groups)
    assert all(is_heldout(g) for g in test.groups) and not any(is_heldout(g) for g in train.groups)
    assert set(np.unique(test.labels)) == set(range(7))  # every class represented
    assert train.squares().shape[1:] == (64, 64, 3)
    assert group_of("rotated_0_153955676-153955721-001.jpg") == "153955676"


# --------------------------------------------------------------------------- classes
def test_class_names_in_both_namings():
    assert len(HERLEV_CLASSES) == 7 and BETHESDA_CLASSES == ("NILM", "LSIL", "HSIL", "carcinoma")
    assert canonical_class("Severe Dysplastic") == "severe_dysplastic"
    assert canonical_class("normal_superficiel") == "normal_superficial"  # the data folders' spelling
    assert canonical_class("hsil") == "HSIL" and canonical_class("Carcinoma") == "carcinoma"
    assert herlev_members("NILM") == ["normal_superficial", "normal_intermediate", "normal_columnar"]
    assert herlev_members("HSIL") == ["moderate_dysplastic", "severe_dysplastic"]
    assert herlev_members("carcinoma") == ["carcinoma_in_situ"]
    assert label_of("light_dysplastic", "bethesda") == "LSIL"
    assert label_of("light_dysplastic", "herlev") == "light_dysplastic"
    assert classes_of("herlev") == HERLEV_CLASSES and classes_of("bethesda") == BETHESDA_CLASSES
    np.testing.assert_array_equal(to_naming(np.arange(7), "bethesda"), [0, 0, 0, 1, 2, 2, 3])
    assert set(HERLEV_TO_BETHESDA.values()) == set(BETHESDA_CLASSES)
    with pytest.raises(InputError, match="unknown cell class"):
        canonical_class("koilocyte")
    with pytest.raises(InputError, match="naming"):
        classes_of("who")


# --------------------------------------------------------------------------- generator (shipped model)
@needs_model
def test_generator_shapes_and_determinism():
    a = generate_cells("severe_dysplastic", 3, seed=5, naming="herlev")
    assert len(a) == 3
    for cell in a:
        assert cell.image.shape == (64, 64, 3) and cell.image.dtype == np.uint8
        assert cell.herlev_class == "severe_dysplastic" and cell.label == "severe_dysplastic"
    assert [c.seed for c in a] == [5, 6, 7]
    b = generate_cells("severe_dysplastic", 3, seed=5, naming="herlev")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.image, y.image)
    # cell n of a request is cell 0 of a request with seed + n
    np.testing.assert_array_equal(generate_cells("severe_dysplastic", 1, seed=7)[0].image, a[2].image)
    assert not np.array_equal(a[0].image, a[1].image)
    # a Bethesda category: labels in the naming, Herlev classes from its members
    cells = generate_cells("NILM", 12, seed=0, naming="bethesda")
    assert {c.label for c in cells} == {"NILM"}
    assert {c.herlev_class for c in cells} <= set(herlev_members("NILM"))


@needs_model
def test_gallery_a_row_per_class():
    grid, rows, cells = gallery("all", 3, seed=0, naming="bethesda", gap=2)
    assert [label for label, _ in rows] == list(BETHESDA_CLASSES)
    assert grid.shape == (4 * 66 + 2, 3 * 66 + 2, 3) and grid.dtype == np.uint8
    assert len(cells) == 12
    np.testing.assert_array_equal(grid[2:66, 2:66], cells[0].image)
    grid7, rows7, _ = gallery("all", 2, seed=0, naming="herlev")
    assert len(rows7) == 7 and grid7.shape[0] == 7 * 66 + 2


@needs_model
def test_bad_generation_requests():
    with pytest.raises(InputError, match="unknown cell class"):
        generate_cells("koilocyte", 2)
    for n in (0, -3):
        with pytest.raises(InputError, match="count"):
            generate_cells("HSIL", n)
    with pytest.raises(InputError, match="count"):
        check_count(2.5)
    with pytest.raises(InputError, match="one class"):
        generate_cells("all", 2)
    with pytest.raises(InputError, match="naming"):
        generate_cells("HSIL", 2, naming="who")


# --------------------------------------------------------------------------- blending
@pytest.mark.parametrize("method", ["poisson", "alpha"])
def test_blending_changes_only_the_pasted_region(method):
    host = rgb_volume(smear())
    before = host.array.copy()
    ras = host.ijk_to_ras_points([[70, 60, 0]])[0]
    res = insert_cell(host, blob_patch(), ras, size_px=48, method=method)
    np.testing.assert_array_equal(host.array, before)  # the input volume is not modified
    out = res.volume.array
    assert out.shape == before.shape and out.dtype == before.dtype
    np.testing.assert_allclose(res.volume.ijk_to_ras, host.ijk_to_ras)
    i0, j0, i1, j1 = res.box_ijk
    assert (i0, j0, i1, j1) == (70 - 24, 60 - 24, 70 + 24, 60 + 24)
    outside = np.ones(before.shape[:3], bool)
    outside[0, j0:j1, i0:i1] = ~res.changed
    np.testing.assert_array_equal(out[outside], before[outside])  # every pixel outside the pasted disc
    assert (out[0, j0:j1, i0:i1] != before[0, j0:j1, i0:i1]).any()
    # the nucleus shows: the pasted centre is darker than the host there
    c = out[0, 58:63, 68:73].astype(float).mean()
    assert c < before[0, 58:63, 68:73].astype(float).mean() - 30


def test_poisson_blend_is_seamless():
    host = rgb_volume(smear(seed=4))
    ras = host.ijk_to_ras_points([[70, 60, 0]])[0]
    patch = blob_patch()
    patch = np.clip(patch.astype(int) - 60, 0, 255).astype(np.uint8)  # much darker background than the host
    poisson = insert_cell(host, patch, ras, size_px=48, method="poisson").volume.array[0].astype(float)
    alpha = insert_cell(host, patch, ras, size_px=48, method="alpha").volume.array[0].astype(float)
    h = host.array[0].astype(float)
    # just inside the disc edge, Poisson follows the host; a plain paste would be ~60 darker
    yy, xx = np.mgrid[0 : h.shape[0], 0 : h.shape[1]]
    r = np.hypot(yy - 59.5, xx - 69.5)  # the disc centre: the middle of the 48 px box
    ring = (r > 19) & (r < 21)
    assert np.abs(poisson[ring] - h[ring]).mean() < 12
    assert np.abs(poisson[ring] - h[ring]).mean() < np.abs(alpha[ring] - h[ring]).mean() + 12


def test_blending_at_the_image_edge_is_clipped():
    host = rgb_volume(smear(80, 80))
    ras = host.ijk_to_ras_points([[2, 78, 0]])[0]
    for method in ("poisson", "alpha"):
        res = insert_cell(host, blob_patch(), ras, size_px=40, method=method)
        i0, j0, i1, j1 = res.box_ijk
        assert i0 == 0 and j1 == 80 and res.volume.array.shape == host.array.shape


def test_bad_insertion_input():
    host = rgb_volume(smear())
    inside = host.ijk_to_ras_points([[50, 50, 0]])[0]
    grey = Volume(smear()[..., 0][np.newaxis], make_ijk_to_ras(), name="grey")
    with pytest.raises(InputError, match="RGB"):
        insert_cell(grey, blob_patch(), inside)
    two = Volume(smear()[np.newaxis, ..., :2], make_ijk_to_ras(), name="two")
    with pytest.raises(InputError, match="RGB"):
        insert_cell(two, blob_patch(), inside)
    outside = host.ijk_to_ras_points([[500, 50, 0]])[0]
    with pytest.raises(InputError, match="outside"):
        insert_cell(host, blob_patch(), outside)
    with pytest.raises(InputError, match="outside"):
        insert_cell(host, blob_patch(), inside + np.array([0, 0, 5.0]))  # off the image's plane
    with pytest.raises(InputError, match="finite"):
        insert_cell(host, blob_patch(), [np.nan, 0, 0])
    with pytest.raises(InputError, match="blend"):
        insert_cell(host, blob_patch(), inside, method="paste")
    with pytest.raises(InputError, match="patch"):
        insert_cell(host, blob_patch()[..., :1], inside)
    with pytest.raises(InputError, match="at least"):
        insert_cell(host, blob_patch(), inside, size_px=4)


# --------------------------------------------------------------------------- evaluation measures
def test_frechet_distance_and_precision_recall():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 5))
    b = rng.standard_normal((300, 5))
    far = rng.standard_normal((300, 5)) + 4.0
    assert frechet_distance(a, b) < 0.5 < 16 < frechet_distance(a, far)
    p, r = precision_recall(a, b)
    assert p > 0.7 and r > 0.7
    p, r = precision_recall(a, far)
    assert p < 0.2 and r < 0.2


# --------------------------------------------------------------------------- command line and demo
@needs_model
def test_cells_cli_writes_png_and_csv(tmp_path, capsys):
    out = tmp_path / "cells"
    assert main(["cells", "--class", "HSIL", "--count", "3", "--seed", "10", "--out", str(out)]) == 0
    assert "wrote 3 cells" in capsys.readouterr().out
    with open(out / "cells.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["seed"] for r in rows] == ["10", "11", "12"]
    assert {r["class"] for r in rows} == {"HSIL"}
    assert {r["herlev_class"] for r in rows} <= {"moderate_dysplastic", "severe_dysplastic"}
    from medsynth.cyto.data import read_rgb as read

    for r in rows:
        img = read(out / r["file"])
        assert img.shape == (64, 64, 3)
    # the PNG is the generated cell itself (lossless)
    np.testing.assert_array_equal(read(out / rows[0]["file"]), generate_cells("HSIL", 1, seed=10)[0].image)
    # a class-balanced set merges into the same CSV
    assert main(["cells", "--class", "all", "--count", "2", "--naming", "herlev", "--out", str(out)]) == 0
    with open(out / "cells.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 + 14
    assert sum(r["naming"] == "herlev" for r in rows) == 14


def test_cells_cli_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["cells", "--class", "koilocyte", "--count", "3", "--out", str(tmp_path / "x")]) == 2
    assert "unknown cell class 'koilocyte'" in capsys.readouterr().err
    assert main(["cells", "--class", "HSIL", "--count", "0", "--out", str(tmp_path / "x")]) == 2
    assert "count" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@needs_model
def test_write_cells_for_a_single_herlev_class(tmp_path):
    written, csv_path = write_cells(tmp_path, "carcinoma_in_situ", 2, seed=0, naming="bethesda")
    assert [p.parent.name for p in written] == ["carcinoma", "carcinoma"]
    assert csv_path.is_file()


@needs_model
def test_demo_part_writes_a_gallery_per_naming(tmp_path):
    assert main(["demo", "--only", "cyto", "--out", str(tmp_path)]) == 0
    folder = tmp_path / "cyto"
    for naming, rows in (("bethesda", 4), ("herlev", 7)):
        img = read_rgb(folder / f"cells_gallery_{naming}.png")
        assert img.shape == (rows * 66 + 2, 8 * 66 + 2, 3)
        assert len((folder / f"cells_gallery_{naming}.txt").read_text().split(",")) == rows
    assert (folder / "cell_insertion_host_poisson_alpha.png").is_file()


# --------------------------------------------------------------------------- training (heavy)
@pytest.mark.heavy
def test_tiny_training_exports_a_working_generator(tmp_path):
    pytest.importorskip("torch", reason="training needs torch")
    pytest.importorskip("monai", reason="training needs MONAI")
    data = herlev_dir()
    out, ck = tmp_path / "models", tmp_path / "ckpt"
    env = dict(os.environ, PYTHONPATH=str(REPO / "MedSynthExtension"), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    r = subprocess.run(
        [sys.executable, "-m", "medsynth.cyto.train", "--tiny", "--threads", "1", "--data", str(data),
         "--out", str(out), "--checkpoint-dir", str(ck)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (ck / "cellgan.pt").is_file() and (ck / "cellgan-baseline.pt").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    ids = {m["id"]: m for m in manifest["models"]}
    assert set(ids) == {"cellgan", "cellgan-baseline"}
    assert ids["cellgan"]["classes"] == list(HERLEV_CLASSES) and ids["cellgan"]["arch"] == "cellgan"
    assert (out / "cellgan.md").is_file()
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / "cellgan.onnx"), providers=["CPUExecutionProvider"])
    img = sess.run(None, {"noise": np.zeros((2, 64), np.float32), "class_index": np.array([0, 6], np.int64)})[0]
    assert img.shape == (2, 64, 64, 3) and np.all((img >= 0) & (img <= 1))

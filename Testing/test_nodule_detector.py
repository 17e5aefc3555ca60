"""Radiograph nodule detector: patient splits, the detector's canvas, synthetic samples, matching, a tiny MONAI
RetinaNet training run with ONNX export and resume, detector loading errors, the robustness benchmark (with
oracle / blind / noisy detectors) and the nodule-detect / nodule-benchmark commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, tree_state
from medsynth import InputError, Volume, make_ijk_to_ras
from medsynth.nodule.cxr_data import CANVAS, make_canvas, patient_key, split_by_patient, synthetic_sample
from medsynth.nodule.cxr_detector import Detection, is_hit, load_detector, nms
from medsynth.nodule.params import NoduleSpec

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cxr() -> Volume:
    """A phantom PA radiograph (MONOCHROME2 uint16, 0.8 mm pixels) projected from the chest CT phantom."""
    from medsynth.nodule.phantom import chest_ct_phantom, radiograph_from_ct

    ct = chest_ct_phantom(shape_kji=(64, 96, 112), spacing_kji=(2.5, 2.0, 2.0))
    img, _ = radiograph_from_ct(ct)
    return img


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, cxr) -> Path:
    from medsynth.io import write_volume

    d = tmp_path_factory.mktemp("hosts")
    write_volume(cxr, d / "P001a.nrrd")
    write_volume(cxr.with_array(np.flip(cxr.array, axis=2).copy()), d / "P002.nrrd")
    for n in range(3, 6):  # three more "patients": shifted copies
        write_volume(cxr.with_array(np.roll(cxr.array, 7 * n, axis=2).copy()), d / f"P00{n}.nrrd")
    return d


def test_patient_keys_and_split_keep_each_patient_on_one_side():
    assert patient_key(Path("COVID-00003a.jpg")) == patient_key(Path("COVID-00003b.jpg")) == "COVID-00003"
    assert patient_key(Path("00000001_000.png")) == patient_key(Path("00000001_003.png")) == "00000001"
    assert patient_key(Path("COVID-00004.jpg")) != patient_key(Path("COVID-00005.jpg"))
    names = [Path(f"COVID-{n:05d}{s}.jpg") for n in range(20) for s in ("a", "b")] + [Path("00000007_000.png")]
    train, test = split_by_patient(names, 0.3, seed=3)
    assert {patient_key(p) for p in train}.isdisjoint({patient_key(p) for p in test})
    assert sorted(train + test) == sorted(names) and 5 <= len({patient_key(p) for p in test}) <= 8
    assert split_by_patient(names, 0.3, seed=3) == (train, test)
    assert split_by_patient(names, 0.3, seed=4) != (train, test)


def test_canvas_geometry_photometric_and_fit():
    rng = np.random.default_rng(0)
    a = rng.random((1000, 800)).astype(np.float32)
    c = make_canvas(a, 0.4)
    assert c.image.shape == (CANVAS, CANVAS) and c.shape == (400, 320)
    assert np.allclose(c.zoom, 0.4) and abs(c.pixel_mm - 1.0) < 1e-6
    box = (100.0, 200.0, 150.0, 260.0)  # native (i0, j0, i1, j1)
    assert np.allclose(c.to_native(c.to_canvas(box)), box)
    assert np.all(c.image[400:] == 0) and np.all(c.image[:, 320:] == 0)
    # MONOCHROME1 stores the negative: the same canvas
    assert np.allclose(make_canvas(-a, 0.4, "MONOCHROME1").image, c.image, atol=1e-5)
    # an image wider than the canvas at 1 mm is shrunk to fit (pixels larger than 1 mm)
    big = make_canvas(rng.random((600, 3000)).astype(np.float32), 0.2)
    assert big.shape[1] == CANVAS and big.pixel_mm > 1.0 and abs(big.pixel_mm - 3000 * 0.2 / CANVAS) < 0.01


@pytest.mark.parametrize("array,pixel,pattern", [
    (np.full((64, 64), 3.0), 0.5, "flat"),
    (np.where(np.eye(64) > 0, np.nan, 1.0), 0.5, "NaN"),
    (np.ones((8, 8)), 0.5, "at least 16"),
    (np.random.default_rng(0).random((64, 64)), 0.0, "positive"),
])
def test_canvas_bad_input(array, pixel, pattern):
    with pytest.raises(InputError, match=pattern):
        make_canvas(array, pixel)


def test_synthetic_sample_inserts_attenuation_inside_its_boxes_only(cxr):
    c = make_canvas(cxr.array[0], float(cxr.spacing[0]))
    specs = [NoduleSpec(diameter_mm=14.0, texture="solid", seed=1), NoduleSpec(diameter_mm=9.0, seed=2)]
    img, nods = synthetic_sample(c, np.random.default_rng(0), specs=specs)
    assert len(nods) == 2
    changed = np.abs(img - c.image) > 1e-6
    inside = np.zeros_like(changed)
    for n in nods:
        j0, i0, j1, i1 = (int(v) for v in n.box_ji)
        assert 0 <= j0 < j1 <= c.shape[0] and 0 <= i0 < i1 <= c.shape[1]
        assert 0.6 * 14 / c.pixel_mm <= max(j1 - j0, i1 - i0) <= 2.2 * 14 / c.pixel_mm
        inside[max(0, j0 - 2) : j1 + 2, max(0, i0 - 2) : i1 + 2] = True  # boxes come from the masks; the faint
        # partial-volume rim just outside a mask changes pixels too
        assert float((img - c.image)[j0:j1, i0:i1].mean()) > 0.005  # more attenuation: brighter in MONOCHROME2
    assert changed.any() and not (changed & ~inside).any()
    assert np.array_equal(c.image, make_canvas(cxr.array[0], float(cxr.spacing[0])).image)  # canvas untouched


def test_hit_rule_and_nms():
    gt = (10, 10, 30, 30)
    assert is_hit((15, 15, 25, 25), gt)  # centre inside
    assert is_hit((0, 0, 22, 22), gt)  # centre (11, 11) inside
    assert not is_hit((31, 31, 50, 50), gt)
    assert not is_hit((-40, -40, 40, 12), gt)  # centre outside, IoU small
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    keep = nms(boxes, np.array([0.9, 0.8, 0.7]))
    assert keep.tolist() == [0, 2]


@pytest.mark.heavy
def test_tiny_training_exports_a_detector_that_matches_torch_and_resumes(hosts, tmp_path):
    import torch

    from medsynth.nodule.cxr_data import host_canvas
    from medsynth.nodule.cxr_detector import CanvasDetector
    from medsynth.nodule.train_detector import build_detector, train

    torch.manual_seed(0)
    logs = []
    facts = train([hosts], tmp_path / "det", steps=3, seed=0, batch=2, pool_size=4, save_every=2, log=logs.append,
                  split_seed=0)
    assert facts["steps"] == 3 and (tmp_path / "det" / "checkpoint.pt").is_file()
    onnx_path = tmp_path / "det" / "detector.onnx"
    d = CanvasDetector(onnx_path, threshold=0.0)
    c = host_canvas(hosts / "P001a.nrrd")
    from medsynth.nodule.cxr_data import detector_input

    x_np = detector_input(c.image, c.shape, c.pixel_mm)[None]
    assert x_np.shape == (1, 2, CANVAS, CANVAS) and np.all(x_np[:, 1, c.shape[0]:] == 0)
    scores, boxes = d.session.run(["scores", "boxes"], {"image": x_np})
    # the same numbers from the torch network through MONAI's own post-processing path
    det = build_detector()
    det.network.load_state_dict(torch.load(tmp_path / "det" / "checkpoint.pt", weights_only=True)["network"])
    det.eval()
    with torch.no_grad():
        x = torch.from_numpy(x_np)
        heads = det.network(x)
        cls = torch.sigmoid(det._reshape_maps(heads[det.cls_key])[0, :, 0]).numpy()
        det.generate_anchors(x, heads)
        dec = det.box_coder.decode_single(det._reshape_maps(heads[det.box_reg_key])[0], det.anchors[0]).numpy()
    assert scores.shape == cls.shape and boxes.shape == dec.shape == (len(cls), 4)
    assert np.allclose(scores, cls, atol=1e-4) and np.allclose(boxes, dec, atol=1e-2)
    # resume: a longer run continues from the checkpoint
    logs.clear()
    train([hosts], tmp_path / "det", steps=4, seed=0, batch=2, pool_size=4, log=logs.append, split_seed=0)
    assert any("resumed" in m and "step 3" in m for m in logs)


def test_detector_loading_errors(tmp_path):
    (tmp_path / "x.onnx").write_text("not a model")
    with pytest.raises(InputError, match="not an ONNX model"):
        load_detector(str(tmp_path / "x.onnx"))
    with pytest.raises(InputError, match="not a MedSynth radiograph detector"):
        load_detector(str(REPO / "Resources" / "Models" / "nodule-shape-vae.onnx"))
    with pytest.raises(InputError, match="cannot be imported"):
        load_detector("no_such_package_xyz.mod:fn")
    with pytest.raises(InputError, match="not found"):
        load_detector(str(tmp_path / "missing.onnx"))
    with pytest.raises(InputError, match="give 'shipped'"):
        load_detector("nonsense")


class _Oracle:
    """Finds the pixels that differ from the host: a perfect detector for inserted nodules."""

    name = "oracle"
    threshold = None

    def __init__(self, host: np.ndarray) -> None:
        self.host = host

    def __call__(self, volume):
        diff = np.argwhere(np.abs(volume.array[0].astype(np.float64) - self.host) > 0)
        if len(diff) == 0:
            return []
        (j0, i0), (j1, i1) = diff.min(axis=0), diff.max(axis=0) + 1
        return [Detection((float(i0), float(j0), float(i1), float(j1)), 1.0)]


def _host_float(cxr) -> np.ndarray:
    return cxr.array[0].astype(np.float32).astype(np.float64)


def test_benchmark_oracle_blind_noisy_and_same_seed_same_report(hosts, cxr, tmp_path):
    from medsynth.nodule.benchmark import run_benchmark, write_report

    one = tmp_path / "one"
    one.mkdir()
    (one / "P001a.nrrd").write_bytes((hosts / "P001a.nrrd").read_bytes())
    attrs = ["diameter_mm", "texture", "zone"]
    rep = run_benchmark([one], _Oracle(_host_float(cxr)), seed=5, per_image=2, attributes=attrs)
    found = [s for s in rep["sensitivity"] if s["total"]]
    assert found and all(s["sensitivity"] == 1.0 for s in found)
    assert {s["value"] for s in found} >= {5.0, 30.0, "solid", "ggo", "upper", "lower"}
    assert rep["false_positives_per_image"] == 0.0
    blind = run_benchmark([one], lambda v: [], seed=5, per_image=2, attributes=attrs)
    assert all(s["hits"] == 0 for s in blind["sensitivity"]) and blind["false_positives_per_image"] == 0.0
    noisy = run_benchmark([one], lambda v: [Detection((0.0, 0.0, 4.0, 4.0), 0.9)], seed=5, per_image=1,
                          attributes=["texture"])
    assert noisy["false_positives_per_image"] == 1.0 and all(s["hits"] == 0 for s in noisy["sensitivity"])
    again = run_benchmark([one], lambda v: [], seed=5, per_image=2, attributes=attrs)
    places = lambda r: [(t["j"], t["i"], t["seed"]) for t in r["trials"] if t["hit"] != ""]  # noqa: E731
    assert places(again) == places(blind)
    other = run_benchmark([one], lambda v: [], seed=6, per_image=2, attributes=attrs)
    assert places(other) != places(blind)
    written = write_report(rep, tmp_path / "out")
    names = {p.name for p in written}
    assert {"report.json", "sensitivity.csv", "trials.csv", "sensitivity_zone.png"} <= names
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["sensitivity"][0].keys() >= {"attribute", "value", "hits", "total"}


def test_benchmark_zones_are_where_they_say(cxr):
    from medsynth.nodule.benchmark import HostImage, zone_points

    h = HostImage("p", Volume(cxr.array.astype(np.float32), cxr.ijk_to_ras), float(cxr.spacing[0]))
    z = zone_points(h, 10.0)
    up, mid, low = (z[k][:, 0].mean() for k in ("upper", "middle", "lower"))
    assert up < mid < low
    if len(z["subdiaphragmatic"]):
        assert z["subdiaphragmatic"][:, 0].mean() > low


def test_benchmark_rib_zones_lie_on_and_between_rib_shadows(monkeypatch):
    from medsynth.nodule import candidates
    from medsynth.nodule.benchmark import HostImage, zone_points

    # a drawn radiograph (1 mm pixels): bright body, two dark lung fields, horizontal rib shadows 12 mm wide
    # every 30 mm
    jj, ii = np.mgrid[:400, :360].astype(np.float32)
    img = np.full((400, 360), 800.0, np.float32)
    for ci in (100, 260):
        img[((jj - 190) / 140) ** 2 + ((ii - ci) / 60) ** 2 <= 1] = 200.0
    rib = ((jj - 40) % 30) < 12
    img = img + 60.0 * rib
    lungs = img < 500  # the drawn lung fields (ribs included), as the lung-field heuristic would give on a real image
    monkeypatch.setattr(candidates, "cxr_lung_mask", lambda volume, photometric, spacing: (lungs[::2, ::2], 2))
    h = HostImage("drawn", Volume(img[None], make_ijk_to_ras((1.0, 1.0, 1.0))), 1.0)
    z = zone_points(h, 8.0)
    on = lambda pts: float(np.mean([rib[int(j), int(i)] for j, i in pts]))  # noqa: E731
    assert len(z["over-rib"]) > 20 and len(z["between-ribs"]) > 20
    # rib pixels are 40 % of the lung: over-rib places lie mostly on them, between-ribs places mostly off them
    assert on(z["over-rib"]) > 0.7 and on(z["between-ribs"]) < 0.4


def test_user_detector_callable_errors_are_named(hosts, tmp_path, monkeypatch):
    import sys
    import types

    mod = types.ModuleType("user_det_mod")

    def raises(volume):
        raise RuntimeError("boom")

    mod.raises = raises
    mod.junk = lambda volume: 42
    mod.tuples = lambda volume: [(1, 2, 30, 40, 0.5)]
    monkeypatch.setitem(sys.modules, "user_det_mod", mod)
    vol = Volume(np.zeros((1, 32, 32), np.float32))
    with pytest.raises(InputError, match=r"user_det_mod:raises raised RuntimeError: boom"):
        load_detector("user_det_mod:raises")(vol)
    with pytest.raises(InputError, match="must return Detection"):
        load_detector("user_det_mod:junk")(vol)
    assert load_detector("user_det_mod:tuples")(vol)[0].box == (1.0, 2.0, 30.0, 40.0)
    rc, out, err = run_cli(["nodule-benchmark", "--images", str(hosts / "P002.nrrd"), "--out", str(tmp_path / "b"), "--detector",
                            "user_det_mod:raises", "--per-image", "1", "--attributes", "texture"])
    assert rc == 2 and "raised RuntimeError" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def test_commands_detect_and_benchmark(hosts, tmp_path):
    from medsynth.io import write_volume

    rc, out, err = run_cli(["nodule-detect", str(hosts / "P001a.nrrd"), "--detector", "log", "--threshold", "3",
                            "--json", str(tmp_path / "d.json")])
    assert rc == 0, err
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["threshold"] == 3.0 and abs(data["pixel_spacing_mm"] - 0.8) < 1e-6
    assert f"{len(data['detections'])} detection(s)" in out
    for d in data["detections"]:
        assert len(d["box_ij"]) == 4 and d["score"] >= 3.0
    # a PNG carries no pixel spacing: an error naming the image, unless a width is assumed
    vol = Volume(np.zeros((1, 40, 50), np.uint8) + np.arange(50, dtype=np.uint8), make_ijk_to_ras((1, 1, 1)))
    write_volume(vol, tmp_path / "plain.png")
    rc, out, err = run_cli(["nodule-detect", str(tmp_path / "plain.png"), "--detector", "log"])
    assert rc == 2 and "plain.png" in err and "no pixel spacing" in err
    rc, out, err = run_cli(["nodule-detect", str(tmp_path / "plain.png"), "--detector", "log", "--assume-width", "370"])
    assert rc == 0, err
    before = tree_state(hosts)
    rc, out, err = run_cli(["nodule-benchmark", "--images", str(hosts / "P002.nrrd"), "--out", str(tmp_path / "bm"),
                            "--detector", "log", "--per-image", "1", "--attributes", "diameter_mm", "--seed", "3"])
    assert rc == 0, err
    rep = json.loads((tmp_path / "bm" / "report.json").read_text())
    assert rep["seed"] == 3 and [s["value"] for s in rep["sensitivity"]] == [5.0, 8.0, 12.0, 16.0, 20.0, 25.0, 30.0]
    assert (tmp_path / "bm" / "sensitivity_diameter_mm.png").stat().st_size > 1000
    assert tree_state(hosts) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, out, err = run_cli(["nodule-benchmark", "--images", str(empty), "--out", str(tmp_path / "e")])
    assert rc == 2 and "no images" in err


def test_training_crops_keep_boxes_on_their_objects_through_mirroring():
    from scipy import ndimage

    from medsynth.nodule.train_detector import crop_batch

    img = np.zeros((2, CANVAS, CANVAS), np.float16)
    boxes = np.array([[100, 120, 118, 131], [200, 300, 230, 322]], np.float32)  # (j0, i0, j1, i1), exclusive ends
    for j0, i0, j1, i1 in boxes.astype(int):
        img[:, j0:j1, i0:i1] = 1.0
    pool = [(img, boxes, (CANVAS, CANVAS))]
    rng = np.random.default_rng(1)
    seen = 0
    for _ in range(10):
        x, targets = crop_batch(pool, rng, 4)
        for patch, t in zip(x.numpy(), targets):
            on = patch[0] > 0.5
            got = {tuple(b) for b in t["box"].numpy().round().astype(int).tolist()}
            for j0, i0, j1, i1 in got:
                assert on[j0:j1, i0:i1].all()  # every box lies on its object
            lab, n = ndimage.label(on)
            for sl in ndimage.find_objects(lab):
                js, is_ = sl
                if js.start > 0 and is_.start > 0 and js.stop < on.shape[0] and is_.stop < on.shape[1]:
                    assert (js.start, is_.start, js.stop, is_.stop) in got  # a whole object has its exact box
                    seen += 1
    assert seen >= 10


def test_shipped_detector_ranks_a_conspicuous_nodule_above_the_rest_of_the_image(cxr):
    """The shipped model on a phantom radiograph it never saw: a 25 mm solid nodule at twice the physical gain
    scores above every other detection of the image in at least 4 of 5 places."""
    from medsynth.nodule.cxr_data import insert_on_canvas, lung_points

    det = load_detector("shipped")
    assert det.threshold > 0.5 and "nodule-cxr-detector" in det.name
    d = det.canvas_detector
    c = make_canvas(cxr.array[0], float(cxr.spacing[0]))
    wins = 0
    for s in range(5):
        img, box = insert_on_canvas(c, c.image, lung_points(c, 25, s)[0], NoduleSpec(diameter_mm=25, seed=s),
                                    gain_factor=2.0)
        dets = d.detect_array(img, c.shape, threshold=0.02, pixel_mm=c.pixel_mm)
        on = max((sc for b, sc in dets if is_hit(b, box)), default=0.0)
        off = max((sc for b, sc in dets if not is_hit(b, box)), default=0.0)
        wins += on > off
    assert wins >= 4
    # through the engine interface: boxes in the image's own pixels, scores at or above the operating point
    found = det(cxr)
    assert all(dd.score >= det.threshold and 0 <= dd.box[0] < dd.box[2] <= cxr.array.shape[2] + 5 for dd in found)


def test_benchmark_test_host_list_is_the_split_test_side():
    from conftest import shared_file

    from medsynth.nodule.train_detector import host_split

    folder = shared_file("cxr/figure1/images")
    listed = (REPO / "benchmarks" / "data" / "cxr_test_hosts.txt").read_text().split()
    split = host_split([folder, folder.parent.parent / "nih"], 0)
    assert [Path(p).name for p in listed] == [p.name for p in split["test"]]
    assert not {Path(p).name for p in listed} & {p.name for p in split["train"] + split["val"]}


@pytest.mark.heavy
def test_mining_evaluation_same_figures_in_one_process_and_on_two_workers(hosts, tmp_path):
    """evaluate nodule-mining end to end on a tiny base detector: every (seed, arm) fine-tuned, scored; the
    fine-tuning runs on 2 Dask workers give the same figures as in this process (1 torch thread each)."""
    pytest.importorskip("distributed")
    import torch

    from medsynth.io import write_json
    from medsynth.nodule.train_detector import calibrate, train

    base = tmp_path / "base"
    facts = train([hosts], base, steps=2, seed=0, batch=2, pool_size=4, log=lambda m: None, split_seed=0)
    facts["operating_point"] = calibrate(base / "detector.onnx", [Path(p) for p in facts["split"]["val"]], 7,
                                         samples_per_host=1)
    write_json(facts, base / "facts.json")
    threads = torch.get_num_threads()
    results = {}
    try:
        for name, extra in (("one", ["--threads", "1"]), ("two", ["--workers", "2", "--threads", "1"])):
            out = tmp_path / f"{name}.json"
            rc, stdout, err = run_cli(["evaluate", "nodule-mining", "--base", str(base), "--work", str(tmp_path / name),
                                       "--json", str(out), "--seeds", "1", "--extra", "2", "--steps", "2",
                                       "--budget", "12", "--per-host", "1", "--eval-seed", "3", *extra])
            assert rc == 0, err
            assert "mined - random" in stdout
            results[name] = json.loads(out.read_text())
    finally:
        torch.set_num_threads(threads)
    for r in results.values():
        for run in r["runs"]:
            assert list(run["arms"]) == ["none", "random", "mined"]
            for sc in run["arms"].values():
                sc.pop("train_seconds")
                assert sc["plain_images"] >= 1 and sc["nodules"] >= 1
    assert results["one"]["runs"] == results["two"]["runs"]
    assert results["one"]["summary"] == results["two"]["summary"]
    assert (tmp_path / "two" / "pools" / "seed1_mined.npz").is_file()

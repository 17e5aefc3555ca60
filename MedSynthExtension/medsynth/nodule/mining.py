"""``medsynth evaluate nodule-mining``: does retraining on nodules the detector misses beat retraining on random ones?

As the seed papers do it: an attribute search (diameter, texture, solid fraction, the three shape sliders, place)
over the *training* hosts finds synthetic nodules the base detector misses at its operating point; the base
detector is then fine-tuned three ways with the same steps, learning rate and base sample pool:

* ``none``: no extra nodules (the control for the extra training steps),
* ``random``: plus K nodules drawn from the same attribute distribution (no selection),
* ``mined``: plus K nodules the base detector missed.

Each is scored on a held-out benchmark: the test hosts (patients never trained on or used for the operating
point), with synthetic nodules from the same distribution under a fresh seed (printed).  The figures: sensitivity
at 0.5 false positives per unmodified test image (a point of the FROC curve: the threshold where the unmodified
test images give 0.5 detections per image; a measure, not a setting that is chosen), sensitivity at the
detector's own operating point (fixed on the validation hosts), and both for solid nodules >= 15 mm.  Repeated
over ``--seeds`` (mining and training seeds); mean and spread reported.

Needs torch and MONAI (training); the base detector comes from :mod:`.train_detector` (its ``checkpoint.pt``,
``facts.json`` with the patient split and the operating point).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, MedSynthError

ARMS = ("none", "random", "mined")


def _examples(canvases, detector, n: int, seed: int, mined: bool, budget: int) -> Tuple[list, Dict[str, Any]]:
    """``n`` one-nodule samples (float16 canvas, boxes, shape): random ones, or ones the detector misses."""
    from .cxr_data import detector_input, insert_on_canvas, lung_points, random_spec
    from .cxr_detector import is_hit

    rng = np.random.default_rng(seed)
    out, tried, missed_specs = [], 0, []
    while len(out) < n and tried < budget:
        c = canvases[int(rng.integers(len(canvases)))]
        spec = random_spec(rng)
        pts = lung_points(c, spec.diameter_mm, int(rng.integers(1 << 30)), max_points=40)
        if len(pts) == 0:
            continue
        centre = pts[int(rng.integers(len(pts)))]
        img, box = insert_on_canvas(c, c.image, centre, spec)
        if box is None:
            continue
        tried += 1
        if mined:
            dets = detector.detect_array(img, c.shape, pixel_mm=c.pixel_mm)
            if any(is_hit(b, box) for b, _ in dets):
                continue
            missed_specs.append(spec.to_dict())
        out.append((detector_input(img, c.shape, c.pixel_mm).astype(np.float16), np.array([box], np.float32), c.shape))
    facts = {"wanted": n, "got": len(out), "tried": tried}
    if mined and missed_specs:
        d = np.array([s["diameter_mm"] for s in missed_specs])
        facts["missed_rate"] = round(len(out) / max(tried, 1), 3)
        facts["missed_diameter_mm_median"] = float(np.median(d))
        facts["missed_textures"] = {t: sum(s["texture"] == t for s in missed_specs) for t in ("solid", "part-solid", "ggo")}
    return out, facts


def heldout_benchmark(canvases, seed: int, per_host: int = 12) -> List[Dict[str, Any]]:
    """The held-out test images: each host unmodified plus ``per_host`` images with one random nodule."""
    from .cxr_data import insert_on_canvas, lung_points, random_spec

    rng = np.random.default_rng(seed)
    items = []
    for ci, c in enumerate(canvases):
        items.append({"canvas": ci, "image": c.image, "box": None, "spec": None})
        for _ in range(per_host):
            spec = random_spec(rng)
            pts = lung_points(c, spec.diameter_mm, int(rng.integers(1 << 30)), max_points=40)
            if len(pts) == 0:
                continue
            img, box = insert_on_canvas(c, c.image, pts[int(rng.integers(len(pts)))], spec)
            if box is not None:
                items.append({"canvas": ci, "image": img.astype(np.float16), "box": box, "spec": spec.to_dict()})
    return items


def score_detector(detector, canvases, items, target_fp: float = 0.5) -> Dict[str, Any]:
    """Sensitivity at ``target_fp`` false positives per unmodified image and at the detector's operating point."""
    from .cxr_detector import is_hit

    fp_scores: List[float] = []
    n_plain = 0
    best: List[Tuple[Dict[str, Any], float]] = []
    for it in items:
        c = canvases[it["canvas"]]
        dets = detector.detect_array(it["image"].astype(np.float32), c.shape, threshold=0.02, pixel_mm=c.pixel_mm)
        if it["box"] is None:
            n_plain += 1
            fp_scores.extend(s for _, s in dets)
        else:
            hit_scores = [s for b, s in dets if is_hit(b, it["box"])]
            best.append((it["spec"], max(hit_scores) if hit_scores else -1.0))
    fp_scores.sort(reverse=True)
    allowed = int(np.floor(target_fp * n_plain))
    t_froc = fp_scores[allowed] + 1e-9 if len(fp_scores) > allowed else 0.02

    def sens(thr: float, keep) -> Optional[float]:
        vals = [s >= thr for spec, s in best if keep(spec)]
        return round(float(np.mean(vals)), 4) if vals else None

    big_solid = lambda s: s["texture"] == "solid" and s["diameter_mm"] >= 15.0  # noqa: E731
    return {
        "sensitivity_at_fp": sens(t_froc, lambda s: True),
        "sensitivity_at_fp_solid15": sens(t_froc, big_solid),
        "threshold_at_fp": round(float(t_froc), 4),
        "sensitivity_at_operating_point": sens(detector.threshold, lambda s: True),
        "sensitivity_at_operating_point_solid15": sens(detector.threshold, big_solid),
        "fp_per_image_at_operating_point": round(sum(s >= detector.threshold for s in fp_scores) / max(n_plain, 1), 3),
        "nodules": len(best), "solid15": sum(big_solid(s) for s, _ in best), "plain_images": n_plain,
    }


def save_pool(pool: list, path: Path) -> Path:
    """Write extra training samples of :func:`_examples` as .npz (no pickles), so a worker can read them."""
    arrays: Dict[str, np.ndarray] = {}
    for k, (img, boxes, shape) in enumerate(pool):
        arrays[f"image_{k}"], arrays[f"boxes_{k}"], arrays[f"shape_{k}"] = img, boxes, np.asarray(shape, np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, count=np.int64(len(pool)), **arrays)
    return path


def load_pool(path: Path) -> list:
    with np.load(path) as z:
        return [(z[f"image_{k}"], z[f"boxes_{k}"], tuple(int(v) for v in z[f"shape_{k}"]))
                for k in range(int(z["count"]))]


@dataclass(frozen=True)
class FinetuneJob:
    """What a fine-tuning run depends on besides its seed, arm and extra samples (pickled to Dask workers)."""

    images: Tuple[str, ...]
    val: Tuple[str, ...]
    init: str
    out: str
    steps: int
    lr: float
    split_seed: int


def finetune_arm(job: FinetuneJob, task: Tuple[int, str, Optional[str]]) -> Dict[str, Any]:
    """One arm of one seed: fine-tune the base detector with the arm's extra samples (a .npz of
    :func:`save_pool`, or none), export it and fix its operating point on the validation hosts."""
    from .train_detector import calibrate, train

    seed, arm, pool_file = task
    folder = Path(job.out) / f"seed{seed}_{arm}"
    t0 = time.time()
    train(list(map(Path, job.images)), folder, job.steps, seed=seed, lr=job.lr, init=Path(job.init),
          extra_pool=load_pool(Path(pool_file)) if pool_file else None, pool_size=300, split_seed=job.split_seed,
          log=lambda m: None, curriculum=False)
    thr = calibrate(folder / "detector.onnx", list(map(Path, job.val)), seed + 7)["score_threshold"]
    return {"detector": str(folder / "detector.onnx"), "threshold": thr, "train_seconds": round(time.time() - t0, 1)}


def run_mining(base: Path, out: Path, seeds: Sequence[int], extra: int = 150, steps: int = 300, lr: float = 3e-4,
               budget: int = 2000, eval_seed: Optional[int] = None, per_host: int = 12, log=print,
               workers=None) -> Dict[str, Any]:
    """Mine, fine-tune every (seed, arm) and score them on the held-out benchmark (see the module doc).
    ``workers`` (:class:`medsynth.parallel.Workers`): where the fine-tuning runs go (the pools are mined and the
    detectors scored here); the figures do not depend on it at the same number of torch threads."""
    from functools import partial

    from ..parallel import Workers, run_tasks
    from .cxr_data import host_canvas
    from .cxr_detector import CanvasDetector

    base = Path(base)
    facts_path = base / "facts.json"
    if not (base / "checkpoint.pt").is_file() or not facts_path.is_file():
        raise InputError(f"{base} is not a trained detector folder (checkpoint.pt and facts.json from "
                         "python -m medsynth.nodule.train_detector)")
    facts = json.loads(facts_path.read_text())
    split = {k: [Path(p) for p in v] for k, v in facts["split"].items()}
    images = sorted({str(p.parent) for v in split.values() for p in v})
    op = facts["operating_point"]
    base_det = CanvasDetector(base / "detector.onnx", threshold=op["score_threshold"])
    train_canvases = [host_canvas(p) for p in split["train"]]
    test_canvases = [host_canvas(p) for p in split["test"]]
    eval_seed = int(eval_seed if eval_seed is not None else int(time.time()) % 100_000)
    log(f"held-out benchmark seed {eval_seed}: {len(test_canvases)} test hosts, {per_host} nodules each")
    items = heldout_benchmark(test_canvases, eval_seed, per_host)
    result: Dict[str, Any] = {"base": str(base), "eval_seed": eval_seed, "seeds": list(seeds), "extra": extra,
                              "steps": steps, "lr": lr, "test_hosts": [str(p) for p in split["test"]],
                              "base_scores": score_detector(base_det, test_canvases, items), "runs": []}
    log(f"base: {result['base_scores']}")
    out = Path(out)
    tasks: List[Tuple[int, str, Optional[str]]] = []
    runs: Dict[int, Dict[str, Any]] = {}
    for seed in seeds:
        mined, mfacts = _examples(train_canvases, base_det, extra, 1000 + seed, True, budget)
        rand, _ = _examples(train_canvases, base_det, len(mined), 2000 + seed, False, budget)
        log(f"seed {seed}: mined {mfacts}")
        runs[seed] = {"seed": seed, "mining": mfacts, "arms": {}}
        pools = {"none": None, "random": save_pool(rand, out / "pools" / f"seed{seed}_random.npz"),
                 "mined": save_pool(mined, out / "pools" / f"seed{seed}_mined.npz")}
        tasks += [(seed, arm, str(pools[arm]) if pools[arm] else None) for arm in ARMS]
    job = FinetuneJob(tuple(images), tuple(map(str, split["val"])), str(base / "checkpoint.pt"), str(out), steps, lr,
                      int(facts.get("split_seed", 0)))

    def scored(i: int, tuned: Dict[str, Any]) -> None:
        seed, arm, _ = tasks[i]
        sc = score_detector(CanvasDetector(Path(tuned["detector"]), threshold=tuned["threshold"]), test_canvases,
                            items)
        sc["train_seconds"] = tuned["train_seconds"]
        runs[seed]["arms"][arm] = sc
        log(f"seed {seed} {arm}: {sc}")

    run_tasks(partial(finetune_arm, job), tasks, workers or Workers(), what="fine-tuning runs", on_result=scored)
    result["runs"] = [{**runs[s], "arms": {a: runs[s]["arms"][a] for a in ARMS}} for s in seeds]

    def agg(arm: str, key: str) -> Dict[str, Any]:
        v = np.array([r["arms"][arm][key] for r in result["runs"] if r["arms"][arm][key] is not None], float)
        return {"mean": round(float(v.mean()), 4), "sd": round(float(v.std(ddof=1)), 4) if len(v) > 1 else 0.0,
                "values": v.tolist()} if len(v) else {}

    keys = ("sensitivity_at_fp", "sensitivity_at_fp_solid15", "sensitivity_at_operating_point")
    result["summary"] = {arm: {k: agg(arm, k) for k in keys} for arm in ARMS}
    diffs = [r["arms"]["mined"]["sensitivity_at_fp"] - r["arms"]["random"]["sensitivity_at_fp"] for r in result["runs"]]
    result["summary"]["mined_minus_random_at_fp"] = {"mean": round(float(np.mean(diffs)), 4),
                                                     "sd": round(float(np.std(diffs, ddof=1)), 4) if len(diffs) > 1
                                                     else 0.0, "values": [round(d, 4) for d in diffs]}
    return result


def run(args) -> int:
    try:
        import monai  # noqa: F401
        import torch
    except ImportError:
        raise MedSynthError("evaluate nodule-mining trains detectors and needs torch and MONAI") from None
    from ..io import write_json
    from ..outputs import JSON, OutputPlan

    if args.threads:
        torch.set_num_threads(args.threads)
    plan = OutputPlan(inputs=[args.base])
    plan.file(args.json, "--json", JSON)
    plan.folder(args.work, "--work", defer=False)
    with plan:
        from ..parallel import WORKER_PARAMS, Workers
        from ..params import from_namespace

        res = run_mining(Path(args.base), Path(args.work), args.seeds, args.extra, args.steps, budget=args.budget,
                         eval_seed=args.eval_seed, per_host=args.per_host,
                         log=lambda m: print(f"[nodule-mining] {m}", flush=True),
                         workers=Workers.from_values(from_namespace(WORKER_PARAMS, args)))
        if args.json:
            write_json(res, args.json)
    s = res["summary"]
    print(f"held-out benchmark seed {res['eval_seed']}; sensitivity at 0.5 FP per unmodified test image "
          f"(mean over seeds {res['seeds']}):")
    for arm in ARMS:
        v = s[arm]["sensitivity_at_fp"]
        w = s[arm]["sensitivity_at_fp_solid15"]
        print(f"  {arm:<7} {v.get('mean', float('nan')):.3f} +- {v.get('sd', 0):.3f}   solid >= 15 mm "
              f"{w.get('mean', float('nan')):.3f}")
    d = s["mined_minus_random_at_fp"]
    print(f"  mined - random: {d['mean']:+.3f} +- {d['sd']:.3f} ({d['values']})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("nodule-mining", help="hard-example mining for the radiograph detector: mined vs random retraining",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="trained base detector folder (python -m medsynth.nodule.train_detector)")
    p.add_argument("--work", required=True, help="folder for the fine-tuned detectors")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--extra", type=int, default=150, help="nodules added per arm (K)")
    p.add_argument("--steps", type=int, default=300, help="fine-tuning steps per arm")
    p.add_argument("--budget", type=int, default=2000, help="detector calls allowed for mining")
    p.add_argument("--per-host", type=int, default=12, help="held-out nodules per test host")
    p.add_argument("--eval-seed", type=int, default=None, help="held-out benchmark seed (default: fresh, printed)")
    p.add_argument("--threads", type=int, default=None, help="torch threads in this process (workers: 1 each)")
    from ..parallel import WORKER_PARAMS
    from ..params import add_arguments

    add_arguments(p, WORKER_PARAMS)
    p.set_defaults(func=run)

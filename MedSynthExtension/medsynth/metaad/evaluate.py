"""``medsynth evaluate metaad --cohort DIR``: AUC (bootstrap 95 % CI) of MetaAD, SSM-PCA, voxel z-score and the
regional z-score of the FDG for PD vs NC on held-out simulated subjects, and AUC against the simulated effect size
(FDG PD-pattern expression)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..progress import Reporter
from .calibrate import auc

METHODS = {"metaad": "MetaAD subject score", "ssm_pca": "SSM-PCA PDRP score", "voxel_z": "voxel z-score mean |z|",
           "region_z": "regional z-score of the FDG (no network), RMS"}


def bootstrap_ci(neg: Sequence[float], pos: Sequence[float], n: int = 2000, seed: int = 0) -> List[float]:
    rng = np.random.default_rng(seed)
    neg, pos = np.asarray(neg), np.asarray(pos)
    v = [auc(rng.choice(neg, len(neg)), rng.choice(pos, len(pos))) for _ in range(n)]
    return [round(float(np.percentile(v, 2.5)), 3), round(float(np.percentile(v, 97.5)), 3)]


def evaluate_cohort(folder: Any, reporter: Optional[Reporter] = None, log=print,
                    include_training: bool = False) -> Dict[str, Any]:
    from ..io import read_volume
    from ..pet.atlas import load_atlas
    from ..pet.sbr import to_mni
    from ..pet.simulate import read_cohort
    from ..pet.synthesis import crop, normalise
    from ..runtime import get_entry, load_model
    from .core import analyse_crop, load_stats

    reporter = reporter or Reporter()
    t0 = time.perf_counter()
    model = load_model("metaad-cycle", "cpu")
    stats = load_stats()
    tr = get_entry("metaad-cycle").extra.get("training", {})
    seen = set(tr.get("train_nc_indices", [])) | set(stats["meta"].get("calibration_indices", []))
    seen_seed = tr.get("data_seed")
    atlas = load_atlas()
    rows = read_cohort(folder)
    subjects, skipped = [], []
    for n, r in enumerate(rows):
        if not include_training and seen_seed is not None and int(r["seed"]) == int(seen_seed) and int(r["index"]) in seen:
            skipped.append(r["subject"])
            continue
        reporter.step(n / len(rows), f"MetaAD {r['subject']}")
        v = read_volume(Path(folder) / r["fdg_file"])
        aligned, _, _ = to_mni(v, "FDG", "auto", atlas)
        x, _ = normalise(aligned.array, "FDG")
        t1 = time.perf_counter()
        res = analyse_crop(crop(x), model, stats)
        subjects.append({"subject": r["subject"], "group": r["group"], "fdg_pdrp": float(r["fdg_pdrp"]),
                         "stage": float(r["stage"]), "metaad": res["scores"][stats["score"]],
                         "ssm_pca": res["baselines"]["ssm_pca_pdrp"], "voxel_z": res["baselines"]["voxel_z_mean_abs"],
                         "region_z": res["baselines"].get("fdg_region_z_rms", float("nan")),
                         "all_scores": res["scores"], "seconds": round(time.perf_counter() - t1, 2)})
    nc = [s for s in subjects if s["group"] == "NC"]
    pd = [s for s in subjects if s["group"] == "PD"]
    summary: Dict[str, Any] = {"n_nc": len(nc), "n_pd": len(pd), "score": stats["score"],
                               "threshold": stats["threshold"]}
    for m in METHODS:
        a = auc([s[m] for s in nc], [s[m] for s in pd]) if nc and pd else None
        summary[f"auc_{m}"] = round(a, 3) if a is not None else None
        summary[f"auc_{m}_ci95"] = bootstrap_ci([s[m] for s in nc], [s[m] for s in pd]) if nc and pd else None
    # what the network adds over the plain regional z-score of the FDG: paired AUC difference on the same subjects
    if nc and pd:
        from ..pet.classify_evaluate import paired_auc_difference

        y = np.array([int(s["group"] == "PD") for s in subjects])
        summary["auc_difference_metaad_minus_region_z"] = paired_auc_difference(
            y, np.array([s["metaad"] for s in subjects]), np.array([s["region_z"] for s in subjects]))
    # MetaAD at its stated threshold
    if nc and pd:
        summary["metaad_sensitivity_at_threshold"] = round(float(np.mean([s["metaad"] > stats["threshold"] for s in pd])), 3)
        summary["metaad_specificity_at_threshold"] = round(float(np.mean([s["metaad"] <= stats["threshold"] for s in nc])), 3)
        summary["auc_other_metaad_scores"] = {k: round(auc([s["all_scores"][k] for s in nc], [s["all_scores"][k] for s in pd]), 3)
                                             for k in nc[0]["all_scores"]}
    # AUC against the effect size: PD split at the median pattern expression, each half vs all NC
    by_effect = []
    if len(pd) >= 4 and nc:
        e = np.array([s["fdg_pdrp"] for s in pd])
        med = float(np.median(e))
        for lo, hi, name in ((-np.inf, med, "lower half"), (med, np.inf, "upper half")):
            sel = [s for s in pd if (lo < s["fdg_pdrp"] <= hi) or (name == "lower half" and s["fdg_pdrp"] == lo)]
            if not sel:
                continue
            by_effect.append({"pd_subjects": name + " of PD-pattern expression", "n_pd": len(sel),
                              "expression_range": [round(min(s["fdg_pdrp"] for s in sel), 3),
                                                   round(max(s["fdg_pdrp"] for s in sel), 3)],
                              **{f"auc_{m}": round(auc([s[m] for s in nc], [s[m] for s in sel]), 3) for m in METHODS}})
    summary["auc_by_effect_size"] = by_effect
    secs = time.perf_counter() - t0
    device = f"CPU ({platform.processor() or platform.machine()}), ONNX Runtime {model.provider}"
    return {"command": f"medsynth evaluate metaad --cohort {folder}", "summary": summary, "subjects": subjects,
            "skipped_training_subjects": skipped, "seconds": round(secs, 1), "device": device,
            "mean_inference_seconds_mni": round(float(np.mean([s["seconds"] for s in subjects])), 2) if subjects else None,
            "note": "simulated subjects (medsynth pet-simulate), not real PET; SSM-PCA pattern fitted on training "
                    "subjects (NC and PD); voxel and regional z-scores against NC training subjects"}


def run(args) -> int:
    from ..pet.cohorts import run_evaluation

    def evaluate(folder, reporter):
        return evaluate_cohort(folder, reporter, include_training=args.include_training)

    return run_evaluation(args, "metaad", evaluate, lambda res: print(json.dumps(res["summary"], indent=2)))

def register(sub) -> None:
    from ..pet.cohorts import add_cohort_arguments

    p = sub.add_parser("metaad", help="MetaAD vs SSM-PCA vs z-scores: PD vs NC AUC on a simulated cohort")
    add_cohort_arguments(p)
    p.add_argument("--report", help="JSON report (.json)")
    p.add_argument("--include-training", action="store_true", help="do not skip training/calibration subjects")
    p.set_defaults(func=run)

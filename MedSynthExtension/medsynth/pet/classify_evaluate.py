"""``medsynth evaluate pd-classify [--cohort DIR | --subjects N --seed S]``: the EJNMMI second stage on held-out
simulated subjects.

For every subject: the synthetic CFT from the shipped ``fdg2cft`` generator, then the PD probability of
``pd-classifier`` (CNN on [FDG, synthetic CFT]) and of ``pd-classifier-fdg`` (the same network on the FDG alone, the
same training budget), and the posterior-putamen SBR (lower side) of the synthetic CFT (no training). The SBR of the
true simulated CFT is reported as the ceiling a DAT scan would give (not available to an FDG-only site). AUC PD vs
NC with bootstrap 95 % CI, the paired AUC difference of the two CNNs with its CI, accuracy / sensitivity /
specificity at the thresholds set on validation subjects, and the fraction called PD in each link group of the
simulator (typical, PD with a normal FDG pattern, NC with a PD-like FDG pattern).
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np

from ..progress import Reporter

METHODS = {
    "fdg_cft": "CNN on [FDG, synthetic CFT] (pd-classifier)",
    "fdg": "CNN on FDG alone (pd-classifier-fdg)",
    "sbr_synthetic_cft": "posterior-putamen SBR of the synthetic CFT (lower side; no training)",
    "sbr_true_cft": "posterior-putamen SBR of the true simulated CFT (a DAT scan; not available from FDG)",
}


def score_arms(test: Dict[str, Any], probs: Dict[str, np.ndarray], thresholds: Dict[str, float]) -> Dict[str, Any]:
    """AUC (bootstrap 95 % CI), accuracy, sensitivity and specificity at the threshold, for each arm and the SBR
    baselines (lower = PD); the paired AUC difference fdg_cft - fdg with its bootstrap CI; results by link group."""
    from ..metaad.evaluate import bootstrap_ci
    from ..metaad.calibrate import auc  # higher = PD

    y = test["label"].astype(int)
    scores = dict(probs)
    scores["sbr_synthetic_cft"] = -np.asarray(test["sbr_synthetic"], float)
    scores["sbr_true_cft"] = -np.asarray(test["sbr_true"], float)
    out: Dict[str, Any] = {"n_nc": int((y == 0).sum()), "n_pd": int((y == 1).sum())}
    for k, s in scores.items():
        s = np.asarray(s, float)
        row = {"auc": round(auc(s[y == 0].tolist(), s[y == 1].tolist()), 3),
               "auc_ci95": bootstrap_ci(s[y == 0], s[y == 1])}
        if k in thresholds:
            pred = s >= thresholds[k]
            row.update(threshold=round(thresholds[k], 4), accuracy=round(float(np.mean(pred == (y == 1))), 3),
                       sensitivity=round(float(np.mean(pred[y == 1])), 3),
                       specificity=round(float(np.mean(~pred[y == 0])), 3))
            links = {}
            for link in sorted(set(test["link"].tolist())):
                m = test["link"] == link
                links[link] = {"n": int(m.sum()), "called_pd": round(float(np.mean(pred[m])), 3)}
            row["called_pd_by_link"] = links
        out[k] = row
    if "fdg_cft" in probs and "fdg" in probs:
        out["auc_difference_fdg_cft_minus_fdg"] = paired_auc_difference(y, probs["fdg_cft"], probs["fdg"])
    return out


def paired_auc_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0) -> Dict[str, Any]:
    """AUC(a) - AUC(b) on the same subjects, with a paired bootstrap 95 % CI (subjects resampled within class)."""
    from ..metaad.calibrate import auc  # higher = PD

    y = np.asarray(y)
    neg, pos = np.flatnonzero(y == 0), np.flatnonzero(y == 1)

    def d(ni, pi):
        return auc(a[ni].tolist(), a[pi].tolist()) - auc(b[ni].tolist(), b[pi].tolist())

    rng = np.random.default_rng(seed)
    boots = [d(rng.choice(neg, len(neg)), rng.choice(pos, len(pos))) for _ in range(n)]
    return {"difference": round(d(neg, pos), 3),
            "ci95": [round(float(np.percentile(boots, 2.5)), 3), round(float(np.percentile(boots, 97.5)), 3)]}


def evaluate_cohort(folder: Any, reporter: Reporter = None) -> Dict[str, Any]:
    """Score every subject of a simulated cohort folder (see the module docstring)."""
    from ..io import read_volume
    from ..runtime import load_model
    from .classify import FDG_ONLY_MODEL_ID, MODEL_ID, predict, subject_features
    from .simulate import read_cohort

    reporter = reporter or Reporter()
    t0 = time.perf_counter()
    rows = read_cohort(folder)
    models = {"fdg_cft": load_model(MODEL_ID), "fdg": load_model(FDG_ONLY_MODEL_ID)}
    thresholds = {k: float(m.entry.extra.get("threshold", 0.5)) for k, m in models.items()}
    feats, subjects = [], []
    for n, r in enumerate(rows):
        reporter.step(n / len(rows), f"{r['subject']}: synthetic CFT and classifiers")
        f = subject_features(read_volume(Path(folder) / r["fdg_file"]), read_volume(Path(folder) / r["cft_file"]))
        feats.append(f["features"])
        subjects.append({"subject": r["subject"], "group": r["group"], "link": r.get("link", "typical"),
                         "stage": float(r["stage"]), "fdg_pdrp": float(r["fdg_pdrp"]),
                         "sbr_synthetic": f["sbr_synthetic"], "sbr_true": f["sbr_true"]})
    x = np.stack(feats)
    probs = {arm: predict(m, x, arm) for arm, m in models.items()}
    for s, a, b in zip(subjects, probs["fdg_cft"], probs["fdg"]):
        s["p_fdg_cft"], s["p_fdg"] = round(float(a), 4), round(float(b), 4)
    test = {"label": np.array([int(s["group"] == "PD") for s in subjects]),
            "link": np.array([s["link"] for s in subjects]),
            "sbr_synthetic": np.array([s["sbr_synthetic"] for s in subjects]),
            "sbr_true": np.array([s["sbr_true"] for s in subjects])}
    summary = score_arms(test, probs, thresholds)
    reporter.step(1.0, "done")
    provider = models["fdg_cft"].provider
    return {"summary": summary, "methods": METHODS, "subjects": subjects,
            "models": {k: f"{m.entry.id} {m.entry.version}" for k, m in models.items()},
            "seconds": round(time.perf_counter() - t0, 1),
            "device": f"CPU ({platform.processor() or platform.machine()}), ONNX Runtime {provider}",
            "note": "simulated subjects (medsynth pet-simulate), not real PET"}


def table(res: Dict[str, Any]) -> str:
    """The result as a Markdown table (README, docs/pet.md)."""
    s = res["summary"]
    lines = ["| method | AUC PD vs NC [95 % CI] | accuracy / sensitivity / specificity at the threshold |",
             "|---|---|---|"]
    for k, name in METHODS.items():
        r = s[k]
        at = (f"{r['accuracy']:.2f} / {r['sensitivity']:.2f} / {r['specificity']:.2f}" if "accuracy" in r else "-")
        lines.append(f"| {name} | {r['auc']:.3f} [{r['auc_ci95'][0]:.3f}, {r['auc_ci95'][1]:.3f}] | {at} |")
    d = s.get("auc_difference_fdg_cft_minus_fdg")
    if d:
        lines += ["", f"AUC difference, [FDG, synthetic CFT] - FDG alone: {d['difference']:+.3f} "
                      f"(paired bootstrap 95 % CI {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})."]
    return "\n".join(lines)


def run(args) -> int:
    from .cohorts import run_evaluation

    return run_evaluation(args, "pd-classify", evaluate_cohort, lambda res: print(table(res)))

def register(sub) -> None:
    from .cohorts import add_cohort_arguments

    p = sub.add_parser("pd-classify", help="PD classifier on FDG + synthetic CFT vs FDG alone vs SBR: AUC on a "
                                           "simulated cohort")
    add_cohort_arguments(p, subjects=100)
    p.add_argument("--report", help="JSON report (.json; every subject's scores)")
    p.set_defaults(func=run)


__all__ = ["METHODS", "evaluate_cohort", "paired_auc_difference", "score_arms", "table"]

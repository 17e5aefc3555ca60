"""``medsynth evaluate fdg2cft [--cohort DIR | --subjects N --seed S]``: synthetic vs simulated PET on held-out simulated subjects.

For every subject of a simulated cohort (``medsynth pet-simulate``) that the shipped generators were not trained or
validated on (the manifest says which seed and indices they used):

* FDG -> CFT: PSNR and SSIM of the synthetic CFT against the simulated CFT, both in SUVR units (occipital = 1), in
  the striatum (caudate and putamen, dilated by 4 mm); SSIM with a Gaussian window (sigma 3 mm), averaged over that
  region, data range = the simulated image's maximum there;
* SBR agreement: SBR of caudate, anterior and posterior putamen, left and right (:func:`sbr_from_labels`, occipital
  reference), measured on the synthetic CFT and on the simulated CFT: Pearson r, Bland-Altman bias and 95 % limits;
* AUC for PD vs NC of the posterior-putamen SBR (the lower side) from the synthetic CFT, beside the same AUC from the
  simulated ("true") CFT;
* the baseline "prior" (the healthy CFT template, what the generator starts from) on the same measures;
* CFT -> FDG: PSNR and SSIM of the synthetic FDG (relative to the brain mean) over the brain.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import InputError
from ..progress import Reporter

STRIATUM_LABELS = (1, 2, 3, 4, 5, 6)
SSIM_SIGMA_MM = 3.0
REGION_DILATION_VOXELS = 2


def _ssim_map(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
    from .atlas import load_atlas
    from ._img import gaussian_array

    grid = load_atlas().labels

    def g(a):
        return gaussian_array(grid, a.astype(np.float32), SSIM_SIGMA_MM).astype(np.float64)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = g(x), g(y)
    sxx = g(x * x) - mx * mx
    syy = g(y * y) - my * my
    sxy = g(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


def psnr_ssim(pred: np.ndarray, true: np.ndarray, region: np.ndarray) -> Dict[str, float]:
    """PSNR (dB) and mean SSIM of ``pred`` vs ``true`` (atlas grid) over ``region``; range = max of true there."""
    t = np.asarray(true, np.float64)
    p = np.asarray(pred, np.float64)
    data_range = float(t[region].max() - min(0.0, float(t[region].min())))
    mse = float(np.mean((p[region] - t[region]) ** 2))
    psnr = float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)
    ssim = float(_ssim_map(p, t, data_range)[region].mean())
    return {"psnr": psnr, "ssim": ssim}


def agreement(pred: Sequence[float], true: Sequence[float]) -> Dict[str, Any]:
    """Pearson r, Bland-Altman bias (pred - true) and 95 % limits of agreement."""
    p, t = np.asarray(pred, float), np.asarray(true, float)
    d = p - t
    r = float(np.corrcoef(p, t)[0, 1]) if p.size > 2 and p.std() > 0 and t.std() > 0 else float("nan")
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    return {
        "n": int(p.size),
        "pearson_r": round(r, 4) if np.isfinite(r) else None,
        "bland_altman_bias": round(float(d.mean()), 4),
        "limits_of_agreement_95": [round(float(d.mean() - 1.96 * sd), 4), round(float(d.mean() + 1.96 * sd), 4)],
    }


def _mean_sd(v: Sequence[float]) -> Dict[str, Any]:
    a = np.asarray(v, float)
    return {"mean": round(float(a.mean()), 4), "sd": round(float(a.std(ddof=1)), 4) if a.size > 1 else None}


def training_subjects() -> Optional[Dict[str, Any]]:
    """Seed and index range the shipped fdg2cft generator was trained and validated on (from its manifest)."""
    from ..runtime import get_entry

    tr = get_entry("fdg2cft").extra.get("training", {})
    if tr.get("data_seed") is None or not tr.get("val_indices"):
        return None
    return {"seed": int(tr["data_seed"]), "last_index": int(tr["val_indices"][1])}


def simulated_eval_cohort(subjects: int = 40, seed: int = 1, log: Callable[[str], None] = print,
                          folder: Optional[Path] = None) -> Path:
    """A simulated evaluation cohort (cached in the temp folder by size and seed)."""
    from .simulate import read_cohort, simulate_cohort

    folder = Path(folder) if folder else Path(tempfile.gettempdir()) / f"medsynth_pet_eval_seed{seed}_n{subjects}"
    try:
        rows = read_cohort(folder)
        if len(rows) == subjects and all(int(r["seed"]) == seed for r in rows):
            return folder
    except InputError:
        pass
    log(f"simulating the evaluation cohort: {subjects} subjects, seed {seed} -> {folder}")
    simulate_cohort(folder, subjects, 0.5, seed, overwrite=True)
    return folder


def evaluate_cohort(
    folder: Union[str, Path],
    device: Optional[str] = None,
    reporter: Optional[Reporter] = None,
    include_training: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """Evaluate both generators on a simulated cohort (see the module docstring). Returns per-subject rows, a
    summary per model id, and the command that reproduces it."""
    from ..io import read_volume
    from .atlas import load_atlas
    from .sbr import auc, sbr_from_labels, to_mni
    from .simulate import read_cohort
    from .synthesis import brain_mask, normalise, prior, synthesize, uncrop

    reporter = reporter or Reporter()
    folder = Path(folder)
    rows = read_cohort(folder)
    used = None if include_training else training_subjects()
    skipped = []
    if used is not None:
        keep = []
        for r in rows:
            if int(r.get("seed", -1)) == used["seed"] and int(r.get("index", -1)) <= used["last_index"]:
                skipped.append(r["subject"])
            else:
                keep.append(r)
        rows = keep
    if not rows:
        raise InputError(
            f"every subject of {folder} was used to train or validate the model (seed {used['seed']}, indices "
            f"0-{used['last_index']}); simulate a cohort with another seed (medsynth pet-simulate --seed 1)"
        )
    atlas = load_atlas()
    labels = atlas.labels.array
    striatum = np.isin(labels, STRIATUM_LABELS)
    from .synthesis import _dilate

    region = _dilate(striatum, REGION_DILATION_VOXELS)
    brain = atlas.brain
    prior_cft = np.where(brain_mask(), uncrop(prior("CFT")), 0.0)
    parts = ("caudate", "putamen_anterior", "putamen_posterior")
    out_rows: List[Dict[str, Any]] = []
    syn_all, true_all, prior_all = [], [], []
    t0 = time.perf_counter()
    provider = ""
    for n, row in enumerate(rows):
        reporter.step(n / len(rows), f"evaluating {row['subject']}")
        fdg = read_volume(folder / row["fdg_file"])
        cft = read_volume(folder / row["cft_file"])
        syn = synthesize(fdg, "fdg2cft", device=device)
        provider = syn.model.get("provider", "")
        cft_mni, _, _ = to_mni(cft, "CFT", "auto", atlas)
        true_c, _ = normalise(cft_mni.array, "CFT")
        fdg_mni, _, _ = to_mni(fdg, "FDG", "auto", atlas)
        true_f, _ = normalise(fdg_mni.array, "FDG")
        syn_f = synthesize(cft, "cft2fdg", device=device)
        m = psnr_ssim(syn.mni.array, true_c, region)
        mp = psnr_ssim(prior_cft, true_c, region)
        mf = psnr_ssim(syn_f.mni.array, np.where(brain_mask(), true_f, 0.0), brain)
        s_syn = sbr_from_labels(syn.mni.array, labels)
        s_true = sbr_from_labels(true_c, labels)
        s_prior = sbr_from_labels(prior_cft, labels)
        r: Dict[str, Any] = {
            "subject": row["subject"],
            "group": row["group"],
            "stage": float(row["stage"]),
            "psnr_striatum": round(m["psnr"], 3),
            "ssim_striatum": round(m["ssim"], 4),
            "psnr_striatum_prior": round(mp["psnr"], 3),
            "ssim_striatum_prior": round(mp["ssim"], 4),
            "cft2fdg_psnr_brain": round(mf["psnr"], 3),
            "cft2fdg_ssim_brain": round(mf["ssim"], 4),
        }
        for p in parts:
            for s in ("L", "R"):
                k = f"{p}_{s}"
                r[f"sbr_synthetic_{k}"] = round(s_syn[k], 4)
                r[f"sbr_true_cft_{k}"] = round(s_true[k], 4)
                r[f"sbr_simulated_{k}"] = float(row[f"sbr_true_{k}"])
                syn_all.append(s_syn[k])
                true_all.append(s_true[k])
                prior_all.append(s_prior[k])
        for tag, s in (("synthetic", s_syn), ("true_cft", s_true)):
            r[f"pp_min_{tag}"] = round(min(s["putamen_posterior_L"], s["putamen_posterior_R"]), 4)
        out_rows.append(r)
    reporter.step(1.0, "evaluation done")
    nc = [r for r in out_rows if r["group"] == "NC"]
    pd = [r for r in out_rows if r["group"] == "PD"]

    def auc_of(key: str) -> Optional[float]:
        if not nc or not pd:
            return None
        return round(auc([r[key] for r in nc], [r[key] for r in pd]), 4)

    pp_syn = [r["pp_min_synthetic"] for r in out_rows]
    pp_true = [r["pp_min_true_cft"] for r in out_rows]
    summary_fdg2cft = {
        "subjects": {"NC": len(nc), "PD": len(pd)},
        "psnr_striatum_db": _mean_sd([r["psnr_striatum"] for r in out_rows]),
        "ssim_striatum": _mean_sd([r["ssim_striatum"] for r in out_rows]),
        "sbr_agreement_all_subregions": agreement(syn_all, true_all),
        "sbr_agreement_posterior_putamen_lower_side": agreement(pp_syn, pp_true),
        "auc_pd_vs_nc_posterior_putamen_synthetic": auc_of("pp_min_synthetic"),
        "auc_pd_vs_nc_posterior_putamen_true_cft": auc_of("pp_min_true_cft"),
        "posterior_putamen_sbr_lower_side": {
            "synthetic": {"NC": _mean_sd([r["pp_min_synthetic"] for r in nc]) if nc else None,
                          "PD": _mean_sd([r["pp_min_synthetic"] for r in pd]) if pd else None},
            "true_cft": {"NC": _mean_sd([r["pp_min_true_cft"] for r in nc]) if nc else None,
                         "PD": _mean_sd([r["pp_min_true_cft"] for r in pd]) if pd else None},
        },
        "baseline_prior_healthy_template": {
            "psnr_striatum_db": _mean_sd([r["psnr_striatum_prior"] for r in out_rows]),
            "ssim_striatum": _mean_sd([r["ssim_striatum_prior"] for r in out_rows]),
            "sbr_agreement_all_subregions": agreement(prior_all, true_all),
            "auc_pd_vs_nc_posterior_putamen": 0.5,
        },
        "definitions": "SUVR images (occipital = 1); striatum = caudate + putamen dilated 4 mm; SSIM Gaussian "
        "window sigma 3 mm; SBR = mean(region)/mean(occipital) - 1; AUC with the lower posterior-putamen SBR as PD",
    }
    summary_cft2fdg = {
        "subjects": len(out_rows),
        "psnr_brain_db": _mean_sd([r["cft2fdg_psnr_brain"] for r in out_rows]),
        "ssim_brain": _mean_sd([r["cft2fdg_ssim_brain"] for r in out_rows]),
        "definitions": "FDG relative to its brain mean; over the atlas brain; SSIM Gaussian window sigma 3 mm",
    }
    seeds = sorted({int(r["seed"]) for r in read_cohort(folder)})
    command = (
        f"medsynth pet-simulate --out DIR --subjects {len(read_cohort(folder))} --seed {seeds[0] if seeds else '?'} "
        f"&& medsynth evaluate fdg2cft --cohort DIR"
    )
    result = {
        "cohort": str(folder),
        "command": command,
        "skipped_training_subjects": skipped,
        "device": _device_words(provider),
        "seconds": round(time.perf_counter() - t0, 1),
        "note": "simulated subjects (medsynth pet-simulate), not real PET",
        "summary": {"fdg2cft": summary_fdg2cft, "cft2fdg": summary_cft2fdg},
        "subjects": out_rows,
    }
    if log is not None:
        log(json.dumps(result["summary"], indent=2))
    return result


def _device_words(provider: str) -> str:
    """Where the evaluation ran, in words: ``"CPU (ONNX Runtime CPUExecutionProvider, 2 cores)"``."""
    import os
    import platform

    kind = "CPU" if provider.startswith("CPU") else "GPU"
    return f"{kind} (ONNX Runtime {provider}, {platform.machine()}, {os.cpu_count()} cores)"


def card_metrics_section(model_id: str, metrics: Dict[str, Any]) -> List[str]:
    """Markdown lines of the model card's metrics (empty note when not evaluated)."""
    lines = ["## Metrics (held-out simulated subjects)", ""]
    if not metrics:
        return lines + ["Not evaluated in this export (`--no-eval`). Run `medsynth evaluate fdg2cft --cohort DIR`.", ""]
    s = metrics["summary"]
    f, c = s["fdg2cft"], s["cft2fdg"]
    b = f["baseline_prior_healthy_template"]

    def r3(v):
        return "n/a" if v is None else f"{v:.3f}"

    def sg(v):
        return "n/a" if v is None else f"{v:+.3f}"

    def ms(d):
        return f"{d['mean']:.3f} +- {d['sd']:.3f}" if d.get("sd") is not None else f"{d['mean']:.3f}"

    a_all, a_pp = f["sbr_agreement_all_subregions"], f["sbr_agreement_posterior_putamen_lower_side"]
    lines += [
        f"Cohort: {f['subjects']['NC']} NC + {f['subjects']['PD']} PD simulated subjects not used in training; "
        f"evaluated on {metrics.get('device', '')}. Command:",
        "",
        "```",
        metrics["command"].replace(" && ", "\n"),
        "```",
        "",
        "| measure | synthetic CFT | prior (healthy template) | true simulated CFT |",
        "|---|---|---|---|",
        f"| PSNR striatum (dB) | {ms(f['psnr_striatum_db'])} | {ms(b['psnr_striatum_db'])} | - |",
        f"| SSIM striatum | {ms(f['ssim_striatum'])} | {ms(b['ssim_striatum'])} | - |",
        f"| SBR vs true CFT, 6 subregions: r / bias [95 % LoA] | {r3(a_all['pearson_r'])} / "
        f"{sg(a_all['bland_altman_bias'])} {a_all['limits_of_agreement_95']} | "
        f"{r3(b['sbr_agreement_all_subregions']['pearson_r'])} / "
        f"{sg(b['sbr_agreement_all_subregions']['bland_altman_bias'])} | 1 / 0 |",
        f"| posterior-putamen SBR (lower side): r / bias | {r3(a_pp['pearson_r'])} / "
        f"{sg(a_pp['bland_altman_bias'])} | - | 1 / 0 |",
        f"| AUC PD vs NC, posterior-putamen SBR | {f['auc_pd_vs_nc_posterior_putamen_synthetic']} | 0.5 | "
        f"{f['auc_pd_vs_nc_posterior_putamen_true_cft']} |",
        f"| CFT -> FDG: PSNR / SSIM over the brain | {ms(c['psnr_brain_db'])} dB / {ms(c['ssim_brain'])} | | |",
        "",
    ]
    return lines


# --------------------------------------------------------------------------- command line
def run(args) -> int:
    from .cohorts import run_evaluation

    def evaluate(folder, reporter):
        return evaluate_cohort(folder, reporter=reporter, include_training=args.include_training)

    def show(res):
        print(json.dumps(res["summary"], indent=2))
        if res["skipped_training_subjects"]:
            print(f"skipped {len(res['skipped_training_subjects'])} subjects the model was trained or validated on")

    return run_evaluation(args, "fdg2cft", evaluate, show)

def register(sub) -> None:
    from .cohorts import add_cohort_arguments

    p = sub.add_parser(
        "fdg2cft",
        help="FDG -> CFT synthesis on a simulated cohort: PSNR/SSIM in the striatum, SBR agreement, PD vs NC AUC",
    )
    add_cohort_arguments(p)
    p.add_argument("--report", help="write the JSON report (.json; summary and per-subject rows) here")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default=argparse.SUPPRESS,
                   help="where the models run (the same as medsynth --device; not given: that one holds)")
    p.add_argument("--include-training", action="store_true", help="do not skip subjects the model was trained on")
    p.set_defaults(func=run)


__all__ = ["agreement", "evaluate_cohort", "psnr_ssim", "simulated_eval_cohort"]

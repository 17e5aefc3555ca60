"""Calibration of MetaAD with the exported ONNX cycle (the same code path as inference): normal-control statistics,
the subject score and its threshold, the baselines' reference data; written to ``metaad_stats.npz``; model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from .core import SCORE_WORDS, SCORES, analyse_crop, crop_layout, fit_ssm_pca, log_profile, smooth

STATS_FILE = "metaad_stats.npz"
THRESHOLD_PERCENTILE = 95.0


def auc(neg: List[float], pos: List[float]) -> float:
    a = np.asarray(neg, float)[:, None]
    b = np.asarray(pos, float)[None, :]
    return float(((b > a).sum() + 0.5 * (b == a).sum()) / max(1, a.size * b.size))


def _deq(q: np.ndarray, vmax: float) -> np.ndarray:
    return ((q.astype(np.float32) / 255.0) ** 2 * vmax).astype(np.float32)


def calibrate(data: Dict[str, Any], split: Dict[str, List[int]], out: Path, log=print) -> Dict[str, Any]:
    from ..runtime import load_entry, read_manifest

    a, meta = data["arrays"], data["meta"]
    vmax = float(meta.get("quant_vmax", {"FDG": 4.0})["FDG"])
    grp = a["group"].astype(int)
    fdg = lambda i: _deq(a["fdg"][i], vmax)  # noqa: E731
    brain = crop_layout()["brain"]
    entry = [e for e in read_manifest(Path(out)) if e.id == "metaad-cycle"][0]
    model = load_entry(entry, "cpu")
    # voxel z-score baseline: NC training subjects
    sm = np.stack([smooth(fdg(i), brain) for i in split["train_nc"]])
    stats: Dict[str, Any] = {"voxel_mean": sm.mean(0).astype(np.float16),
                             "voxel_sd": sm.std(0, ddof=1 if len(sm) > 1 else 0).astype(np.float16)}
    # regional z-score baseline (no network): NC training subjects
    prof = np.stack([log_profile(fdg(i)) for i in split["train_nc"]])
    stats["fdg_region_mean"] = prof.mean(0)
    stats["fdg_region_sd"] = prof.std(0, ddof=1 if len(prof) > 1 else 0)
    # SSM-PCA baseline: all training subjects (NC and PD)
    tr = split["train_all"]
    stats.update(fit_ssm_pca(np.stack([log_profile(fdg(i)) for i in tr]), grp[tr]))
    # MetaAD on the calibration subjects
    cal = split["calibration"]
    res = [analyse_crop(fdg(i), model) for i in cal]
    nc = [k for k, i in enumerate(cal) if grp[i] == 0]
    pdk = [k for k, i in enumerate(cal) if grp[i] == 1]
    reg = np.stack([r["regional"] for r in res])
    ddof = 1 if len(nc) > 1 else 0
    stats["region_mean"] = reg[nc].mean(0)
    stats["region_sd"] = np.maximum(reg[nc].std(0, ddof=ddof), 0.05)
    # region_z_rms with leave-one-out statistics for the NCs (no NC is scored against itself)
    for k, r in enumerate(res):
        others = [j for j in nc if j != k] if len(nc) > 2 else nc
        mu = reg[others].mean(0)
        sd = np.maximum(reg[others].std(0, ddof=1 if len(others) > 1 else 0), 0.05)
        r["scores"]["region_z_rms"] = float(np.sqrt(np.mean(((r["regional"] - mu) / sd) ** 2)))
    aucs = {s: (auc([res[k]["scores"][s] for k in nc], [res[k]["scores"][s] for k in pdk]) if pdk else None)
            for s in SCORES}
    choice = max(SCORES, key=lambda s: (aucs[s] if aucs[s] is not None else -1, s == "region_z_rms"))
    nc_scores = [res[k]["scores"][choice] for k in nc]
    thr = float(np.percentile(nc_scores, THRESHOLD_PERCENTILE))
    summary = {
        "calibration_subjects": len(cal), "calibration_nc": len(nc), "calibration_pd": len(pdk),
        "calibration_indices": [int(a["index"][i]) for i in cal], "data_seed": meta.get("seed"),
        "calibration_auc_by_score": {k: (round(v, 3) if v is not None else None) for k, v in aucs.items()},
        "score": choice, "score_words": SCORE_WORDS[choice],
        "score_choice": "the candidate with the highest PD-vs-NC AUC on the calibration subjects (simulated, "
                        "seed 0, not used for training and never the evaluation cohort); ties go to region_z_rms",
        "threshold": round(thr, 4),
        "threshold_rule": f"{THRESHOLD_PERCENTILE:g}th percentile of the score over the {len(nc)} normal-control "
                          "calibration subjects (leave-one-out regional statistics for region_z_rms)",
        "nc_scores": [round(v, 4) for v in nc_scores],
        "pd_scores": [round(res[k]["scores"][choice], 4) for k in pdk],
        "voxel_z_reference": f"{len(split['train_nc'])} NC training subjects",
        "ssm_pca_reference": f"{len(tr)} training subjects ({int(grp[tr].sum())} PD), {int(stats['ssm_n_pc'])} PCs",
        "region_reference": f"{len(nc)} NC calibration subjects",
    }
    log("calibration: " + json.dumps({k: summary[k] for k in ("calibration_auc_by_score", "score", "threshold")}))
    stats["meta_json"] = np.array(json.dumps(summary))
    stats["region_ids"] = np.array(crop_layout()["region_ids"], np.int16)
    tmp = Path(out) / (".partial." + STATS_FILE)
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **stats)
    tmp.replace(Path(out) / STATS_FILE)
    log(f"wrote {Path(out) / STATS_FILE}")
    return {"summary": summary}


def write_card(path: Path, entry: Any, cal: Dict[str, Any]) -> Path:
    tr = entry.extra["training"]
    s = cal["summary"]
    lines = [
        f"# {entry.id} {entry.version}: MetaAD metabolic anomaly detection in brain FDG PET",
        "",
        "**Trained and calibrated only on simulated PET** (`medsynth pet-simulate`, see docs/pet.md). No real PET was "
        "used; numbers measured on simulated subjects say nothing about patients. Not for clinical use.",
        "",
        "## Model",
        "",
        f"- Task: {entry.task}.",
        "- One ONNX graph: normalised FDG crop [N, 1, 80, 96, 80] (MNI 2 mm) -> `fdg_reconstructed` and the "
        "intermediate synthetic `cft`; inside, the crop is averaged to 4 mm, generators G (FDG -> CFT) and F "
        "(CFT -> FDG) of medsynth.pet.nets run there, and the 4 mm residual is brought back to 2 mm "
        "(`fdg_reconstructed = fdg - upsample(pool(fdg) - reconstruction)`); priors (float16) and the brain mask "
        f"inside the graph; {entry.extra.get('parameters')} parameters; "
        f"{entry.path.stat().st_size / 1e6:.1f} MB.",
        f"- Statistics in `{STATS_FILE}`: regional residual mean/SD of normal controls, the subject score's "
        "threshold, the voxel z-score reference (NC mean/SD per voxel) and the SSM-PCA pattern. The manifest "
        "records its sha256 (`files` -> `stats`); it is checked before every use and a changed or damaged file "
        "is refused.",
        "",
        "## Training",
        "",
        f"- Initialisation: {tr['init']}; networks on the {tr.get('grid', '2 mm crop')}.",
        f"- Data: NC subjects only, simulated seed {tr['data_seed']}, indices {tr['train_nc_indices']}.",
        f"- Losses: {json.dumps(tr['losses'])}.",
        f"- Corruption: {tr['corruption']}.",
        f"- {tr['optimiser']}; {tr['steps_done']} steps (of {tr['steps_planned']}), seed {tr['seed']}, "
        f"{tr['seconds']:.0f} s on {tr['device']} (torch {tr['torch']}).",
        f"- Command: `{entry.training_command}`",
        "",
        "## Calibration (simulated seed 0 subjects not trained on)",
        "",
        f"- {s['calibration_subjects']} subjects ({s['calibration_nc']} NC, {s['calibration_pd']} PD), indices "
        f"{s['calibration_indices']}.",
        f"- Subject score: **{s['score']}** ({s['score_words']}); chosen as {s['score_choice']}. AUC per candidate "
        f"on these subjects: {json.dumps(s['calibration_auc_by_score'])}.",
        f"- Threshold: {s['threshold']} ({s['threshold_rule']}).",
        "",
        "## Limits",
        "",
        "- The networks work on a 4 mm grid (the 2 mm crop averaged): anomalies smaller than about 8 mm are "
        "not modelled; the map shows the 4 mm residual.",
        "- Few calibration NCs: the regional SDs and the 95th-percentile threshold are rough.",
        "- Simulated anatomy varies little; real scans differ (atrophy, scanners, reconstruction).",
        "- Evaluation: `medsynth evaluate metaad --cohort DIR` (docs/metaad.md).",
        "",
    ]
    path.write_text("\n".join(lines))
    return path

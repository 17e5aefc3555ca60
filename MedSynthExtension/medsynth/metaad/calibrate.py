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


PSEUDO_PER_SUBJECT = 2
PSEUDO_CHANGE = (0.08, 0.15)  # relative change of a region's metabolism in a pseudo-anomaly
PSEUDO_REGIONS = (1, 3)


def pseudo_anomaly(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A generic metabolic anomaly added to a normal FDG crop: 1-3 random atlas regions made 8-15 % hypo- or
    hypermetabolic (soft edges), then renormalised to the brain mean. Not the PD pattern: it stands for "something
    departs from normal somewhere", so choosing a score on it needs no PD scan."""
    lay = crop_layout()
    out = np.asarray(x, np.float32).copy()
    brain = lay["brain"]
    mean0 = float(out[brain].mean())
    n = int(rng.integers(PSEUDO_REGIONS[0], PSEUDO_REGIONS[1] + 1))
    for rid in rng.choice(lay["region_ids"], size=n, replace=False):
        m = smooth((lay["labels"] == rid).astype(np.float32), brain, 1.0)
        change = float(rng.uniform(*PSEUDO_CHANGE)) * (1 if rng.uniform() < 0.5 else -1)
        out *= 1.0 + change * m
    out *= mean0 / max(float(out[brain].mean()), 1e-6)
    return out


def calibrate_scores(nc: List[np.ndarray], model: Any, seed: int = 0, log=print) -> Any:
    """Regional statistics, subject score and threshold of MetaAD from normal-control FDG crops only.

    The score is the candidate (:data:`SCORES`) that best tells the NCs from pseudo-anomalies made from them
    (:func:`pseudo_anomaly`, :data:`PSEUDO_PER_SUBJECT` per NC; AUC); region_z_rms of a subject and of its
    pseudo-anomalies is taken against the other NCs (leave one out). The threshold is the
    :data:`THRESHOLD_PERCENTILE` th percentile of that score over the NCs. Returns (stats arrays, summary)."""
    rng = np.random.default_rng([seed, 4242])
    res = [analyse_crop(x, model) for x in nc]
    pseudo = [[analyse_crop(pseudo_anomaly(x, rng), model) for _ in range(PSEUDO_PER_SUBJECT)] for x in nc]
    reg = np.stack([r["regional"] for r in res])
    n = len(res)
    for k in range(n):
        others = [j for j in range(n) if j != k] if n > 2 else list(range(n))
        mu = reg[others].mean(0)
        sd = np.maximum(reg[others].std(0, ddof=1 if len(others) > 1 else 0), 0.05)
        for r in [res[k]] + pseudo[k]:
            r["scores"]["region_z_rms"] = float(np.sqrt(np.mean(((r["regional"] - mu) / sd) ** 2)))
    normal = {s: [r["scores"][s] for r in res] for s in SCORES}
    anomal = {s: [r["scores"][s] for p in pseudo for r in p] for s in SCORES}
    aucs = {s: auc(normal[s], anomal[s]) for s in SCORES}
    choice = max(SCORES, key=lambda s: (aucs[s], s == "region_z_rms"))
    thr = float(np.percentile(normal[choice], THRESHOLD_PERCENTILE))
    stats = {"region_mean": reg.mean(0), "region_sd": np.maximum(reg.std(0, ddof=1 if n > 1 else 0), 0.05)}
    summary = {
        "calibration_subjects": n, "calibration_nc": n, "calibration_pd": 0,
        "pseudo_anomalies": n * PSEUDO_PER_SUBJECT,
        "pseudo_anomaly_auc_by_score": {k: round(v, 3) for k, v in aucs.items()},
        "score": choice, "score_words": SCORE_WORDS[choice],
        "score_choice": "the candidate that best separates the normal-control calibration subjects from "
                        f"pseudo-anomalies made from them ({PSEUDO_REGIONS[0]}-{PSEUDO_REGIONS[1]} random atlas regions "
                        f"{int(PSEUDO_CHANGE[0] * 100)}-{int(PSEUDO_CHANGE[1] * 100)} % hypo- or hypermetabolic); no PD "
                        "scan or label was used",
        "threshold": round(thr, 4),
        "threshold_rule": f"{THRESHOLD_PERCENTILE:g}th percentile of the score over the {n} normal-control "
                          "calibration subjects (leave-one-out regional statistics for region_z_rms)",
        "nc_scores": [round(v, 4) for v in normal[choice]],
        "region_reference": f"{n} NC calibration subjects",
    }
    log("calibration (NC only): " + json.dumps({k: summary[k] for k in ("pseudo_anomaly_auc_by_score", "score",
                                                                         "threshold")}))
    return stats, summary


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
    # MetaAD: the normal-control calibration subjects only (PD scans and labels are not used)
    cal = split["calibration"]
    nc_idx = [i for i in cal if grp[i] == 0]
    part, summary = calibrate_scores([fdg(i) for i in nc_idx], model, log=log)
    stats.update(part)
    summary.update({
        "calibration_indices": [int(a["index"][i]) for i in nc_idx], "data_seed": meta.get("seed"),
        "voxel_z_reference": f"{len(split['train_nc'])} NC training subjects",
        "ssm_pca_reference": f"{len(tr)} training subjects ({int(grp[tr].sum())} PD), {int(stats['ssm_n_pc'])} PCs",
    })
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
        "## Calibration (normal controls only, not trained on)",
        "",
        f"- {s['calibration_nc']} simulated NC subjects ({s.get('calibration_cohort', 'seed ' + str(s.get('data_seed')))}"
        f"); {s.get('pseudo_anomalies', 0)} pseudo-anomalies made from them. No PD scan or label was used.",
        f"- Subject score: **{s['score']}** ({s['score_words']}); chosen as {s['score_choice']}. AUC NC vs "
        f"pseudo-anomaly per candidate: {json.dumps(s.get('pseudo_anomaly_auc_by_score'))}.",
        f"- Threshold: {s['threshold']} ({s['threshold_rule']}).",
        "",
        "## Limits",
        "",
        "- The networks work on a 4 mm grid (the 2 mm crop averaged): anomalies smaller than about 8 mm are "
        "not modelled; the map shows the 4 mm residual.",
        "- Few calibration NCs: the regional SDs and the 95th-percentile threshold are rough.",
        "- The pseudo-anomalies that chose the score are generic regional changes, not the PD pattern; the score "
        "is therefore not tuned to PD.",
        "- Simulated anatomy varies little; real scans differ (atrophy, scanners, reconstruction).",
        "- Evaluation: `medsynth evaluate metaad --cohort DIR` (docs/metaad.md).",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def recalibrate(folder: Path, subjects: int, seed: int, log=print) -> Dict[str, Any]:
    """Calibrate an exported MetaAD again from simulated normal controls (``subjects`` NC, ``seed``): the regional
    statistics, the score and its threshold are replaced; the baselines' reference data stay. The stats file, its
    sha256 in the manifest and the card are rewritten."""
    from ..pet.atlas import load_atlas
    from ..pet.sbr import to_mni
    from ..pet.simulate import SIMULATOR_VERSION, draw_params, simulate_subject, subject_rng
    from ..pet.synthesis import crop, normalise
    from ..runtime import clear_cache, load_entry, read_manifest, write_manifest_entry
    from .core import STATS_ROLE, load_stats

    folder = Path(folder)
    entry = [e for e in read_manifest(folder) if e.id == "metaad-cycle"][0]
    model = load_entry(entry, "cpu")
    old = load_stats(folder / STATS_FILE)
    atlas = load_atlas()
    crops = []
    for i in range(subjects):
        rng = subject_rng(seed, i)
        sub = simulate_subject(draw_params(rng, "NC", f"cal-{i:03d}"), rng, atlas)
        aligned, _, _ = to_mni(sub.fdg, "FDG", "auto", atlas)
        crops.append(crop(normalise(aligned.array, "FDG")[0]))
    part, summary = calibrate_scores(crops, model, seed=seed, log=log)
    keep = {k: v for k, v in old.items() if k not in ("meta", "score", "threshold", "region_mean", "region_sd")}
    meta = dict(old["meta"])
    for k in ("calibration_auc_by_score", "pd_scores", "calibration_indices"):
        meta.pop(k, None)
    meta.update(summary)
    meta["calibration_cohort"] = f"seed {seed}, indices 0-{subjects - 1}, group NC, simulator version {SIMULATOR_VERSION}"
    meta["data_seed"] = seed
    keep.update(part)
    keep["meta_json"] = np.array(json.dumps(meta))
    tmp = folder / (".partial." + STATS_FILE)
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **keep)
    tmp.replace(folder / STATS_FILE)
    entry.add_side_file(STATS_ROLE, folder / STATS_FILE)
    entry.extra["calibration"] = meta
    entry.extra["calibration_command"] = (f"python -m medsynth.metaad.calibrate --model-dir DIR --subjects {subjects} "
                                          f"--seed {seed}")
    write_manifest_entry(folder, entry)
    clear_cache()
    write_card(folder / "metaad.md", entry, {"summary": meta})
    log(f"wrote {folder / STATS_FILE}, the manifest entry and {folder / 'metaad.md'}")
    return meta


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m medsynth.metaad.calibrate",
                                 description="calibrate MetaAD again from simulated normal controls only")
    ap.add_argument("--model-dir", required=True, help="folder with the metaad-cycle manifest entry and stats")
    ap.add_argument("--subjects", type=int, default=30)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)
    recalibrate(Path(args.model_dir), args.subjects, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""MetaAD inference (numpy + ONNX Runtime only, no torch): anomaly maps, subject score, regional table, baselines.

Everything here works on the networks' MNI crop (:data:`medsynth.pet.synthesis.CROP`, 80 x 96 x 80 voxels of 2 mm)
of an FDG normalised to its whole-brain mean (:func:`medsynth.pet.synthesis.normalise`). :mod:`medsynth.metaad.detect`
brings native inputs there and the maps back.

* Anomaly map: ``100 x (FDG - reconstruction)`` in percent of the brain mean, smoothed inside the brain mask
  (Gaussian, sigma :data:`SMOOTH_SIGMA_VOX` voxels = 4 mm, FWHM 9.4 mm); negative = hypometabolism relative to the
  healthy reconstruction. The absolute map is its magnitude.
* Candidate subject scores (all computed; the one used, ``stats['score']``, is chosen on normal-control calibration
  subjects and pseudo-anomalies made from them, without PD scans or labels, :mod:`medsynth.metaad.calibrate`): the
  paper's (:data:`PAPER_SCORES`: ``cycle_l1`` = mean |FDG - reconstruction| unsmoothed, ``hyper_max`` and
  ``hypo_max`` = the largest positive and negative values of the signed map, ``range`` = their distance; the paper's
  code takes them on the unsmoothed error map, here on the map smoothed at 4 mm), ``max`` and ``p99`` of the absolute
  map, ``mean_abs`` (its mean over the brain mask) and ``region_z_rms`` (root mean square of the regional z-scores
  against the normal controls).
* Regional table: mean signed residual per atlas region, z-scored against the normal-control calibration subjects.
* z map (:func:`z_map`, "regional-SD z", not a voxel-wise z): the signed map divided, voxel by voxel, by the normal
  controls' SD of the regional mean residual (``stats['region_sd']``) of the atlas region the voxel lies in (the 21
  regions of :func:`crop_layout`); brain voxels outside them (the atlas' "other brain") are divided by the median
  of the 21 regional SDs; 0 outside the brain. The NC regional mean (``stats['region_mean']``) is not subtracted,
  so a region the healthy reconstruction misses in normal controls too keeps that offset.
* Baselines: regional z-score of the FDG itself (no network; RMS over the atlas regions), voxel z-score
  (smoothed FDG against the NC mean/SD per voxel; score = mean |z| in the brain) and the
  SSM-PCA PD-related pattern (log regional FDG over the 21 atlas regions; subject residual profile = log minus
  subject mean minus group mean profile; the pattern is the least-squares combination of the first 4 principal
  components that separates PD from NC on the training subjects, NC and PD).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

SMOOTH_SIGMA_VOX = 2.0
SCORES = ("max", "p99", "mean_abs", "cycle_l1", "hyper_max", "hypo_max", "range", "region_z_rms")
#: the subject scores of the MetaAD paper's code (|cycle loss|, |max|, |min|, |max - min| of the error map)
PAPER_SCORES = ("cycle_l1", "hyper_max", "hypo_max", "range")
SCORE_WORDS = {
    "hyper_max": "largest positive value of the smoothed signed anomaly map in the brain (hypermetabolism)",
    "hypo_max": "magnitude of the most negative value of the smoothed signed anomaly map in the brain "
                "(hypometabolism)",
    "range": "maximum minus minimum of the smoothed signed anomaly map in the brain",
    "max": "maximum of the smoothed absolute anomaly map in the brain",
    "p99": "99th percentile of the smoothed absolute anomaly map in the brain",
    "mean_abs": "mean of the smoothed absolute anomaly map over the brain mask",
    "cycle_l1": "cycle L1: mean |FDG - reconstruction| over the brain mask, unsmoothed",
    "region_z_rms": "root mean square of the regional residual z-scores (against normal controls) over the atlas regions",
}


def gaussian_kernel(sigma: float) -> np.ndarray:
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def _conv_axis(a: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    r = len(k) // 2
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r, r)
    p = np.pad(a, pad)
    out = np.zeros_like(a)
    n = a.shape[axis]
    for i, w in enumerate(k):
        out += w * np.take(p, np.arange(i, i + n), axis=axis)
    return out


def smooth(a: np.ndarray, mask: np.ndarray, sigma: float = SMOOTH_SIGMA_VOX) -> np.ndarray:
    """Gaussian smoothing inside ``mask`` (normalised convolution; 0 outside)."""
    k = gaussian_kernel(sigma)
    m = mask.astype(np.float32)
    num = np.asarray(a, np.float32) * m
    den = m.copy()
    for ax in range(3):
        num = _conv_axis(num, k, ax)
        den = _conv_axis(den, k, ax)
    return np.where(mask, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)


@lru_cache(maxsize=1)
def crop_layout() -> Dict[str, Any]:
    """Brain mask (atlas brain, not dilated), labels, region ids/names and centroids on the crop."""
    from ..pet.atlas import BRAIN_LABELS, LABELS, load_atlas
    from ..pet.synthesis import brain_mask, crop

    atlas = load_atlas()
    labels = crop(atlas.labels.array).astype(np.int16)
    ids = [i for i in BRAIN_LABELS if LABELS.get(i) and LABELS[i] != "other_brain"]
    return {
        "labels": labels,
        "brain": np.isin(labels, BRAIN_LABELS),
        "net_mask": crop(brain_mask()),
        "region_ids": ids,
        "region_names": [LABELS[i] for i in ids],
        "centroids_ras": [[round(float(v), 1) for v in atlas.centroid_ras(LABELS[i])] for i in ids],
    }


def reconstruct(x: np.ndarray, model: Any) -> Tuple[np.ndarray, np.ndarray]:
    """(reconstructed FDG, synthetic CFT) of a normalised FDG crop through the ONNX cycle."""
    lay = crop_layout()
    feed = np.where(lay["net_mask"], x, 0.0).astype(np.float32)[None, None]
    rec, cft = model.run({model.input_names[0]: feed})
    return np.asarray(rec, np.float32)[0, 0], np.asarray(cft, np.float32)[0, 0]


def residual_maps(x: np.ndarray, rec: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(signed, absolute) smoothed anomaly maps in percent of the brain mean."""
    brain = crop_layout()["brain"]
    signed = smooth(100.0 * (x - rec), brain)
    return signed, np.abs(signed)


def region_means(signed: np.ndarray) -> np.ndarray:
    lay = crop_layout()
    return np.array([float(signed[lay["labels"] == i].mean()) for i in lay["region_ids"]], np.float64)


def raw_scores(x: np.ndarray, rec: np.ndarray, signed: np.ndarray, absmap: np.ndarray) -> Dict[str, float]:
    brain = crop_layout()["brain"]
    a = absmap[brain]
    sg = signed[brain]
    return {
        "hyper_max": float(sg.max()),
        "hypo_max": float(-sg.min()),
        "range": float(sg.max() - sg.min()),
        "max": float(a.max()),
        "p99": float(np.percentile(a, 99)),
        "mean_abs": float(a.mean()),
        "cycle_l1": float(100.0 * np.abs(x - rec)[brain].mean()),
    }


def region_z(regional: np.ndarray, stats: Dict[str, Any]) -> np.ndarray:
    return (regional - stats["region_mean"]) / np.maximum(stats["region_sd"], 1e-6)


#: what the z map is (report, documentation, the faces' legends)
Z_MAP_WORDS = ("regional-SD z (not a voxel-wise z): signed anomaly map (% of brain mean) / normal controls' SD of "
               "the regional mean residual of the atlas region the voxel lies in; brain voxels outside the 21 regions: "
               "/ the median regional SD; 0 outside the brain; NC regional mean not subtracted; negative = "
               "hypometabolism")


def region_sd_map(stats: Dict[str, Any]) -> np.ndarray:
    """The NC regional residual SD (% of brain mean) of each crop voxel's atlas region; the median of the regional
    SDs for voxels outside the regions of :func:`crop_layout`."""
    lay = crop_layout()
    sd = np.asarray(stats["region_sd"], np.float64)
    labels = lay["labels"].astype(np.int64)
    lut = np.full(max(int(labels.max()), max(lay["region_ids"])) + 1, float(np.median(sd)), np.float64)
    lut[np.asarray(lay["region_ids"], np.int64)] = sd
    return np.maximum(lut[np.clip(labels, 0, None)], 1e-6).astype(np.float32)


def z_map(signed: np.ndarray, stats: Dict[str, Any]) -> np.ndarray:
    """Signed anomaly map in regional-SD z units (:data:`Z_MAP_WORDS`): ``signed / region_sd_map``, 0 outside the
    brain."""
    brain = crop_layout()["brain"]
    return np.where(brain, np.asarray(signed, np.float32) / region_sd_map(stats), 0.0).astype(np.float32)


# --------------------------------------------------------------------------- baselines
def voxel_z(x: np.ndarray, stats: Dict[str, Any]) -> np.ndarray:
    brain = crop_layout()["brain"]
    xs = smooth(x, brain)
    z = (xs - stats["voxel_mean"].astype(np.float32)) / np.maximum(stats["voxel_sd"].astype(np.float32), 1e-3)
    return np.where(brain, z, 0.0).astype(np.float32)


def log_profile(x: np.ndarray) -> np.ndarray:
    """Row-centred log of the regional mean FDG over the atlas regions (the subject residual profile before the
    group mean profile is removed). Regional, not voxel-wise: a voxel-wise version at 4 mm did not generalise on
    the simulated calibration subjects (AUC 0.59; the variance is dominated by grey:white ratio, PSF and anatomy)."""
    lay = crop_layout()
    v = np.log(np.maximum([float(x[lay["labels"] == i].mean()) for i in lay["region_ids"]], 1e-3))
    return v - v.mean()


def fit_ssm_pca(profiles: np.ndarray, groups: np.ndarray, n_pc: int = 4) -> Dict[str, np.ndarray]:
    """SSM-PCA: group mean profile, PCA of the subject residual profiles, pattern = least-squares combination of
    the first ``n_pc`` components that best separates PD from NC on the training subjects; PD scores higher."""
    gmp = profiles.mean(axis=0)
    srp = profiles - gmp
    u, s, vt = np.linalg.svd(srp, full_matrices=False)
    k = int(min(n_pc, len(s) - 1, vt.shape[0]))
    k = max(k, 1)
    scores = srp @ vt[:k].T
    a = np.column_stack([scores, np.ones(len(scores))])
    w, *_ = np.linalg.lstsq(a, groups.astype(np.float64), rcond=None)
    pattern = vt[:k].T @ w[:k]
    pattern /= max(np.linalg.norm(pattern), 1e-12)
    sc = srp @ pattern
    if len(set(groups.tolist())) == 2 and sc[groups == 1].mean() < sc[groups == 0].mean():
        pattern = -pattern
    return {"ssm_gmp": gmp.astype(np.float32), "ssm_pattern": pattern.astype(np.float32),
            "ssm_n_pc": np.array(k, np.int32)}


def ssm_score(x: np.ndarray, stats: Dict[str, Any]) -> float:
    return float((log_profile(x) - stats["ssm_gmp"]) @ stats["ssm_pattern"])


def fdg_region_z_rms(x: np.ndarray, stats: Dict[str, Any]) -> float:
    """Third baseline, no network: root mean square over the atlas regions of the z-scores of the subject's log
    regional FDG profile (:func:`log_profile`) against the NC training subjects. It asks the same question as
    MetaAD's ``region_z_rms`` without the healthy reconstruction, so it shows what the cycle adds."""
    z = (log_profile(x) - stats["fdg_region_mean"]) / np.maximum(stats["fdg_region_sd"], 1e-6)
    return float(np.sqrt(np.mean(z ** 2)))


# --------------------------------------------------------------------------- one subject
def analyse_crop(x: np.ndarray, model: Any, stats: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Everything for one normalised FDG crop: maps, candidate scores, regional residuals, baselines."""
    rec, cft = reconstruct(x, model)
    signed, absmap = residual_maps(x, rec)
    res = {"reconstruction": rec, "cft": cft, "signed": signed, "abs": absmap,
           "regional": region_means(signed), "scores": raw_scores(x, rec, signed, absmap)}
    if stats is not None:
        z = region_z(res["regional"], stats)
        res["region_z"] = z
        res["z"] = z_map(signed, stats)
        res["scores"]["region_z_rms"] = float(np.sqrt(np.mean(z ** 2)))
        vz = voxel_z(x, stats)
        res["voxel_z"] = vz
        res["baselines"] = {"voxel_z_mean_abs": float(np.abs(vz[crop_layout()["brain"]]).mean()),
                            "ssm_pca_pdrp": ssm_score(x, stats)}
        if "fdg_region_mean" in stats:
            res["baselines"]["fdg_region_z_rms"] = fdg_region_z_rms(x, stats)
    return res


def regional_table(res: Dict[str, Any], stats: Dict[str, Any]) -> List[Dict[str, Any]]:
    lay = crop_layout()
    rows = []
    for i, (name, rid) in enumerate(zip(lay["region_names"], lay["region_ids"])):
        z = float(res["region_z"][i])
        rows.append({
            "region": name, "label": int(rid),
            "residual_percent": round(float(res["regional"][i]), 3),
            "nc_mean_percent": round(float(stats["region_mean"][i]), 3),
            "nc_sd_percent": round(float(stats["region_sd"][i]), 3),
            "z": round(z, 2),
            "direction": "hypo" if z < 0 else "hyper",
            "abnormal_abs_z_gt_2": bool(abs(z) > 2.0),
            "centroid_mni_ras": lay["centroids_ras"][i],
        })
    return rows


STATS_ROLE = "stats"  # the side file (manifest "files") with the NC statistics, score and threshold
STATS_REQUIRED = ("voxel_mean", "voxel_sd", "ssm_gmp", "ssm_pattern", "region_mean", "region_sd", "meta_json")


def load_stats(path: Any = None) -> Dict[str, Any]:
    """The NC statistics stored with the model: side file ``stats`` of the manifest entry ``metaad-cycle``
    (``metaad_stats.npz``), its sha256 checked first; ``path`` reads another file as it is (no checksum)."""
    import json
    import zipfile
    import zlib
    from pathlib import Path

    from ..errors import ModelError
    from ..runtime import get_entry

    if path is None:
        path = get_entry("metaad-cycle").side_file(STATS_ROLE)
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"MetaAD statistics {path} are missing; run python -m medsynth.metaad.train")
    bad = f"MetaAD statistics {path} cannot be read"
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in STATS_REQUIRED if k not in z.files]
            if missing:
                raise ModelError(f"{bad}: they lack {', '.join(missing)}")
            out: Dict[str, Any] = {k: z[k] for k in z.files}
        meta = json.loads(str(out.pop("meta_json")))
        score, threshold = meta["score"], float(meta["threshold"])
    except ModelError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, TypeError, IndexError, AttributeError,
            UnicodeDecodeError, zlib.error) as exc:
        raise ModelError(f"{bad}: {type(exc).__name__}: {exc}") from None
    if score not in SCORES:
        raise ModelError(f"{bad}: unknown subject score {score!r} (known: {', '.join(SCORES)})")
    shapes_ok = (out["voxel_mean"].shape == out["voxel_sd"].shape and out["voxel_mean"].ndim == 3
                 and out["region_mean"].shape == out["region_sd"].shape and out["region_mean"].ndim == 1
                 and out["ssm_gmp"].shape == out["ssm_pattern"].shape)
    if not shapes_ok:
        raise ModelError(f"{bad}: array sizes do not match each other")
    numeric = [k for k in STATS_REQUIRED if k != "meta_json"]
    if not all(np.issubdtype(out[k].dtype, np.number) and np.all(np.isfinite(out[k])) for k in numeric):
        raise ModelError(f"{bad}: non-numeric or non-finite values")
    if not (np.isfinite(threshold) and np.all(out["region_sd"] > 0)):
        raise ModelError(f"{bad}: threshold {threshold} or regional SDs out of range")
    out["meta"] = meta
    out["score"] = score
    out["threshold"] = threshold
    return out


__all__ = ["SCORES", "SCORE_WORDS", "Z_MAP_WORDS", "analyse_crop", "crop_layout", "fit_ssm_pca", "load_stats",
           "region_sd_map", "regional_table", "residual_maps", "smooth", "ssm_score", "voxel_z", "z_map"]

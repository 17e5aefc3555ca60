"""MetaAD on one FDG volume (ONNX Runtime, no torch): the anomaly map on the input's grid and a report.

Steps of :func:`detect`: check the input (3D scalar PET, field of view, not a CT); bring it to MNI space
(:func:`medsynth.pet.sbr.to_mni`: as is on the atlas grid, otherwise affine mutual-information registration to the
FDG template; non-convergence is an error); check its contrast and that the field of view covers the brain;
normalise by the brain mean; run the healthy cycle FDG -> CFT -> FDG; anomaly maps (signed, absolute and the
regional-SD z map, :func:`medsynth.metaad.core.z_map`), subject score, regional table and baselines
(:mod:`medsynth.metaad.core`); resample the maps back onto the input's grid (inverse registration).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import InputError, ModelError
from ..progress import CancelToken, ProgressCallback, Reporter
from ..volume import Volume

MODEL_ID = "metaad-cycle"
#: largest fraction of the atlas brain that may lie outside the scan after alignment
MAX_BRAIN_OUTSIDE = 0.05


@dataclass
class AnomalyResult:
    signed: Volume  # (FDG - reconstruction) smoothed, % of brain mean, on the input's grid
    absolute: Volume
    signed_mni: Volume
    score: float
    score_name: str
    threshold: float
    table: List[Dict[str, Any]]
    scores: Dict[str, float]
    baselines: Dict[str, float]
    space: str
    registration: Any = None
    model: Dict[str, Any] = field(default_factory=dict)
    calibration: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: signed map in regional-SD z units (:data:`medsynth.metaad.core.Z_MAP_WORDS`), on the input's grid and in MNI
    z: Optional[Volume] = None
    z_mni: Optional[Volume] = None

    @property
    def abnormal(self) -> bool:
        return self.score > self.threshold

    def report(self) -> Dict[str, Any]:
        c = self.calibration
        return {
            "input_space": self.space,
            "model": self.model,
            "subject_score": {
                "name": self.score_name, "what": c.get("score_words"), "value": round(self.score, 4),
                "threshold": round(self.threshold, 4), "threshold_rule": c.get("threshold_rule"),
                "score_choice": c.get("score_choice"),
                "abnormal": bool(self.abnormal),
            },
            "all_scores": {k: round(v, 4) for k, v in self.scores.items()},
            "baselines": {k: round(v, 4) for k, v in self.baselines.items()},
            "map": "signed anomaly map = 100 x (FDG - healthy reconstruction) / brain mean, smoothed (sigma 4 mm); "
                   "negative = hypometabolism",
            "z_map": self.z_summary(),
            "regional_table": self.table,
            "registration": self.registration.summary() if self.registration is not None else None,
            "seconds": round(self.seconds, 2),
            "note": "model trained and calibrated on simulated PET only (docs/metaad.md); not for clinical use",
        }


    def z_summary(self) -> Optional[Dict[str, Any]]:
        """What the z map is, and its extremes and share of brain voxels beyond +-2 (MNI, atlas brain)."""
        if self.z_mni is None:
            return None
        from ..pet.atlas import load_atlas
        from .core import Z_MAP_WORDS

        v = np.asarray(self.z_mni.array)[load_atlas().brain]
        return {
            "definition": Z_MAP_WORDS, "unit": "z (regional NC SD)",
            "outside_regions": "divided by the median of the 21 regional NC SDs",
            "min": round(float(v.min()), 3) if v.size else 0.0, "max": round(float(v.max()), 3) if v.size else 0.0,
            "brain_fraction_z_below_minus_2": round(float((v < -2).mean()), 4) if v.size else 0.0,
            "brain_fraction_z_above_2": round(float((v > 2).mean()), 4) if v.size else 0.0,
        }


def brain_coverage_check(aligned: np.ndarray, name: str) -> None:
    from ..pet.atlas import load_atlas

    brain = load_atlas().brain
    v = np.asarray(aligned)[brain]
    ref = float(np.percentile(v, 90)) if v.size else 0.0
    outside = float((v <= 1e-6 * max(ref, 1e-12)).mean())
    if outside > MAX_BRAIN_OUTSIDE:
        raise InputError(
            f"the field of view of '{name}' does not cover the brain: {outside * 100:.0f} % of the brain lies outside "
            "the scan after alignment to MNI space; MetaAD needs the whole brain (cerebrum and cerebellum)"
        )


def _back(mni: Volume, how: str, reg: Any, target: Volume) -> Volume:
    from ..pet.synthesis import _back_to_input

    out = _back_to_input(mni, how, reg, target)
    return Volume(out.array.astype(np.float32), target.ijk_to_ras.copy(), mni.name, "")


def detect(
    volume: Volume,
    space: str = "auto",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    device: Optional[str] = None,
    reporter: Optional[Reporter] = None,
) -> AnomalyResult:
    from ..pet.atlas import load_atlas
    from ..pet.checks import check_pet_contrast, check_pet_volume
    from ..pet.sbr import to_mni
    from ..pet.synthesis import crop, normalise, uncrop
    from ..runtime import load_model
    from .core import analyse_crop, load_stats, regional_table

    t0 = time.perf_counter()
    reporter = reporter or Reporter(progress, cancel)
    check_pet_volume(volume, "FDG")
    reporter.step(0.0, "loading the MetaAD model")
    model = load_model(MODEL_ID, device)
    stats = load_stats()
    atlas = load_atlas()
    reporter.step(0.02, "bringing the FDG to MNI space")
    aligned, how, reg = to_mni(volume, "FDG", space, atlas, reporter.sub(0.02, 0.7))
    brain_coverage_check(aligned.array, volume.name)
    check_pet_contrast(aligned.array, atlas, "FDG", volume.name)
    reporter.step(0.7, "healthy reconstruction FDG -> CFT -> FDG")
    x, _ = normalise(aligned.array, "FDG")
    res = analyse_crop(crop(x), model, stats)
    if not np.all(np.isfinite(res["reconstruction"])):
        raise ModelError("the MetaAD model produced non-finite values; no result was written")
    reporter.step(0.9, "anomaly maps back to the input's grid")
    ijk = atlas.labels.ijk_to_ras.copy()
    base = volume.name or "fdg"
    signed_mni = Volume(uncrop(res["signed"]), ijk, f"{base}_anomaly", "")
    signed = _back(signed_mni, how, reg, volume)
    absolute = signed.with_array(np.abs(signed.array), name=f"{base}_anomaly_abs")
    z_mni = Volume(uncrop(res["z"]), ijk.copy(), f"{base}_anomaly_z", "")
    z = _back(z_mni, how, reg, volume)
    table = regional_table(res, stats)
    for row in table:  # region centroids in the input's RAS space (for "jump to region")
        p = np.array(row["centroid_mni_ras"] + [1.0])
        q = reg.template_to_moving @ p if reg is not None else p
        row["centroid_ras"] = [round(float(v), 1) for v in q[:3]]
    name = stats["score"]
    e = model.entry
    reporter.step(1.0, "anomaly detection done")
    return AnomalyResult(
        signed=signed, absolute=absolute, signed_mni=signed_mni, score=float(res["scores"][name]), score_name=name,
        threshold=float(stats["threshold"]), table=table, scores=res["scores"], baselines=res["baselines"],
        space=how, registration=reg, model={"id": e.id, "version": e.version, "provider": model.provider},
        calibration=stats["meta"], seconds=time.perf_counter() - t0, z=z, z_mni=z_mni,
    )


def detect_file(input_path: Any, output_path: Any, report_path: Any = None, space: str = "auto",
                progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                device: Optional[str] = None, abs_path: Any = None, z_path: Any = None) -> AnomalyResult:
    """Read, detect, write the signed map (and the absolute map, the z map, the report) atomically; a failure leaves
    no output."""
    from ..io import atomic_output, read_volume, suffix_of, write_volume
    from ..pet.synthesis import OUTPUT_SUFFIXES

    out = Path(output_path)
    for p in [out] + [Path(x) for x in (abs_path, z_path) if x]:
        if suffix_of(p) not in OUTPUT_SUFFIXES:
            raise InputError(f"cannot write a map as '{suffix_of(p) or p.name}'; use one of {', '.join(OUTPUT_SUFFIXES)}")
        if Path(input_path).resolve() == p.resolve():
            raise InputError("the output would overwrite the input; choose another output path")
    volume = read_volume(input_path)
    result = detect(volume, space, progress, cancel, device)
    if cancel is not None:
        cancel.raise_if_cancelled()
    write_volume(result.signed, out)
    if abs_path:
        write_volume(result.absolute, Path(abs_path))
    if z_path:
        write_volume(result.z, Path(z_path))
    if report_path:
        target = Path(report_path)
        with atomic_output(target) as tmp:
            tmp.write_text(json.dumps(result.report(), indent=2) + "\n")
    return result


__all__ = ["AnomalyResult", "brain_coverage_check", "detect", "detect_file"]

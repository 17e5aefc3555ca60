"""Striatal binding ratios (SBR) of a dopamine-transporter PET (11C-CFT and similar tracers).

For each region R (caudate, anterior putamen, posterior putamen, whole putamen, striatum; left and right):

* ``SUVR_R = mean(R) / mean(reference)`` with the reference region the occipital cortex (default) or the
  cerebellar grey matter;
* ``SBR_R = SUVR_R - 1 = (mean(R) - mean(reference)) / mean(reference)`` (specific over non-specific uptake);
* asymmetry index ``AI_R = 100 x |SBR_L - SBR_R| / ((SBR_L + SBR_R) / 2)`` in percent, and the lower side.

Regions come from the atlas in MNI space (:mod:`medsynth.pet.atlas`). An input already on an MNI grid is used as
it is (``space="mni"``: resampled to the atlas grid if its grid differs); any other input is registered affinely to
the CFT template (:func:`medsynth.pet.register.register_to_template`, mutual information), and a registration that
does not converge is an error. ``space="auto"`` uses the input directly when it is on the atlas grid and registers
it otherwise.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError
from ..progress import Reporter
from ..volume import Volume
from .atlas import LABEL_OF, REFERENCE_REGIONS, PetAtlas, load_atlas
from .params import REFERENCES, SBR_PARAMS, SPACES  # noqa: F401 (declared in params.py; part of this module's API)

SBR_REGIONS = ("caudate", "putamen_anterior", "putamen_posterior", "putamen", "striatum")

_PARTS = {
    "caudate": ("caudate",),
    "putamen_anterior": ("putamen_anterior",),
    "putamen_posterior": ("putamen_posterior",),
    "putamen": ("putamen_anterior", "putamen_posterior"),
    "striatum": ("caudate", "putamen_anterior", "putamen_posterior"),
}


def _ids(region: str, side: str) -> Tuple[int, ...]:
    return tuple(LABEL_OF[f"{p}_{side}"] for p in _PARTS[region])


def sbr_from_labels(array: np.ndarray, labels: np.ndarray, reference: str = "occipital") -> Dict[str, float]:
    """SBR per ``<region>_<side>`` from an image and a label array on the same grid."""
    if reference not in REFERENCE_REGIONS:
        raise InputError(f"reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    a = np.asarray(array, np.float64)
    ref_mask = np.isin(labels, [LABEL_OF[n] for n in REFERENCE_REGIONS[reference]])
    if not ref_mask.any():
        raise InputError(f"reference region '{reference}' is empty")
    ref = float(a[ref_mask].mean())
    if not ref > 0:
        raise InputError(f"the {reference} reference region has no positive uptake (mean {ref:g}); SBR is undefined")
    out = {}
    for region in SBR_REGIONS:
        for side in ("L", "R"):
            m = np.isin(labels, _ids(region, side))
            out[f"{region}_{side}"] = float(a[m].mean()) / ref - 1.0
    return out


def asymmetry_index(left: float, right: float) -> Optional[float]:
    """100 x |L - R| / mean(L, R) in percent (None when the mean is not positive)."""
    mean = (left + right) / 2.0
    if not mean > 0:
        return None
    return 100.0 * abs(left - right) / mean


@dataclass
class SBRResult:
    """Striatal binding of one CFT volume."""

    sbr: Dict[str, float]
    suvr: Dict[str, float]
    reference: str
    reference_mean: float
    space: str  # "mni" (used as is), "resampled" (MNI, other grid) or "registered"
    contrast: Dict[str, float] = field(default_factory=dict)
    registration: Optional[Dict[str, Any]] = None
    aligned: Optional[Volume] = None  # the input on the atlas grid
    labels_in_input: Optional[Volume] = None  # striatal + reference labels on the input grid
    input_name: str = "input"

    def asymmetry(self) -> Dict[str, Dict[str, Any]]:
        out = {}
        for r in SBR_REGIONS:
            left, right = self.sbr[f"{r}_L"], self.sbr[f"{r}_R"]
            ai = asymmetry_index(left, right)
            out[r] = {"index_percent": None if ai is None else round(ai, 2), "lower_side": "L" if left < right else "R"}
        return out

    def to_dict(self) -> Dict[str, Any]:
        regions = {}
        asym = self.asymmetry()
        for r in SBR_REGIONS:
            regions[r] = {
                "sbr": {s: round(self.sbr[f"{r}_{s}"], 4) for s in ("L", "R")},
                "suvr": {s: round(self.suvr[f"{r}_{s}"], 4) for s in ("L", "R")},
                "asymmetry_index_percent": asym[r]["index_percent"],
                "lower_side": asym[r]["lower_side"],
            }
        return {
            "input": self.input_name,
            "definition": "SUVR = mean(region)/mean(reference); SBR = SUVR - 1; "
            "asymmetry index = 100*|SBR_L - SBR_R| / mean(SBR_L, SBR_R)",
            "reference": self.reference,
            "reference_mean": round(self.reference_mean, 6),
            "space": self.space,
            "regions": regions,
            "contrast_checks": {
                k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else None)
                for k, v in self.contrast.items()
            },
            "registration": self.registration,
            "atlas": "MedSynth PET atlas (AAL-based, MNI 2 mm; putamen split at its centroid's coronal plane)",
        }

    def table(self) -> str:
        lines = [f"SBR against {self.reference} (space: {self.space})", f"{'region':<20}{'left':>8}{'right':>8}{'AI %':>8}"]
        asym = self.asymmetry()
        for r in SBR_REGIONS:
            ai = asym[r]["index_percent"]
            lines.append(
                f"{r:<20}{self.sbr[f'{r}_L']:>8.3f}{self.sbr[f'{r}_R']:>8.3f}{('-' if ai is None else f'{ai:.1f}'):>8}"
            )
        return "\n".join(lines)


def to_mni(
    volume: Volume,
    tracer: str,
    space: str = "auto",
    atlas: Optional[PetAtlas] = None,
    reporter: Optional[Reporter] = None,
):
    """Bring a PET volume onto the atlas grid. Returns ``(aligned, how, registration_or_None)``."""
    from ..resample import resample_like
    from .register import register_to_template
    from .simulate import pet_template

    atlas = atlas or load_atlas()
    if space not in SPACES:
        raise InputError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
    vol = volume.with_array(np.asarray(volume.array, np.float32))
    if space in ("auto", "mni") and atlas.is_on_grid(vol):
        return Volume(vol.array, atlas.labels.ijk_to_ras.copy(), vol.name, vol.modality), "mni", None
    if space == "mni":
        return resample_like(vol, atlas.labels.with_array(np.zeros(atlas.labels.array.shape, np.float32))), "resampled", None
    from .checks import check_pet_contrast
    from .register import RegistrationError

    template = pet_template(tracer)
    head = atlas.labels.array > 0
    reg = register_to_template(vol, template, mask=head, reporter=reporter, what=f"the {tracer} template", check=False)
    if reg.problem:
        # a wrong modality is the likelier reason: say so when the contrast shows it
        try:
            check_pet_contrast(reg.aligned.array, atlas, tracer, volume.name)
        except InputError as exc:
            raise InputError(f"{exc} (Registration to the {tracer} template did not converge either.)") from None
        raise RegistrationError(reg.problem)
    return reg.aligned, "registered", reg


def striatal_binding(
    cft: Volume,
    reference: str = "occipital",
    space: str = "auto",
    atlas: Optional[PetAtlas] = None,
    reporter: Optional[Reporter] = None,
    labels_in_input: bool = True,
) -> SBRResult:
    """SBRs of a CFT (dopamine transporter) PET volume; see the module docstring."""
    from ..resample import resample_like
    from .checks import check_pet_contrast, check_pet_volume
    from .register import resample_from_template

    if reference not in REFERENCE_REGIONS:
        raise InputError(f"reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    reporter = reporter or Reporter()
    atlas = atlas or load_atlas()
    check_pet_volume(cft, "CFT")
    reporter.step(0.0, "bringing the input to MNI space")
    aligned, how, reg = to_mni(cft, "CFT", space, atlas, reporter.sub(0.0, 0.9))
    contrast = check_pet_contrast(aligned.array, atlas, "CFT", cft.name)
    labels = atlas.labels.array
    sbr = sbr_from_labels(aligned.array, labels, reference)
    ref_mask = np.isin(labels, [LABEL_OF[n] for n in REFERENCE_REGIONS[reference]])
    ref_mean = float(np.asarray(aligned.array, np.float64)[ref_mask].mean())
    keep = [LABEL_OF[f"{p}_{s}"] for p in ("caudate", "putamen_anterior", "putamen_posterior") for s in ("L", "R")]
    keep += [LABEL_OF[n] for n in REFERENCE_REGIONS[reference]]
    lab_vol = atlas.labels.with_array(np.where(np.isin(labels, keep), labels, 0).astype(np.uint8), name="striatal_regions")
    in_input = None
    if labels_in_input:
        in_input = resample_from_template(lab_vol, reg, cft) if reg is not None else resample_like(lab_vol, cft, "nearest")
    reporter.step(1.0, "SBR done")
    return SBRResult(
        sbr=sbr,
        suvr={k: v + 1.0 for k, v in sbr.items()},
        reference=reference,
        reference_mean=ref_mean,
        space=how,
        contrast=contrast,
        registration=reg.summary() if reg is not None else None,
        aligned=aligned,
        labels_in_input=in_input,
        input_name=cft.name,
    )


def auc(negatives: Sequence[float], positives: Sequence[float]) -> float:
    """Area under the ROC curve for "lower value = positive" (Mann-Whitney; ties count one half)."""
    neg = np.asarray(negatives, float)[:, None]
    pos = np.asarray(positives, float)[None, :]
    if neg.size == 0 or pos.size == 0:
        return float("nan")
    return float(((neg > pos).sum() + 0.5 * (neg == pos).sum()) / (neg.size * pos.size))


def cohort_sbr(
    folder: Union[str, Path], reference: str = "occipital", space: str = "auto", reporter: Optional[Reporter] = None
) -> Dict[str, Any]:
    """SBR of every CFT of a simulated cohort (``medsynth pet-simulate``) against the simulated values.

    Returns per-subject rows and a summary: NC and PD means of the posterior-putamen SBR (the lower side), the AUC
    of that SBR for PD vs NC, and the agreement of measured with simulated SBR (Pearson r, mean bias).
    """
    from ..io import read_volume
    from .simulate import read_cohort

    reporter = reporter or Reporter()
    folder = Path(folder)
    rows = read_cohort(folder)
    out_rows = []
    meas_all, true_all = [], []
    for n, row in enumerate(rows):
        reporter.step(n / max(len(rows), 1), f"SBR {row['subject']}")
        res = striatal_binding(read_volume(folder / row["cft_file"]), reference, space, labels_in_input=False)
        r = {"subject": row["subject"], "group": row["group"], "stage": float(row["stage"])}
        for k in ("caudate", "putamen_anterior", "putamen_posterior"):
            for sd in ("L", "R"):
                r[f"sbr_{k}_{sd}"] = round(res.sbr[f"{k}_{sd}"], 4)
                if reference == "occipital":
                    t = float(row[f"sbr_true_{k}_{sd}"])
                    r[f"sbr_true_{k}_{sd}"] = t
                    meas_all.append(res.sbr[f"{k}_{sd}"])
                    true_all.append(t)
        r["sbr_putamen_posterior_min"] = round(min(res.sbr["putamen_posterior_L"], res.sbr["putamen_posterior_R"]), 4)
        r["ai_putamen_posterior_percent"] = res.asymmetry()["putamen_posterior"]["index_percent"]
        out_rows.append(r)
    reporter.step(1.0, "cohort SBR done")
    nc = [r["sbr_putamen_posterior_min"] for r in out_rows if r["group"] == "NC"]
    pd = [r["sbr_putamen_posterior_min"] for r in out_rows if r["group"] == "PD"]

    def stats(v):
        if not v:
            return {"n": 0}
        sd = round(float(np.std(v, ddof=1)), 3) if len(v) > 1 else None
        return {"n": len(v), "mean": round(float(np.mean(v)), 3), "sd": sd}

    summary: Dict[str, Any] = {
        "reference": reference,
        "posterior_putamen_sbr_lower_side": {"NC": stats(nc), "PD": stats(pd)},
        "auc_pd_vs_nc_posterior_putamen": round(auc(nc, pd), 4) if nc and pd else None,
    }
    if len(meas_all) > 2:
        m, t = np.asarray(meas_all), np.asarray(true_all)
        summary["agreement_with_simulated"] = {
            "pearson_r": round(float(np.corrcoef(m, t)[0, 1]), 4),
            "mean_bias": round(float((m - t).mean()), 4),
            "mean_abs_relative_error": round(float(np.mean(np.abs(m - t) / np.abs(t))), 4),
            "regions": "caudate, anterior and posterior putamen, left and right",
        }
    return {"cohort": str(folder), "summary": summary, "subjects": out_rows}


def write_report(result: Union[SBRResult, Dict[str, Any]], path: Union[str, Path]) -> Path:
    """Write the JSON report (of one result, or of :func:`cohort_sbr`) atomically."""
    from ..io import atomic_output

    target = Path(path)
    data = result.to_dict() if isinstance(result, SBRResult) else result
    with atomic_output(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return target


__all__ = [
    "REFERENCES",
    "SBR_PARAMS",
    "SBR_REGIONS",
    "SBRResult",
    "asymmetry_index",
    "auc",
    "cohort_sbr",
    "sbr_from_labels",
    "striatal_binding",
    "to_mni",
    "write_report",
]

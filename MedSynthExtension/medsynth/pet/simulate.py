"""A simulator of brain FDG and 11C-CFT (dopamine transporter) PET pairs, normal controls (NC) and Parkinson's disease (PD).

This is a simulator, not real PET. Images are built on the MNI 2 mm grid from the MNI ICBM152 2009a GM/WM maps and
the AAL-based region atlas (:mod:`medsynth.pet.atlas`), with uptake ratios that are *approximate* values chosen to
reproduce the qualitative patterns described in the literature below; they were not fitted to any PET data.

FDG (glucose metabolism), relative units (cortical grey matter = 1 before normalisation):

* Tissue uptake: grey:white ratio drawn per subject in 3.0-4.0 (the issue's 3-4:1; early quantitative FDG studies,
  e.g. Phelps et al., Ann Neurol 1979 and Huang et al., Am J Physiol 1980, report grey-matter glucose use a few
  times that of white matter). Deep nuclei (caudate, putamen, thalamus) near cortical values, pallidum lower,
  pons and cerebellar cortex lower than neocortex (:data:`FDG_BASE`). CSF about 0, extracerebral head low.
* Healthy variability: per-region factors (SD 4 %), a smooth multiplicative field (SD 3 %, ~12 mm), the grey:white
  ratio, and a small normal expression of the PD pattern (``fdg_pdrp`` ~ N(0, 0.25) in NC).
* PD-related pattern (PDRP; Eidelberg et al., J Nucl Med 1994 35:1199; Ma et al., J Cereb Blood Flow Metab 2007
  27:597; Eidelberg, Trends Neurosci 2009 32:548): relative hypermetabolism of putamen/pallidum, thalamus, pons,
  cerebellum and sensorimotor cortex, hypometabolism of lateral premotor and posterior parietal/occipital cortex.
  Region factor = 1 + ``fdg_pdrp`` x weight (:data:`PDRP_WEIGHTS`, a few % to ~10 % per unit), after which the image
  is normalised to its whole-brain mean (the pattern is relative, as in the papers). The pattern is expressed more
  in one hemisphere (``fdg_lateral``), usually that of the more affected striatum (``fdg_side``).

How FDG and DAT are tied (simulator version 2, :data:`LINK`): the dopaminergic ``stage`` and the FDG pattern
expression ``fdg_pdrp`` are two separate draws whose normal scores correlate with ``rho`` = 0.5 inside the PD group
(expression grows with progression on average, Huang et al., Brain 2007 130:1834, but far from one-to-one); 15 % of
PD subjects have an FDG pattern in the normal range and 10 % of NC subjects a PD-like FDG pattern with a normal DAT
(``link`` in the cohort CSV). So a method that reads FDG cannot recover the DAT exactly: the simulator no longer
decides that answer. Version 1 (before 2026-12) set both from one ``stage``.

CFT (dopamine transporter), relative units:

* Non-specific uptake: near-uniform brain uptake (white slightly below grey), some extracerebral uptake.
* Specific striatal binding: tissue binding potential ``bp`` over non-specific uptake for caudate and putamen
  (:data:`CFT_BP`, chosen so that healthy striatal SBR against occipital cortex measured at 4.5-7 mm PET resolution
  is about 2.5-4, i.e. above the ~2-3 typical of [123I]FP-CIT SPECT in controls, as expected of PET).
* PD: loss of binding worst in the posterior putamen (dorsal/posterior putamen first; e.g. Nandhagopal et al.,
  Brain 2009 132:2970; Kordower et al., Brain 2013 136:2419), then anterior putamen, caudate least; more severe on
  the side opposite the worse motor side (asymmetric); graded by a dopaminergic ``stage`` in [0, 1]; healthy subjects
  have an individual whole-striatum asymmetry (SD 4 %). Posterior-putamen loss on the more
  affected side is 50-85 % (≈ 50 % or more at diagnosis is the commonly cited figure; the exact numbers are ours).

Scanner and anatomy: isotropic Gaussian PSF of 4.5-7 mm FWHM; Poisson-like noise (SD proportional to the square
root of the local activity, spatially correlated); a global scale; and a random smooth deformation (small affine + smooth
displacement field) shared by the subject's two images, standing for anatomical variability and imperfect normalisation.
"""

from __future__ import annotations

import csv
import io as _io
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..progress import Reporter
from ..volume import Volume
from ._img import FWHM_TO_SIGMA, gaussian_array, to_sitk_float
from .atlas import LABEL_OF, LABELS, PetAtlas, load_atlas
from .params import SIMULATE_PARAMS  # noqa: F401 (declared in params.py; part of this module's API)

GROUPS = ("NC", "PD")
TRACERS = ("FDG", "CFT")
SIDES = ("L", "R")

# FDG relative uptake of regions (cortical grey matter = 1). "deep" regions replace the tissue mixture inside them.
FDG_BASE: Dict[str, Tuple[float, bool]] = {
    "caudate": (0.95, True),
    "putamen_anterior": (1.0, True),
    "putamen_posterior": (1.0, True),
    "pallidum": (0.75, True),
    "thalamus": (0.95, True),
    "pons": (0.55, True),
    "cerebellum_gm": (0.85, False),
    "lateral_premotor": (1.0, False),
    "posterior_parietal": (1.0, False),
    "occipital": (1.05, False),
    "sensorimotor": (1.0, False),
}
FDG_CSF = 0.04
FDG_HEAD = 0.12

# PDRP region weights: relative change per unit of pattern expression (approximate; signs from Eidelberg's PDRP)
PDRP_WEIGHTS: Dict[str, float] = {
    "putamen_anterior": 0.08,
    "putamen_posterior": 0.08,
    "pallidum": 0.10,
    "thalamus": 0.07,
    "pons": 0.08,
    "cerebellum_gm": 0.06,
    "sensorimotor": 0.04,
    "lateral_premotor": -0.07,
    "posterior_parietal": -0.09,
    "occipital": -0.07,
}

# CFT: non-specific uptake by tissue, and healthy tissue binding potentials (specific / non-specific)
CFT_NONSPECIFIC = {"gm": 1.0, "wm": 0.8, "csf": 0.25, "head": 0.3, "striatum": 1.0}
CFT_BP: Dict[str, float] = {"caudate": 4.0, "putamen": 4.5, "pallidum": 1.0}
# PD loss of binding relative to the posterior-putamen end of the more affected side
CFT_LOSS_FRACTION = {"putamen_anterior_end": (0.30, 0.50), "caudate": (0.25, 0.45), "pallidum": 0.4}

DEFAULT_PSF_MM = 6.0
HEALTHY_REGION_SD = 0.04
SMOOTH_FIELD_SD = 0.03
SMOOTH_FIELD_SIGMA_MM = 12.0

#: Version of the simulation model (written to cohort.csv). 2: FDG pattern and dopaminergic loss drawn separately.
SIMULATOR_VERSION = 2

#: How a subject's FDG pattern and its dopaminergic loss are tied (version 2; every value in docs/pet.md).
#: The dopaminergic stage is Phi(z_dat) for PD; a typical PD's pattern expression is
#: mean + sd x (rho x z_dat + sqrt(1 - rho^2) x z_e), so expression and stage correlate with rho (Pearson, on the
#: normal scores) inside the PD group; some subjects break the link on purpose.
LINK: Dict[str, float] = {
    "rho_stage_expression": 0.5,  # correlation of FDG pattern expression with dopaminergic stage within PD
    "pd_expression_mean": 1.0,
    "pd_expression_sd": 0.4,
    "nc_expression_sd": 0.25,  # normal expression of the pattern, N(0, 0.25)
    "pd_normal_fdg_fraction": 0.15,  # PD with dopaminergic loss but an FDG pattern in the normal range
    "nc_abnormal_fdg_fraction": 0.10,  # NC with a normal DAT but a PD-like FDG pattern
    "fdg_side_agreement": 0.75,  # the pattern is stronger on the more affected striatum's side this often
    "fdg_lateral_max": 0.4,  # hemispheric lateralisation of the pattern, U(0, 0.4)
    "healthy_striatal_asymmetry_sd": 0.04,  # whole-striatum healthy binding asymmetry (L - R), N(0, 0.04)
}



@dataclass
class SubjectParams:
    """Everything drawn for one subject (written to the cohort CSV)."""

    subject: str
    group: str
    stage: float
    fdg_pdrp: float
    gw_ratio: float
    affected_side: str
    asymmetry: float
    loss: Dict[str, float]  # "<region>_<side>" -> mean loss of binding in [0, 1]
    loss_ends: Dict[str, float]  # putamen loss at its anterior / posterior end per side
    bp: Dict[str, float]  # healthy tissue binding potential per "<region>_<side>" (before loss)
    fdg_region: Dict[str, float]  # healthy FDG factors per label name
    psf_fdg_mm: float
    psf_cft_mm: float
    noise_fdg: float
    noise_cft: float
    scale_fdg: float
    scale_cft: float
    affine_rot_deg: Tuple[float, float, float]
    affine_scale: Tuple[float, float, float]
    affine_shift_mm: Tuple[float, float, float]
    warp_mm: float  # SD of the smooth random displacement (mm)
    link: str = "typical"  # typical | pd_normal_fdg | nc_abnormal_fdg (see LINK)
    fdg_side: str = "L"  # hemisphere where the FDG pattern is expressed more
    fdg_lateral: float = 0.0  # pattern expression x (1 +- fdg_lateral) on the fdg_side / other hemisphere
    striatal_asymmetry: float = 0.0  # healthy whole-striatum binding asymmetry (L - R, fraction)
    seed: Tuple[int, int] = (0, 0)

    def row(self) -> Dict[str, Any]:
        r: Dict[str, Any] = {
            "subject": self.subject,
            "group": self.group,
            "label": int(self.group == "PD"),
            "stage": round(self.stage, 4),
            "fdg_pdrp": round(self.fdg_pdrp, 4),
            "gw_ratio": round(self.gw_ratio, 4),
            "affected_side": self.affected_side,
            "asymmetry": round(self.asymmetry, 4),
            "link": self.link,
            "fdg_side": self.fdg_side,
            "fdg_lateral": round(self.fdg_lateral, 4),
            "striatal_asymmetry": round(self.striatal_asymmetry, 4),
            "simulator": SIMULATOR_VERSION,
        }
        for k in ("caudate", "putamen_anterior", "putamen_posterior"):
            for s in SIDES:
                r[f"loss_{k}_{s}"] = round(self.loss[f"{k}_{s}"], 4)
        for k in ("caudate", "putamen"):
            for s in SIDES:
                r[f"bp_{k}_{s}"] = round(self.bp[f"{k}_{s}"], 4)
        r.update(
            psf_fdg_mm=round(self.psf_fdg_mm, 3),
            psf_cft_mm=round(self.psf_cft_mm, 3),
            noise_fdg=round(self.noise_fdg, 4),
            noise_cft=round(self.noise_cft, 4),
            scale_fdg=round(self.scale_fdg, 4),
            scale_cft=round(self.scale_cft, 4),
            rot_deg=" ".join(f"{v:.3f}" for v in self.affine_rot_deg),
            scale_xyz=" ".join(f"{v:.4f}" for v in self.affine_scale),
            shift_mm=" ".join(f"{v:.3f}" for v in self.affine_shift_mm),
            warp_mm=round(self.warp_mm, 3),
        )
        return r


@dataclass
class SimulatedSubject:
    """One simulated pair and what was used to make it."""

    fdg: Volume
    cft: Volume
    params: SubjectParams
    expected_sbr: Dict[str, float]  # SBR of the noise-free CFT in the subject's (deformed) atlas, occipital reference
    truth: Dict[str, Volume] = field(default_factory=dict)  # noise-free, unblurred activity (if asked for)

    def row(self) -> Dict[str, Any]:
        r = self.params.row()
        for k, v in self.expected_sbr.items():
            r[f"sbr_true_{k}"] = round(v, 4)
        return r


# --------------------------------------------------------------------------- parameters
def _phi(z: float) -> float:
    """Standard normal cumulative distribution."""
    import math

    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def draw_params(rng: np.random.Generator, group: str, subject: str = "sub-001") -> SubjectParams:
    """Draw one subject's parameters (NC or PD; :data:`LINK` says how FDG and DAT are tied, docs/pet.md)."""
    if group not in GROUPS:
        raise InputError(f"group must be one of {', '.join(GROUPS)}, got {group!r}")
    pd = group == "PD"
    # dopaminergic stage and FDG pattern expression: two draws tied by a correlation, not one variable
    z_dat, z_e = rng.standard_normal(2)
    stage = _phi(float(z_dat)) if pd else 0.0
    link_draw = float(rng.uniform())
    rho = LINK["rho_stage_expression"]
    if pd and link_draw < LINK["pd_normal_fdg_fraction"]:
        link = "pd_normal_fdg"  # dopaminergic loss, FDG pattern within the normal range
        fdg_pdrp = float(LINK["nc_expression_sd"] * z_e)
    elif pd:
        link = "typical"
        fdg_pdrp = float(LINK["pd_expression_mean"] + LINK["pd_expression_sd"] * (rho * z_dat + np.sqrt(1 - rho**2) * z_e))
    elif link_draw < LINK["nc_abnormal_fdg_fraction"]:
        link = "nc_abnormal_fdg"  # PD-like FDG pattern, normal dopamine transporter
        fdg_pdrp = float(LINK["pd_expression_mean"] + LINK["pd_expression_sd"] * z_e)
    else:
        link = "typical"
        fdg_pdrp = float(LINK["nc_expression_sd"] * z_e)
    gw_ratio = float(rng.uniform(3.0, 4.0))
    affected = "L" if rng.uniform() < 0.5 else "R"
    asym = float(rng.uniform(0.25, 0.55) * (1.0 - 0.5 * stage)) if pd else 0.0
    # the FDG pattern's lateralisation: stronger in the hemisphere of the more affected striatum, mostly
    same_side = rng.uniform() < LINK["fdg_side_agreement"]
    fdg_side = affected if same_side else ("R" if affected == "L" else "L")
    fdg_lateral = float(rng.uniform(0.0, LINK["fdg_lateral_max"]))
    # loss of binding (fractions) on the more affected side
    lp = float(np.clip(0.65 + 0.30 * stage + rng.normal(0, 0.04), 0.4, 0.97)) if pd else 0.0
    la = lp * float(rng.uniform(*CFT_LOSS_FRACTION["putamen_anterior_end"]))
    lc = lp * float(rng.uniform(*CFT_LOSS_FRACTION["caudate"]))
    loss_ends: Dict[str, float] = {}
    loss_c: Dict[str, float] = {}
    for s in SIDES:
        f = 1.0 if s == affected else 1.0 - asym
        loss_ends[f"putamen_posterior_end_{s}"] = lp * f if pd else 0.0
        loss_ends[f"putamen_anterior_end_{s}"] = la * f if pd else 0.0
        loss_c[s] = lc * f if pd else 0.0
    # healthy binding: a subject factor (age, individual), an individual left/right asymmetry of the whole
    # striatum, and small left/right differences per region
    subj = float(rng.normal(1.0, 0.08))
    dat_asym = float(rng.normal(0.0, LINK["healthy_striatal_asymmetry_sd"]))
    bp = {}
    for k in ("caudate", "putamen", "pallidum"):
        for s in SIDES:
            side_f = 1.0 + (0.5 if s == "L" else -0.5) * dat_asym
            bp[f"{k}_{s}"] = CFT_BP[k] * subj * side_f * float(rng.normal(1.0, 0.03))
    fdg_region = {name: float(rng.normal(1.0, HEALTHY_REGION_SD)) for name in LABELS.values()}
    rot = tuple(float(v) for v in rng.normal(0, 1.0, 3))
    scl = tuple(float(v) for v in rng.normal(1.0, 0.02, 3))
    shift = tuple(float(v) for v in rng.normal(0, 1.0, 3))
    return SubjectParams(
        subject=subject,
        group=group,
        stage=stage,
        fdg_pdrp=fdg_pdrp,
        gw_ratio=gw_ratio,
        affected_side=affected,
        asymmetry=asym,
        loss=_region_losses(loss_ends, loss_c),
        loss_ends=loss_ends,
        bp=bp,
        fdg_region=fdg_region,
        psf_fdg_mm=float(rng.uniform(4.5, 7.0)),
        psf_cft_mm=float(rng.uniform(4.5, 7.0)),
        noise_fdg=float(rng.uniform(0.03, 0.07)),
        noise_cft=float(rng.uniform(0.05, 0.10)),
        scale_fdg=float(rng.uniform(4.0, 8.0)),
        scale_cft=float(rng.uniform(1.0, 2.0)),
        affine_rot_deg=rot,  # type: ignore[arg-type]
        affine_scale=scl,  # type: ignore[arg-type]
        affine_shift_mm=shift,  # type: ignore[arg-type]
        warp_mm=float(rng.uniform(0.3, 1.2)),
        link=link,
        fdg_side=fdg_side,
        fdg_lateral=fdg_lateral,
        striatal_asymmetry=dat_asym,
    )


def template_params() -> SubjectParams:
    """The mean healthy subject (no variability, no deformation, 6 mm PSF, no noise): the registration template."""
    zero = {f"{r}_{s}": 0.0 for r in ("caudate", "putamen_anterior", "putamen_posterior") for s in SIDES}
    return SubjectParams(
        subject="template",
        group="NC",
        stage=0.0,
        fdg_pdrp=0.0,
        gw_ratio=3.5,
        affected_side="L",
        asymmetry=0.0,
        loss=zero,
        loss_ends={f"putamen_{e}_end_{s}": 0.0 for e in ("anterior", "posterior") for s in SIDES},
        bp={f"{k}_{s}": CFT_BP[k] for k in ("caudate", "putamen", "pallidum") for s in SIDES},
        fdg_region={name: 1.0 for name in LABELS.values()},
        psf_fdg_mm=DEFAULT_PSF_MM,
        psf_cft_mm=DEFAULT_PSF_MM,
        noise_fdg=0.0,
        noise_cft=0.0,
        scale_fdg=1.0,
        scale_cft=1.0,
        affine_rot_deg=(0.0, 0.0, 0.0),
        affine_scale=(1.0, 1.0, 1.0),
        affine_shift_mm=(0.0, 0.0, 0.0),
        warp_mm=0.0,
    )


def _putamen_axis(atlas: PetAtlas) -> Tuple[np.ndarray, float, float]:
    """MNI y of every voxel and the anterior/posterior ends (5th/95th percentile) of the putamen."""
    y = _ras(atlas)[1]
    put = atlas.mask("putamen_anterior", "putamen_posterior")
    y_post, y_ant = np.percentile(y[put], [5, 95])
    return y, float(y_ant), float(y_post)


def _putamen_loss_map(atlas: PetAtlas, side: str, loss_ends: Dict[str, float]) -> np.ndarray:
    y, y_ant, y_post = _putamen_axis(atlas)
    t = np.clip((y_ant - y) / (y_ant - y_post), 0.0, 1.0)  # 0 at the anterior end, 1 at the posterior end
    la, lp = loss_ends[f"putamen_anterior_end_{side}"], loss_ends[f"putamen_posterior_end_{side}"]
    return (la + (lp - la) * t).astype(np.float32)


def _region_losses(loss_ends: Dict[str, float], caudate: Dict[str, float]) -> Dict[str, float]:
    """Mean loss per region, from the linear anterior->posterior putamen gradient over the atlas regions."""
    atlas = load_atlas()
    out = {}
    for s in SIDES:
        lmap = _putamen_loss_map(atlas, s, loss_ends)
        for part in ("putamen_anterior", "putamen_posterior"):
            out[f"{part}_{s}"] = float(lmap[atlas.mask(f"{part}_{s}")].mean())
        out[f"caudate_{s}"] = float(caudate[s])
    return out


_RAS_CACHE: Dict[int, Tuple[np.ndarray, ...]] = {}


def _ras(atlas: PetAtlas) -> Tuple[np.ndarray, ...]:
    """RAS x, y, z of every atlas voxel (cached per atlas)."""
    key = id(atlas.labels.array)
    if key not in _RAS_CACHE:
        nk, nj, ni = atlas.labels.array.shape
        kk, jj, ii = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
        ras = atlas.labels.ijk_to_ras_points(np.stack([ii.ravel(), jj.ravel(), kk.ravel()], 1))
        _RAS_CACHE.clear()
        _RAS_CACHE[key] = tuple(ras[:, n].reshape(nk, nj, ni).astype(np.float32) for n in range(3))
    return _RAS_CACHE[key]


# --------------------------------------------------------------------------- activity maps (atlas space)
def _smooth_field(atlas: PetAtlas, rng: np.random.Generator, sd: float, sigma_mm: float) -> np.ndarray:
    f = gaussian_array(atlas.labels, rng.standard_normal(atlas.labels.array.shape).astype(np.float32), sigma_mm)
    f /= max(float(f[atlas.brain].std()), 1e-6)
    return (1.0 + sd * f).astype(np.float32)


def _smooth_piecewise(atlas: PetAtlas, values: Dict[str, float], sigma_mm: float) -> np.ndarray:
    """Gaussian-smoothed map that is ``values[name]`` on each named label (0 elsewhere): one smoothing for all."""
    lut = np.zeros(256, np.float32)
    for name, v in values.items():
        lut[LABEL_OF[name]] = v
    return gaussian_array(atlas.labels, lut[atlas.labels.array], sigma_mm)


_MASK_CACHE: Dict[Tuple[int, Tuple[str, ...], float], np.ndarray] = {}


def _soft_union(atlas: PetAtlas, names: Sequence[str], sigma_mm: float) -> np.ndarray:
    """Smoothed indicator of a set of labels, cached (it does not change between subjects)."""
    key = (id(atlas.labels.array), tuple(sorted(names)), float(sigma_mm))
    if key not in _MASK_CACHE:
        if len(_MASK_CACHE) > 16:
            _MASK_CACHE.clear()
        _MASK_CACHE[key] = _smooth_piecewise(atlas, {n: 1.0 for n in names}, sigma_mm)
    return _MASK_CACHE[key]


def _label_names(regions: Sequence[str]) -> List[str]:
    return [n for r in regions for n in ((r,) if r in LABEL_OF else (f"{r}_L", f"{r}_R"))]


DEEP_SIGMA_MM = 1.0
CORTEX_SIGMA_MM = 2.0


def fdg_activity(atlas: PetAtlas, p: SubjectParams, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Noise-free, unblurred FDG activity on the atlas grid, normalised to whole-brain mean 1.

    Deep regions (``FDG_BASE[...][1]``) replace the tissue mixture with their own uptake (soft edges, 1 mm);
    cortical regions scale the grey-matter uptake (soft edges, 2 mm).
    """
    gm, wm, csf = atlas.gm.array, atlas.wm.array, atlas.csf
    head = atlas.mask("head").astype(np.float32)
    deep_f: Dict[str, float] = {}
    cort_f: Dict[str, float] = {}
    for region, (base, deep) in FDG_BASE.items():
        w = PDRP_WEIGHTS.get(region, 0.0)
        for name in _label_names([region]):
            side = name[-1] if name[-2:] in ("_L", "_R") else None
            lateral = 0.0 if side is None else (p.fdg_lateral if side == p.fdg_side else -p.fdg_lateral)
            factor = base * p.fdg_region[name] * (1.0 + p.fdg_pdrp * w * (1.0 + lateral))
            if deep:
                deep_f[name] = factor
            else:
                cort_f[name] = factor - 1.0
    deep_sum = np.clip(_soft_union(atlas, list(deep_f), DEEP_SIGMA_MM), 0.0, 1.0)
    deep_act = _smooth_piecewise(atlas, deep_f, DEEP_SIGMA_MM)
    gm_factor = 1.0 + _smooth_piecewise(atlas, cort_f, CORTEX_SIGMA_MM)
    tissue = gm * gm_factor + wm / p.gw_ratio + csf * FDG_CSF
    act = (1.0 - deep_sum) * tissue + deep_act + head * FDG_HEAD
    if rng is not None:
        act *= _smooth_field(atlas, rng, SMOOTH_FIELD_SD, SMOOTH_FIELD_SIGMA_MM)
    act /= float(act[atlas.brain].mean())
    return act.astype(np.float32)


def cft_activity(atlas: PetAtlas, p: SubjectParams, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Noise-free, unblurred CFT activity on the atlas grid (non-specific grey-matter uptake 1).

    Activity = non-specific x (1 + BP); BP is the region's healthy binding times (1 - loss), the putamen's loss
    varying linearly from its anterior to its posterior end.
    """
    gm, wm, csf = atlas.gm.array, atlas.wm.array, atlas.csf
    head = atlas.mask("head").astype(np.float32)
    ns = CFT_NONSPECIFIC
    nonspec = gm * ns["gm"] + wm * ns["wm"] + csf * ns["csf"] + head * ns["head"]
    lut = np.zeros(256, np.float32)
    bp_hard = np.zeros(gm.shape, np.float32)
    for s in SIDES:
        lut[LABEL_OF[f"caudate_{s}"]] = p.bp[f"caudate_{s}"] * (1.0 - p.loss[f"caudate_{s}"])
        lg = CFT_LOSS_FRACTION["pallidum"] * p.loss_ends[f"putamen_anterior_end_{s}"]
        lut[LABEL_OF[f"pallidum_{s}"]] = p.bp[f"pallidum_{s}"] * (1.0 - lg)
        put = atlas.mask(f"putamen_anterior_{s}", f"putamen_posterior_{s}")
        lp = _putamen_loss_map(atlas, s, p.loss_ends)
        bp_hard[put] = p.bp[f"putamen_{s}"] * (1.0 - lp[put])
    bp_hard += lut[atlas.labels.array]
    bp = gaussian_array(atlas.labels, bp_hard, DEEP_SIGMA_MM)
    names = _label_names(["caudate", "putamen_anterior", "putamen_posterior", "pallidum"])
    striatum = np.clip(_soft_union(atlas, names, DEEP_SIGMA_MM), 0.0, 1.0)
    nonspec = (1.0 - striatum) * nonspec + striatum * ns["striatum"]
    if rng is not None:
        nonspec *= _smooth_field(atlas, rng, SMOOTH_FIELD_SD, SMOOTH_FIELD_SIGMA_MM)
    return (nonspec * (1.0 + bp)).astype(np.float32)


# --------------------------------------------------------------------------- scanner and anatomy
BRAIN_CENTER_MM = (0.0, -18.0, 10.0)


def deformation(p: SubjectParams, rng: Optional[np.random.Generator], atlas: PetAtlas) -> sitk.Transform:
    """Random smooth deformation as a dense displacement field (output point -> input point, LPS for SimpleITK).

    A small affine about the brain centre (``affine_rot_deg``, ``affine_scale``, ``affine_shift_mm``) plus a smooth
    random displacement (each component a Gaussian random field, 15 mm correlation, SD ``warp_mm``).
    """
    x, y, z = _ras(atlas)
    pts = np.stack([x, y, z], axis=-1).astype(np.float64)
    c = np.asarray(BRAIN_CENTER_MM)
    rx, ry, rz = (np.deg2rad(v) for v in p.affine_rot_deg)
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot = (
        np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    )
    a = rot @ np.diag(p.affine_scale)
    moved = (pts - c) @ a.T + c + np.asarray(p.affine_shift_mm)
    disp = moved - pts
    if p.warp_mm > 0 and rng is not None:
        for n in range(3):
            f = gaussian_array(atlas.labels, rng.standard_normal(x.shape).astype(np.float32), 15.0)
            disp[..., n] += p.warp_mm * f / max(float(f.std()), 1e-6)
    from ..io import vectors_ras_to_lps

    disp = vectors_ras_to_lps(disp)
    img = sitk.GetImageFromArray(disp, isVector=True)
    img.CopyInformation(to_sitk_float(atlas.labels.with_array(np.zeros(x.shape, np.float32))))
    return sitk.DisplacementFieldTransform(img)


def warp(array: np.ndarray, grid: Volume, transform: sitk.Transform, interpolation: str = "linear") -> np.ndarray:
    """Resample ``array`` (on ``grid``) through ``transform`` (output point -> input point)."""
    from ..io import volume_to_sitk

    img = volume_to_sitk(grid.with_array(array))
    if interpolation != "nearest":
        img = sitk.Cast(img, sitk.sitkFloat32)
    interp = sitk.sitkNearestNeighbor if interpolation == "nearest" else sitk.sitkLinear
    out = sitk.Resample(img, img, transform, interp, 0.0, img.GetPixelID())
    return sitk.GetArrayFromImage(out)


def scanner(
    activity: np.ndarray, grid: Volume, brain: np.ndarray, fwhm_mm: float, noise: float, rng: Optional[np.random.Generator]
) -> np.ndarray:
    """PSF blur and Poisson-like, spatially correlated noise (SD = noise x sqrt(activity / brain mean) x brain mean)."""
    img = gaussian_array(grid, activity, fwhm_mm * FWHM_TO_SIGMA)
    if rng is not None and noise > 0:
        mean = float(img[brain].mean())
        n = gaussian_array(grid, rng.standard_normal(img.shape).astype(np.float32), 1.5)
        n /= max(float(n.std()), 1e-6)
        img = img + noise * np.sqrt(np.clip(img, 0, None) * mean) * n
    return np.clip(img, 0.0, None).astype(np.float32)


def simulate_subject(
    params: SubjectParams,
    rng: Optional[np.random.Generator] = None,
    atlas: Optional[PetAtlas] = None,
    keep_truth: bool = False,
) -> SimulatedSubject:
    """Make one subject's FDG and CFT volumes from ``params`` (``rng`` draws the noise, fields and deformation;
    ``rng=None`` gives the noise-free, undeformed images)."""
    from .sbr import sbr_from_labels

    atlas = atlas or load_atlas()
    grid = atlas.labels
    fdg_t = fdg_activity(atlas, params, rng)
    cft_t = cft_activity(atlas, params, rng)
    labels = atlas.labels.array
    if rng is not None and (params.warp_mm > 0 or np.any(np.asarray(params.affine_rot_deg) != 0)):
        tr = deformation(params, rng, atlas)
        fdg_t = warp(fdg_t, grid, tr)
        cft_t = warp(cft_t, grid, tr)
        labels = warp(labels, grid, tr, "nearest").astype(np.uint8)
    brain = np.isin(labels, range(1, 23))
    fdg = scanner(fdg_t, grid, brain, params.psf_fdg_mm, params.noise_fdg, rng) * params.scale_fdg
    cft_clean = scanner(cft_t, grid, brain, params.psf_cft_mm, 0.0, None)
    cft = scanner(cft_t, grid, brain, params.psf_cft_mm, params.noise_cft, rng) * params.scale_cft
    expected = sbr_from_labels(cft_clean, labels, "occipital")
    name = params.subject
    out = SimulatedSubject(
        fdg=Volume(fdg.astype(np.float32), grid.ijk_to_ras.copy(), f"{name}_fdg", "PET"),
        cft=Volume(cft.astype(np.float32), grid.ijk_to_ras.copy(), f"{name}_cft", "PET"),
        params=params,
        expected_sbr=expected,
    )
    if keep_truth:
        out.truth = {
            "fdg": Volume(fdg_t, grid.ijk_to_ras.copy(), f"{name}_fdg_truth", "PET"),
            "cft": Volume(cft_t, grid.ijk_to_ras.copy(), f"{name}_cft_truth", "PET"),
            "labels": Volume(labels, grid.ijk_to_ras.copy(), f"{name}_labels"),
        }
    return out


def simulated_subject(group: str, seed: int, atlas: Optional[PetAtlas] = None) -> SimulatedSubject:
    """One simulated subject drawn as the cohorts draw them: ``subject_rng(seed, 0)`` for NC, ``(seed, 1)`` for
    PD (the recipe of the demo buttons, the modules' self-tests and their tests; one place)."""
    rng = subject_rng(seed, 0 if group == "NC" else 1)
    return simulate_subject(draw_params(rng, group, f"sub-{group}"), rng, atlas or load_atlas())


@lru_cache(maxsize=2)
def example_subject(group: str, seed: int = 11, atlas: Optional[PetAtlas] = None) -> SimulatedSubject:
    """One seeded subject for demos and self-tests (subject index 0 for NC, 1 for PD). The PD subject is made
    advanced (stage 0.9, PD-pattern expression 1.5, the top of the simulated range), so a detector that works
    should flag it; an early PD drawn at random can sit inside the normal range."""
    rng = subject_rng(seed, 0 if group == "NC" else 1)
    p = draw_params(rng, group, f"sub-{group}")
    if group == "PD":
        p.stage, p.fdg_pdrp, p.link = 0.9, 1.5, "typical"
    return simulate_subject(p, rng, atlas)


def pet_template(tracer: str) -> Volume:
    """The registration template of a tracer: the mean healthy subject at 6 mm FWHM, brain mean 1 (a new copy each
    call; made once per process)."""
    tracer = tracer.upper()
    if tracer not in TRACERS:
        raise InputError(f"tracer must be one of {', '.join(TRACERS)}, got {tracer!r}")
    v = _pet_template(tracer)
    return v.with_array(v.array.copy())


@lru_cache(maxsize=2)
def _pet_template(tracer: str) -> Volume:
    atlas = load_atlas()
    sub = simulate_subject(template_params(), None, atlas)
    v = sub.fdg if tracer == "FDG" else sub.cft
    arr = v.array / float(v.array[atlas.brain].mean())
    return v.with_array(arr.astype(np.float32), name=f"{tracer.lower()}_template")


# --------------------------------------------------------------------------- cohorts
def cohort_groups(n: int, pd_fraction: float, seed: int) -> List[str]:
    n_pd = int(round(n * pd_fraction))
    groups = ["PD"] * n_pd + ["NC"] * (n - n_pd)
    order = np.random.default_rng([seed, 2**20]).permutation(n)
    return [groups[i] for i in order]


def subject_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def simulate_cohort(
    out_dir: Union[str, Path],
    subjects: int = 10,
    pd_fraction: float = 0.5,
    seed: int = 0,
    reporter: Optional[Reporter] = None,
    groups: Optional[Sequence[str]] = None,
    overwrite: bool = False,
) -> List[Path]:
    """Simulate a cohort into ``out_dir``: ``sub-NNN_fdg.nii.gz``, ``sub-NNN_cft.nii.gz`` and ``cohort.csv``.

    Everything is written to a staging folder first; files move into ``out_dir`` only when all are written,
    ``cohort.csv`` last, so a cancelled or failed run leaves no partial cohort behind. A folder that already
    holds a cohort is refused unless ``overwrite`` (then the old cohort's files are replaced). Returns the paths.
    """
    from ..io import write_volume

    from ..params import validate

    v = validate(SIMULATE_PARAMS, {"subjects": subjects, "pd_fraction": pd_fraction, "seed": seed})
    n, frac, seed = v["subjects"], v["pd_fraction"], v["seed"]
    if groups is None:
        groups = cohort_groups(n, frac, seed)
    elif len(groups) != n or any(g not in GROUPS for g in groups):
        raise InputError(f"groups must be {n} of {', '.join(GROUPS)}")
    reporter = reporter or Reporter()
    out = Path(os.fspath(out_dir))
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    old_files: List[str] = []
    if (out / "cohort.csv").exists():
        if not overwrite:
            raise InputError(f"{out} already holds a cohort (cohort.csv); choose an empty folder or overwrite it")
        old_files = [r.get(k, "") for r in read_cohort(out) for k in ("fdg_file", "cft_file")]
    atlas = load_atlas()
    stage = Path(tempfile.mkdtemp(prefix=".pet-simulate.partial-", dir=str(out)))
    try:
        rows: List[Dict[str, Any]] = []
        names: List[str] = []
        for i, group in enumerate(groups):
            name = f"sub-{i + 1:03d}"
            reporter.step(i / n, f"simulating {name} ({group})")
            rng = subject_rng(seed, i)
            params = draw_params(rng, group, name)
            params.seed = (seed, i)
            sub = simulate_subject(params, rng, atlas)
            write_volume(sub.fdg, stage / f"{name}_fdg.nii.gz")
            write_volume(sub.cft, stage / f"{name}_cft.nii.gz")
            row = sub.row()
            row.update(fdg_file=f"{name}_fdg.nii.gz", cft_file=f"{name}_cft.nii.gz", seed=seed, index=i)
            rows.append(row)
            names += [f"{name}_fdg.nii.gz", f"{name}_cft.nii.gz"]
        reporter.step(1.0, "writing cohort.csv")
        buf = _io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        (stage / "cohort.csv").write_text(buf.getvalue())
        if old_files:
            os.remove(out / "cohort.csv")  # the old cohort is no longer complete from here on
            for f in old_files:
                if f and f not in names and "/" not in f and (out / f).is_file():
                    os.remove(out / f)
        paths = []
        for f in names + ["cohort.csv"]:
            os.replace(stage / f, out / f)
            paths.append(out / f)
        return paths
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def link_statistics(n: int = 2000, seed: int = 0) -> Dict[str, Any]:
    """How FDG pattern and dopaminergic loss are tied in ``n`` drawn PD and ``n`` drawn NC parameter sets (no images):
    the link groups' fractions and, inside PD, the correlation of the pattern expression with the stage
    (Pearson on the stage's normal score; Spearman) and with the posterior-putamen loss of the more affected side."""
    from scipy.stats import norm, pearsonr, spearmanr

    pd = [draw_params(subject_rng(seed, i), "PD") for i in range(n)]
    nc = [draw_params(subject_rng(seed, n + i), "NC") for i in range(n)]
    st = np.array([p.stage for p in pd])
    e = np.array([p.fdg_pdrp for p in pd])
    loss = np.array([max(p.loss["putamen_posterior_L"], p.loss["putamen_posterior_R"]) for p in pd])
    typical = np.array([p.link == "typical" for p in pd])
    z = norm.ppf(np.clip(st, 1e-9, 1 - 1e-9))
    return {
        "n_per_group": n, "seed": seed,
        "pd_normal_fdg_fraction": round(float(np.mean([p.link == "pd_normal_fdg" for p in pd])), 3),
        "nc_abnormal_fdg_fraction": round(float(np.mean([p.link == "nc_abnormal_fdg" for p in nc])), 3),
        "pd_typical_pearson_expression_vs_stage_score": round(float(pearsonr(z[typical], e[typical])[0]), 3),
        "pd_all_spearman_expression_vs_stage": round(float(spearmanr(st, e)[0]), 3),
        "pd_all_spearman_expression_vs_posterior_putamen_loss": round(float(spearmanr(loss, e)[0]), 3),
        "fdg_side_agreement": round(float(np.mean([p.fdg_side == p.affected_side for p in pd])), 3),
        "nc_expression_mean_sd": [round(float(np.mean([p.fdg_pdrp for p in nc])), 3),
                                  round(float(np.std([p.fdg_pdrp for p in nc])), 3)],
        "pd_expression_mean_sd": [round(float(e.mean()), 3), round(float(e.std()), 3)],
    }


def read_cohort(folder: Union[str, Path]) -> List[Dict[str, str]]:
    """Rows of a simulated cohort's ``cohort.csv``."""
    path = Path(os.fspath(folder)) / "cohort.csv"
    if not path.is_file():
        raise InputError(f"no cohort.csv in {folder}: not a simulated cohort (make one with 'medsynth pet-simulate')")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


if __name__ == "__main__":  # python -m medsynth.pet.simulate: the link statistics quoted in docs/pet.md
    import json as _json

    print(_json.dumps(link_statistics(), indent=2))


__all__ = [
    "CFT_BP",
    "LINK",
    "SIMULATOR_VERSION",
    "link_statistics",
    "FDG_BASE",
    "PDRP_WEIGHTS",
    "SIMULATE_PARAMS",
    "SimulatedSubject",
    "SubjectParams",
    "cft_activity",
    "cohort_groups",
    "draw_params",
    "example_subject",
    "fdg_activity",
    "pet_template",
    "read_cohort",
    "simulate_cohort",
    "simulate_subject",
    "simulated_subject",
    "subject_rng",
    "template_params",
]

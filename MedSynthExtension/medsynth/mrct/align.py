"""Real MR/CT pairs for training (``--pairs``): CT aligned to its MR with SimpleITK before any loss.

Real pairs are never perfectly aligned (different days, positioning, breathing). Each CT is registered to its MR
once, when the pairs are loaded: an affine stage (:func:`medsynth.pet.register.register_to_template`, Mattes mutual
information, which works across modalities) then a B-spline stage (control points every ~40 mm, Mattes MI, LBFGSB);
the aligned CT is resampled on the MR's 2 mm grid. A pair whose affine stage looks implausible is skipped with a
message. Folder layout: ``<case>_mr.nii[.gz]`` with ``<case>_ct.nii[.gz]`` (CT in HU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from ..errors import InputError
from ..volume import Volume


@dataclass
class RealPair:
    name: str
    mr: np.ndarray  # normalised, 2 mm
    ct: np.ndarray  # HU / 1000, aligned to mr


def align_ct_to_mr(ct: Volume, mr: Volume, bspline_mm: float = 40.0, iterations: int = 30) -> Volume:
    """``ct`` registered (affine, then B-spline) to ``mr`` and resampled on ``mr``'s grid (-1000 HU outside)."""
    import SimpleITK as sitk

    from ..io import volume_to_sitk
    from ..pet._img import from_sitk
    from ..pet.register import register_to_template

    reg = register_to_template(ct, mr, what="the MR", check=False, min_correlation=-1.0, iterations=60)
    if reg.problem and "scales" in reg.problem or (reg.problem and "reflection" in reg.problem):
        raise InputError(f"CT '{ct.name}' could not be aligned to its MR: {reg.problem}")
    fixed = volume_to_sitk(mr.with_array(np.asarray(mr.array, np.float32)))
    moving = volume_to_sitk(ct.with_array(np.asarray(ct.array, np.float32)))
    size = [max(1, int(round(sz * sp / bspline_mm))) for sz, sp in zip(fixed.GetSize(), fixed.GetSpacing())]
    bs = sitk.BSplineTransformInitializer(fixed, size)
    composite = sitk.CompositeTransform([reg.transform, bs])
    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(32)
    r.SetMetricSamplingStrategy(r.RANDOM)
    r.SetMetricSamplingPercentage(0.05, 1)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetOptimizerAsLBFGSB(numberOfIterations=iterations)
    r.SetInitialTransform(composite, inPlace=True)
    try:
        r.Execute(fixed, moving)
    except RuntimeError:
        composite = reg.transform  # keep the affine alignment
    out = sitk.Resample(moving, fixed, composite, sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    return from_sitk(out, mr, name=f"{ct.name}_aligned")


def load_pairs(folder: os.PathLike, log: Callable[[str], None] = print) -> List[RealPair]:
    from ..io import read_volume, stem_of
    from ..resample import grid_with_spacing, resample
    from .synthesis import SPACING_MM, normalise_mr

    folder = Path(folder)
    mrs = sorted(p for p in folder.iterdir() if stem_of(p).endswith("_mr"))
    pairs: List[RealPair] = []
    for p in mrs:
        case = stem_of(p)[: -len("_mr")]
        cts = [q for q in folder.iterdir() if stem_of(q) == f"{case}_ct"]
        if not cts:
            log(f"{case}: no {case}_ct file; skipped")
            continue
        mr = read_volume(p)
        m, shape, _ = grid_with_spacing(mr, [SPACING_MM] * 3)
        mr2 = resample(mr.with_array(np.asarray(mr.array, np.float32)), m, shape, "linear")
        try:
            ct = align_ct_to_mr(read_volume(cts[0]), mr2)
        except InputError as exc:
            log(f"{case}: {exc}; skipped")
            continue
        pairs.append(RealPair(case, normalise_mr(mr2.array), np.asarray(ct.array, np.float32) / 1000.0))
        log(f"{case}: aligned CT to MR ({mr2.shape_ijk} voxels at 2 mm)")
    if not pairs:
        raise InputError(f"no usable <case>_mr / <case>_ct pairs in {folder}")
    return pairs


def draw_real(pair: RealPair, rng: np.random.Generator, patch: int):
    from .pairs import Sample

    shape = pair.mr.shape
    pad = [(0, max(0, patch - s)) for s in shape]
    mr = np.pad(pair.mr, pad)
    ct = np.pad(pair.ct, pad, constant_values=-1.0)
    lo = [int(rng.integers(0, s - patch + 1)) for s in mr.shape]
    sl = tuple(slice(a, a + patch) for a in lo)
    c = ct[sl]
    classes = np.where(c < -0.4, 0, np.where(c > 0.3, 2, 1)).astype(np.int64)
    return Sample(mr=mr[sl].astype(np.float32), ct=c.astype(np.float32), classes=classes)


__all__ = ["RealPair", "align_ct_to_mr", "draw_real", "load_pairs"]

"""Resampling helpers that keep geometry (SimpleITK underneath)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .io import LPS_TO_RAS, volume_from_sitk, volume_to_sitk
from .volume import Volume, make_ijk_to_ras

INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
    "bspline3": sitk.sitkBSpline3,
    "lanczos": sitk.sitkLanczosWindowedSinc,
}


def _interpolator(name: str) -> int:
    try:
        return INTERPOLATORS[name]
    except KeyError:
        raise InputError(f"unknown interpolation '{name}'; choose from {', '.join(INTERPOLATORS)}") from None


def resample(
    volume: Volume,
    ijk_to_ras: np.ndarray,
    shape_ijk: Sequence[int],
    interpolation: str = "linear",
    default_value: float = 0.0,
    name: Optional[str] = None,
) -> Volume:
    """Resample ``volume`` onto the grid (``ijk_to_ras``, ``shape_ijk`` = (ni, nj, nk))."""
    ref = Volume(
        array=np.zeros(tuple(int(s) for s in shape_ijk[::-1]), dtype=np.uint8), ijk_to_ras=ijk_to_ras, name="grid"
    )
    return resample_like(volume, ref, interpolation, default_value, name)


def resample_like(
    volume: Volume,
    reference: Volume,
    interpolation: str = "linear",
    default_value: float = 0.0,
    name: Optional[str] = None,
) -> Volume:
    """Resample ``volume`` onto ``reference``'s grid; the dtype is kept (float for B-spline/Lanczos)."""
    src = volume_to_sitk(volume)
    ref = volume_to_sitk(reference.with_array(np.zeros(reference.array.shape[:3], np.uint8)))
    interp = _interpolator(interpolation)
    out_type = src.GetPixelID()
    if interp not in (sitk.sitkNearestNeighbor, sitk.sitkLinear) and not volume.is_vector:
        out_type = sitk.sitkFloat32
        src = sitk.Cast(src, sitk.sitkFloat32)
    res = sitk.Resample(src, ref, sitk.Transform(), interp, float(default_value), out_type)
    out = volume_from_sitk(res, name=name or volume.name, modality=volume.modality)
    # keep the reference's matrix exactly (avoid LPS round-off)
    return Volume(out.array, reference.ijk_to_ras.copy(), out.name, out.modality)


def grid_with_spacing(volume: Volume, spacing: Sequence[float]) -> tuple:
    """A grid over the same extent with new spacing: first voxel centres coincide,
    the count along each axis is rounded so the span divides evenly, and the exact
    spacing used is returned.  Returns ``(ijk_to_ras, shape_ijk, exact_spacing)``."""
    spacing = np.asarray(spacing, dtype=float).reshape(3)
    if np.any(spacing <= 0):
        raise InputError(f"spacing must be positive, got {spacing.tolist()}")
    old_n = np.asarray(volume.shape_ijk, dtype=float)
    span = (old_n - 1) * volume.spacing
    new_n = np.where(span > 0, np.maximum(np.round(span / spacing), 1) + 1, 1).astype(int)
    exact = np.where(new_n > 1, span / np.maximum(new_n - 1, 1), spacing)
    m = make_ijk_to_ras(exact, volume.origin, volume.directions)
    return m, tuple(int(x) for x in new_n), exact


def resample_to_spacing(volume: Volume, spacing: Sequence[float], interpolation: str = "linear") -> Volume:
    """Resample to a new spacing over the same extent (see :func:`grid_with_spacing`)."""
    m, shape, _ = grid_with_spacing(volume, spacing)
    return resample(volume, m, shape, interpolation)


__all__ = ["INTERPOLATORS", "resample", "resample_like", "resample_to_spacing", "grid_with_spacing", "LPS_TO_RAS"]

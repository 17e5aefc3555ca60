"""The slice-profile model: thick slices made from a fine volume.

One model serves training and evaluation.  A thick slice of thickness ``T`` (in
voxels of the fine grid) centred at fine coordinate ``c`` is the fine signal,
taken as constant over each voxel, weighted by the slice profile:

* ``box``: uniform over ``[c - T/2, c + T/2]`` (each voxel weighted by its overlap);
* ``gaussian``: a Gaussian with full width at half maximum ``T``, integrated over each voxel.

Weights are normalised to sum to one (so a slice at the border averages what exists).
Slices are ``factor`` voxels apart with thickness = spacing (``T = factor``), the first
centred on the first fine voxel, so the first planes coincide.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .geometry import AXIS_NAMES, check_volume

PROFILES = ("box", "gaussian")
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))

_erf = np.vectorize(math.erf, otypes=[np.float64])


def profile_matrix(n_fine: int, centres: np.ndarray, thickness: float, profile: str = "box") -> np.ndarray:
    """Weights ``W[n, m]`` of fine voxel ``m`` in thick slice ``n`` (rows sum to one)."""
    if profile not in PROFILES:
        raise InputError(f"slice profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if thickness <= 0:
        raise InputError(f"slice thickness must be positive, got {thickness}")
    c = np.asarray(centres, dtype=np.float64)[:, None]
    m = np.arange(n_fine, dtype=np.float64)[None, :]
    if profile == "box":
        lo = np.maximum(m - 0.5, c - thickness / 2.0)
        hi = np.minimum(m + 0.5, c + thickness / 2.0)
        w = np.clip(hi - lo, 0.0, None)
    else:
        sigma = thickness * FWHM_TO_SIGMA
        s = sigma * math.sqrt(2.0)
        w = 0.5 * (_erf((m + 0.5 - c) / s) - _erf((m - 0.5 - c) / s))
        w[np.abs(m - c) > 4.0 * sigma + 1.0] = 0.0
    total = w.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise InputError("a thick slice lies outside the volume")
    return w / total


def slice_count(n_fine: int, factor: float) -> int:
    """How many thick slices ``factor`` apart fit from the first fine voxel to the last."""
    return int(math.floor((n_fine - 1) / factor + 1e-9)) + 1


def thick_slices(
    array: np.ndarray,
    axis: int,
    factor: float,
    profile: str = "box",
    n_slices: Optional[int] = None,
    offset: float = 0.0,
    thickness: Optional[float] = None,
) -> np.ndarray:
    """Thick slices along numpy ``axis`` of ``array``, ``factor`` fine voxels apart (float32).

    Slice ``n`` is centred at fine coordinate ``offset + n * factor``; thickness defaults to ``factor``.
    """
    if factor <= 0:
        raise InputError(f"factor must be positive, got {factor}")
    n_fine = array.shape[axis]
    if n_slices is None:
        n_slices = slice_count(n_fine - offset, factor)
    centres = offset + np.arange(n_slices) * float(factor)
    w = profile_matrix(n_fine, centres, float(thickness or factor), profile).astype(np.float32)
    moved = np.moveaxis(np.asarray(array, dtype=np.float32), axis, 0)
    out = np.tensordot(w, moved, axes=([1], [0]))
    return np.moveaxis(out, 0, axis).astype(np.float32, copy=False)


def integral_slice_count(n_fine: int, factor: float, tol: float = 1e-6) -> int:
    """The largest slice count whose span ``(n - 1) * factor`` is a whole number of fine voxels
    (so a reconstruction at the fine spacing lands on fine voxels)."""
    n = slice_count(n_fine, factor)
    while n >= 2:
        span = (n - 1) * factor
        if abs(span - round(span)) < tol:
            return n
        n -= 1
    raise InputError(f"factor {factor} gives no whole-voxel span in {n_fine} voxels")


def degrade_volume(
    volume: Volume, axis: str, factor: float, profile: str = "box", whole_span: bool = True
) -> Tuple[Volume, int]:
    """A thick-slice volume from a fine one: spacing ``factor`` x along ``axis`` (i, j or k),
    slice thickness = spacing, first plane coinciding.  Returns ``(volume, fine_span)`` where
    ``fine_span`` = index of the fine voxel under the last thick slice (its plane coincides)."""
    check_volume(volume)
    if axis not in AXIS_NAMES:
        raise InputError(f"axis must be i, j or k, got {axis!r}")
    if not factor > 1:
        raise InputError(f"factor must be > 1, got {factor}")
    a = AXIS_NAMES.index(axis)
    n_fine = volume.shape_ijk[a]
    n = integral_slice_count(n_fine, factor) if whole_span else slice_count(n_fine, factor)
    if n < 2:
        raise InputError(f"axis {axis} has {n_fine} voxels: too few for factor {factor}")
    arr = thick_slices(volume.array, 2 - a, factor, profile, n_slices=n)
    m = volume.ijk_to_ras.copy()
    m[:3, a] *= factor
    thick = Volume(arr, m, name=f"{volume.name}_thick{factor:g}{axis}", modality=volume.modality)
    return thick, int(round((n - 1) * factor))


__all__ = [
    "PROFILES",
    "degrade_volume",
    "integral_slice_count",
    "profile_matrix",
    "slice_count",
    "thick_slices",
]

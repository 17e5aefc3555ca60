"""Baselines: linear and cubic B-spline interpolation (SimpleITK) along one axis only.

Arrays here are in the *axis-first* frame: ``lr[d, a, b]`` with ``d`` the axis being
refined.  Output slices are at fractional input indices ``positions`` (uniformly
spaced, as :meth:`SuperResGrid.positions` gives); in-plane samples stay on the input's
voxels, so the other two axes are untouched (B-spline interpolation reproduces its
samples at the nodes).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..errors import InputError

#: SimpleITK interpolator of each baseline (SimpleITK is imported on use, so training runs without it)
BASELINES = {"linear": "sitkLinear", "bspline": "sitkBSpline"}
#: extra input slices on each side when a B-spline is evaluated on a slab only
BSPLINE_MARGIN = 10


def interpolate_axis(
    lr: np.ndarray,
    positions: np.ndarray,
    method: str = "bspline",
    in_plane: Optional[Tuple[int, int, int, int]] = None,
) -> np.ndarray:
    """Interpolate ``lr[d, a, b]`` at fractional slice indices ``positions`` -> ``[len(positions), a, b]`` float32.

    ``in_plane = (a0, a1, b0, b1)`` restricts the output (and the work) to a window.
    """
    import SimpleITK as sitk

    if method not in BASELINES:
        raise InputError(f"baseline must be one of {', '.join(BASELINES)}, got {method!r}")
    pos = np.asarray(positions, dtype=np.float64)
    if pos.size == 0:
        return np.zeros((0,) + lr.shape[1:], np.float32)
    a0, a1, b0, b1 = in_plane if in_plane is not None else (0, lr.shape[1], 0, lr.shape[2])
    # only the input slices that matter (B-spline: with a margin; its prefilter decays 0.27x per slice)
    margin = BSPLINE_MARGIN if method == "bspline" else 1
    d0 = max(int(np.floor(pos.min())) - margin, 0)
    d1 = min(int(np.floor(pos.max())) + margin + 2, lr.shape[0])
    block = np.ascontiguousarray(lr[d0:d1, a0:a1, b0:b1], dtype=np.float32)
    image = sitk.GetImageFromArray(block)  # x = b, y = a, z = d; spacing 1, origin 0
    step = float(pos[1] - pos[0]) if pos.size > 1 else 1.0
    size = [int(b1 - b0), int(a1 - a0), int(pos.size)]
    out = sitk.Resample(
        image,
        size,
        sitk.Transform(),
        getattr(sitk, BASELINES[method]),
        [0.0, 0.0, float(pos[0] - d0)],
        [1.0, 1.0, step],
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        0.0,
        sitk.sitkFloat32,
        True,  # nearest-neighbour extrapolation: the last plane may lie a rounding error outside
    )
    return sitk.GetArrayFromImage(out)


__all__ = ["BASELINES", "interpolate_axis"]

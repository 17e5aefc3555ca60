"""Slice super-resolution of a Volume: the entry points the faces call.

``superres(volume, spacing)`` makes the whole output; ``superres_slab(...)`` makes a few
output slices around one index (for a live preview).  Both keep the input untouched
and return a :class:`SuperResResult`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..errors import InputError
from ..progress import CancelToken, ProgressCallback, Reporter
from ..volume import Volume
from .baselines import interpolate_axis
from .data import normalization_scale
from .geometry import AXIS_NAMES, SuperResGrid, check_volume, output_grid
from .params import METHODS


@dataclass
class SuperResResult:
    volume: Volume
    grid: SuperResGrid
    method: str
    seconds: float
    provider: str = "SimpleITK"

    def describe(self) -> str:
        return f"{self.method}: {self.grid.describe()} in {self.seconds:.2f} s ({self.provider})"


def _check_method(method: str) -> str:
    method = str(method).lower()
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def _axis_first(volume: Volume, grid: SuperResGrid) -> np.ndarray:
    arr = volume.array
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    return np.moveaxis(arr, grid.array_axis, 0)


def _reconstruct(
    lr: np.ndarray,
    grid: SuperResGrid,
    method: str,
    region: Tuple[int, int, int, int, int, int],
    reporter: Reporter,
    model=None,
    norm_scale: Optional[float] = None,
    tile_voxels: Optional[int] = None,
) -> Tuple[np.ndarray, str]:
    pos = grid.positions()
    q0, q1, a0, a1, b0, b1 = region
    if method == "sainr":
        from .sainr import DEFAULT_TILE_VOXELS, load_sainr, run_sainr

        model = model if model is not None else load_sainr()
        out = run_sainr(
            lr,
            pos,
            grid.anisotropy,
            model,
            region,
            reporter,
            tile_voxels=tile_voxels or DEFAULT_TILE_VOXELS,
            norm_scale=norm_scale,
        )
        return out, model.provider
    reporter.step(0.0, f"{method} interpolation")
    out = interpolate_axis(lr, pos[q0:q1], method, (a0, a1, b0, b1))
    reporter.step(1.0, f"{method} interpolation")
    return out, "SimpleITK"


def superres(
    volume: Volume,
    spacing: float,
    axis: str = "auto",
    method: str = "sainr",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    model=None,
    tile_voxels: Optional[int] = None,
) -> SuperResResult:
    """Reduce the slice spacing of ``volume`` to ``spacing`` mm along ``axis`` with ``method``.

    The output's first and last slice planes coincide with the input's; the exact spacing
    is ``result.grid.spacing``.  Raises :class:`~medsynth.InputError` for 2D, vector or
    isotropic-with-auto inputs, a spacing not below the current one, or a missing model;
    :class:`~medsynth.Cancelled` when ``cancel`` is set (nothing is returned then).
    """
    method = _check_method(method)
    check_volume(volume)
    grid = output_grid(volume, spacing, axis)
    reporter = Reporter(progress, cancel)
    t0 = time.perf_counter()
    lr = _axis_first(volume, grid)
    region = (0, grid.n_out, 0, lr.shape[1], 0, lr.shape[2])
    norm = normalization_scale(volume.array) if method == "sainr" else None
    out, provider = _reconstruct(lr, grid, method, region, reporter, model, norm, tile_voxels)
    arr = np.moveaxis(out, 0, grid.array_axis)
    seconds = time.perf_counter() - t0
    name = f"{volume.name}_{method}_{grid.spacing:.3g}mm"
    result = Volume(np.ascontiguousarray(arr), grid.ijk_to_ras.copy(), name=name, modality=volume.modality)
    reporter.step(1.0, "done")
    return SuperResResult(result, grid, method, seconds, provider)


def superres_slab(
    volume: Volume,
    spacing: float,
    index: int,
    view_axis: str = "k",
    half_width: int = 1,
    axis: str = "auto",
    method: str = "sainr",
    model=None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> SuperResResult:
    """A slab of the output: slices ``index - half_width .. index + half_width`` of the *output*
    grid along ``view_axis`` (i, j or k), as a Volume placed where those slices lie.

    For a live preview: only the input the slab needs is processed.  Values equal the
    whole-volume result (SA-INR and linear exactly; B-spline to within its prefilter
    margin).  ``index`` is clamped to the grid; see :func:`output_index_of_ras`.
    """
    method = _check_method(method)
    check_volume(volume)
    grid = output_grid(volume, spacing, axis)
    if view_axis not in AXIS_NAMES:
        raise InputError(f"view_axis must be i, j or k, got {view_axis!r}")
    v = AXIS_NAMES.index(view_axis)
    n = grid.shape_ijk[v]
    index = int(min(max(int(index), 0), n - 1))
    lo, hi = max(0, index - int(half_width)), min(n, index + int(half_width) + 1)
    lr = _axis_first(volume, grid)
    # region in the axis-first frame: (slices along the axis, then the remaining numpy axes in order)
    bounds = [[0, grid.n_out], [0, lr.shape[1]], [0, lr.shape[2]]]
    array_v = 2 - v
    if array_v == grid.array_axis:
        bounds[0] = [lo, hi]
    else:
        rest = [ax for ax in range(3) if ax != grid.array_axis]
        bounds[1 + rest.index(array_v)] = [lo, hi]
    region = (bounds[0][0], bounds[0][1], bounds[1][0], bounds[1][1], bounds[2][0], bounds[2][1])
    reporter = Reporter(progress, cancel)
    t0 = time.perf_counter()
    norm = normalization_scale(volume.array) if method == "sainr" else None
    out, provider = _reconstruct(lr, grid, method, region, reporter, model, norm_scale=norm)
    arr = np.moveaxis(out, 0, grid.array_axis)
    seconds = time.perf_counter() - t0
    # place the block: shift the origin by the region's start (ijk order)
    start_kji = [0, 0, 0]
    start_kji[grid.array_axis] = region[0]
    rest = [ax for ax in range(3) if ax != grid.array_axis]
    start_kji[rest[0]] = region[2]
    start_kji[rest[1]] = region[4]
    start_ijk = np.array(start_kji[::-1], dtype=float)
    m = grid.ijk_to_ras.copy()
    m[:3, 3] = m[:3, :3] @ start_ijk + m[:3, 3]
    name = f"{volume.name}_{method}_slab"
    return SuperResResult(Volume(np.ascontiguousarray(arr), m, name, volume.modality), grid, method, seconds, provider)


def superres_file(
    input_path,
    output_path,
    spacing: float,
    axis: str = "auto",
    method: str = "sainr",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> SuperResResult:
    """Read, reconstruct, write (atomically): a failure or a cancel leaves no output file."""
    from ..io import read_volume, write_volume

    volume = read_volume(input_path)
    result = superres(volume, spacing, axis, method, progress, cancel)
    if cancel is not None:
        cancel.raise_if_cancelled()
    write_volume(result.volume, output_path)
    return result


def output_index_of_ras(volume: Volume, spacing: float, ras, view_axis: str = "k", axis: str = "auto") -> int:
    """The output slice index along ``view_axis`` nearest to a RAS point (e.g. the red view's offset)."""
    grid = output_grid(volume, spacing, axis)
    ijk = np.linalg.inv(grid.ijk_to_ras) @ np.append(np.asarray(ras, float), 1.0)
    v = AXIS_NAMES.index(view_axis)
    return int(min(max(round(float(ijk[v])), 0), grid.shape_ijk[v] - 1))


__all__ = ["SuperResResult", "output_index_of_ras", "superres", "superres_file", "superres_slab"]

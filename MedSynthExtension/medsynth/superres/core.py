"""Slice super-resolution of a Volume: the entry points the faces call.

* :func:`superres` makes the whole output (progress + cancel);
* :class:`SuperResPreview` makes slabs of a few output slices around an index for a live
  preview, keeping SA-INR encoder features between calls so a new spacing only re-runs
  the cheap decoder; :func:`superres_slab` is its one-shot form;
* :func:`superres_file` reads, reconstructs and writes atomically (nothing is left on
  failure or cancel).

Inputs are never modified; results are :class:`SuperResResult`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import InputError
from ..progress import CancelToken, ProgressCallback, Reporter
from ..volume import Volume
from .baselines import interpolate_axis
from .data import normalization_scale
from .geometry import AXIS_NAMES, SuperResGrid, check_volume, output_grid
from .params import METHODS

#: extra input slices encoded around a preview slab, so nearby slabs hit the cache
PREVIEW_PAD = 2


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


def _runner(volume: Volume, grid: SuperResGrid, model, encoder_voxels=None, decoder_voxels=None, gate: float = 0.0):
    from .sainr import DECODER_VOXELS, ENCODER_VOXELS, SAINRRunner, load_sainr

    model = model if model is not None else load_sainr()
    return SAINRRunner(
        _axis_first(volume, grid),
        grid.anisotropy,
        model,
        norm_scale=normalization_scale(volume.array),
        encoder_voxels=encoder_voxels or ENCODER_VOXELS,
        decoder_voxels=decoder_voxels or DECODER_VOXELS,
        gate=gate,
    )


def superres(
    volume: Volume,
    spacing: float,
    axis: str = "auto",
    method: str = "sainr",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    model=None,
    encoder_voxels: Optional[int] = None,
    decoder_voxels: Optional[int] = None,
    adapt_steps: int = 0,
    gate: float = 0.0,
) -> SuperResResult:
    """Reduce the slice spacing of ``volume`` to ``spacing`` mm along ``axis`` with ``method``.

    The output's first and last slice planes coincide with the input's; the exact spacing
    is ``result.grid.spacing``.  Raises :class:`~medsynth.InputError` for 2D, vector or
    isotropic-with-auto inputs, a spacing not below the current one, or a missing model;
    :class:`~medsynth.Cancelled` when ``cancel`` is set (nothing is returned then).
    ``encoder_voxels`` / ``decoder_voxels`` bound SA-INR's tiles (memory). ``adapt_steps`` > 0 first adapts
    SA-INR to ``volume`` (:func:`medsynth.superres.adapt.adapt_model`; needs torch and MONAI; SA-INR only).
    ``gate`` > 0 (SA-INR whose decoder window is 0, as shipped): the gradient-guided gate; pixels whose input
    neighbourhood varies by at most ``gate`` (intensity / the 99.5th percentile) take the cubic estimate alone
    (:meth:`.sainr.SAINRRunner._decode_gated`; measured in ``benchmarks/bench_superres.py``). Off by default.
    """
    method = _check_method(method)
    check_volume(volume)
    grid = output_grid(volume, spacing, axis)
    adapt_steps = int(adapt_steps or 0)
    if adapt_steps and method != "sainr":
        raise InputError(f"'adapt to this volume' fine-tunes SA-INR; it does not apply to method {method!r}")
    reporter = Reporter(progress, cancel)
    t0 = time.perf_counter()
    if method == "sainr":
        if adapt_steps:
            from .adapt import adapt_model

            model = adapt_model(volume, axis, model, steps=adapt_steps, progress=reporter.sub(0.0, 0.8).step)
            reporter = reporter.sub(0.8, 1.0)
        runner = _runner(volume, grid, model, encoder_voxels, decoder_voxels, gate)
        out = runner.run(grid.positions(), None, reporter)
        provider = runner.model.provider
    else:
        reporter.step(0.0, f"{method} interpolation")
        out = interpolate_axis(_axis_first(volume, grid), grid.positions(), method)
        provider = "SimpleITK"
    arr = np.moveaxis(out, 0, grid.array_axis)
    seconds = time.perf_counter() - t0
    name = f"{volume.name}_{method}_{grid.spacing:.3g}mm"
    result = Volume(np.ascontiguousarray(arr), grid.ijk_to_ras.copy(), name=name, modality=volume.modality)
    reporter.step(1.0, "done")
    return SuperResResult(result, grid, method, seconds, provider)


class SuperResPreview:
    """Live preview of one input volume: :meth:`slab` gives a few output slices quickly.

    Keep one per input volume (make a new one when the input changes); SA-INR encoder
    features of recent blocks are kept, so moving the spacing slider re-runs only the decoder.
    """

    def __init__(self, volume: Volume, model=None) -> None:
        check_volume(volume)
        self.volume = volume
        self.model = model
        self._runners: Dict[str, object] = {}

    def slab(
        self,
        spacing: float,
        index: int,
        view_axis: str = "k",
        half_width: int = 1,
        axis: str = "auto",
        method: str = "sainr",
        gate: float = 0.0,
    ) -> SuperResResult:
        """Output slices ``index - half_width .. index + half_width`` of the *output* grid along
        ``view_axis`` (i, j or k), as a Volume placed where they lie (``index`` is clamped); ``gate`` as in
        :func:`superres`."""
        method = _check_method(method)
        grid = output_grid(self.volume, spacing, axis)
        if view_axis not in AXIS_NAMES:
            raise InputError(f"view_axis must be i, j or k, got {view_axis!r}")
        v = AXIS_NAMES.index(view_axis)
        n = grid.shape_ijk[v]
        index = int(min(max(int(index), 0), n - 1))
        lo, hi = max(0, index - int(half_width)), min(n, index + int(half_width) + 1)
        lr = _axis_first(self.volume, grid)
        bounds = [[0, grid.n_out], [0, lr.shape[1]], [0, lr.shape[2]]]
        rest = [ax for ax in range(3) if ax != grid.array_axis]
        array_v = 2 - v
        if array_v == grid.array_axis:
            bounds[0] = [lo, hi]
        else:
            bounds[1 + rest.index(array_v)] = [lo, hi]
        region = (bounds[0][0], bounds[0][1], bounds[1][0], bounds[1][1], bounds[2][0], bounds[2][1])
        t0 = time.perf_counter()
        pos = grid.positions()
        if method == "sainr":
            runner = self._runners.get(grid.axis)
            if runner is None:
                runner = self._runners[grid.axis] = _runner(self.volume, grid, self.model)
            runner.set_gate(gate)
            out = runner.run(pos, region, cache=True, pad=PREVIEW_PAD)
            provider = runner.model.provider
        else:
            out = interpolate_axis(lr, pos[region[0] : region[1]], method, region[2:])
            provider = "SimpleITK"
        arr = np.moveaxis(out, 0, grid.array_axis)
        start_kji = [0, 0, 0]
        start_kji[grid.array_axis] = region[0]
        start_kji[rest[0]] = region[2]
        start_kji[rest[1]] = region[4]
        m = grid.ijk_to_ras.copy()
        m[:3, 3] = m[:3, :3] @ np.array(start_kji[::-1], dtype=float) + m[:3, 3]
        seconds = time.perf_counter() - t0
        vol = Volume(np.ascontiguousarray(arr), m, f"{self.volume.name}_{method}_slab", self.volume.modality)
        return SuperResResult(vol, grid, method, seconds, provider)


def superres_slab(
    volume: Volume,
    spacing: float,
    index: int,
    view_axis: str = "k",
    half_width: int = 1,
    axis: str = "auto",
    method: str = "sainr",
    model=None,
) -> SuperResResult:
    """One-shot :meth:`SuperResPreview.slab` (no features kept; use the class for a live preview).

    Values equal the whole-volume result (SA-INR and linear to float rounding; B-spline to
    within its prefilter margin)."""
    return SuperResPreview(volume, model).slab(spacing, index, view_axis, half_width, axis, method)


def superres_file(
    input_path,
    output_path,
    spacing: float,
    axis: str = "auto",
    method: str = "sainr",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    adapt_steps: int = 0,
    gate: float = 0.0,
) -> SuperResResult:
    """Read, reconstruct, write (atomically): a failure or a cancel leaves no output file. ``adapt_steps`` > 0 first
    adapts SA-INR to the input (:func:`medsynth.superres.adapt.adapt_model`; needs torch and MONAI)."""
    from ..io import WRITE_SUFFIXES, read_volume, suffix_of, write_volume

    if suffix_of(output_path) not in WRITE_SUFFIXES:  # before minutes of work
        raise InputError(f"cannot write format '{suffix_of(output_path) or output_path}'; supported: "
                         f"{', '.join(WRITE_SUFFIXES)}")
    volume = read_volume(input_path)
    result = superres(volume, spacing, axis, method, progress, cancel, adapt_steps=adapt_steps, gate=gate)
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


__all__ = [
    "PREVIEW_PAD",
    "SuperResPreview",
    "SuperResResult",
    "output_index_of_ras",
    "superres",
    "superres_file",
    "superres_slab",
]

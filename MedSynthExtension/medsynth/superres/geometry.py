"""The output grid of slice super-resolution.

Along the chosen voxel axis the output's first and last slice planes coincide with
the input's; the number of slices is rounded so that the span divides evenly, and
the exact spacing used is reported.  The other two axes are untouched (same count,
spacing, origin and directions, bit for bit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..errors import InputError
from ..volume import Volume

AXIS_NAMES = ("i", "j", "k")
#: relative tolerance under which two spacings count as equal (for ``axis="auto"``)
ISOTROPIC_RTOL = 1e-3


@dataclass(frozen=True)
class SuperResGrid:
    """Where the output lies.

    Attributes:
        axis: ``"i"``, ``"j"`` or ``"k"``.
        axis_index: 0, 1, 2 for i, j, k (column of ``ijk_to_ras``).
        array_axis: the numpy axis of a ``[k, j, i]`` array (2, 1, 0 for i, j, k).
        ijk_to_ras: 4x4 matrix of the output.
        shape_ijk: output size (ni, nj, nk).
        input_spacing: the input's spacing along the axis (mm).
        requested_spacing: what was asked (mm).
        spacing: the exact spacing used (mm): span / (n_out - 1).
        n_in, n_out: slice counts along the axis.
        in_plane_spacing: mean spacing of the two other axes (mm).
    """

    axis: str
    axis_index: int
    array_axis: int
    ijk_to_ras: np.ndarray
    shape_ijk: Tuple[int, int, int]
    input_spacing: float
    requested_spacing: float
    spacing: float
    n_in: int
    n_out: int
    in_plane_spacing: float

    @property
    def factor(self) -> float:
        """Input spacing / output spacing along the axis (> 1)."""
        return self.input_spacing / self.spacing

    @property
    def shape_kji(self) -> Tuple[int, int, int]:
        return tuple(self.shape_ijk[::-1])  # type: ignore[return-value]

    @property
    def anisotropy(self) -> float:
        """Input spacing along the axis / in-plane spacing (the model's ``scale`` input)."""
        return self.input_spacing / self.in_plane_spacing

    def positions(self) -> np.ndarray:
        """Fractional input slice index of every output slice (0 .. n_in - 1, float64)."""
        t = np.arange(self.n_out, dtype=np.float64) * (self.spacing / self.input_spacing)
        t[-1] = self.n_in - 1  # the last planes coincide exactly
        return np.clip(t, 0.0, self.n_in - 1)

    def describe(self) -> str:
        return (
            f"axis {self.axis}: {self.n_in} slices at {self.input_spacing:.4g} mm -> {self.n_out} slices at "
            f"{self.spacing:.6g} mm (asked {self.requested_spacing:.4g} mm; factor {self.factor:.4g})"
        )


def check_volume(volume: Volume) -> None:
    """Raise :class:`InputError` for inputs super-resolution cannot take (vector, 2D)."""
    if volume.is_vector:
        raise InputError(
            f"'{volume.name}' is a vector volume with {volume.components} components (for example RGB); "
            "slice super-resolution needs a scalar volume"
        )
    if min(volume.shape_ijk) < 2:
        raise InputError(
            f"'{volume.name}' is a 2D image (size {' x '.join(map(str, volume.shape_ijk))}); "
            "slice super-resolution needs a 3D volume with at least 2 slices along each axis"
        )


def choose_axis(volume: Volume, axis: str = "auto") -> str:
    """The axis name; ``auto`` picks the one with clearly the largest spacing."""
    axis = str(axis).lower()
    if axis in AXIS_NAMES:
        return axis
    if axis != "auto":
        raise InputError(f"axis must be auto, i, j or k; got {axis!r}")
    sp = volume.spacing
    order = np.argsort(sp)[::-1]
    largest, second = sp[order[0]], sp[order[1]]
    if largest <= second * (1.0 + ISOTROPIC_RTOL):
        text = " x ".join(f"{s:.4g}" for s in sp)
        kind = "isotropic" if np.ptp(sp) <= largest * ISOTROPIC_RTOL else "two equally largest"
        raise InputError(
            f"'{volume.name}' has {kind} spacing ({text} mm), so axis 'auto' cannot tell which axis holds the "
            "thick slices; choose the axis (i, j or k)"
        )
    return AXIS_NAMES[int(order[0])]


def output_grid(volume: Volume, spacing: float, axis: str = "auto") -> SuperResGrid:
    """The output grid for ``spacing`` (mm) along ``axis``; see the module docstring."""
    check_volume(volume)
    try:
        target = float(spacing)
    except (TypeError, ValueError):
        raise InputError(f"spacing must be a number of mm, got {spacing!r}") from None
    if not np.isfinite(target) or target <= 0:
        raise InputError(f"spacing must be positive, got {spacing!r}")
    name = choose_axis(volume, axis)
    a = AXIS_NAMES.index(name)
    sp = volume.spacing
    s_in = float(sp[a])
    n_in = int(volume.shape_ijk[a])
    if target >= s_in * (1.0 - 1e-6):
        raise InputError(
            f"target spacing {target:.4g} mm is not smaller than the current spacing {s_in:.4g} mm along axis "
            f"{name}; super-resolution only reduces slice spacing"
        )
    span = (n_in - 1) * s_in
    n_out = int(max(round(span / target), 1)) + 1
    exact = span / (n_out - 1)
    if exact >= s_in * (1.0 - 1e-6):
        raise InputError(
            f"target spacing {target:.4g} mm rounds to the current spacing {s_in:.4g} mm over this span "
            f"({span:.4g} mm); ask for a smaller spacing"
        )
    m = volume.ijk_to_ras.copy()
    m[:3, a] = m[:3, a] * (exact / s_in)
    shape = list(volume.shape_ijk)
    shape[a] = n_out
    others = [sp[x] for x in range(3) if x != a]
    return SuperResGrid(
        axis=name,
        axis_index=a,
        array_axis=2 - a,
        ijk_to_ras=m,
        shape_ijk=(int(shape[0]), int(shape[1]), int(shape[2])),
        input_spacing=s_in,
        requested_spacing=target,
        spacing=float(exact),
        n_in=n_in,
        n_out=n_out,
        in_plane_spacing=float(np.mean(others)),
    )


__all__ = ["AXIS_NAMES", "SuperResGrid", "check_volume", "choose_axis", "output_grid"]

"""The engine's one geometry type: a voxel array with its ijk-to-RAS matrix.

Conventions (the same as Slicer's ``arrayFromVolume``):

* ``array`` is indexed ``[k, j, i]`` for scalar volumes and ``[k, j, i, c]`` for
  vector (for example RGB) volumes.  A 2D image is a volume with one slice (k = 1).
* ``ijk_to_ras`` is the 4x4 homogeneous matrix mapping a voxel index
  ``(i, j, k, 1)`` to a physical RAS point in millimetres.  Spacing, origin and
  axis directions are all derived from it; there is no second copy of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence, Tuple

import numpy as np

from .errors import InputError


def make_ijk_to_ras(
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    directions: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Build a 4x4 ijk-to-RAS matrix.

    ``directions`` is a 3x3 matrix whose *columns* are the unit RAS directions of
    the i, j and k axes (identity when omitted).
    """
    spacing = np.asarray(spacing, dtype=float).reshape(3)
    if np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
        raise InputError(f"spacing must be positive and finite, got {spacing.tolist()}")
    d = np.eye(3) if directions is None else np.asarray(directions, dtype=float).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = d * spacing[np.newaxis, :]
    m[:3, 3] = np.asarray(origin, dtype=float).reshape(3)
    return m


@dataclass(frozen=True)
class Volume:
    """A scalar or vector volume in RAS space.

    Args:
        array: voxels, ``[k, j, i]`` or ``[k, j, i, c]``.
        ijk_to_ras: 4x4 matrix from voxel index (i, j, k) to RAS millimetres.
        name: a human-readable name (used for output node and file names).
        modality: optional tag such as ``"CT"``, ``"MR"``, ``"PET"``, ``"CXR"``.
    """

    array: np.ndarray
    ijk_to_ras: np.ndarray = field(default_factory=lambda: np.eye(4))
    name: str = "volume"
    modality: Optional[str] = None

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim == 2:
            arr = arr[np.newaxis]
        if arr.ndim not in (3, 4):
            raise InputError(
                f"volume '{self.name}' must be 3D [k,j,i] or vector [k,j,i,c]; got an array with {arr.ndim} dimensions"
            )
        if arr.size == 0:
            raise InputError(f"volume '{self.name}' is empty (shape {arr.shape})")
        m = np.asarray(self.ijk_to_ras, dtype=float)
        if m.shape != (4, 4):
            raise InputError(f"ijk_to_ras must be 4x4, got shape {m.shape}")
        if not np.all(np.isfinite(m)) or abs(np.linalg.det(m[:3, :3])) < 1e-12:
            raise InputError("ijk_to_ras must be finite and invertible")
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "ijk_to_ras", m)

    # ----- derived geometry -------------------------------------------------
    @property
    def is_vector(self) -> bool:
        return self.array.ndim == 4

    @property
    def components(self) -> int:
        return self.array.shape[3] if self.is_vector else 1

    @property
    def shape_ijk(self) -> Tuple[int, int, int]:
        """Grid size as (ni, nj, nk)."""
        k, j, i = self.array.shape[:3]
        return (i, j, k)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along i, j, k in mm."""
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def origin(self) -> np.ndarray:
        """RAS position of voxel (0, 0, 0)."""
        return self.ijk_to_ras[:3, 3].copy()

    @property
    def directions(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit RAS directions of i, j, k."""
        return self.ijk_to_ras[:3, :3] / self.spacing[np.newaxis, :]

    @property
    def ras_to_ijk(self) -> np.ndarray:
        return np.linalg.inv(self.ijk_to_ras)

    def ijk_to_ras_points(self, ijk: np.ndarray) -> np.ndarray:
        """Map Nx3 (i, j, k) indices (may be fractional) to Nx3 RAS points."""
        p = np.atleast_2d(np.asarray(ijk, dtype=float))
        return p @ self.ijk_to_ras[:3, :3].T + self.ijk_to_ras[:3, 3]

    def ras_to_ijk_points(self, ras: np.ndarray) -> np.ndarray:
        """Map Nx3 RAS points to Nx3 fractional (i, j, k) indices."""
        p = np.atleast_2d(np.asarray(ras, dtype=float))
        inv = self.ras_to_ijk
        return p @ inv[:3, :3].T + inv[:3, 3]

    def center_ras(self) -> np.ndarray:
        """RAS point at the centre of the grid."""
        ni, nj, nk = self.shape_ijk
        return self.ijk_to_ras_points([(ni - 1) / 2.0, (nj - 1) / 2.0, (nk - 1) / 2.0])[0]

    # ----- helpers ----------------------------------------------------------
    def with_array(self, array: np.ndarray, name: Optional[str] = None, **changes) -> "Volume":
        """A new volume on the same grid with other voxels (shape must match)."""
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[np.newaxis]
        if array.shape[:3] != self.array.shape[:3]:
            raise InputError(f"array shape {array.shape} does not match the grid {self.array.shape[:3]}")
        return replace(self, array=array, name=name if name is not None else self.name, **changes)

    def copy(self) -> "Volume":
        return replace(self, array=self.array.copy(), ijk_to_ras=self.ijk_to_ras.copy())

    def check_finite(self) -> "Volume":
        """Raise :class:`InputError` when any voxel is NaN or infinite."""
        if np.issubdtype(self.array.dtype, np.floating):
            bad = ~np.isfinite(self.array)
            if bad.any():
                raise InputError(
                    f"volume '{self.name}' has {int(bad.sum())} NaN/Inf voxel(s); first at [k,j,i]="
                    f"{tuple(int(x) for x in np.argwhere(bad)[0][:3])}"
                )
        return self

    def __repr__(self) -> str:  # arrays are large; keep the repr short
        sp = ", ".join(f"{s:.4g}" for s in self.spacing)
        return (
            f"Volume(name={self.name!r}, shape[k,j,i]={self.array.shape}, dtype={self.array.dtype}, "
            f"spacing=({sp}), modality={self.modality!r})"
        )

"""Overview pictures: axial, coronal and sagittal planes through a RAS point, as one PNG.

The planes are resampled in RAS (so any volume geometry shows the right way up:
anterior up in axial, superior up in coronal and sagittal, patient left on the
picture's right as radiologists read).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .io import write_volume
from .resample import resample_like
from .volume import Volume, make_ijk_to_ras

# (name, in-plane column direction, in-plane row direction (pointing down the picture), normal)
PLANES = {
    "axial": ((-1.0, 0, 0), (0, -1.0, 0)),  # columns go R->L (screen right = patient left), rows go A->P
    "coronal": ((-1.0, 0, 0), (0, 0, -1.0)),  # rows go S->I
    "sagittal": ((0, -1.0, 0), (0, 0, -1.0)),  # columns go A->P
}


def plane(
    volume: Volume,
    orientation: str,
    center_ras: Optional[Sequence[float]] = None,
    fov_mm: Optional[float] = None,
    pixels: int = 256,
    interpolation: str = "linear",
) -> np.ndarray:
    """Resample one plane through ``center_ras`` (default: the grid's centre) as a 2D array (rows, cols[, c])."""
    col, row = (np.asarray(v, float) for v in PLANES[orientation])
    normal = np.cross(col, row)
    center = np.asarray(volume.center_ras() if center_ras is None else center_ras, dtype=float)
    if fov_mm is None:
        fov_mm = float(np.max(np.asarray(volume.shape_ijk) * volume.spacing))
    step = fov_mm / pixels
    directions = np.stack([col, row, normal], axis=1)
    origin = center - directions[:, :2] @ np.array([fov_mm / 2 - step / 2] * 2)
    grid = Volume(np.zeros((1, pixels, pixels), np.uint8), make_ijk_to_ras((step, step, step), origin, directions))
    out = resample_like(volume, grid, interpolation, default_value=float(np.min(volume.array)))
    return out.array[0]


def to_uint8(image: np.ndarray, window: Optional[Sequence[float]] = None) -> np.ndarray:
    """Window (default: 1st..99.5th percentile) and scale to 0..255."""
    img = np.asarray(image, dtype=np.float64)
    if window is None:
        lo, hi = np.percentile(img, [1.0, 99.5])
    else:
        lo, hi = float(window[0]), float(window[1])
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)


def overview(
    volume: Volume,
    center_ras: Optional[Sequence[float]] = None,
    overlay: Optional[Volume] = None,
    window: Optional[Sequence[float]] = None,
    pixels: int = 256,
    fov_mm: Optional[float] = None,
) -> np.ndarray:
    """Three planes side by side as an RGB uint8 array (rows, 3*pixels, 3); ``overlay`` (a mask) in red."""
    if volume.array.shape[0] == 1:  # a 2D image: show it as it is
        grey = volume.array[0] if not volume.is_vector else volume.array[0].mean(axis=-1)
        panels = [to_uint8(grey, window)]
        masks = [overlay.array[0] > 0] if overlay is not None else [None]
    else:
        panels, masks = [], []
        for name in PLANES:
            img = plane(volume, name, center_ras, fov_mm, pixels)
            if img.ndim == 3:
                img = img.mean(axis=-1)
            panels.append(img)
            masks.append(plane(overlay, name, center_ras, fov_mm, pixels, "nearest") > 0 if overlay is not None else None)
        if window is None:
            window = np.percentile(np.concatenate([p.ravel() for p in panels]), [1.0, 99.5])
        panels = [to_uint8(p, window) for p in panels]
    rgb = []
    for img, mask in zip(panels, masks):
        c = np.repeat(img[..., None], 3, axis=-1)
        if mask is not None:
            edge = mask & ~_erode(mask)
            c[mask] = (0.6 * c[mask] + 0.4 * np.array([255, 60, 60])).astype(np.uint8)
            c[edge] = (255, 40, 40)
        rgb.append(c)
    return np.concatenate(rgb, axis=1)


def _erode(mask: np.ndarray) -> np.ndarray:
    m = mask.copy()
    m[1:] &= mask[:-1]
    m[:-1] &= mask[1:]
    m[:, 1:] &= mask[:, :-1]
    m[:, :-1] &= mask[:, 1:]
    return m


def write_png(rgb: np.ndarray, path: Path) -> Path:
    """Write an RGB (or grey) uint8 array as PNG (atomically)."""
    return write_volume(Volume(np.asarray(rgb, np.uint8)[np.newaxis], name="overview"), path)

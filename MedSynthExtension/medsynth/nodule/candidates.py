"""Where a nodule may go: lung points in CT (threshold + connectivity) and lung-field points in radiographs.

Both are heuristics on a coarse copy of the image (about 2.5 mm voxels), good enough to place synthetic
nodules for augmentation; they are not lung segmentations.

* CT: voxels below -400 HU, closed (vessels inside the lung count as lung), whose local mean lies in
  -960..-600 HU (aerated lung, not outside air), at least ``diameter / 2 + 1 mm`` from non-lung.
* Radiograph: the dark (low-attenuation) parts below the 40th percentile of the central region, the two
  largest connected parts not touching the image border, eroded by the nodule's radius.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage

from ..volume import Volume


def _strides(spacing_kji, target_mm: float = 2.5):
    return [max(1, int(round(target_mm / float(s)))) for s in spacing_kji]


def ct_lung_mask(volume: Volume, target_mm: float = 2.5):
    """(coarse lung mask, strides, coarse spacing) of a CT in HU."""
    spacing = volume.spacing[::-1]
    st = _strides(spacing, target_mm)
    arr = volume.array[:: st[0], :: st[1], :: st[2]].astype(np.float32)
    sp = spacing * np.array(st)
    lung = arr < -400
    lung = ndimage.binary_closing(lung, iterations=2, border_value=1) | lung
    lab, n = ndimage.label(lung)
    if n:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        keep = sizes >= max(50, 0.02 * sizes.max())
        lung = keep[lab]
    mean = ndimage.uniform_filter(arr, 3)
    lung &= (mean > -960) & (mean < -600)
    return lung, st, sp


class CTPlaces:
    """The lung of one CT, found once (:func:`ct_lung_mask` and its distance map); points for any nodule size."""

    def __init__(self, volume: Volume) -> None:
        self.volume = volume
        self.lung, self.strides, self.spacing = ct_lung_mask(volume)
        self.dist = ndimage.distance_transform_edt(self.lung, sampling=self.spacing) if self.lung.any() else None

    def points(self, diameter_mm: float, max_points: int = 500, seed: int = 0) -> np.ndarray:
        """Up to ``max_points`` random RAS points (N, 3) inside lung, a nodule radius away from its walls."""
        if self.dist is None:
            return np.zeros((0, 3))
        ok = np.argwhere(self.dist >= diameter_mm / 2.0 + 1.0)
        if len(ok) == 0:
            ok = np.argwhere(self.dist >= self.dist.max() * 0.8)
        rng = np.random.default_rng(seed)
        pick = ok[rng.permutation(len(ok))[:max_points]] * np.array(self.strides)
        return self.volume.ijk_to_ras_points(pick[:, ::-1].astype(float))


def ct_candidates(volume: Volume, diameter_mm: float, max_points: int = 500, seed: int = 0) -> np.ndarray:
    """Up to ``max_points`` random RAS points (N, 3) inside lung, a nodule radius away from its walls."""
    return CTPlaces(volume).points(diameter_mm, max_points, seed)


def attenuation_image(array2d: np.ndarray, photometric: str) -> np.ndarray:
    a = np.asarray(array2d, np.float32)
    return -a if photometric == "MONOCHROME1" else a


def cxr_lung_mask(volume: Volume, photometric: str = "MONOCHROME2", spacing_mm: Optional[float] = None):
    """(coarse lung-field mask, stride) of a radiograph.

    Dark (low-attenuation) parts of the image below the 40th percentile of its central region, opened, split into
    connected parts; parts touching the image border (air outside the body, letterbox padding) are dropped and
    the two largest remaining parts kept.  Without such parts: the dark central region minus its darkest 5 %.
    """
    ps = float(spacing_mm) if spacing_mm else float(volume.spacing[0])
    stride = max(1, int(round(2.5 / ps))) if spacing_mm else max(1, volume.array.shape[2] // 256)
    a = attenuation_image(volume.array[0, ::stride, ::stride], photometric)
    a = ndimage.gaussian_filter(a, 1.5)
    nj, ni = a.shape
    central = np.zeros_like(a, bool)
    central[int(0.15 * nj) : int(0.85 * nj), int(0.1 * ni) : int(0.9 * ni)] = True
    lo, thr = np.percentile(a[central], [5.0, 40.0])
    dark = ndimage.binary_opening(a <= thr, iterations=2)
    lab, n = ndimage.label(dark)
    lung = np.zeros_like(dark)
    if n:
        border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        sizes = np.bincount(lab.ravel()).astype(float)
        sizes[0] = 0
        sizes[border] = 0
        keep = np.argsort(-sizes)[:2]
        keep = keep[sizes[keep] > 0.01 * a.size]
        lung = np.isin(lab, keep)
    if not lung.any():
        lung = dark & central & (a > lo)
    return lung & central, stride


class CXRPlaces:
    """The lung fields of one radiograph, found once (:func:`cxr_lung_mask` and its distance map in mm); points
    for any nodule size."""

    def __init__(self, volume: Volume, pixel_spacing_mm: float, photometric: str = "MONOCHROME2") -> None:
        self.volume = volume
        self.lung, self.stride = cxr_lung_mask(volume, photometric, pixel_spacing_mm)
        self.dist = (ndimage.distance_transform_edt(self.lung) * self.stride * pixel_spacing_mm
                     if self.lung.any() else None)

    def points(self, diameter_mm: float, max_points: int = 500, seed: int = 0) -> np.ndarray:
        """Up to ``max_points`` random RAS points (z = the image plane) inside the lung fields."""
        rng = np.random.default_rng(seed)
        if self.dist is not None:
            ok = np.argwhere(self.dist >= diameter_mm / 2.0 + 2.0)
            if len(ok) == 0:
                ok = np.argwhere(self.lung)
        else:  # fall back to the central region
            nj, ni = self.lung.shape
            jj, ii = np.mgrid[int(0.3 * nj) : int(0.7 * nj), int(0.2 * ni) : int(0.8 * ni)]
            ok = np.stack([jj.ravel(), ii.ravel()], axis=1)
        pick = ok[rng.permutation(len(ok))[:max_points]] * self.stride
        ijk = np.stack([pick[:, 1], pick[:, 0], np.zeros(len(pick))], axis=1).astype(float)
        return self.volume.ijk_to_ras_points(ijk)


def cxr_candidates(volume: Volume, diameter_mm: float, pixel_spacing_mm: float, photometric: str = "MONOCHROME2",
                   max_points: int = 500, seed: int = 0) -> np.ndarray:
    """Up to ``max_points`` random RAS points (z = the image plane) inside the lung fields."""
    return CXRPlaces(volume, pixel_spacing_mm, photometric).points(diameter_mm, max_points, seed)

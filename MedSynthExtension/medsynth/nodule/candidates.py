"""Where a nodule may go: lung points in CT (threshold + connectivity) and lung-field points in radiographs.

Both are heuristics on a coarse copy of the image (about 2.5 mm voxels), good enough to place synthetic
nodules for augmentation; they are not lung segmentations.

* CT: voxels below -400 HU, closed (vessels inside the lung count as lung), whose local mean lies in
  -960..-600 HU (aerated lung, not outside air), at least ``diameter / 2 + 1 mm`` from non-lung.
* Radiograph: the dark (low-attenuation) parts below the 40th percentile of the central region, the two
  largest connected parts not touching the image border, eroded by the nodule's radius.

The same estimates answer two questions for every face (Slicer panel, studio, command line):
:func:`suggest_lung_point` (a point for a nodule of a given size) and :func:`check_lung_point` (does a point lie in
the lung fields; if not, how far from them and where, as a :class:`LungCheck`).  A point counts as inside up to
:data:`LUNG_MARGIN_MM` outside the estimated mask (the masks are coarse and stop short of the lung's edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..volume import Volume

#: how far (mm) outside the estimated lung mask a point still counts as in the lung: CT masks stop about one coarse
#: voxel short of the walls; radiograph lung fields are the darkest parts only (their rim, the apices and the
#: parts behind the heart are brighter)
LUNG_MARGIN_MM = {"ct": 5.0, "cxr": 12.0}


@dataclass(frozen=True)
class LungCheck:
    """Whether a point lies in the estimated lung (CT) or lung fields (radiograph) of an image.

    ``inside``: True / False, or None when no lung was found (nothing to say); ``distance_mm``: from the estimated
    lung mask (0 inside it; None when no lung was found); ``reason``: the answer in words.
    """

    inside: Optional[bool]
    distance_mm: Optional[float]
    reason: str

    @property
    def warning(self) -> Optional[str]:
        """The warning a nodule placed there carries (None unless the point is outside the lung fields)."""
        if self.inside is False:
            return f"the nodule centre lies outside the lung fields: {self.reason}"
        return None

    def to_dict(self) -> Dict[str, Any]:
        return {"inside": self.inside, "distance_mm": self.distance_mm, "reason": self.reason}


def _edge(mask: np.ndarray) -> np.ndarray:
    """Indices (N, ndim) of the mask's boundary voxels (the nearest mask voxel of any outside point is one)."""
    return np.argwhere(mask & ~ndimage.binary_erosion(mask, border_value=0))


def _distance_mm(mask: np.ndarray, edge: np.ndarray, idx, step_mm) -> float:
    """Distance (mm) from voxel ``idx`` of the coarse grid to the nearest voxel of ``mask`` (0 inside it)."""
    if mask[idx]:
        return 0.0
    d = (edge - np.asarray(idx)) * np.asarray(step_mm, float)
    return float(np.sqrt(np.min(np.einsum("ij,ij->i", d, d))))


def _inside(kind: str, distance_mm: float, where: str) -> LungCheck:
    if distance_mm <= LUNG_MARGIN_MM[kind]:
        if distance_mm >= 1.0:
            return LungCheck(True, round(float(distance_mm), 1),
                             f"at the edge of the estimated {where} ({distance_mm:.0f} mm outside it)")
        return LungCheck(True, 0.0, f"inside the estimated {where}")
    return LungCheck(False, round(float(distance_mm), 1), f"{distance_mm:.0f} mm from the estimated {where}")


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
    """The lung of one CT, found once (:func:`ct_lung_mask` and its distance map); points for any nodule size,
    :meth:`suggest` one, :meth:`check` a point."""

    kind = "ct"
    _MIDDLE_SEED = 1  # the candidates the first suggestion is chosen from (as the demo and the sheet always did)

    def __init__(self, volume: Volume) -> None:
        self.volume = volume
        self.lung, self.strides, self.spacing = ct_lung_mask(volume)
        self.dist = ndimage.distance_transform_edt(self.lung, sampling=self.spacing) if self.lung.any() else None
        self._edge: Optional[np.ndarray] = None
        self._bounds: Optional[np.ndarray] = None

    def _middle(self) -> np.ndarray:
        return self.volume.center_ras()

    def suggest(self, diameter_mm: float, seed: int = 0) -> Optional[np.ndarray]:
        """A RAS point for a nodule of this size: seed 0 the lung point nearest the middle of the image, other seeds
        a random one; None when no lung was found."""
        return _suggest(self, diameter_mm, seed)

    def check(self, ras: Sequence[float]) -> LungCheck:
        """Whether ``ras`` lies in the estimated lung (within :data:`LUNG_MARGIN_MM`), and if not where it lies."""
        if self.dist is None:
            return LungCheck(None, None, "no lung found in the image (no aerated region below -400 HU)")
        ras = np.asarray(ras, float).ravel()
        kji = self.volume.ras_to_ijk_points(ras)[0][::-1] / np.array(self.strides)
        idx = tuple(min(max(int(round(v)), 0), n - 1) for v, n in zip(kji, self.lung.shape))
        if self._edge is None and not self.lung[idx]:
            self._edge = _edge(self.lung)
        got = _inside("ct", _distance_mm(self.lung, self._edge, idx, self.spacing), "lung mask")
        if got.inside:
            return got
        return LungCheck(False, got.distance_mm, f"{got.reason}, {self._where(ras)}")

    def _where(self, ras: np.ndarray) -> str:
        """Where a point outside the lungs lies, from the RAS extent of the lung mask."""
        if self._bounds is None:
            idx = self._edge[:: max(1, len(self._edge) // 20000)] * np.array(self.strides)
            pts = self.volume.ijk_to_ras_points(idx[:, ::-1].astype(float))
            self._bounds = np.stack([pts.min(axis=0), pts.max(axis=0)])
        lo, hi = self._bounds
        above, below = ras[2] > hi[2], ras[2] < lo[2]
        beside = ras[0] < lo[0] or ras[0] > hi[0]
        span = hi[0] - lo[0]
        outer = ras[0] < lo[0] + 0.3 * span or ras[0] > hi[0] - 0.3 * span
        if above and (beside or outer):
            return "above and beside the lungs (on the shoulder?)"
        if above:
            return "above the lungs (in the neck?)"
        if below:
            return "below the lungs (in the abdomen?)"
        if beside:
            return "beside the lungs (in the chest wall or the arm?)"
        if ras[1] < lo[1] or ras[1] > hi[1]:
            return "in front of or behind the lungs (in the chest wall?)"
        return "between or around the lungs (in the mediastinum, the heart or the chest wall?)"

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
    for any nodule size, :meth:`suggest` one, :meth:`check` a point (rows of the image run from head to feet)."""

    kind = "cxr"
    _MIDDLE_SEED = 2

    def __init__(self, volume: Volume, pixel_spacing_mm: float, photometric: str = "MONOCHROME2") -> None:
        self.volume = volume
        self.pixel_mm = float(pixel_spacing_mm)
        self.lung, self.stride = cxr_lung_mask(volume, photometric, pixel_spacing_mm)
        self.dist = (ndimage.distance_transform_edt(self.lung) * self.stride * pixel_spacing_mm
                     if self.lung.any() else None)
        self._edge: Optional[np.ndarray] = None

    def _middle(self) -> np.ndarray:
        """The middle of the right lung field (the image's left half, as a radiograph is viewed)."""
        nj, ni = self.volume.array.shape[1:]
        return self.volume.ijk_to_ras_points([0.3 * ni, 0.45 * nj, 0])[0]

    def suggest(self, diameter_mm: float, seed: int = 0) -> Optional[np.ndarray]:
        """A RAS point (z = the image plane) for a nodule of this size: seed 0 the lung-field point nearest the
        middle of the right lung field, other seeds a random one; None when no lung field was found."""
        if self.dist is None:
            return None
        return _suggest(self, diameter_mm, seed)

    def check(self, ras: Sequence[float]) -> LungCheck:
        """Whether ``ras`` (z ignored) lies in the estimated lung fields (within :data:`LUNG_MARGIN_MM`), and if
        not where it lies."""
        if self.dist is None:
            return LungCheck(None, None, "no lung fields found in the image")
        ijk = self.volume.ras_to_ijk_points(np.asarray(ras, float).ravel())[0]
        rc = (ijk[1] / self.stride, ijk[0] / self.stride)
        idx = tuple(min(max(int(round(v)), 0), n - 1) for v, n in zip(rc, self.lung.shape))
        if self._edge is None and not self.lung[idx]:
            self._edge = _edge(self.lung)
        got = _inside("cxr", _distance_mm(self.lung, self._edge, idx, self.stride * self.pixel_mm), "lung fields")
        if got.inside:
            return got
        return LungCheck(False, got.distance_mm, f"{got.reason}, {self._where(*rc)}")

    def _where(self, r: float, c: float) -> str:
        rows = np.nonzero(self.lung.any(axis=1))[0]
        cols = np.nonzero(self.lung.any(axis=0))[0]
        top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
        span = right - left
        beside = c < left or c > right
        outer = c < left + 0.3 * span or c > right - 0.3 * span
        if r < top and (beside or outer):
            return "above and beside them (on the shoulder?)"
        if r < top:
            return "above them (in the neck?)"
        if r > bottom:
            return "below them (below the diaphragm?)"
        if beside:
            return "beside them (over the chest wall or outside the body?)"
        return "between them (over the mediastinum or the heart?)"

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


def _suggest(places, diameter_mm: float, seed: int) -> Optional[np.ndarray]:
    if int(seed) == 0:
        pts = places.points(diameter_mm, max_points=300, seed=places._MIDDLE_SEED)
        if len(pts) == 0:
            return None
        return pts[int(np.argmin(np.linalg.norm(pts - places._middle(), axis=1)))]
    pts = places.points(diameter_mm, max_points=1, seed=int(seed))
    return pts[0] if len(pts) else None


def lung_places(volume: Volume, photometric: str = "MONOCHROME2",
                pixel_spacing_mm: Optional[Sequence[float]] = None):
    """The lung of a CT (:class:`CTPlaces`) or the lung fields of a radiograph (:class:`CXRPlaces`), found once.

    Radiographs: ``photometric`` of the array and ``pixel_spacing_mm`` (row [column]) as for
    :func:`.insertion.insert_cxr` (default: the image's, else assumed from its width)."""
    from .insertion import CTContext, CXRContext, _check_scalar, is_radiograph

    _check_scalar(volume)
    if is_radiograph(volume):
        return CXRContext(volume, photometric, pixel_spacing_mm).lung_places
    return CTContext(volume).lung_places


def suggest_lung_point(volume: Volume, diameter_mm: float = 10.0, photometric: str = "MONOCHROME2",
                       pixel_spacing_mm: Optional[Sequence[float]] = None, seed: int = 0, places=None) -> np.ndarray:
    """A RAS point inside the lung (CT) or lung fields (radiograph; z = the image plane) where a nodule of
    ``diameter_mm`` fits: seed 0 the one nearest the middle of the image (CT) or of the right lung field
    (radiograph), other seeds random ones.  ``places``: a :func:`lung_places` already found (reused).
    InputError when no lung is found."""
    places = places if places is not None else lung_places(volume, photometric, pixel_spacing_mm)
    point = places.suggest(float(diameter_mm), int(seed))
    if point is None:
        raise InputError(f"no lung found in '{volume.name}' for a {float(diameter_mm):g} mm nodule: place the "
                         "centre yourself")
    return np.asarray(point, float)


def check_lung_point(volume: Volume, ras: Sequence[float], photometric: str = "MONOCHROME2",
                     pixel_spacing_mm: Optional[Sequence[float]] = None, places=None) -> LungCheck:
    """Whether the RAS point lies in the estimated lung (CT) or lung fields (radiograph; z ignored), with the reason:
    a :class:`LungCheck` (its ``warning`` is what a nodule placed there carries)."""
    places = places if places is not None else lung_places(volume, photometric, pixel_spacing_mm)
    return places.check(ras)

"""Radiograph hosts for detector work: patient keys, the detector's working canvas and synthetic training samples.

* :func:`patient_key` / :func:`split_by_patient`: images of one person stay on one side of a split
  (``COVID-00003a`` and ``COVID-00003b`` are one patient; NIH ``00000001_000`` is patient ``00000001``).
* :class:`Canvas`: the detector sees every radiograph the same way: attenuation sense (MONOCHROME1 flipped),
  resampled to about :data:`WORK_MM` mm pixels (smaller when the image would not fit), placed at the top left of
  a :data:`CANVAS` x :data:`CANVAS` array, intensities scaled by the central region's 1st-99th percentiles.
  ``to_native`` maps canvas boxes back to the image's pixels.
* :func:`synthetic_sample`: a canvas with random nodules inserted by the project's own radiograph insertion
  (Beer-Lambert log domain, shape model, texture) at lung-field points, and their boxes from the masks.

numpy + scipy only (training itself is in :mod:`.train_detector`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..volume import Volume, make_ijk_to_ras

CANVAS = 448  # detector input size (pixels, square)
WORK_MM = 1.0  # detector pixel size when the image fits the canvas


def patient_key(path: Path) -> str:
    """The person an image belongs to, from its file name (trailing view letters and NIH follow-up numbers dropped)."""
    stem = Path(path).name.split(".")[0]
    m = re.fullmatch(r"(\d{8})_\d{3}", stem)  # NIH ChestX-ray14: patient_followup
    if m:
        return m.group(1)
    return re.sub(r"[a-z]+$", "", stem) or stem


def split_by_patient(paths: Sequence[Path], test_fraction: float, seed: int) -> Tuple[List[Path], List[Path]]:
    """(train, test) with every patient's images on one side; the same seed gives the same split."""
    keys = sorted({patient_key(p) for p in paths})
    rng = np.random.default_rng(seed)
    order = [keys[i] for i in rng.permutation(len(keys))]
    n_test = max(1, int(round(test_fraction * len(keys))))
    test_keys = set(order[:n_test])
    train = [p for p in paths if patient_key(p) not in test_keys]
    test = [p for p in paths if patient_key(p) in test_keys]
    return train, test


def _shrink(a: np.ndarray, z: float) -> np.ndarray:
    """``a`` resampled by factor ``z`` <= 1 with anti-aliasing (block mean, then linear)."""
    block = int(np.floor(1.0 / z)) if z < 1 else 1
    if block > 1:
        nj, ni = (a.shape[0] // block) * block, (a.shape[1] // block) * block
        a = a[:nj, :ni].reshape(nj // block, block, ni // block, block).mean(axis=(1, 3))
        z = z * block
    if abs(z - 1.0) > 1e-3:
        if z < 1:
            a = ndimage.gaussian_filter(a, 0.5 * (1.0 / z - 1.0) + 1e-3)
        a = ndimage.zoom(a, z, order=1)
    return a


@dataclass
class Canvas:
    """A radiograph as the detector sees it.

    ``image``: float32 [CANVAS, CANVAS]; ``zoom``: canvas pixels per native pixel (same on both axes);
    ``shape``: the part of the canvas the image covers (rows, columns); ``pixel_mm``: canvas pixel size in mm;
    ``native_shape``: the radiograph's (rows, columns).
    """

    image: np.ndarray
    zoom: Tuple[float, float]
    shape: Tuple[int, int]
    pixel_mm: float
    native_shape: Tuple[int, int]

    def to_native(self, box_ji: Sequence[float]) -> Tuple[float, float, float, float]:
        """Canvas box (j0, i0, j1, i1) -> native (i0, j0, i1, j1) (the engine's Detection order)."""
        j0, i0, j1, i1 = box_ji
        zj, zi = self.zoom
        return (i0 / zi, j0 / zj, i1 / zi, j1 / zj)

    def to_canvas(self, box_ij: Sequence[float]) -> Tuple[float, float, float, float]:
        """Native (i0, j0, i1, j1) -> canvas (j0, i0, j1, i1)."""
        i0, j0, i1, j1 = box_ij
        zj, zi = self.zoom
        return (j0 * zj, i0 * zi, j1 * zj, i1 * zi)

    def volume(self) -> Volume:
        """The covered part of the canvas as a one-slice volume with its pixel size (for nodule insertion)."""
        h, w = self.shape
        return Volume(self.image[None, :h, :w].copy(), make_ijk_to_ras((self.pixel_mm, self.pixel_mm, 1.0)), "canvas")


def normalise(attenuation: np.ndarray) -> np.ndarray:
    """Attenuation-sense image -> float32 scaled so that the central region's 1st..99th percentiles span 0..1."""
    a = np.asarray(attenuation, np.float32)
    nj, ni = a.shape
    c = a[nj // 6 : nj - nj // 6 or None, ni // 6 : ni - ni // 6 or None]
    step = max(1, c.size // 200_000)
    lo, hi = np.percentile(c.reshape(-1)[::step], [1.0, 99.0])
    if not hi > lo:
        raise InputError("the radiograph is flat (no contrast in its central region)")
    return np.clip((a - lo) / (hi - lo), -0.5, 1.5).astype(np.float32)


def make_canvas(array2d: np.ndarray, pixel_mm: float, photometric: str = "MONOCHROME2") -> Canvas:
    """The detector's view of a radiograph (``array2d`` [rows, columns] as stored, ``pixel_mm`` its pixel size)."""
    a = np.asarray(array2d, np.float32)
    if a.ndim != 2 or min(a.shape) < 16:
        raise InputError(f"a radiograph must be a 2D image of at least 16 x 16 pixels, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError("the radiograph has NaN or infinite pixels")
    if not (np.isfinite(pixel_mm) and pixel_mm > 0):
        raise InputError(f"pixel spacing must be positive, got {pixel_mm}")
    if photometric == "MONOCHROME1":
        a = -a
    z = float(pixel_mm) / WORK_MM
    z = min(z, CANVAS / max(a.shape))
    small = _shrink(a, z) if z < 1 else ndimage.zoom(a, z, order=1)
    small = small[:CANVAS, :CANVAS]
    h, w = small.shape
    img = np.zeros((CANVAS, CANVAS), np.float32)
    img[:h, :w] = normalise(small)
    zoom = (h / a.shape[0], w / a.shape[1])
    return Canvas(img, zoom, (h, w), float(pixel_mm) / float(np.mean(zoom)), tuple(a.shape))


LOCAL_SIGMA_MM = 16.0


def detector_input(image: np.ndarray, shape: Tuple[int, int], pixel_mm: float = WORK_MM) -> np.ndarray:
    """The detector's two input channels [2, CANVAS, CANVAS] from a canvas array: the canvas itself and a local
    contrast map (the image minus its Gaussian mean over ~16 mm, divided by the local standard deviation, /4),
    which shows a blob against ribs, heart and diaphragm the same way; zero outside the covered ``shape``."""
    a = np.asarray(image, np.float32)
    h, w = shape
    s = LOCAL_SIGMA_MM / pixel_mm
    part = a[:h, :w]
    mean = ndimage.gaussian_filter(part, s, mode="reflect")
    dev = part - mean
    sd = np.sqrt(ndimage.gaussian_filter(dev * dev, s, mode="reflect")) + 0.02
    out = np.zeros((2,) + a.shape, np.float32)
    out[0] = a
    out[1, :h, :w] = np.clip(dev / sd, -4.0, 4.0) / 4.0
    return out


def host_canvas(path: Path, pixel_mm: Optional[float] = None) -> Canvas:
    """Read a radiograph file (DICOM/PNG/JPEG/...) and make its canvas; spacing from the file, ``pixel_mm`` or the
    width assumption of the insertion code (370 mm)."""
    from .images import host_pixel_mm, read_host
    from .insertion import DEFAULT_CXR_WIDTH_MM

    host = read_host(path)
    if host.kind != "cxr":
        raise InputError(f"{path} is a 3D volume; the radiograph detector takes 2D radiographs")
    ps = host_pixel_mm(host, pixel_mm, DEFAULT_CXR_WIDTH_MM)
    return make_canvas(host.volume.array[0], ps, host.photometric)


# --------------------------------------------------------------------------- synthetic training samples
@dataclass
class SampleNodule:
    spec: Dict
    box_ji: Tuple[float, float, float, float]  # canvas (j0, i0, j1, i1), exclusive ends
    center_ji: Tuple[float, float]


def lung_points(canvas: Canvas, diameter_mm: float, seed: int, max_points: int = 400) -> np.ndarray:
    """Lung-field points (j, i) of a canvas where a nodule of this size fits (see :mod:`.candidates`)."""
    from .candidates import cxr_candidates

    vol = canvas.volume()
    ras = cxr_candidates(vol, diameter_mm, canvas.pixel_mm, "MONOCHROME2", max_points=max_points, seed=seed)
    ijk = vol.ras_to_ijk_points(ras) if len(ras) else np.zeros((0, 3))
    return np.stack([ijk[:, 1], ijk[:, 0]], axis=1) if len(ijk) else np.zeros((0, 2))


def insert_on_canvas(canvas: Canvas, image: np.ndarray, center_ji: Sequence[float], spec, model=None,
                     gain_factor: float = 1.0) -> Tuple[np.ndarray, Optional[Tuple[float, float, float, float]]]:
    """``image`` (a canvas array) with one nodule added at ``center_ji``; returns (new image, canvas box or None).
    ``gain_factor`` scales the estimated log gain (1 = the insertion's physics; > 1 more conspicuous)."""
    from .insertion import CXRContext, insert_cxr_region

    h, w = canvas.shape
    vol = Volume(image[None, :h, :w], make_ijk_to_ras((canvas.pixel_mm, canvas.pixel_mm, 1.0)), "canvas")
    ctx = CXRContext(vol, "MONOCHROME2", canvas.pixel_mm)
    ctx.log_gain *= float(gain_factor)
    ras = vol.ijk_to_ras_points([[center_ji[1], center_ji[0], 0.0]])[0]
    res = insert_cxr_region(vol, ras, spec, model=model, context=ctx)
    out = image.copy()
    sl = res.roi[1:]
    out[sl] = res.values[0]
    idx = np.argwhere(res.mask[0])
    if len(idx) == 0:
        return out, None
    lo = idx.min(axis=0) + [s.start for s in sl]
    hi = idx.max(axis=0) + [s.start for s in sl] + 1
    return out, (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


#: attribute distribution of the synthetic nodules for training and for the held-out benchmarks: diameter
#: log-uniform 6-30 mm; texture solid / part-solid / ground-glass with these probabilities (pure ground glass is
#: all but invisible on a radiograph below 15 mm, and labels of invisible nodules only teach the prior); solid
#: fraction of part-solid 0.2-0.8; sliders N(0, 1) clipped at +-2; a random shape seed
DIAMETER_MM = (6.0, 30.0)
TEXTURE_P = {"solid": 0.6, "part-solid": 0.25, "ggo": 0.15}


def random_spec(rng: np.random.Generator, diameter_mm: Tuple[float, float] = DIAMETER_MM,
                texture_p: Optional[Dict[str, float]] = None):
    """Random nodule attributes from the distribution above."""
    from .params import NoduleSpec

    tp = texture_p or TEXTURE_P
    lo, hi = diameter_mm
    names = list(tp)
    p = np.array([tp[n] for n in names], float)
    return NoduleSpec(
        diameter_mm=round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), 1),
        texture=str(names[int(rng.choice(len(names), p=p / p.sum()))]),
        solid_fraction=round(float(rng.uniform(0.2, 0.8)), 2),
        sphericity=round(float(np.clip(rng.normal(0, 1), -2, 2)), 2),
        lobulation=round(float(np.clip(rng.normal(0, 1), -2, 2)), 2),
        spiculation=round(float(np.clip(rng.normal(0, 1), -2, 2)), 2),
        seed=int(rng.integers(0, 1_000_000)),
    )


def synthetic_sample(canvas: Canvas, rng: np.random.Generator, max_nodules: int = 3, p_empty: float = 0.15,
                     specs: Optional[Sequence] = None, model=None, gain_range: Tuple[float, float] = (1.0, 1.0)
                     ) -> Tuple[np.ndarray, List[SampleNodule]]:
    """A canvas with 0..``max_nodules`` random nodules (or the given ``specs``) at lung points, not overlapping;
    each nodule's log gain scaled by a factor drawn from ``gain_range``."""
    img = canvas.image.copy()
    if specs is None:
        n = 0 if rng.random() < p_empty else int(rng.integers(1, max_nodules + 1))
        specs = [random_spec(rng) for _ in range(n)]
    placed: List[SampleNodule] = []
    for spec in specs:
        pts = lung_points(canvas, spec.diameter_mm, int(rng.integers(1 << 30)), max_points=60)
        if len(pts) == 0:
            continue
        for c in pts[rng.permutation(len(pts))[:10]]:
            r = spec.diameter_mm / canvas.pixel_mm
            if all(np.hypot(*(np.asarray(c) - p.center_ji)) > 0.5 * r + 0.5 * (p.box_ji[2] - p.box_ji[0]) + 2
                   for p in placed):
                g = float(rng.uniform(*gain_range)) if gain_range[1] > gain_range[0] else float(gain_range[0])
                img, box = insert_on_canvas(canvas, img, c, spec, model, g)
                if box is not None:
                    placed.append(SampleNodule(spec.to_dict(), box, (float(c[0]), float(c[1]))))
                break
    return img, placed

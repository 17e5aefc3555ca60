"""Nodule attenuation on CT: solid, part-solid and ground-glass, blended through partial volume (numpy + scipy).

Model (per voxel of the region): ``alpha`` = share of the voxel whose content is replaced by tissue,
``alpha = core + a_ggo * (frac - core)`` with ``frac`` the nodule occupancy (partial volume at the
boundary), ``core`` the solid-core occupancy and ``a_ggo = (ggo_hu - lung_hu) / (solid_hu - lung_hu)``.
Ground glass is partial filling of the air spaces: the host voxel keeps ``1 - alpha`` of its own value,
so vessels crossing a ground-glass nodule stay visible (as in the Fleischner definition of ground-glass
opacity) while a solid part (alpha = 1) replaces them.

    out = host + alpha * (solid_hu + heterogeneity - host) + noise * sigma * sqrt(1 - (1 - alpha)^2)

``sigma`` is the host's own noise (robust MAD of a 3x3x3 high-pass over lung voxels near the point),
and the synthetic noise is scaled to give the same high-pass MAD, so the nodule's inside is as noisy as
its surroundings (the host noise left inside is scaled by 1 - alpha; the added part makes up the rest).

Default attenuations (literature ranges; the defaults are mid-range choices):
* solid nodules / soft tissue: about 0..+60 HU unenhanced (default +30 HU);
* pure ground-glass nodules: mean about -750..-300 HU (default -550 HU), e.g. mean -600 HU-ish
  reported for pure GGNs in lung adenocarcinoma series;
* aerated lung parenchyma: about -900..-800 HU (used when the region has no lung voxels: -850 HU).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

LUNG_HU_DEFAULT = -850.0
LUNG_THRESHOLD_HU = -500.0
NOISE_CORRELATION_VOXELS = 0.6
HETEROGENEITY_HU = 8.0


def highpass(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr, np.float32)
    return a - ndimage.uniform_filter(a, size=3, mode="nearest")


def robust_sigma(values: np.ndarray) -> float:
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def host_statistics(host: np.ndarray, center_kji: Sequence[float], radius_vox: Sequence[int]) -> Dict[str, float]:
    """Local lung background (median HU of lung voxels) and noise (high-pass MAD) around a point."""
    c = [int(round(float(x))) for x in center_kji]
    sl = tuple(
        slice(max(0, c[a] - int(radius_vox[a])), min(host.shape[a], c[a] + int(radius_vox[a]) + 1)) for a in range(3)
    )
    win = np.asarray(host[sl], np.float32)
    lung = win < LUNG_THRESHOLD_HU
    if win.ndim == 3 and min(win.shape) >= 3:
        hp = highpass(win)
        inner = ndimage.binary_erosion(lung, iterations=1) if lung.any() else lung
        noise = robust_sigma(hp[inner]) if inner.sum() >= 50 else robust_sigma(hp)
    else:
        noise = 0.0
    lung_hu = float(np.median(win[lung])) if lung.sum() >= 20 else LUNG_HU_DEFAULT
    return {
        "lung_hu": lung_hu,
        "noise_hp_mad": float(noise),
        "lung_fraction": float(lung.mean()) if lung.size else 0.0,
    }


class NoiseBank:
    """Unit noise and heterogeneity fields per (seed, spacing), centred on the nodule, cached and grown on demand.

    A region is cut out relative to the nodule's centre voxel, so the noise stays attached to the nodule
    when its size changes (and no new field is made while the region fits).
    """

    def __init__(self, size: int = 6) -> None:
        self._cache: "OrderedDict[Tuple, Tuple[np.ndarray, np.ndarray, float, np.ndarray]]" = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def _field(self, seed: int, spacing: Sequence[float], half: np.ndarray):
        key = (int(seed), tuple(round(float(s), 4) for s in spacing))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and np.all(hit[3] >= half):
                self._cache.move_to_end(key)
                return hit
        if hit is not None:
            half = np.maximum(half, np.ceil(hit[3] * 1.25).astype(int))
        shape = tuple(int(2 * h + 1) for h in half)
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7])
        n = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), NOISE_CORRELATION_VOXELS)
        n /= max(float(n.std()), 1e-6)
        het_sigma = [max(0.5, 2.0 / float(s)) for s in spacing]  # about 2 mm blobs
        h = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), het_sigma)
        h /= max(float(h.std()), 1e-6)
        hp_mad = robust_sigma(highpass(n)) if min(shape) >= 3 else 1.0
        out = (n, h, hp_mad, np.asarray(half, int))
        with self._lock:
            self._cache[key] = out
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return out

    def region(self, seed: int, spacing: Sequence[float], start_rel: Sequence[int], shape: Sequence[int]):
        """(noise, heterogeneity, high-pass MAD of the noise) for voxels ``start_rel .. start_rel + shape``
        counted from the nodule's centre voxel."""
        start_rel = np.asarray(start_rel, int)
        stop_rel = start_rel + np.asarray(shape, int)
        half = np.maximum(np.abs(start_rel), np.abs(stop_rel - 1))
        n, h, hp_mad, hb = self._field(seed, spacing, half)
        sl = tuple(slice(int(hb[a] + start_rel[a]), int(hb[a] + stop_rel[a])) for a in range(len(shape)))
        return n[sl], h[sl], hp_mad


NOISE_BANK = NoiseBank()


def ggo_alpha(ggo_hu: float, solid_hu: float, lung_hu: float) -> float:
    span = float(solid_hu) - float(lung_hu)
    if span <= 1.0:
        return 1.0
    return float(np.clip((float(ggo_hu) - float(lung_hu)) / span, 0.02, 1.0))


def tissue_alpha(frac, core, ggo_hu: float, solid_hu: float, lung_hu: float):
    """How much of the way from lung to solid tissue each voxel goes: the solid core fully, the rest of the nodule by
    the ground-glass fraction ``ggo_alpha`` (the one tissue-mixing rule of CT, radiograph and detector)."""
    a_ggo = ggo_alpha(ggo_hu, solid_hu, lung_hu)
    return core + a_ggo * (frac - core)


def composite_ct(
    host: np.ndarray,
    frac: np.ndarray,
    core: np.ndarray,
    solid_hu: float,
    ggo_hu: float,
    lung_hu: float,
    noise_sigma_hp: float,
    noise: Tuple[np.ndarray, np.ndarray, float],
) -> Tuple[np.ndarray, np.ndarray]:
    """New float32 values for a region and the alpha map (0 where untouched)."""
    n, h, n_hp = noise
    alpha = tissue_alpha(frac, core, ggo_hu, solid_hu, lung_hu)
    host_f = host.astype(np.float32, copy=False)
    sigma = float(noise_sigma_hp) / max(n_hp, 1e-6)
    tissue = np.float32(solid_hu) + np.float32(HETEROGENEITY_HU) * h
    keep = 1.0 - alpha
    amp = np.sqrt(np.clip(1.0 - keep * keep, 0.0, 1.0)) * np.float32(sigma)
    out = host_f + alpha * (tissue - host_f) + amp * n
    return out, alpha


def to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip to an integer dtype's range (floats are cast)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)



"""Image-quality measures for the super-resolution evaluation (numpy + scipy.ndimage)."""

from __future__ import annotations

import numpy as np


def foreground_mask(reference: np.ndarray, fraction: float = 0.05) -> np.ndarray:
    """Voxels of the object: above ``fraction`` of the reference's 99th percentile (of non-background),
    closed and hole-filled so dark structures inside (CSF) count."""
    from scipy import ndimage

    ref = np.asarray(reference, dtype=np.float32)
    lo = float(ref.min())
    above = ref[ref > lo]
    if above.size == 0:
        return np.ones(ref.shape, bool)
    thr = lo + fraction * (float(np.percentile(above, 99)) - lo)
    mask = ref > thr
    mask = ndimage.binary_closing(mask, iterations=2, border_value=0)
    mask = ndimage.binary_fill_holes(mask)
    return mask


def data_range(reference: np.ndarray) -> float:
    ref = np.asarray(reference)
    return float(ref.max() - ref.min()) or 1.0


def psnr(reference: np.ndarray, test: np.ndarray, mask: np.ndarray, drange: float) -> float:
    """Peak signal-to-noise ratio (dB) inside ``mask`` with peak ``drange``."""
    diff = np.asarray(test, np.float64)[mask] - np.asarray(reference, np.float64)[mask]
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else 10.0 * np.log10(drange * drange / mse)


def ssim(reference: np.ndarray, test: np.ndarray, mask: np.ndarray, drange: float, sigma: float = 1.5) -> float:
    """Structural similarity (3D Gaussian window, sigma 1.5 voxels, K1 0.01, K2 0.03) averaged inside ``mask``."""
    from scipy import ndimage

    x = np.asarray(reference, np.float64)
    y = np.asarray(test, np.float64)
    c1 = (0.01 * drange) ** 2
    c2 = (0.03 * drange) ** 2

    def g(a):
        return ndimage.gaussian_filter(a, sigma, truncate=3.5)

    mx, my = g(x), g(y)
    sxx = g(x * x) - mx * mx
    syy = g(y * y) - my * my
    sxy = g(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(np.mean(s[mask]))


__all__ = ["data_range", "foreground_mask", "psnr", "ssim"]

"""A small synthetic chest: CT phantom in HU and its projection radiograph (for demos and tests; no data needed).

Body ellipse (soft tissue +40 HU, fat -100 HU), two lungs (-850 HU with mild texture), heart and spine,
branching-ish vessels (+40 HU) in the lungs, correlated noise.  The radiograph is the Beer-Lambert
line integral of the phantom's attenuation along anterior-posterior, stored MONOCHROME2 (bright =
attenuating) as 12-bit values.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
from scipy import ndimage

from ..volume import Volume, make_ijk_to_ras

MU_WATER_PER_MM = 0.0206


def chest_ct_phantom(shape_kji: Sequence[int] = (48, 96, 112), spacing_kji: Sequence[float] = (2.5, 2.0, 2.0),
                     seed: int = 0, noise_hu: float = 18.0) -> Volume:
    """An axial chest CT phantom, int16 HU, RAS geometry (i: right->left, j: anterior->posterior, k: up)."""
    rng = np.random.default_rng(seed)
    nk, nj, ni = (int(s) for s in shape_kji)
    sk, sj, si = (float(s) for s in spacing_kji)
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    x = (i - (ni - 1) / 2) * si  # mm, + to patient left
    y = (j - (nj - 1) / 2) * sj  # mm, + posterior
    z = (k - (nk - 1) / 2) * sk
    hx, hy = 0.46 * ni * si, 0.40 * nj * sj
    body = (x / hx) ** 2 + (y / hy) ** 2 <= 1
    inner = (x / (hx - 12)) ** 2 + (y / (hy - 10)) ** 2 <= 1
    hu = np.full((nk, nj, ni), -1000.0, np.float32)
    hu[body] = -100.0
    hu[inner] = 40.0
    zl = 0.46 * nk * sk
    lung = np.zeros_like(body)
    for side in (-1, 1):
        cx = side * 0.23 * ni * si
        lung |= ((x - cx) / (0.17 * ni * si)) ** 2 + ((y + 0.02 * nj * sj) / (0.28 * nj * sj)) ** 2 + (z / zl) ** 2 <= 1
    lung &= inner
    texture = ndimage.gaussian_filter(rng.standard_normal(hu.shape).astype(np.float32), 1.5)
    hu[lung] = -850.0 + 25.0 * texture[lung] / max(float(texture.std()), 1e-6)
    heart = ((x + 0.04 * ni * si) / (0.13 * ni * si)) ** 2 + ((y + 0.1 * nj * sj) / (0.16 * nj * sj)) ** 2 + \
        ((z + 0.1 * nk * sk) / (0.35 * nk * sk)) ** 2 <= 1
    hu[heart] = 40.0
    spine = (x / 14.0) ** 2 + ((y - 0.30 * nj * sj) / 14.0) ** 2 <= 1
    hu[spine & body] = 500.0
    # vessels: random smooth walks starting near the hila
    vessels = np.zeros(hu.shape, bool)
    for side in (-1, 1):
        for _ in range(10):
            p = np.array([nk / 2 + rng.uniform(-4, 4), nj * 0.45, ni / 2 + side * 0.12 * ni])
            d = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.6, 0.6), side * 1.0])
            for _ in range(int(0.35 * ni)):
                d = d + rng.normal(0, 0.25, 3)
                d /= np.linalg.norm(d)
                p = p + d
                q = np.round(p).astype(int)
                if np.any(q < 0) or np.any(q >= np.array([nk, nj, ni])):
                    break
                vessels[tuple(q)] = True
    vessels = ndimage.binary_dilation(vessels, iterations=1) & lung
    hu[vessels] = 40.0
    noise = ndimage.gaussian_filter(rng.standard_normal(hu.shape).astype(np.float32), 0.6)
    hu += noise_hu * noise / max(float(noise.std()), 1e-6)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    directions = np.diag([-1.0, -1.0, 1.0])  # i: R->L (x decreases in RAS), j: A->P
    m = make_ijk_to_ras((si, sj, sk), (0.0, 0.0, 0.0), directions)
    centre = m[:3, :3] @ np.array([(ni - 1) / 2, (nj - 1) / 2, (nk - 1) / 2])
    m[:3, 3] = -centre
    return Volume(hu, m, name="chest_phantom", modality="CT")


def lung_point(volume: Volume) -> np.ndarray:
    """A RAS point well inside the phantom's right lung (low-HU, far from walls)."""
    from .candidates import ct_candidates

    pts = ct_candidates(volume, 12.0, max_points=200, seed=0)
    if len(pts) == 0:
        raise RuntimeError("no lung point found")
    return pts[0]


def radiograph_from_ct(ct: Volume, zoom: float = 2.5, bits: int = 12, seed: int = 0) -> Tuple[Volume, float]:
    """PA projection of a CT phantom: (MONOCHROME2 uint16 radiograph, stored values per unit ln attenuation)."""
    hu = ct.array.astype(np.float32)
    mu = np.clip(MU_WATER_PER_MM * (1.0 + hu / 1000.0), 0.0, None)
    sk, sj, si = ct.spacing[::-1]
    line = mu.sum(axis=1) * sj  # (k, i): ln attenuation along anterior-posterior
    line = line[::-1]  # rows top = superior
    line = ndimage.zoom(line, (zoom * sk / si, zoom), order=1)
    rng = np.random.default_rng(seed)
    line = line + rng.normal(0, 0.01, line.shape)
    top = float((1 << bits) - 1)
    lo, hi = float(line.min()), float(line.max()) + 0.5
    gain = top / (hi - lo)
    img = np.clip(np.rint((line - lo) * gain), 0, top).astype(np.uint16)
    px = si / zoom
    vol = Volume(img[None], make_ijk_to_ras((px, px, 1.0)), name="cxr_phantom", modality="CXR")
    return vol, gain

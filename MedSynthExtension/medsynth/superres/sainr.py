"""SA-INR inference with ONNX Runtime only (no torch): tiled, with progress, cancel and a feature cache.

The network ships as two ONNX graphs: the *encoder* (thick slices -> per-slice
features; it does not depend on the output spacing) and the *decoder* (features +
output slice positions -> output slices; cheap, pointwise in-plane).  Arrays here are
in the axis-first frame ``lr[d, a, b]`` (see :mod:`.baselines`).

Exactness: the encoder has no normalisation layers and pads with zeros, so features
of a block computed with margins of its receptive field equal those of the whole
volume; the decoder looks at the four nearest input slices only.  Hence tiled, slab
and whole-volume results agree to float rounding.  Memory is bounded by the voxels
per encoder block and per decoder call (defaults keep a 256 x 256 x 256 output far
below 2 GB).  The live preview keeps encoder features of recent blocks in an LRU
cache, so moving the spacing slider re-runs only the decoder.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from ..errors import InputError, ModelError
from ..progress import Reporter
from .data import normalization_scale

MODEL_ID = "sainr"
DECODER_ID = "sainr-decoder"
#: input voxels per encoder block (with margins); ONNX Runtime holds about 1.5 kB per voxel inside the encoder
ENCODER_VOXELS = 600_000
#: output voxels per decoder call (about 2 kB each inside the decoder).  With both defaults a
#: 256 x 256 x 64 -> 256 reconstruction peaked at 1.5 GB of process memory (benchmarks/bench_superres.py)
DECODER_VOXELS = 150_000
#: bytes of encoder features kept for the live preview
CACHE_BYTES = 384 * 1024 * 1024
#: anisotropy range seen in training; values outside are clamped
SCALE_RANGE = (2.0, 6.0)

Region = Tuple[int, int, int, int, int, int]


class MissingModelError(ModelError, InputError):
    """The SA-INR model files or their manifest entries are missing (an input problem for the caller)."""


@dataclass
class SAINRModel:
    """The two ONNX Runtime sessions of SA-INR (checksums verified)."""

    encoder: object  # medsynth.runtime.LoadedModel
    decoder: object

    @property
    def entry(self):
        return self.encoder.entry

    @property
    def provider(self) -> str:
        return self.encoder.provider

    @property
    def receptive_field(self) -> dict:
        return dict(self.entry.extra.get("receptive_field", {"axis": 4, "in_plane": 7}))


def load_sainr(model_id: str = MODEL_ID, threads: Optional[int] = None) -> SAINRModel:
    """The shipped SA-INR model (encoder entry ``model_id`` and its decoder entry)."""
    from .. import runtime

    hint = "train it with `python -m medsynth.superres.train`, reinstall the extension, or use --method bspline"
    loaded = []
    decoder_id = None
    for mid in (model_id, None):
        mid = mid or decoder_id
        try:
            entry = runtime.get_entry(mid)
        except ModelError as exc:
            raise MissingModelError(f"SA-INR model '{mid}' not found ({exc}); {hint}") from None
        if not entry.path.is_file():
            raise MissingModelError(f"SA-INR model file is missing: {entry.path}; {hint}")
        loaded.append(runtime.load_entry(entry, threads=threads))
        decoder_id = entry.extra.get("decoder", DECODER_ID)
    return SAINRModel(loaded[0], loaded[1])


def lower_index(positions: np.ndarray, n_in: int) -> np.ndarray:
    """The lower of the two input slices around each position (as the network computes it)."""
    return np.minimum(np.floor(np.asarray(positions, np.float64)), n_in - 2).clip(0).astype(int)


class SAINRRunner:
    """One input prepared for SA-INR: normalised slices, the anisotropy, and a feature cache."""

    def __init__(
        self,
        lr: np.ndarray,
        anisotropy: float,
        model: SAINRModel,
        norm_scale: Optional[float] = None,
        encoder_voxels: int = ENCODER_VOXELS,
        decoder_voxels: int = DECODER_VOXELS,
        cache_bytes: int = CACHE_BYTES,
        gate: float = 0.0,
    ) -> None:
        if lr.ndim != 3 or lr.shape[0] < 2:
            raise InputError("SA-INR needs a 3D volume with at least 2 input slices along the axis")
        self.scale_value = float(norm_scale) if norm_scale else normalization_scale(lr)
        self.lr = np.asarray(lr, dtype=np.float32) * np.float32(1.0 / self.scale_value)
        self.aniso = np.array([min(max(float(anisotropy), SCALE_RANGE[0]), SCALE_RANGE[1])], np.float32)
        self.model = model
        rf = model.receptive_field
        self.rz, self.rxy, self.rd = int(rf["axis"]), int(rf["in_plane"]), int(rf.get("decoder_in_plane", 0))
        self.encoder_voxels = int(encoder_voxels)
        self.decoder_voxels = int(decoder_voxels)
        self.cache_bytes = int(cache_bytes)
        self._cache: "OrderedDict[Region, np.ndarray]" = OrderedDict()
        self._lock = threading.Lock()
        self.set_gate(gate)
        #: [pixels decoded by the network, pixels in the output]: what the gate saved so far
        self.gate_counts = [0, 0]

    def set_gate(self, gate: float) -> None:
        """The gradient-guided gate's threshold (0 = off; see :meth:`_decode_gated`)."""
        gate = float(gate)
        if not (np.isfinite(gate) and gate >= 0):
            raise InputError(f"gate must be a finite number >= 0, got {gate}")
        self.gate = gate

    @property
    def n_in(self) -> int:
        return self.lr.shape[0]

    # ------------------------------------------------------------------ encoder
    def _encode_block(self, block: Region) -> np.ndarray:
        d0, d1, a0, a1, b0, b1 = block
        D, A, B = self.lr.shape
        e = (max(0, d0 - self.rz), min(D, d1 + self.rz), max(0, a0 - self.rxy), min(A, a1 + self.rxy),
             max(0, b0 - self.rxy), min(B, b1 + self.rxy))
        x = self.lr[e[0] : e[1], e[2] : e[3], e[4] : e[5]]
        feats = self.model.encoder.run({"lr": x[None, None], "scale": self.aniso})[0]
        return feats[d0 - e[0] : d1 - e[0], :, a0 - e[2] : a1 - e[2], b0 - e[4] : b1 - e[4]]

    def features(self, block: Region, cache: bool = False, pad: int = 0) -> np.ndarray:
        """Encoder features ``[d1-d0, F, a1-a0, b1-b0]`` of ``block``; with ``cache`` reuse/keep them
        (``pad`` extra input slices on each side are computed to serve nearby requests)."""
        if not cache:
            return self._encode_block(block)
        d0, d1, a0, a1, b0, b1 = block
        with self._lock:
            for key, feats in self._cache.items():
                k0, k1, ka0, ka1, kb0, kb1 = key
                if k0 <= d0 and d1 <= k1 and ka0 <= a0 and a1 <= ka1 and kb0 <= b0 and b1 <= kb1:
                    self._cache.move_to_end(key)
                    return feats[d0 - k0 : d1 - k0, :, a0 - ka0 : a1 - ka0, b0 - kb0 : b1 - kb0]
        big = (max(0, d0 - pad), min(self.n_in, d1 + pad), a0, a1, b0, b1)
        feats = self._encode_block(big)
        with self._lock:
            self._cache[big] = feats
            total = sum(f.nbytes for f in self._cache.values())
            while total > self.cache_bytes and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                total -= old.nbytes
        return feats[d0 - big[0] : d1 - big[0]]

    # ------------------------------------------------------------------ decoder
    def _decode(self, feats: np.ndarray, d0: int, pos: np.ndarray, a0: int, a1: int, b0: int, b1: int) -> np.ndarray:
        """Decode output slices at ``pos`` from a block of features starting at input slice ``d0``.

        Each call of the decoder gets only the input slices its positions read (the lower neighbour - 1 to
        + 2), not the whole block: ONNX Runtime copies its inputs, and the block's features are large.  The
        result is the same: the decoder clamps neighbour indices at the ends of what it is given, and the
        slices cut here reach the block's ends only where the block does.
        """
        lr_block = self.lr[d0 : d0 + feats.shape[0], a0:a1, b0:b1]
        n = feats.shape[0]
        per = max(1, self.decoder_voxels // max((a1 - a0) * (b1 - b0), 1))
        outs = []
        for s in range(0, pos.size, per):
            p = pos[s : s + per] - d0
            i0 = np.minimum(np.maximum(np.floor(p), 0), n - 2)  # the lower neighbour, as the decoder takes it
            lo, hi = max(0, int(i0.min()) - 1), min(n, int(i0.max()) + 3)
            sub = np.ascontiguousarray(feats[lo:hi])
            lrb = np.ascontiguousarray(lr_block[lo:hi])[None, None]
            q = (p - lo).astype(np.float32)
            if self.gate > 0 and self.rd == 0:
                outs.append(self._decode_gated(sub, lrb[0, 0], q))
                continue
            self.gate_counts[0] += q.size * sub.shape[2] * sub.shape[3]
            self.gate_counts[1] += q.size * sub.shape[2] * sub.shape[3]
            outs.append(self.model.decoder.run({"features": sub, "lr": lrb, "pos": q, "scale": self.aniso})[0][0, 0])
        return np.concatenate(outs, axis=0)

    def _decode_gated(self, sub: np.ndarray, lrs: np.ndarray, q: np.ndarray) -> np.ndarray:
        """The gradient-guided gate (the paper's cheap path for flat regions): pixels where the input slices
        around these positions are flat (through-plane range and in-plane gradient both at most ``gate``, in
        normalised intensity, then widened by one pixel) get the cubic estimate alone; the others go through
        the decoder, gathered into one row. Exact for those: with an in-plane window of 0 the decoder works
        pixel by pixel."""
        d = lrs.shape[0]
        through = lrs.max(axis=0) - lrs.min(axis=0)
        gy = np.abs(np.diff(lrs, axis=1)).max(axis=0) > self.gate
        gx = np.abs(np.diff(lrs, axis=2)).max(axis=0) > self.gate
        active = through > self.gate
        active[1:] |= gy
        active[:-1] |= gy
        active[:, 1:] |= gx
        active[:, :-1] |= gx
        grown = active.copy()  # one pixel wider, so that the gate does not cut the shoulder of an edge
        grown[1:] |= active[:-1]
        grown[:-1] |= active[1:]
        grown[:, 1:] |= active[:, :-1]
        grown[:, :-1] |= active[:, 1:]
        # the cubic (Catmull-Rom) estimate, made as the decoder makes it (neighbours clamped to the slab)
        i0 = np.minimum(np.maximum(np.floor(q), 0), d - 2).astype(int)
        t = (q - i0).astype(np.float32)[:, None, None]
        t2, t3 = t * t, t * t * t
        weights = (-0.5 * t3 + t2 - 0.5 * t, 1.5 * t3 - 2.5 * t2 + 1.0, -1.5 * t3 + 2.0 * t2 + 0.5 * t,
                   0.5 * t3 - 0.5 * t2)
        out = np.zeros((q.size,) + lrs.shape[1:], np.float32)
        for o, w in zip((-1, 0, 1, 2), weights):
            out += w * lrs[np.clip(i0 + o, 0, d - 1)]
        ys, xs = np.nonzero(grown)
        self.gate_counts[0] += q.size * ys.size
        self.gate_counts[1] += out.size
        if ys.size:
            feats = np.ascontiguousarray(sub[:, :, ys, xs][:, :, None, :])
            lr_row = np.ascontiguousarray(lrs[:, ys, xs])[None, None, :, None, :]
            res = self.model.decoder.run({"features": feats, "lr": lr_row, "pos": q, "scale": self.aniso})[0]
            out[:, ys, xs] = res[0, 0, :, 0, :]
        return out

    # ------------------------------------------------------------------ tiling
    def plan(self, positions: np.ndarray, region: Region) -> List[Tuple[Region, Tuple[int, int]]]:
        """Work items ``((d0, d1, a0, a1, b0, b1) of features, (q0, q1) of outputs)`` covering ``region``."""
        q0, q1, a0, a1, b0, b1 = region
        lower = lower_index(positions[q0:q1], self.n_in)
        # in-plane tiles: as large as fit with at least 8 input slices per encoder block
        side_a, side_b = a1 - a0, b1 - b0
        depth = 8 + 3 + 2 * self.rz
        while depth * (side_a + 2 * self.rxy) * (side_b + 2 * self.rxy) > self.encoder_voxels and max(side_a, side_b) > 32:
            if side_a >= side_b:
                side_a = math.ceil(side_a / 2)
            else:
                side_b = math.ceil(side_b / 2)
        area = (side_a + 2 * self.rxy) * (side_b + 2 * self.rxy)
        chunk = max(1, self.encoder_voxels // area - 3 - 2 * self.rz)
        items = []
        if q1 <= q0:
            return items
        lo, hi = int(lower[0]), int(lower[-1])
        for c0 in range(lo, hi + 1, chunk):
            c1 = min(c0 + chunk, hi + 1)
            s0 = q0 + int(np.searchsorted(lower, c0, side="left"))
            s1 = q0 + int(np.searchsorted(lower, c1, side="left"))
            if s1 <= s0:
                continue
            d0, d1 = max(0, c0 - 1), min(self.n_in, c1 + 2)
            for ta in range(a0, a1, side_a):
                for tb in range(b0, b1, side_b):
                    items.append(((d0, d1, ta, min(ta + side_a, a1), tb, min(tb + side_b, b1)), (s0, s1)))
        return items

    def run(
        self,
        positions: np.ndarray,
        region: Optional[Region] = None,
        reporter: Optional[Reporter] = None,
        cache: bool = False,
        pad: int = 0,
    ) -> np.ndarray:
        """Output slices at ``positions`` (input slice indices) in ``region = (q0, q1, a0, a1, b0, b1)``."""
        reporter = reporter or Reporter()
        pos = np.asarray(positions, dtype=np.float64)
        if region is None:
            region = (0, pos.size, 0, self.lr.shape[1], 0, self.lr.shape[2])
        q0, q1, a0, a1, b0, b1 = region
        out = np.empty((q1 - q0, a1 - a0, b1 - b0), np.float32)
        items = self.plan(pos, region)
        reporter.step(0.0, f"SA-INR: {len(items)} block(s)")
        A, B = self.lr.shape[1:]
        for n, (blk, (s0, s1)) in enumerate(items):
            d0, d1, ta0, ta1, tb0, tb1 = blk
            # the decoder's attention window reaches rd voxels in-plane: decode a wider window, keep the tile
            ea0, ea1, eb0, eb1 = max(0, ta0 - self.rd), min(A, ta1 + self.rd), max(0, tb0 - self.rd), min(B, tb1 + self.rd)
            feats = self.features((d0, d1, ea0, ea1, eb0, eb1), cache=cache, pad=pad)
            res = self._decode(feats, d0, pos[s0:s1], ea0, ea1, eb0, eb1)
            out[s0 - q0 : s1 - q0, ta0 - a0 : ta1 - a0, tb0 - b0 : tb1 - b0] = res[
                :, ta0 - ea0 : ta1 - ea0, tb0 - eb0 : tb1 - eb0
            ]
            reporter.step((n + 1) / len(items), f"SA-INR block {n + 1}/{len(items)}")
        out *= np.float32(self.scale_value)
        return out


__all__ = [
    "CACHE_BYTES",
    "DECODER_ID",
    "DECODER_VOXELS",
    "ENCODER_VOXELS",
    "MODEL_ID",
    "MissingModelError",
    "SAINRModel",
    "SAINRRunner",
    "load_sainr",
    "lower_index",
]

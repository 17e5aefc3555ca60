"""Nodule shapes at inference: the shipped ONNX decoder + latent steering (numpy + ONNX Runtime, no torch).

``ShapeModel.field(seed, sphericity, lobulation, spiculation)`` returns a ``GRID``^3 float32 field
(negative inside, ``clip(signed distance in grid voxels / SDF_CLIP, -1, 1)``) of a nodule with unit
equivalent diameter = ``UNIT_VOXELS`` grid voxels.  Results are cached, so moving the diameter or
texture slider never decodes again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import ModelError
from ..runtime import ModelEntry, get_entry, load_entry
from .latent import LatentSpace

MODEL_ID = "nodule-shape-vae"
ENCODER_ID = "nodule-shape-vae-encoder"
LATENT_ROLE = "latent"  # the side file (manifest "files") with the latent prior and slider directions


class ShapeModel:
    """Decoder session + latent space; ``entry`` defaults to the manifest entry :data:`MODEL_ID`."""

    def __init__(self, entry: Optional[ModelEntry] = None, encoder_entry: Optional[ModelEntry] = None,
                 cache_size: int = 64) -> None:
        self.entry = entry if entry is not None else get_entry(MODEL_ID)
        self.latent = load_latent(self.entry)
        self.grid = int(self.latent.data.get("grid", 32))
        self.unit_voxels = float(self.latent.data.get("unit_voxels", 16.0))
        self.sdf_clip = float(self.latent.data.get("sdf_clip", 8.0))
        self._encoder_entry = encoder_entry
        self._session = load_entry(self.entry, device="cpu", threads=1)  # a tiny net: one thread is fastest
        self._cache: "OrderedDict[Tuple, np.ndarray]" = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ decoding
    def decode(self, z: np.ndarray) -> np.ndarray:
        """Latent codes (N, L) or (L,) -> fields (N, G, G, G) float32."""
        z = np.atleast_2d(np.asarray(z, np.float32))
        out = self._session.run({self._session.input_names[0]: z})[0]
        return out[:, 0]

    def code(self, seed: int, sphericity: float = 0.0, lobulation: float = 0.0, spiculation: float = 0.0) -> np.ndarray:
        return self.latent.code(seed, sphericity, lobulation, spiculation)

    def field(self, seed: int, sphericity: float = 0.0, lobulation: float = 0.0, spiculation: float = 0.0) -> np.ndarray:
        """The (cached) decoded field of a seed and three slider values. Do not modify the returned array."""
        key = (int(seed), round(float(sphericity), 4), round(float(lobulation), 4), round(float(spiculation), 4))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        f = self.decode(self.code(*key))[0]
        f.setflags(write=False)
        with self._lock:
            self._cache[key] = f
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return f

    # ------------------------------------------------------------------ encoding (evaluation)
    def encode(self, fields: np.ndarray, batch: int = 64) -> np.ndarray:
        """Fields (N, G, G, G) -> latent means (N, L) with the shipped encoder (for evaluation)."""
        entry = self._encoder_entry if self._encoder_entry is not None else get_entry(ENCODER_ID)
        sess = load_entry(entry, device="cpu", threads=1)
        f = np.asarray(fields, np.float32)
        outs = [sess.run({sess.input_names[0]: f[i : i + batch, None]})[0] for i in range(0, len(f), batch)]
        return np.concatenate(outs)

    # ------------------------------------------------------------------ helpers
    def unit_level(self, field: np.ndarray) -> float:
        """Threshold at which ``field < level`` holds the unit sphere's voxel count."""
        return unit_level(field, self.unit_voxels)


def load_latent(entry: ModelEntry) -> LatentSpace:
    """The latent space of ``entry``: side file ``latent`` (checksum checked first), its content checked."""
    path = entry.side_file(LATENT_ROLE)
    try:
        latent = LatentSpace.load(path)
        size = latent.latent_size
        ok = (latent.mean.shape == (size,) and latent.chol.shape == (size, size)
              and latent.weights.ndim == 2 and latent.weights.shape[1] == size and len(latent.names) > 0
              and all(np.all(np.isfinite(a)) for a in (latent.mean, latent.chol, latent.weights,
                                                       latent.proj_mean, latent.proj_std)))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, UnicodeDecodeError, RecursionError,
            np.linalg.LinAlgError) as exc:
        raise ModelError(f"latent directions of '{entry.id}' ({path}) cannot be read: "
                         f"{type(exc).__name__}: {exc}") from None
    if not ok:
        raise ModelError(f"latent directions of '{entry.id}' ({path}) are inconsistent (array sizes or "
                         "non-finite values)")
    shape = entry.inputs[0].get("shape", []) if entry.inputs else []
    if len(shape) == 2 and isinstance(shape[1], int) and shape[1] != latent.latent_size:
        raise ModelError(f"latent directions of '{entry.id}' ({path}) are inconsistent: {latent.latent_size} "
                         f"latent dimensions, the decoder takes {shape[1]}")
    return latent


def unit_level(field: np.ndarray, unit_voxels: float = 16.0) -> float:
    n = int(round(np.pi / 6.0 * unit_voxels**3))
    flat = np.sort(np.asarray(field, np.float32).ravel())
    n = min(max(n, 1), flat.size - 1)
    return float(0.5 * (flat[n - 1] + flat[n]))


_default: Dict[str, ShapeModel] = {}
_default_lock = threading.Lock()


def default_shape_model() -> ShapeModel:
    """The shipped shape model (loaded once per process)."""
    entry = get_entry(MODEL_ID)
    key = f"{entry.path}:{entry.sha256}:{entry.files.get(LATENT_ROLE)}"
    with _default_lock:
        model = _default.get(key)
        if model is None:
            model = ShapeModel(entry)
            _default.clear()
            _default[key] = model
        return model


def model_folder_of(model: ShapeModel) -> Path:
    return model.entry.folder

"""Reading hosts (CT volumes, radiographs) and writing results for NoduleSynth (IO via medsynth.io)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import InputError
from ..io import DICOM_SUFFIXES, IMAGE_SUFFIXES, PathLike, read_metadata, read_volume, suffix_of, write_volume
from ..volume import Volume


@dataclass
class Host:
    """A host image: the greyscale volume and how to read its values."""

    volume: Volume
    kind: str  # "ct" or "cxr"
    photometric: str = "MONOCHROME2"
    pixel_spacing_mm: Optional[Tuple[float, float]] = None  # (row, column) when the file states it
    bits_stored: Optional[int] = None
    source: str = ""


def to_grey(volume: Volume, tolerance: float = 2.0) -> Volume:
    """A vector volume whose channels are equal (grey saved as RGB) -> one channel; true colour -> InputError."""
    if not volume.is_vector:
        return volume
    arr = volume.array
    if arr.shape[-1] in (3, 4):
        rgb = arr[..., :3].astype(np.float32)
        spread = float(np.max(np.abs(rgb - rgb[..., :1])))
        if spread <= tolerance:
            grey = np.rint(rgb.mean(axis=-1)).astype(arr.dtype) if np.issubdtype(arr.dtype, np.integer) else rgb.mean(-1)
            return Volume(grey, volume.ijk_to_ras, volume.name, volume.modality)
    raise InputError(
        f"'{volume.name}' is a colour image ({arr.shape[-1]} channels that differ); NoduleSynth needs a greyscale "
        "CT or radiograph"
    )


def _float_tag(meta: Dict[str, str], tag: str) -> Optional[Tuple[float, float]]:
    raw = meta.get(tag, "").strip()
    if not raw:
        return None
    try:
        vals = [float(v) for v in raw.replace("\\", " ").split()]
    except ValueError:
        return None
    if len(vals) >= 2 and vals[0] > 0 and vals[1] > 0:
        return (vals[0], vals[1])
    return None


def read_host(path: PathLike) -> Host:
    """Read a CT (3D) or radiograph (2D; DICOM, PNG, JPEG) as greyscale, with its photometric interpretation."""
    p = Path(os.fspath(path))
    vol = to_grey(read_volume(p))
    if vol.array.ndim != 3:
        raise InputError(f"{p} is not a 2D or 3D greyscale image")
    if vol.array.shape[0] > 1:
        return Host(vol, "ct", source=str(p))
    photometric, spacing, bits = "MONOCHROME2", None, None
    if p.is_file() and suffix_of(p) not in IMAGE_SUFFIXES:
        meta = read_metadata(p)
        photometric = meta.get("0028|0004", "MONOCHROME2").strip().upper() or "MONOCHROME2"
        if photometric not in ("MONOCHROME1", "MONOCHROME2"):
            raise InputError(f"{p}: photometric interpretation {photometric} is not greyscale")
        spacing = _float_tag(meta, "0028|0030") or _float_tag(meta, "0018|1164")
        try:
            bits = int(meta.get("0028|0101", "").strip()) if meta.get("0028|0101", "").strip() else None
        except ValueError:
            bits = None
    return Host(vol, "cxr", photometric, spacing, bits, str(p))


def display_monochrome2(host: Host, array: np.ndarray) -> np.ndarray:
    """MONOCHROME1 values flipped so that a plain viewer shows them the right way (for PNG/JPEG output)."""
    if host.photometric != "MONOCHROME1":
        return array
    if host.bits_stored:
        top = (1 << host.bits_stored) - 1
    elif np.issubdtype(array.dtype, np.integer):
        top = int(np.max(host.volume.array))
    else:
        top = float(np.max(host.volume.array))
    out = top - array.astype(np.int64 if np.issubdtype(array.dtype, np.integer) else np.float64)
    return np.clip(out, 0, None).astype(array.dtype)


def write_result(host: Host, volume: Volume, path: PathLike) -> Tuple[Path, str]:
    """Write an image result; for PNG/JPEG a MONOCHROME1 radiograph is flipped to MONOCHROME2. Returns (path, note)."""
    target = Path(os.fspath(path))
    suf = suffix_of(target)
    if suf in DICOM_SUFFIXES:
        raise InputError(f"cannot write DICOM ({target.name}); write .nrrd, .nii.gz, .mha or (2D) .png")
    note = ""
    if suf in IMAGE_SUFFIXES and host.kind == "cxr" and host.photometric == "MONOCHROME1":
        volume = volume.with_array(display_monochrome2(host, volume.array))
        note = "MONOCHROME1 input written as MONOCHROME2 (PNG/JPEG have no photometric tag)"
    if suf in IMAGE_SUFFIXES and volume.array.dtype not in (np.uint8, np.uint16):
        arr = volume.array
        if np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 65535:
            volume = volume.with_array(arr.astype(np.uint16 if arr.max() > 255 else np.uint8))
    return write_volume(volume, target), note


def write_mask(mask: Volume, path: PathLike) -> Path:
    return write_volume(mask.with_array(mask.array.astype(np.uint8)), path)

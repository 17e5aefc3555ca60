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
    """A host image: the greyscale volume and how to read its values.

    ``photometric`` describes the *array* (MONOCHROME2: larger = more attenuation, shown brighter);
    ``file_photometric`` is what the file says (ITK/SimpleITK may already have flipped a MONOCHROME1 file).
    """

    volume: Volume
    kind: str  # "ct" or "cxr"
    photometric: str = "MONOCHROME2"
    pixel_spacing_mm: Optional[Tuple[float, float]] = None  # (row, column) when the file states it
    bits_stored: Optional[int] = None
    source: str = ""
    file_photometric: str = ""


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


_READER_FLIPS: Optional[bool] = None


def _tiny_monochrome1_dicom() -> bytes:
    """A minimal 2x2 MONOCHROME1 DICOM file (explicit VR little endian), pixel values 0, 1, 2, 3."""
    import struct

    def el(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
        if len(value) % 2:
            value += b" " if vr in (b"CS", b"SH", b"LO") else b"\0"
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
            return struct.pack("<HH", group, elem) + vr + b"\0\0" + struct.pack("<I", len(value)) + value
        return struct.pack("<HH", group, elem) + vr + struct.pack("<H", len(value)) + value

    sop_class, uid = b"1.2.840.10008.5.1.4.1.1.1\0", b"1.2.826.0.1.3680043.2.1125.1\0"
    meta = (el(0x0002, 0x0001, b"OB", b"\0\1") + el(0x0002, 0x0002, b"UI", sop_class) + el(0x0002, 0x0003, b"UI", uid)
            + el(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1\0"))
    meta = el(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta))) + meta
    ds = (el(0x0008, 0x0016, b"UI", sop_class) + el(0x0008, 0x0018, b"UI", uid) + el(0x0008, 0x0060, b"CS", b"CR")
          + el(0x0028, 0x0002, b"US", struct.pack("<H", 1)) + el(0x0028, 0x0004, b"CS", b"MONOCHROME1")
          + el(0x0028, 0x0010, b"US", struct.pack("<H", 2)) + el(0x0028, 0x0011, b"US", struct.pack("<H", 2))
          + el(0x0028, 0x0100, b"US", struct.pack("<H", 16)) + el(0x0028, 0x0101, b"US", struct.pack("<H", 12))
          + el(0x0028, 0x0102, b"US", struct.pack("<H", 11)) + el(0x0028, 0x0103, b"US", struct.pack("<H", 0))
          + el(0x7FE0, 0x0010, b"OW", struct.pack("<4H", 0, 1, 2, 3)))
    return b"\0" * 128 + b"DICM" + meta + ds


def reader_flips_monochrome1() -> bool:
    """Whether this SimpleITK/ITK turns MONOCHROME1 pixel data into MONOCHROME2 on read (ITK 5.x GDCM does),
    found once by reading a tiny MONOCHROME1 file made on the fly."""
    global _READER_FLIPS
    if _READER_FLIPS is None:
        import tempfile

        import SimpleITK as sitk

        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "m1.dcm"
            path.write_bytes(_tiny_monochrome1_dicom())
            try:
                arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).ravel()
                _READER_FLIPS = bool(arr[0] > arr[-1])
            except RuntimeError:
                _READER_FLIPS = False
    return _READER_FLIPS


def array_photometric(file_photometric: str) -> str:
    """The photometric interpretation of the pixel array SimpleITK returns for a file that states ``file_photometric``
    (use it for volumes loaded through ITK, e.g. a Slicer node's DICOM attribute)."""
    pi = (file_photometric or "MONOCHROME2").strip().upper()
    if pi == "MONOCHROME1" and reader_flips_monochrome1():
        return "MONOCHROME2"
    return pi


def read_host(path: PathLike) -> Host:
    """Read a CT (3D) or radiograph (2D; DICOM, PNG, JPEG) as greyscale, with the photometric interpretation
    of the array (a MONOCHROME1 file stays MONOCHROME1 only if the reader did not flip it).  PNG/JPEG get a pixel
    frame (spacing 1): their DPI is not a detector spacing."""
    p = Path(os.fspath(path))
    vol = to_grey(read_volume(p))
    if vol.array.ndim != 3:
        raise InputError(f"{p} is not a 2D or 3D greyscale image")
    if vol.array.shape[0] > 1:
        return Host(vol, "ct", source=str(p))
    photometric, spacing, bits = "MONOCHROME2", None, None
    file_pi = "MONOCHROME2"
    if suffix_of(p) in IMAGE_SUFFIXES and not np.allclose(vol.spacing[:2], 1.0):
        # PNG/JPEG "spacing" comes from a DPI field (often a 96 dpi screen default), not from a detector: use a
        # plain pixel frame (spacing 1) so that the radiograph code knows it has to assume or be told the spacing
        m = vol.ijk_to_ras.copy()
        m[:3, :2] = m[:3, :2] / vol.spacing[np.newaxis, :2]
        vol = Volume(vol.array, m, vol.name, vol.modality)
    if p.is_file() and suffix_of(p) not in IMAGE_SUFFIXES:
        meta = read_metadata(p)
        file_pi = meta.get("0028|0004", "MONOCHROME2").strip().upper() or "MONOCHROME2"
        if file_pi not in ("MONOCHROME1", "MONOCHROME2"):
            raise InputError(f"{p}: photometric interpretation {file_pi} is not greyscale")
        photometric = array_photometric(file_pi)
        spacing = _float_tag(meta, "0028|0030") or _float_tag(meta, "0018|1164")
        try:
            bits = int(meta.get("0028|0101", "").strip()) if meta.get("0028|0101", "").strip() else None
        except ValueError:
            bits = None
    return Host(vol, "cxr", photometric, spacing, bits, str(p), file_pi)


def host_from_volume(volume: Volume, photometric: str = "MONOCHROME2",
                     pixel_spacing_mm: Optional[Tuple[float, float]] = None, source: str = "") -> Host:
    """A host from an image already in memory (a Slicer node's voxels): a CT when it has several slices, else a
    radiograph whose array has ``photometric`` (and, when known, ``pixel_spacing_mm`` (row, column))."""
    vol = to_grey(volume)
    if vol.array.ndim != 3:
        raise InputError(f"'{volume.name}' is not a 2D or 3D greyscale image")
    if vol.array.shape[0] > 1:
        return Host(vol, "ct", source=source or volume.name)
    return Host(vol, "cxr", photometric, pixel_spacing_mm, None, source or volume.name, photometric)


def host_pixel_mm(host: Host, given: Optional[float] = None, assume_width_mm: Optional[float] = None
                  ) -> Optional[float]:
    """A radiograph's pixel size (mm, columns): ``given``, else the file's (DICOM tags or image geometry), else
    ``assume_width_mm`` / image width; None when none of these is known."""
    if given:
        return float(given)
    if host.pixel_spacing_mm:
        return float(host.pixel_spacing_mm[1])
    if not np.allclose(host.volume.spacing[:2], 1.0):
        return float(host.volume.spacing[0])
    if assume_width_mm:
        return float(assume_width_mm) / host.volume.array.shape[2]
    return None


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


def write_result(host: Host, volume: Volume, path: PathLike, compress: bool = True) -> Tuple[Path, str]:
    """Write an image result; for PNG/JPEG a MONOCHROME1 radiograph is flipped to MONOCHROME2. Returns (path, note).
    ``compress``: gzip NRRD/NIfTI/MHA data (PNG is always deflated)."""
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
    return write_volume(volume, target, compress=compress), note


def write_mask(mask: Volume, path: PathLike, compress: bool = True) -> Path:
    return write_volume(mask.with_array(mask.array.astype(np.uint8)), path, compress=compress)

"""Reading and writing volumes with SimpleITK.

SimpleITK (like ITK and DICOM) works in LPS; the engine works in RAS.  The change
is made here and nowhere else: :func:`volume_from_sitk` and :func:`volume_to_sitk` for images,
:func:`transform_lps_ras` for SimpleITK point mappings and :func:`vectors_ras_to_lps` for displacement vectors.

Supported: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd),
PNG/JPEG (2D, grey or RGB), single DICOM files and DICOM series folders (read only).
Writes go to a temporary file beside the target that is renamed into place only
when complete, so a failed or cancelled write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Union

import numpy as np
import SimpleITK as sitk

from .errors import InputError, one_line
from .volume import Volume

PathLike = Union[str, "os.PathLike[str]"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DICOM_SUFFIXES = (".dcm", ".dicom")
READ_SUFFIXES = VOLUME_SUFFIXES + IMAGE_SUFFIXES + DICOM_SUFFIXES
WRITE_SUFFIXES = VOLUME_SUFFIXES + IMAGE_SUFFIXES


def suffix_of(path: PathLike) -> str:
    """The lower-case format suffix, with '.nii.gz' kept whole."""
    name = os.fspath(path).lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def stem_of(path: PathLike) -> str:
    """The file name without its format suffix."""
    name = Path(os.fspath(path)).name
    suf = suffix_of(name)
    return name[: len(name) - len(suf)] if suf else name


# --------------------------------------------------------------------------- LPS <-> RAS
def volume_from_sitk(image: sitk.Image, name: str = "volume", modality: Optional[str] = None) -> Volume:
    """Convert a SimpleITK image (LPS) to a :class:`Volume` (RAS). 2D images get one slice."""
    dim = image.GetDimension()
    if dim not in (2, 3):
        raise InputError(f"'{name}' is a {dim}D image; only 2D and 3D images are supported")
    array = sitk.GetArrayFromImage(image)
    spacing = list(image.GetSpacing())
    origin = list(image.GetOrigin())
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(dim, dim)
    if dim == 2:
        array = array[np.newaxis]
        d3 = np.eye(3)
        d3[:2, :2] = direction
        direction, spacing, origin = d3, spacing + [1.0], origin + [0.0]
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = direction * np.asarray(spacing)[np.newaxis, :]
    ijk_to_lps[:3, 3] = origin
    return Volume(array=array, ijk_to_ras=LPS_TO_RAS @ ijk_to_lps, name=name, modality=modality)


def volume_to_sitk(volume: Volume, two_d: bool = False) -> sitk.Image:
    """Convert a :class:`Volume` (RAS) to a SimpleITK image (LPS).

    ``two_d=True`` returns a 2D image from a one-slice volume (for PNG/JPEG).
    """
    ijk_to_lps = LPS_TO_RAS @ volume.ijk_to_ras
    spacing = volume.spacing
    direction = ijk_to_lps[:3, :3] / spacing[np.newaxis, :]
    array = volume.array
    if two_d:
        if array.shape[0] != 1:
            raise InputError(f"a 2D format needs a single slice; '{volume.name}' has {array.shape[0]} slices")
        image = sitk.GetImageFromArray(array[0], isVector=volume.is_vector)
        image.SetSpacing([float(s) for s in spacing[:2]])
        image.SetOrigin([float(x) for x in ijk_to_lps[:2, 3]])
        image.SetDirection([float(x) for x in direction[:2, :2].ravel()])
        return image
    image = sitk.GetImageFromArray(array, isVector=volume.is_vector)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(x) for x in ijk_to_lps[:3, 3]])
    image.SetDirection([float(x) for x in direction.ravel()])
    return image


def transform_lps_ras(matrix: np.ndarray) -> np.ndarray:
    """A 4x4 point mapping written in LPS (SimpleITK transforms) rewritten in RAS, or back: the flip is its own
    inverse."""
    return LPS_TO_RAS @ np.asarray(matrix, dtype=float) @ LPS_TO_RAS


def vectors_ras_to_lps(vectors: np.ndarray) -> np.ndarray:
    """Displacement vectors (last axis x, y, z) from RAS to LPS (or back), as a new array."""
    out = np.array(vectors, dtype=np.float64, copy=True)
    out[..., :2] *= -1.0
    return out


# --------------------------------------------------------------------------- reading
def list_dicom_series(folder: PathLike) -> List[str]:
    """Series instance UIDs found in a folder (not recursive)."""
    return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(os.fspath(folder)) or [])


def read_volume(
    path: PathLike,
    name: Optional[str] = None,
    modality: Optional[str] = None,
    series_uid: Optional[str] = None,
    check_finite: bool = True,
) -> Volume:
    """Read a file or a DICOM series folder into a :class:`Volume`.

    Raises :class:`InputError` naming the problem for a missing or unreadable file,
    an unsupported format, a 4D or empty image, NaN/Inf voxels, or a DICOM folder
    with several series (pass ``series_uid`` to choose one).
    """
    p = Path(os.fspath(path))
    if not p.exists():
        raise InputError(f"input not found: {p}")
    if p.is_dir():
        image = _read_dicom_series(p, series_uid)
        vol_name = name or p.name
    else:
        suf = suffix_of(p)
        if suf not in READ_SUFFIXES:
            raise InputError(
                f"unsupported format '{suf or p.name}' for {p}; supported: {', '.join(READ_SUFFIXES)} or a DICOM folder"
            )
        if p.stat().st_size == 0:
            raise InputError(f"file is empty: {p}")
        if suf in (".nii", ".nii.gz"):
            check_nifti_file(p, check_finite=check_finite)
        try:
            image = sitk.ReadImage(str(p))
        except RuntimeError as exc:
            raise InputError(f"cannot read {p}: {one_line(exc)}") from None
        vol_name = name or stem_of(p)
    if image.GetNumberOfPixels() == 0:
        raise InputError(f"image in {p} is empty")
    if image.GetDimension() == 3 and image.GetSize()[2] == 1 and suffix_of(p) in DICOM_SUFFIXES + IMAGE_SUFFIXES:
        image = image[:, :, 0]  # single-frame DICOM/PNG read as 3D: keep a plain 2D image
    volume = volume_from_sitk(image, name=vol_name, modality=modality)
    if check_finite:
        volume.check_finite()
    return volume


def read_metadata(path: PathLike) -> Dict[str, str]:
    """Header entries of one image file without reading its pixels (DICOM tags as ``'gggg|eeee'``,
    e.g. ``'0028|0004'`` PhotometricInterpretation); raises :class:`InputError` when unreadable."""
    p = Path(os.fspath(path))
    if not p.is_file():
        raise InputError(f"input not found: {p}")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"cannot read {p}: {one_line(exc)}") from None
    return {k: reader.GetMetaData(k) for k in reader.GetMetaDataKeys()}


class MultipleSeriesError(InputError):
    """A DICOM folder holds several series and none was chosen. The message names no option: a command that can
    choose a series (``convert --series``) adds its own hint."""

    def __init__(self, folder: Path, uids: List[str]) -> None:
        self.folder, self.uids = folder, list(uids)
        super().__init__(
            f"folder {folder} holds {len(uids)} DICOM series ({', '.join(uids)}); give a folder that holds one series"
        )


def _read_dicom_series(folder: Path, series_uid: Optional[str]) -> sitk.Image:
    uids = list_dicom_series(folder)
    if not uids:
        raise InputError(f"no DICOM series found in folder {folder}")
    if series_uid is None:
        if len(uids) > 1:
            raise MultipleSeriesError(folder, uids)
        series_uid = uids[0]
    elif series_uid not in uids:
        raise InputError(f"series {series_uid} not in {folder}; found: {', '.join(uids)}")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"cannot read DICOM series {series_uid} in {folder}: {one_line(exc)}") from None


# --------------------------------------------------------------------------- NIfTI raw checks
# SimpleITK's NIfTI reader reads a cut-short file as a mostly empty volume and turns NaN/Inf voxels into 0: the raw
# file is checked here first (its size or complete gzip stream, and the raw values of float data).
_NIFTI_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 32: "c8", 64: "f8", 128: "u1", 256: "i1", 512: "u2",
                 768: "u4", 1024: "i8", 1280: "u8", 1536: "f16", 1792: "c16", 2048: "c32", 2304: "u1"}


def _nifti_header(head: bytes, p: Path):
    """(endian, datatype, bitpix, dims, vox_offset) of a NIfTI-1 or NIfTI-2 header; InputError when it is none."""
    import struct

    if len(head) < 348:
        raise InputError(f"cannot read {p}: the file is too short for a NIfTI header ({len(head)} bytes)")
    for endian in ("<", ">"):
        size = struct.unpack(endian + "i", head[:4])[0]
        if size == 348:
            datatype, bitpix = struct.unpack(endian + "hh", head[70:74])
            dims = struct.unpack(endian + "8h", head[40:56])
            vox_offset = struct.unpack(endian + "f", head[108:112])[0]
            return endian, datatype, bitpix, [int(d) for d in dims], vox_offset
        if size == 540:
            if len(head) < 540:
                raise InputError(f"cannot read {p}: the file is too short for a NIfTI-2 header")
            datatype, bitpix = struct.unpack(endian + "hh", head[12:16])
            dims = struct.unpack(endian + "8q", head[16:80])
            vox_offset = struct.unpack(endian + "q", head[168:176])[0]
            return endian, datatype, bitpix, [int(d) for d in dims], float(vox_offset)
    raise InputError(f"cannot read {p}: not a NIfTI file (header size field is neither 348 nor 540)")


def check_nifti_file(path: PathLike, check_finite: bool = True) -> None:
    """Refuse (:class:`InputError`) a NIfTI file that is cut short (a .nii.gz whose gzip stream ends early or fails its
    CRC; data shorter than the header's ``vox_offset + prod(dim) * bitpix / 8``) or, with ``check_finite``, whose
    float voxels hold NaN or Inf. Streams the file once in chunks."""
    import gzip
    import zlib

    p = Path(os.fspath(path))
    gz = suffix_of(p) == ".nii.gz"
    chunk = 1 << 22
    try:
        with (gzip.open(p, "rb") if gz else open(p, "rb")) as f:
            head = f.read(540)
            endian, datatype, bitpix, dims, vox_offset = _nifti_header(head, p)
            ndim = dims[0]
            if not 1 <= ndim <= 7 or any(d < 1 for d in dims[1: ndim + 1]):
                raise InputError(f"cannot read {p}: bad NIfTI dimensions {dims[1: max(ndim, 0) + 1]}")
            nvox = int(np.prod([float(d) for d in dims[1: ndim + 1]]))
            expected = int(vox_offset) + nvox * max(int(bitpix), 0) // 8
            code = _NIFTI_DTYPES.get(int(datatype))
            kind = np.dtype(code).kind if code else ""
            float_data = check_finite and kind in "fc" and kind != ""
            dtype = np.dtype(endian + code) if float_data else None
            base = np.dtype(endian + {"c8": "f4", "c16": "f8", "c32": "f16"}.get(code, code)) if float_data else None
            pos = len(head)
            if float_data and pos > int(vox_offset):
                f.seek(int(vox_offset))
                pos = int(vox_offset)
            data_end = expected
            carry = b""
            bad = False
            while gz or float_data:  # a plain integer .nii needs only its size
                block = f.read(chunk)
                if not block:
                    break
                if float_data and pos + len(block) > vox_offset and pos < data_end:
                    lo = max(int(vox_offset) - pos, 0)
                    hi = min(data_end - pos, len(block))
                    part = carry + block[lo:hi]
                    usable = len(part) - len(part) % base.itemsize
                    if usable and not bool(np.isfinite(np.frombuffer(part[:usable], dtype=base)).all()):
                        bad = True
                        if not gz:
                            break  # a plain file's size is checked below without reading on
                    carry = part[usable:]
                pos += len(block)
            size = pos if gz else p.stat().st_size
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InputError(f"cannot read {p}: the compressed data is cut short or damaged ({exc})") from None
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}") from None
    if size < expected:
        raise InputError(
            f"cannot read {p}: the file is cut short: its header asks for {expected} bytes of header and data, "
            f"it holds {size}"
        )
    if bad:
        raise InputError(f"{p} holds NaN or infinite voxel values; replace them (e.g. by 0) before use")


# --------------------------------------------------------------------------- writing
@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success, delete it on failure.

    Under an active :class:`medsynth.outputs.OutputPlan` that declares ``path`` the rename waits for the end of the
    plan (all outputs of a command or none). A detached header (.mhd, .nhdr) is written with its data file under
    their final names in a temporary folder, so the header names the final data file.
    """
    from .outputs import atomic_target

    with atomic_target(path) as tmp:
        yield tmp


def write_json(obj, path: PathLike) -> Path:
    """Write ``obj`` as indented JSON, atomically (:func:`atomic_output`). Returns the path."""
    import json

    target = Path(os.fspath(path))
    with atomic_output(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    return target


def write_volume(volume: Volume, path: PathLike, compress: bool = True) -> Path:
    """Write a volume; the format follows the suffix. Returns the path written. ``compress=False``: NIfTI/NRRD/MHA
    data stored plain, PNG deflated at its fastest level (for batches, where writing dominates)."""
    target = Path(os.fspath(path))
    suf = suffix_of(target)
    if suf not in WRITE_SUFFIXES:
        raise InputError(f"cannot write format '{suf or target.name}'; supported: {', '.join(WRITE_SUFFIXES)}")
    if suf in IMAGE_SUFFIXES:
        image = volume_to_sitk(_as_image_pixels(volume, suf), two_d=True)
    else:
        image = volume_to_sitk(volume)
    with atomic_output(target) as tmp:
        if suf == ".png" and not compress:  # PNG is always deflated: the fastest level (about 1.7x faster, 1.5x larger)
            sitk.WriteImage(image, str(tmp), True, 1)
        else:
            sitk.WriteImage(image, str(tmp), compress and suf != ".mhd")
    return target


def _as_image_pixels(volume: Volume, suf: str) -> Volume:
    """PNG holds 8/16-bit integers, JPEG 8-bit: cast when the values fit, else say why not."""
    arr = volume.array
    top = 255 if suf != ".png" else 65535
    if arr.dtype in (np.uint8,) or (suf == ".png" and arr.dtype == np.uint16):
        return volume
    finite = arr[np.isfinite(arr)] if np.issubdtype(arr.dtype, np.floating) else arr
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    integral = not np.issubdtype(arr.dtype, np.floating) or bool(np.all(np.mod(finite, 1) == 0))
    if lo < 0 or hi > top or not integral:
        raise InputError(
            f"{suf} stores integers 0..{top}; '{volume.name}' has {arr.dtype} values in [{lo:g}, {hi:g}]: "
            "rescale first or write NIfTI/NRRD/MHA"
        )
    dtype = np.uint8 if hi <= 255 else np.uint16
    return volume.with_array(arr.astype(dtype))

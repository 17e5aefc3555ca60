"""Herlev cells: reading, letterbox padding removal, square patches and the fixed held-out split.

numpy only (plus one JPEG/PNG reader: SimpleITK, else Pillow), so training on a bare GPU machine
needs no more than torch, numpy and MONAI.

Padding. The Herlev images of the data were letterboxed to 224 x 224 with a flat colour (a different
colour per image, JPEG-compressed). :func:`find_content_box` finds the colour most of the image border
has (tried from the four corners), marks pixels within a tolerance of it, and keeps the rows and columns
that are not almost entirely that colour: the content box. The box is shrunk by a small margin on
padded sides, where JPEG blocks blend pad and content. :func:`padding_mask` gives the mask of the pad.

Patches. The content box is rescaled (antialiased) so its short side is the patch size; training draws
square windows along the long side (a random offset), evaluation and previews use the centre window.

Split. Herlev publishes no patient identifiers. File names are ``<a>-<b>-<n>``: cells cut from the same
captured image share ``<a>-<b>`` and the first number ``<a>`` groups images further; 30 such groups hold
cells of two classes. All cells of a group go to the same side: groups whose CRC-32 of ``<a>`` is
divisible by 5 are held out (about a fifth of the cells, every class represented) -- a fixed, seedless
split, as patient-independent as the published names allow.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError
from .classes import HERLEV_CLASSES, HERLEV_COUNTS, canonical_class, herlev_members

PathLike = Union[str, "os.PathLike[str]"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
HERLEV_NAME = re.compile(r"(?:rotated_\d+_)?(\d+)-(\d+)-(\d+)$")
HELDOUT_MODULUS = 5
DATA_TERMS = (
    "Herlev Pap smear data (Jantzen et al. 2005), published free for research; images as redistributed by "
    "GitHub atlan-antillia/EfficientNet-Pap-Smear (repository Apache-2.0)"
)
SPLITS = ("train", "test", "all")


# --------------------------------------------------------------------------- reading
def read_rgb(path: PathLike) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 array (grey is repeated to three channels, alpha dropped)."""
    p = Path(os.fspath(path))
    if not p.is_file():
        raise InputError(f"image not found: {p}")
    arr = None
    try:
        import SimpleITK as sitk

        try:
            arr = sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
        except RuntimeError as exc:
            raise InputError(f"cannot read {p}: {str(exc).strip().splitlines()[-1]}") from None
    except ImportError:
        arr = _read_without_sitk(p)
    arr = np.asarray(arr)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise InputError(f"{p} is not a 2D grey or RGB image (array shape {arr.shape})")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        arr = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _read_without_sitk(p: Path) -> np.ndarray:
    """Pillow, else torchvision (a bare training machine may have only torch)."""
    try:
        from PIL import Image

        try:
            with Image.open(p) as im:
                return np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise InputError(f"cannot read {p}: {exc}") from None
    except ImportError:
        pass
    try:
        from torchvision.io import ImageReadMode, read_image
    except ImportError:
        raise InputError("reading images needs SimpleITK, Pillow or torchvision (pip install SimpleITK)") from None
    return read_image(str(p), ImageReadMode.RGB).permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------- padding
def _pad_colour(a: np.ndarray, tol: float) -> Tuple[np.ndarray, float]:
    """The corner colour that most border pixels match, and the fraction that match it."""
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]).astype(np.float32)
    best, best_frac = None, -1.0
    for r, c in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        rs = slice(0, 3) if r == 0 else slice(-3, None)
        cs = slice(0, 3) if c == 0 else slice(-3, None)
        colour = np.median(a[rs, cs].reshape(-1, 3).astype(np.float32), axis=0)
        frac = float((np.abs(border - colour).max(axis=1) <= tol).mean())
        if frac > best_frac:
            best, best_frac = colour, frac
    return best, best_frac


def find_content_box(
    image: np.ndarray, tol: float = 10.0, row_fraction: float = 0.9, margin: int = 2, min_border: float = 0.2
) -> Tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)`` (end-exclusive) of the image inside flat-colour letterbox padding.

    A row (column) is padding when at least ``row_fraction`` of its pixels are within ``tol`` (per channel)
    of the pad colour; padding bands are taken from the image edges inwards. Without padding (less than
    ``min_border`` of the border has one colour) the whole image is returned.
    """
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise InputError(f"expected an (H, W, 3) RGB image, got shape {a.shape}")
    h, w = a.shape[:2]
    colour, frac = _pad_colour(a, tol)
    if frac < min_border:
        return (0, h, 0, w)
    pad = np.abs(a.astype(np.float32) - colour).max(axis=-1) <= tol

    def span(is_pad: np.ndarray) -> Tuple[int, int]:
        n = len(is_pad)
        lo = 0
        while lo < n and is_pad[lo]:
            lo += 1
        hi = n
        while hi > lo and is_pad[hi - 1]:
            hi -= 1
        if hi - lo < max(4, n // 8):  # (almost) all padding: keep everything rather than nothing
            return 0, n
        lo2 = lo + margin if lo > 0 else lo
        hi2 = hi - margin if hi < n else hi
        return (lo2, hi2) if hi2 - lo2 >= 4 else (lo, hi)

    r0, r1 = span(pad.mean(axis=1) >= row_fraction)
    c0, c1 = span(pad[r0:r1].mean(axis=0) >= row_fraction)
    r0, r1 = span(pad[:, c0:c1].mean(axis=1) >= row_fraction)  # again, with side bands excluded
    return (r0, r1, c0, c1)


def padding_mask(image: np.ndarray, **kwargs) -> np.ndarray:
    """Boolean (H, W) mask: True on the letterbox padding (outside :func:`find_content_box`)."""
    r0, r1, c0, c1 = find_content_box(image, **kwargs)
    mask = np.ones(np.asarray(image).shape[:2], dtype=bool)
    mask[r0:r1, c0:c1] = False
    return mask


def remove_padding(image: np.ndarray, **kwargs) -> np.ndarray:
    """The image cropped to its content box."""
    r0, r1, c0, c1 = find_content_box(image, **kwargs)
    return np.asarray(image)[r0:r1, c0:c1]


# --------------------------------------------------------------------------- resizing (numpy, antialiased)
def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation weights with a triangle filter widened when shrinking."""
    scale = n_in / n_out
    support = max(1.0, scale)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    x = np.arange(n_in)[None, :] - centres[:, None]
    wts = np.clip(1.0 - np.abs(x) / support, 0.0, None)
    sums = wts.sum(axis=1, keepdims=True)
    sums[sums == 0] = 1.0
    return wts / sums


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an (H, W[, C]) array to (height, width) with antialiased linear interpolation (float32)."""
    a = np.asarray(image, dtype=np.float32)
    grey = a.ndim == 2
    if grey:
        a = a[..., None]
    h, w, c = a.shape
    wy = _resample_matrix(h, int(height)).astype(np.float32)
    wx = _resample_matrix(w, int(width)).astype(np.float32)
    out = (wy @ a.reshape(h, w * c)).reshape(int(height), w, c)  # rows
    out = np.einsum("xw,hwc->hxc", wx, out, optimize=True)  # columns
    return out[..., 0] if grey else out


def to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(a, dtype=np.float32) + 0.5, 0, 255).astype(np.uint8)


def short_side_patch(content: np.ndarray, size: int, max_aspect: float = 1.6) -> np.ndarray:
    """Rescale ``content`` so its short side is ``size``; the long side is cut (centred) at
    ``max_aspect * size``. Returns uint8 (size, L, 3) or (L, size, 3)."""
    h, w = content.shape[:2]
    s = size / float(min(h, w))
    nh, nw = max(size, int(round(h * s))), max(size, int(round(w * s)))
    out = to_uint8(resize(content, nh, nw))
    cap = int(round(max_aspect * size))
    if nh > cap:
        o = (nh - cap) // 2
        out = out[o : o + cap]
    if nw > cap:
        o = (nw - cap) // 2
        out = out[:, o : o + cap]
    return out


def centre_square(patch: np.ndarray) -> np.ndarray:
    h, w = patch.shape[:2]
    s = min(h, w)
    r, c = (h - s) // 2, (w - s) // 2
    return patch[r : r + s, c : c + s]


# --------------------------------------------------------------------------- the data set
@dataclass
class CellSet:
    """Cells as short-side patches (uint8, variable long side) with their Herlev class indices."""

    patches: List[np.ndarray]
    labels: np.ndarray  # Herlev class index (0..6) per cell
    names: List[str] = field(default_factory=list)
    groups: List[str] = field(default_factory=list)
    size: int = 64

    def __len__(self) -> int:
        return len(self.patches)

    def squares(self) -> np.ndarray:
        """(N, size, size, 3) uint8 centre windows."""
        if not self.patches:
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        return np.stack([centre_square(p) for p in self.patches])

    def subset(self, keep: Sequence[int]) -> "CellSet":
        keep = [int(i) for i in keep]
        return CellSet(
            [self.patches[i] for i in keep],
            self.labels[keep] if len(keep) else np.zeros(0, np.int64),
            [self.names[i] for i in keep] if self.names else [],
            [self.groups[i] for i in keep] if self.groups else [],
            self.size,
        )

    def counts(self) -> Dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(HERLEV_CLASSES)}


def group_of(name: str) -> Optional[str]:
    """The Herlev group of a file name (first number), or None when the name is not Herlev-like."""
    m = HERLEV_NAME.search(Path(name).stem)
    return m.group(1) if m else None


def is_heldout(group: str) -> bool:
    return zlib.crc32(group.encode("ascii")) % HELDOUT_MODULUS == 0


def class_folders(root: PathLike) -> Dict[str, Path]:
    """Class sub-folders of ``root`` by canonical Herlev class. Bethesda-named folders are not accepted
    here (a Bethesda category cannot be split into Herlev classes); see :func:`load_folder`."""
    root = Path(os.fspath(root))
    if not root.is_dir():
        raise InputError(f"cell folder not found: {root}")
    found: Dict[str, Path] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            c = canonical_class(sub.name)
        except InputError:
            continue
        found[c] = sub
    if not found:
        raise InputError(
            f"{root} has no class sub-folders (expected names like {', '.join(HERLEV_CLASSES[:3])}, ... or NILM, LSIL, "
            "HSIL, carcinoma)"
        )
    return found


def load_folder(
    root: PathLike, size: int = 64, split: str = "all", limit_per_class: Optional[int] = None, strip_padding: bool = True
) -> Tuple[CellSet, List[str]]:
    """Read a folder of class sub-folders of cell images.

    Returns the cells and the class names of the folders in their order (Herlev classes, or Bethesda
    categories when the folders are named so; ``labels`` then index that list). ``split`` = train / test
    applies the fixed Herlev split (:func:`is_heldout`) to Herlev-named files; files whose names are not
    Herlev-like are all kept in both. ``limit_per_class`` keeps the first files of each class (tests).
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    folders = class_folders(root)
    herlev = [c for c in HERLEV_CLASSES if c in folders]
    others = [c for c in folders if c not in HERLEV_CLASSES]
    if herlev and others:
        raise InputError(f"{root} mixes Herlev classes ({', '.join(herlev)}) and Bethesda categories ({', '.join(others)})")
    order = list(HERLEV_CLASSES) if herlev else [c for c in ("NILM", "LSIL", "HSIL", "carcinoma") if c in folders]
    patches, labels, names, groups = [], [], [], []
    for ci, c in enumerate(order):
        if c not in folders:
            continue
        files = sorted(p for p in folders[c].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        kept = 0
        for f in files:
            g = group_of(f.name)
            if split != "all" and g is not None and is_heldout(g) != (split == "test"):
                continue
            if limit_per_class is not None and kept >= limit_per_class:
                break
            img = read_rgb(f)
            content = remove_padding(img) if strip_padding else img
            patches.append(short_side_patch(content, size))
            labels.append(ci)
            names.append(f"{folders[c].name}/{f.name}")
            groups.append(g or f.stem)
            kept += 1
    if not patches:
        raise InputError(f"no cell images found in {root} (split {split})")
    return CellSet(patches, np.asarray(labels, np.int64), names, groups, size), order


def load_herlev(root: PathLike, size: int = 64, split: str = "train", limit_per_class: Optional[int] = None) -> CellSet:
    """The Herlev cells of ``root`` (seven class folders), one side of the fixed split (or all)."""
    cells, order = load_folder(root, size, split, limit_per_class)
    if order != list(HERLEV_CLASSES):
        raise InputError(f"{root} is not a Herlev folder (its classes are {', '.join(order)})")
    return cells


def default_herlev_dir() -> Path:
    """../shared/data/cytology/herlev beside the repository (``MEDSYNTH_SHARED_DATA`` overrides the data root)."""
    from ..shared_data import shared_data_dir

    return shared_data_dir() / "cytology" / "herlev"


def class_weights(cells: CellSet) -> Dict[str, float]:
    """Training counts per Herlev class (for drawing Bethesda members); falls back to the data counts."""
    c = cells.counts()
    return {k: float(v) if v else float(HERLEV_COUNTS[k]) for k, v in c.items()}


__all__ = [
    "CellSet",
    "DATA_TERMS",
    "centre_square",
    "default_herlev_dir",
    "find_content_box",
    "group_of",
    "herlev_members",
    "is_heldout",
    "load_folder",
    "load_herlev",
    "padding_mask",
    "read_rgb",
    "remove_padding",
    "resize",
    "short_side_patch",
]

"""Which files a volume header or a Slicer scene names, and whether they stay inside one folder.

A MetaImage header (.mhd/.mha: ``ElementDataFile``), a NRRD header (.nhdr/.nrrd: ``data file``)
or a Slicer scene (.mrml inside a .mrb: storage nodes' ``fileName``) may name data files
anywhere on disk, and a reader given such a file reads them.  Files that arrive from outside
(the studio's uploads) must be *self-contained*: every file they name is a plain file name in
the upload's own folder.  :func:`check_upload_folder` checks a whole folder of received files.

Pure Python (no SimpleITK, no Slicer): headers are parsed as text, scenes as XML.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable, List, Optional

from .errors import InputError

PathLike = os.PathLike
#: Header formats whose header can name a separate data file.
METAIMAGE_SUFFIXES = (".mhd", ".mha")
NRRD_SUFFIXES = (".nhdr", ".nrrd")
#: At most this many bytes of a header are read (a header longer than this is refused).
MAX_HEADER_BYTES = 1 << 20


def _suffix(name: str) -> str:
    low = name.lower()
    for suf in METAIMAGE_SUFFIXES + NRRD_SUFFIXES + (".mrml",):
        if low.endswith(suf):
            return suf
    return ""


def _header_text(path: Path, stop_at_blank_line: bool) -> List[str]:
    """The header lines of a NRRD (up to the blank line) or MetaImage file (up to ElementDataFile)."""
    with open(path, "rb") as f:
        raw = f.read(MAX_HEADER_BYTES)
    lines: List[str] = []
    for line in raw.split(b"\n"):
        text = line.rstrip(b"\r").decode("latin-1")
        if stop_at_blank_line and text == "":
            break
        lines.append(text)
        if not stop_at_blank_line and text.split("=", 1)[0].strip().lower() == "elementdatafile":
            break
    return lines


def named_data_files(path: PathLike) -> List[str]:
    """The data file names a MetaImage or NRRD header gives (``[]`` when the data is in the file itself).

    A list form (``LIST``) or a numbered pattern (``%``) is returned as its raw text so that
    :func:`check_self_contained` refuses it: such headers can name any number of files.
    """
    p = Path(os.fspath(path))
    suf = _suffix(p.name)
    if suf in METAIMAGE_SUFFIXES:
        for line in _header_text(p, stop_at_blank_line=False):
            key, _, value = line.partition("=")
            if key.strip().lower() == "elementdatafile":
                value = value.strip()
                return [] if value.upper() == "LOCAL" else [value]
        return []
    if suf in NRRD_SUFFIXES:
        lines = _header_text(p, stop_at_blank_line=True)
        if not lines or not lines[0].startswith("NRRD"):
            return []  # not a NRRD header: the reader will refuse it
        for line in lines[1:]:
            if line.startswith("#"):
                continue
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() in ("data file", "datafile"):
                return [value.lstrip("=").strip()]  # a "data file:=" key/value line is refused as well
        return []
    return []


def _inside(target: Path, folder: Path) -> bool:
    try:
        target.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def check_named_file(name: str, folder: Path, source: str) -> Path:
    """``name`` (as written in ``source``) must be a plain file name present in ``folder``."""
    shown = name if len(name) < 80 else name[:77] + "..."
    if not name:
        raise InputError(f"'{source}' names an empty data file")
    if name.upper().startswith("LIST") or "%" in name or " " in name.strip():
        raise InputError(f"'{source}' names a list or pattern of data files ('{shown}'); "
                         "only self-contained files are accepted here")
    if "/" in name or "\\" in name or name in (".", "..") or os.path.isabs(name):
        raise InputError(f"'{source}' names the data file '{shown}' outside its own folder; "
                         "only self-contained files are accepted here (send the data file with it, or .nrrd/.mha/.nii.gz)")
    target = folder / name
    if not _inside(target, folder):
        raise InputError(f"'{source}' names the data file '{shown}' outside its own folder")
    if not target.is_file():
        raise InputError(f"'{source}' names the data file '{shown}', which was not sent with it")
    return target


def check_self_contained(path: PathLike, folder: Optional[PathLike] = None, shown: Optional[str] = None) -> List[Path]:
    """Refuse a header that names a data file outside ``folder`` (default: the header's own folder).

    Returns the data files it names (all inside ``folder``).  Raises :class:`InputError`.
    """
    p = Path(os.fspath(path))
    root = Path(os.fspath(folder)) if folder is not None else p.parent
    source = shown or p.name
    out: List[Path] = []
    for name in named_data_files(p):
        target = check_named_file(name, p.parent, source)
        if not _inside(target, root):
            raise InputError(f"'{source}' names the data file '{name}' outside its own folder")
        out.append(target)
    return out


#: MRML attributes that hold file names (storage nodes) or remote addresses.
_MRML_FILE_ATTRIBUTES = ("filename", "filelistmember", "uri")


def mrml_references(mrml: PathLike) -> List[str]:
    """The file names and addresses a Slicer scene's nodes name (``fileName``, ``fileListMember*``, ``uri``)."""
    try:
        tree = ET.parse(os.fspath(mrml))
    except ET.ParseError as exc:
        raise InputError(f"the scene '{Path(os.fspath(mrml)).name}' is not readable MRML ({exc})") from None
    out: List[str] = []
    for element in tree.iter():
        for key, value in element.attrib.items():
            k = key.lower()
            if value and any(k.startswith(a) for a in _MRML_FILE_ATTRIBUTES):
                out.append(value)
    return out


def check_scene_references(mrml: PathLike, folder: PathLike, shown: Optional[str] = None) -> None:
    """Every file a scene names must be inside ``folder`` (relative names resolve from the scene's folder)."""
    m = Path(os.fspath(mrml))
    root = Path(os.fspath(folder))
    source = shown or m.name
    for ref in mrml_references(m):
        text = ref.strip()
        if "://" in text:
            raise InputError(f"'{source}' names a remote file ('{text[:60]}'); only self-contained scenes are accepted")
        for part in text.split(";"):  # Slicer joins a few lists with ';'
            part = part.strip()
            if not part:
                continue
            target = Path(part) if os.path.isabs(part) else m.parent / part
            if not _inside(target, root):
                raise InputError(f"'{source}' names the file '{Path(part).name}' outside the scene bundle; "
                                 "only self-contained scenes are accepted here")


def check_upload_folder(folder: PathLike, files: Optional[Iterable[PathLike]] = None, shown: str = "") -> None:
    """Check every header and scene in ``folder`` (recursively, or only ``files``) names nothing outside it.

    Symbolic links are refused too (an upload never creates one; an archive could).
    """
    root = Path(os.fspath(folder))
    candidates = [Path(os.fspath(f)) for f in files] if files is not None else sorted(root.rglob("*"))
    for path in candidates:
        name = path.name if not shown else f"{shown}: {path.relative_to(root) if _inside(path, root) else path.name}"
        if path.is_symlink():
            raise InputError(f"'{name}' is a symbolic link; only self-contained files are accepted here")
        if not path.is_file():
            continue
        suf = _suffix(path.name)
        if suf == ".mrml":
            check_scene_references(path, root, name)
        elif suf:
            check_self_contained(path, root, name)

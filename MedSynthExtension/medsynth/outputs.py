"""Output paths of a command: all checked before any work, all written or none.

Every command of the ``medsynth`` command line declares its inputs and outputs in one :class:`OutputPlan` before it
reads anything::

    plan = OutputPlan(inputs=[args.input])
    plan.file(args.output, "OUT", VOLUME)
    plan.file(args.mask, "--mask", WRITABLE)
    with plan:
        ...  # work; every write goes through medsynth.io.atomic_output (write_volume, write_png, ...)

:meth:`OutputPlan.file` and :meth:`OutputPlan.folder` raise :class:`~medsynth.errors.InputError` naming the option
and the problem when a path

- is an input of the command, or resolves to one (symbolic links, hard links: ``os.path.samefile``), or is an existing
  file inside an input folder, or would replace the data file of a detached-header input (.mhd, .nhdr);
- has a suffix the output kind cannot be written as;
- is an existing folder where a file is expected (or a file where a folder is expected), or a device/special file;
- lies under a regular file (``out.nrrd/x.nii.gz``), or in a folder that cannot be written;
- is given twice.

Missing parent folders are created, and removed again when the command fails.

While the plan is active (``with plan:``), :func:`atomic_target` (behind :func:`medsynth.io.atomic_output`) writes
each declared output, and each file under a declared output folder, to a temporary name beside its target, and the
renames happen only when the whole block succeeds; on any error, a cancel or Ctrl-C every temporary file (and every
folder the plan created) is removed, so a command leaves all its outputs or none.

Detached-header formats (.mhd + .raw, .nhdr + .raw.gz) are written into a temporary folder beside the target under
their final names, so the header names the final data file; the data file is moved into place before the header.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .errors import InputError

PathLike = Union[str, "os.PathLike[str]"]

# Output kinds: the suffixes each kind can be written as.
VOLUME = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")  # 3D volumes
WRITABLE = VOLUME + (".png", ".jpg", ".jpeg")  # any image (2D formats for one-slice images)
PET = (".nii.gz", ".nii", ".nrrd", ".mha")  # PET maps keep to the single-file formats the PET tools read
JSON = (".json",)
DETACHED = (".mhd", ".nhdr")

PARENT_RULE = "missing parent folders are created"
"""How output folders are treated; said in the help of the commands."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def _stem(path: Path) -> str:
    suf = _suffix(path)
    return path.name[: len(path.name) - len(suf)] if suf else path.name


def detached_data_names(path: PathLike) -> List[str]:
    """Names of the data files SimpleITK may write beside a detached header output (.mhd: .raw/.zraw; .nhdr:
    .raw/.raw.gz); empty for single-file formats."""
    p = Path(os.fspath(path))
    suf, stem = _suffix(p), _stem(p)
    if suf == ".mhd":
        return [f"{stem}.raw", f"{stem}.zraw"]
    if suf == ".nhdr":
        return [f"{stem}.raw", f"{stem}.raw.gz"]
    return []


def header_data_files(path: PathLike) -> List[Path]:
    """The data files a detached header (.mhd ``ElementDataFile``, .nhdr ``data file``) names, resolved against its
    folder; empty for other files, for LOCAL/LIST headers or when the header cannot be read."""
    p = Path(os.fspath(path))
    suf = _suffix(p)
    if suf not in DETACHED or not p.is_file():
        return []
    try:
        with open(p, "rb") as f:
            head = f.read(65536)
    except OSError:
        return []
    key = b"elementdatafile" if suf == ".mhd" else b"data file"
    found: List[Path] = []
    for raw in head.splitlines():
        line = raw.strip()
        if not line:
            if suf == ".nhdr":
                break  # the NRRD header ends at the first blank line
            continue
        sep = b"=" if suf == ".mhd" else b":"
        if sep not in line:
            continue
        k, _, v = line.partition(sep)
        if k.strip().lower() not in (key, b"datafile"):
            continue
        name = v.strip().decode("utf-8", "replace")
        if not name or name.upper() in ("LOCAL", "LIST") or name.upper().startswith("LIST"):
            continue
        if "%" in name and " " in name:  # a file-name pattern: too rare to follow here
            continue
        found.append(p.parent / name)
    return found


def _real(path: Path) -> str:
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def _same(a: Path, b: Path) -> bool:
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inode(path: Path) -> Tuple[int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def _probe_writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried for real: permission bits say nothing for root, a
    read-only mount or /sys)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        fd, name = tempfile.mkstemp(prefix=".medsynth-probe-", dir=str(folder))
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return True


def _nearest_existing(path: Path) -> Tuple[Path, List[Path]]:
    """The nearest existing ancestor of ``path`` (or ``path`` itself) and the missing folders below it, top first."""
    missing: List[Path] = []
    p = path
    while not os.path.lexists(p):
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    return p, list(reversed(missing))


class OutputPlan:
    """The outputs of one command run: checked when declared, committed together by ``with plan:``."""

    def __init__(self, inputs: Sequence[Optional[PathLike]] = (), command: str = "") -> None:
        self.command = command
        self._inputs: List[Path] = []
        self._input_dirs: List[Path] = []
        self._files: List[Tuple[Path, str]] = []
        self._folders: List[Tuple[Path, str, bool]] = []
        self._pending: Dict[str, Tuple[Path, Path, Optional[Path]]] = {}
        self._order: List[str] = []
        self._created: List[Path] = []
        self._snapshots: List[Tuple[Path, Optional[set]]] = []
        self._active = False
        for p in inputs:
            self.add_input(p)

    # ------------------------------------------------------------------ declaring
    def add_input(self, path: Optional[PathLike]) -> None:
        """An input of the command (a file or folder; missing ones are left for the reader to report)."""
        if path is None or os.fspath(path) == "":
            return
        p = Path(os.fspath(path))
        if p.is_dir():
            self._input_dirs.append(p)
        elif os.path.lexists(p):
            self._inputs.append(p)
            self._inputs.extend(header_data_files(p))

    def file(self, path: Optional[PathLike], label: str, suffixes: Optional[Sequence[str]] = None) -> Optional[Path]:
        """Declare (and check) an output file; ``None`` (an option not given) passes through as ``None``."""
        if path is None:
            return None
        p = self._nonempty(path, label)
        self.check_target(p, label)
        if os.path.isdir(p):
            raise InputError(f"{label}: {p} is a folder; give a file name")
        suf = _suffix(p)
        if suffixes is not None and suf not in suffixes:
            raise InputError(f"{label}: cannot write '{p.name}' ({suf or 'no suffix'}); use one of {', '.join(suffixes)}")
        for q, other in self._files:
            if _same(q, p) or _real(q) == _real(p):
                raise InputError(f"{label}: {p} is also given as {other}; give each output its own file")
        for name in detached_data_names(p):
            for q, other in self._files:
                if name in [q.name] + detached_data_names(q) and _real(q.parent) == _real(p.parent) and q != p:
                    raise InputError(f"{label}: {p} and {other} would both write {name}")
            self.check_target(p.parent / name, label)
        self._check_parent(p.parent, label)
        self._files.append((p, label))
        return p

    def folder(self, path: Optional[PathLike], label: str, defer: bool = True) -> Optional[Path]:
        """Declare (and check) an output folder. ``defer``: files written under it wait for the end of the run
        (the command's own writes go through :func:`atomic_target`); otherwise the command stages its files itself and
        the plan only removes, on failure, what the run added to the folder."""
        if path is None:
            return None
        p = self._nonempty(path, label)
        if os.path.lexists(p) and not p.is_dir():
            raise InputError(f"{label}: {p} exists and is a file, not a folder")
        for q in self._inputs:
            if _same(q, p):
                raise InputError(f"{label}: {p} is an input of this command")
        for q in self._input_dirs:
            if _same(q, p):
                raise InputError(f"{label}: {p} is also the input folder; write the output elsewhere")
        if p.is_dir():
            if not _probe_writable(p):
                raise InputError(f"{label}: folder {p} is not writable")
        else:
            self._check_parent(p, label)
        self._folders.append((p, label, defer))
        return p

    def _nonempty(self, path: PathLike, label: str) -> Path:
        text = os.fspath(path)
        if not str(text).strip():
            raise InputError(f"{label}: empty path")
        if "\0" in str(text):
            raise InputError(f"{label}: the path holds a NUL character")
        return Path(text)

    def check_target(self, p: Path, label: str = "output") -> None:
        """Refuse a file target that is an input, an existing file in an input folder, or a special file."""
        for q in self._inputs:
            if _same(q, p):
                raise InputError(f"{label}: {p} is an input of this command; writing it would overwrite the input")
        if os.path.lexists(p):
            real = Path(_real(p))
            for d in self._input_dirs:
                rd = _real(d)
                inside = str(real).startswith(rd.rstrip(os.sep) + os.sep) and real.is_file()
                if inside or (p.is_file() and _inode(p) in self._dir_inodes(d)):
                    raise InputError(f"{label}: {p} is a file in the input folder {d} (an input of this command); "
                                     "write the output elsewhere")
            if p.exists() and not p.is_dir() and not p.is_file():
                raise InputError(f"{label}: {p} is not a regular file (a device or pipe); give a file name")

    def _dir_inodes(self, folder: Path) -> set:
        """(device, inode) of the files under an input folder (hard links to them are inputs too); at most
        100000 files are looked at."""
        cache = self.__dict__.setdefault("_inode_cache", {})
        key = _real(folder)
        if key not in cache:
            found = set()
            for root, _dirs, files in os.walk(folder):
                for name in files:
                    with contextlib.suppress(OSError):
                        found.add(_inode(Path(root) / name))
                if len(found) > 100000:
                    break
            cache[key] = found
        return cache[key]

    def _check_parent(self, folder: Path, label: str) -> None:
        top, _missing = _nearest_existing(folder)
        if not top.is_dir():
            raise InputError(f"{label}: cannot create {folder}: {top} is a file, not a folder")
        if not _probe_writable(top):
            raise InputError(f"{label}: folder {top} is not writable")

    # ------------------------------------------------------------------ running
    def __enter__(self) -> "OutputPlan":
        for p, _label, defer in self._folders:
            if not defer:
                self._snapshots.append((p, _tree(p) if p.is_dir() else None))
        self._active = True
        with _LOCK:
            _ACTIVE.append(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        with _LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)
        self._active = False
        if exc_type is None:
            try:
                self._commit()
            except BaseException:
                self._abort()
                raise
        else:
            self._abort()

    def claims(self, target: Path) -> bool:
        """Whether writes to ``target`` wait for the end of this plan."""
        if not self._active:
            return False
        rt = _real(target)
        for p, _label in self._files:
            if _real(p) == rt:
                return True
        for p, _label, defer in self._folders:
            rp = _real(p).rstrip(os.sep) + os.sep
            if defer and rt.startswith(rp):
                return True
        return False

    def make_parents(self, folder: Path) -> None:
        """Create missing folders, remembering them for removal on failure."""
        _top, missing = _nearest_existing(folder)
        for m in missing:
            try:
                m.mkdir()
            except FileExistsError:
                continue
            self._created.append(m)

    def stage(self, target: Path) -> Tuple[Path, Optional[Path]]:
        """A temporary file (and temporary folder, for detached headers) for ``target``."""
        self.check_target(target)
        self.make_parents(target.parent)
        return _make_temp(target)

    def defer(self, target: Path, tmp: Path, tmp_dir: Optional[Path]) -> None:
        key = _real(target)
        old = self._pending.pop(key, None)
        if old is not None:
            _discard(old[1], old[2])
            self._order.remove(key)
        self._pending[key] = (target, tmp, tmp_dir)
        self._order.append(key)

    def _commit(self) -> None:
        for key in self._order:  # every rename must be able to succeed before the first one is made
            target = self._pending[key][0]
            if target.is_dir():
                raise InputError(f"{target} is a folder; it cannot be replaced by a file")
            if not target.parent.is_dir():
                raise InputError(f"the folder of {target} has gone")
        while self._order:
            key = self._order[0]
            target, tmp, tmp_dir = self._pending[key]
            _finish(tmp, tmp_dir, target)
            self._order.pop(0)
            del self._pending[key]
        self._created.clear()

    def _abort(self) -> None:
        for key in list(self._order):
            _target, tmp, tmp_dir = self._pending.pop(key)
            _discard(tmp, tmp_dir)
        self._order.clear()
        for folder, before in self._snapshots:
            if before is None:
                if folder.is_dir() and folder not in self._created:
                    shutil.rmtree(folder, ignore_errors=True)  # made by this run: all of it is ours
            elif folder.is_dir():
                for rel in sorted(_tree(folder) - before, key=lambda r: -r.count(os.sep)):  # deepest first
                    q = folder / rel
                    if q.is_dir() and not q.is_symlink():
                        shutil.rmtree(q, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            q.unlink()
        for folder in reversed(self._created):
            shutil.rmtree(folder, ignore_errors=True)  # created by this run: only its temporary files are in it
        self._created.clear()


def _tree(folder: Path) -> set:
    """Relative paths of everything under ``folder`` (folders and files)."""
    found = set()
    for root, dirs, files in os.walk(folder):
        rel = os.path.relpath(root, folder)
        for name in dirs + files:
            found.add(os.path.normpath(os.path.join(rel, name)))
    return found


_ACTIVE: List[OutputPlan] = []
_LOCK = threading.Lock()


def active_plan_for(target: Path) -> Optional[OutputPlan]:
    with _LOCK:
        for plan in reversed(_ACTIVE):
            if plan.claims(target):
                return plan
    return None


# ---------------------------------------------------------------------- temporary files
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make_temp(target: Path) -> Tuple[Path, Optional[Path]]:
    suf = _suffix(target)
    if suf in DETACHED:
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{_stem(target)}.partial-", dir=str(target.parent)))
        return tmp_dir / target.name, tmp_dir
    fd, tmp = tempfile.mkstemp(prefix=f".{_stem(target)}.partial-", suffix=suf, dir=str(target.parent))
    os.close(fd)
    return Path(tmp), None


def _finish(tmp: Path, tmp_dir: Optional[Path], target: Path) -> None:
    mode = 0o666 & ~_umask()  # mkstemp makes 0600 files; give the usual permissions
    if tmp_dir is None:
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        return
    # detached header: data files first, the header last (a header never names a missing data file)
    names = sorted(os.listdir(tmp_dir), key=lambda n: n == tmp.name)
    for name in names:
        os.chmod(tmp_dir / name, mode)
        os.replace(tmp_dir / name, target.parent / name)
    with contextlib.suppress(OSError):
        os.rmdir(tmp_dir)


def _discard(tmp: Path, tmp_dir: Optional[Path]) -> None:
    if tmp_dir is not None:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError, OSError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_target(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to.

    Without an active plan claiming ``path`` the file is renamed into place when the block ends without an error and
    deleted otherwise. Under an active :class:`OutputPlan` the rename waits for the end of the plan.
    """
    target = Path(os.fspath(path))
    plan = active_plan_for(target)
    if plan is not None:
        tmp, tmp_dir = plan.stage(target)
        try:
            yield tmp
        except BaseException:
            _discard(tmp, tmp_dir)
            raise
        plan.defer(target, tmp, tmp_dir)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, tmp_dir = _make_temp(target)
    try:
        yield tmp
        _finish(tmp, tmp_dir, target)
    except BaseException:
        _discard(tmp, tmp_dir)
        raise


__all__ = [
    "DETACHED",
    "JSON",
    "OutputPlan",
    "PARENT_RULE",
    "PET",
    "VOLUME",
    "WRITABLE",
    "atomic_target",
    "detached_data_names",
    "header_data_files",
]

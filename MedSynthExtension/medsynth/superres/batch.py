"""``medsynth superres IN_FOLDER OUT_FOLDER``: every volume of a folder, each written under its own name.

Each volume is one task (:mod:`medsynth.parallel`): the same outputs in this process or on Dask workers. A volume
that cannot be read or reconstructed is reported and the others are finished; each output appears whole or not at
all; after a cancel or Ctrl-C only the volumes finished before remain.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..errors import InputError, one_line
from ..io import VOLUME_SUFFIXES, suffix_of
from ..parallel import Workers, batch_failed, fill_folder, item_files
from ..progress import CancelToken, ProgressCallback


def volume_files(folder: os.PathLike) -> List[Path]:
    """The volume files (NIfTI, NRRD, MHA/MHD) directly in ``folder``, sorted by name; DICOM series are read
    through a folder of their own, not here."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and suffix_of(p) in VOLUME_SUFFIXES)


def is_volume_folder(path: os.PathLike) -> bool:
    """Whether ``path`` is a folder of volume files (a batch), as opposed to one DICOM series folder."""
    return Path(path).is_dir() and bool(volume_files(path))


@dataclass(frozen=True)
class FolderJob:
    out: str
    spacing: float
    axis: str
    method: str
    adapt_steps: int
    gate: float


def one_volume(job: FolderJob, path: str) -> Tuple[Optional[Dict[str, Any]], str]:
    """Reconstruct one volume into ``job.out`` under its own name: (facts, "") or (None, why it failed)."""
    from .core import superres_file

    target = Path(job.out) / Path(path).name
    try:
        with item_files(job.out):
            res = superres_file(path, target, job.spacing, job.axis, job.method, adapt_steps=job.adapt_steps,
                                gate=job.gate)
    except (InputError, OSError) as exc:
        return None, one_line(exc)
    return {"input": Path(path).name, "output": str(target), "grid": res.grid.describe(),
            "spacing": res.grid.spacing, "seconds": res.seconds, "method": res.method}, ""


def superres_folder(
    folder: os.PathLike,
    out: os.PathLike,
    spacing: float,
    axis: str = "auto",
    method: str = "sainr",
    adapt_steps: int = 0,
    gate: float = 0.0,
    workers: Workers = Workers(),
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> List[Dict[str, Any]]:
    """Every volume of ``folder`` to ``out/<same name>``. Returns the facts of each volume written; raises
    :class:`InputError` after the others are done when some failed, :class:`~medsynth.errors.Stopped` after a
    cancel or Ctrl-C (the volumes finished before are kept)."""
    files = volume_files(folder)
    if not files:
        raise InputError(f"no volumes ({', '.join(VOLUME_SUFFIXES)}) in {folder}")
    job = FolderJob(str(out), float(spacing), axis, method, int(adapt_steps), float(gate))
    done: List[Dict[str, Any]] = []
    failed: List[Tuple[int, str, str]] = []

    def collect(i: int, result) -> List[str]:
        facts, why = result
        if facts is None:
            failed.append((i, files[i].name, why))
            return []
        done.append(facts)
        return [facts["output"]]

    fill_folder(out, partial(one_volume, job), [str(f) for f in files], collect, lambda: len(done), "volumes",
                workers, progress, cancel)
    batch_failed(failed, len(files), "volumes", f"in {out}")
    return sorted(done, key=lambda d: d["input"])


__all__ = ["is_volume_folder", "superres_folder", "volume_files"]

"""Cell generation with the shipped generator (ONNX Runtime; torch is never needed).

Every cell has its own seed: cell ``n`` of a request with seed ``S`` uses ``S + n``. From that seed a
numpy generator draws, in this order, the Herlev class (only for a Bethesda category, in proportion to
the model's training counts) and the noise vector, so ``generate_cells(c, 1, seed=S + n)`` gives cell
``n`` again, on any machine.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..progress import CancelToken, ProgressCallback, Reporter
from .classes import HERLEV_CLASSES, canonical_class, check_naming, classes_of, draw_herlev, label_of
from .params import ALL

DEFAULT_MODEL = "cellgan"
MAX_COUNT = 10000


@dataclass
class Cell:
    """One generated cell: ``image`` (S, S, 3) uint8, its Herlev class, its label in the naming, its seed."""

    image: np.ndarray
    herlev_class: str
    label: str
    seed: int
    requested: str


class CellGenerator:
    """A loaded generator model (``cellgan`` by default; ``cellgan-baseline`` for evaluation)."""

    def __init__(self, model_id: str = DEFAULT_MODEL, device: Optional[str] = None) -> None:
        from ..runtime import load_model

        self.model = load_model(model_id, device=device)
        entry = self.model.entry
        self.model_id = entry.id
        self.version = entry.version
        self.classes: Tuple[str, ...] = tuple(entry.extra.get("classes", HERLEV_CLASSES))
        self.z_dim = int(entry.extra.get("z_dim", entry.inputs[0]["shape"][1]))
        self.patch_px = int(entry.extra.get("patch_px", 64))
        self.weights: Dict[str, float] = {k: float(v) for k, v in entry.extra.get("class_counts", {}).items()}

    @property
    def provider(self) -> str:
        return self.model.provider

    def noise(self, seed: int) -> np.ndarray:
        return np.random.default_rng(int(seed)).standard_normal(self.z_dim).astype(np.float32)

    def plan(self, cell_class: str, seeds: Sequence[int]) -> List[Tuple[str, np.ndarray]]:
        """(Herlev class, noise) per seed, drawn as the module doc says."""
        out = []
        for s in seeds:
            rng = np.random.default_rng(int(s))
            herlev = draw_herlev(cell_class, 1, rng, self.weights or None)[0]
            out.append((herlev, rng.standard_normal(self.z_dim).astype(np.float32)))
        return out

    def run(self, herlev: Sequence[str], noise: np.ndarray, batch: int = 64) -> np.ndarray:
        """(N, S, S, 3) uint8 for Herlev class names and (N, z) noise."""
        idx = np.array([self.classes.index(h) for h in herlev], dtype=np.int64)
        noise = np.asarray(noise, np.float32).reshape(len(idx), self.z_dim)
        out = []
        for i in range(0, len(idx), batch):
            img = self.model.run({"noise": noise[i : i + batch], "class_index": idx[i : i + batch]})[0]
            out.append(np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8))
        return np.concatenate(out) if out else np.zeros((0, self.patch_px, self.patch_px, 3), np.uint8)

    def generate(
        self,
        cell_class: str,
        count: int,
        seed: int = 0,
        naming: str = "herlev",
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
        batch: int = 64,
    ) -> List[Cell]:
        requested = canonical_class(cell_class)
        naming = check_naming(naming)
        count = check_count(count)
        seed = int(seed)
        if seed < 0:
            raise InputError(f"seed must be >= 0, got {seed}")
        rep = Reporter(progress, cancel)
        seeds = list(range(seed, seed + count))
        plan = self.plan(requested, seeds)
        cells: List[Cell] = []
        for i in range(0, count, batch):
            rep.step(i / count, f"generating {requested} cells {i + 1}-{min(count, i + batch)} of {count}")
            part = plan[i : i + batch]
            images = self.run([h for h, _ in part], np.stack([z for _, z in part]))
            for (h, _), s, img in zip(part, seeds[i : i + batch], images):
                cells.append(Cell(img, h, label_of(h, naming), s, requested))
        rep.step(1.0, f"{count} {requested} cells")
        return cells


def check_count(count) -> int:
    try:
        n = int(count)
    except (TypeError, ValueError):
        raise InputError(f"count must be a whole number, got {count!r}") from None
    if n != count and not isinstance(count, (int, np.integer)):
        raise InputError(f"count must be a whole number, got {count!r}")
    if n <= 0:
        raise InputError(f"count must be at least 1, got {n}")
    if n > MAX_COUNT:
        raise InputError(f"count must be at most {MAX_COUNT}, got {n}")
    return n


_generators: Dict[Tuple[str, Optional[str]], CellGenerator] = {}


def get_generator(model_id: str = DEFAULT_MODEL, device: Optional[str] = None) -> CellGenerator:
    """A cached :class:`CellGenerator` (the ONNX session is cached by the runtime as well)."""
    key = (model_id, device)
    gen = _generators.get(key)
    if gen is None or gen.model.entry.sha256 != _current_sha(model_id):
        gen = CellGenerator(model_id, device)
        _generators[key] = gen
    return gen


def _current_sha(model_id: str) -> str:
    from ..runtime import get_entry

    return get_entry(model_id).sha256


def generate_cells(
    cell_class: str,
    count: int,
    seed: int = 0,
    naming: str = "herlev",
    model_id: str = DEFAULT_MODEL,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> List[Cell]:
    """``count`` cells of a Herlev class or Bethesda category (not ``all``); labels in ``naming``."""
    if str(cell_class).strip().lower() == ALL:
        raise InputError("choose one class here; 'all' is for galleries and training sets")
    return get_generator(model_id).generate(cell_class, count, seed, naming, progress, cancel)


def classes_for(cell_class: str, naming: str) -> List[str]:
    """The classes a request stands for: every class of the naming for ``all``, else the one class."""
    if str(cell_class).strip().lower() == ALL:
        return list(classes_of(naming))
    return [canonical_class(cell_class)]


def gallery(
    cell_class: str = ALL,
    count: int = 8,
    seed: int = 0,
    naming: str = "bethesda",
    model_id: str = DEFAULT_MODEL,
    columns: int = 16,
    gap: int = 2,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Tuple[np.ndarray, List[Tuple[str, int]], List[Cell]]:
    """A grid image (H, W, 3) uint8: for ``all`` a row per class of the naming (``count`` cells each),
    else ``count`` cells of one class in rows of ``columns``. Returns (image, [(row label, first row)],
    cells). Every class uses the same seeds, so a column compares classes at the same noise draw."""
    naming = check_naming(naming)
    count = check_count(count)
    classes = classes_for(cell_class, naming)
    rep = Reporter(progress, cancel)
    gen = get_generator(model_id)
    rows: List[List[np.ndarray]] = []
    labels: List[Tuple[str, int]] = []
    cells: List[Cell] = []
    per_row = count if len(classes) > 1 else min(count, columns)
    for ci, c in enumerate(classes):
        got = gen.generate(c, count, seed, naming, rep.sub(ci / len(classes), (ci + 1) / len(classes)).progress, cancel)
        cells += got
        labels.append((c, len(rows)))
        for r in range(0, len(got), per_row):
            rows.append([x.image for x in got[r : r + per_row]])
    s = gen.patch_px
    ncol = max(len(r) for r in rows)
    grid = np.full((len(rows) * (s + gap) + gap, ncol * (s + gap) + gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            y, x = gap + r * (s + gap), gap + c * (s + gap)
            grid[y : y + s, x : x + s] = img
    return grid, labels, cells


CSV_FIELDS = ("file", "class", "herlev_class", "naming", "seed", "model", "model_version")


def _existing_rows(csv_path: Path) -> Dict[str, Dict[str, str]]:
    """Rows of an existing ``cells.csv`` by file; InputError when it is a folder or not a CSV of cells."""
    rows: Dict[str, Dict[str, str]] = {}
    if not os.path.lexists(csv_path):
        return rows
    if not csv_path.is_file():
        raise InputError(f"{csv_path} exists and is not a file; choose another output folder")
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is not None and "file" not in reader.fieldnames:
                raise InputError(f"{csv_path} is not a cells.csv of MedSynth (no 'file' column); move it away or "
                                 "choose another output folder")
            for r in reader:
                if r.get("file"):
                    rows[r["file"]] = r
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{csv_path} cannot be read as CSV ({exc.__class__.__name__}); move it away or choose "
                         "another output folder") from None
    return rows


@dataclass(frozen=True)
class CellsJob:
    """What a part of a ``write_cells`` run depends on besides its class and seeds (pickled to Dask workers)."""

    out: str
    naming: str
    model_id: str


def write_cell_run(job: CellsJob, part: Tuple[str, int, int]) -> Tuple[List[Dict[str, str]], str]:
    """Cells ``seed .. seed + n - 1`` of a class (one task): their PNGs appear together, or none of them. Returns
    (CSV rows, "") or ([], why it failed)."""
    from ..errors import one_line
    from ..overview import write_png
    from ..parallel import item_files

    cell_class, seed, n = part
    out = Path(job.out)
    try:
        gen = get_generator(job.model_id)
        rows: List[Dict[str, str]] = []
        with item_files(out):
            for cell in gen.generate(cell_class, n, seed, job.naming):
                folder = cell.requested if cell.requested in classes_of(job.naming) else cell.label
                rel = f"{folder}/{cell.requested}_s{cell.seed}.png"
                write_png(cell.image, out / rel)
                rows.append({"file": rel, "class": cell.label, "herlev_class": cell.herlev_class,
                             "naming": job.naming, "seed": str(cell.seed), "model": gen.model_id,
                             "model_version": gen.version})
        return rows, ""
    except (InputError, OSError) as exc:
        return [], one_line(exc)


def write_cells(
    out_dir: os.PathLike,
    cell_class: str,
    count: int,
    seed: int = 0,
    naming: str = "herlev",
    model_id: str = DEFAULT_MODEL,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    workers=None,
) -> Tuple[List[Path], Path]:
    """PNG patches in ``out_dir/<label>/<requested class>_s<seed>.png`` plus ``out_dir/cells.csv`` (merged with an
    existing CSV: rows of the same file are replaced). ``all`` writes ``count`` cells per class of the naming
    (a class-balanced training set).

    ``workers`` (:class:`medsynth.parallel.Workers`): where the cells are made; each cell is a function of its
    class and seed only, so the files are the same whatever it is. Cells are written in runs of up to 64: a run's
    PNGs appear together. A run that fails is reported (:class:`InputError` after the others are finished and
    listed in cells.csv); a cancel or Ctrl-C keeps the whole runs made before, listed in cells.csv
    (:class:`medsynth.errors.Stopped`)."""
    from ..io import atomic_output
    from ..parallel import Workers, batch_failed, chunk_size, fill_folder

    naming = check_naming(naming)
    count = check_count(count)
    classes = classes_for(cell_class, naming)
    workers = workers or Workers()
    out = Path(os.fspath(out_dir))
    csv_path = out / "cells.csv"
    rows = _existing_rows(csv_path)  # before minutes of work: an unreadable CSV is refused first
    get_generator(model_id)  # a missing or broken model is reported before any work
    job = CellsJob(str(out), naming, model_id)
    size = chunk_size(count * len(classes), workers, cap=64)
    parts = [(c, seed + i, min(size, count - i)) for c in classes for i in range(0, count, size)]
    written: List[Path] = []
    failed: List[Tuple[int, str, str]] = []

    def collect(i: int, result: Tuple[List[Dict[str, str]], str]) -> List[Path]:
        got, why = result
        if why:
            c, s0, n = parts[i]
            failed.append((i, f"{c} seeds {s0}-{s0 + n - 1}", why))
        for r in got:
            rows[r["file"]] = r
        paths = [out / r["file"] for r in got]
        written.extend(paths)
        return paths

    def write_index() -> Optional[Path]:
        if not written:
            return None
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(CSV_FIELDS), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for key in sorted(rows):
            w.writerow(rows[key])
        with atomic_output(csv_path) as tmp:
            tmp.write_text(buf.getvalue(), encoding="utf-8")
        return csv_path

    fill_folder(out, partial(write_cell_run, job), parts, collect, lambda: len(written), "cells", workers, progress,
                cancel, sizes=[p[2] for p in parts], write_index=write_index)
    batch_failed(failed, len(parts), "runs of cells", f"listed in {csv_path}")
    return sorted(written), csv_path


__all__ = [
    "Cell",
    "CellGenerator",
    "CSV_FIELDS",
    "DEFAULT_MODEL",
    "check_count",
    "classes_for",
    "gallery",
    "generate_cells",
    "get_generator",
    "write_cells",
]

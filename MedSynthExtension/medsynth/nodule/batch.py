"""``nodule-batch``: N augmented images with random nodules, their masks and a COCO JSON of boxes + attributes.

Image ``n`` of a batch is a pure function of (batch seed, ``n``, host ``n mod H`` of the ``H`` sorted host files):
its random numbers come from ``numpy.random.default_rng([seed, n])``. The same command therefore writes the same
files in this process, on a local Dask cluster of any size or on a remote scheduler (:mod:`medsynth.parallel`).
Images are written item by item: an image and its mask appear together; an image that fails (an unreadable host)
is reported and the others are finished; an interrupted batch leaves whole images and an ``annotations.json``
listing exactly those.
"""

from __future__ import annotations

import datetime
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, one_line
from ..io import READ_SUFFIXES, atomic_output, stem_of, suffix_of
from ..parallel import Workers, chunk_size, chunks, fill_folder, item_files
from ..progress import CancelToken
from .detect import SearchSpace, _random_spec, mask_box
from .images import Host, read_host, write_mask, write_result


def list_hosts(folder: Path) -> List[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and suffix_of(p) in READ_SUFFIXES)
    if not files:
        raise InputError(f"no images ({', '.join(READ_SUFFIXES)}) in {folder}")
    return files


def _out_suffix(host: Host) -> str:
    if host.kind == "ct":
        return ".nrrd"
    arr = host.volume.array
    return ".png" if np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 65535 else ".nrrd"


@dataclass(frozen=True)
class BatchJob:
    """Everything an image of the batch depends on besides its index (pickled to Dask workers)."""

    hosts: Tuple[str, ...]
    out: str
    seed: int
    space: SearchSpace
    pixel_spacing_mm: Optional[float] = None
    compress: bool = False


class _PreparedHost:
    """A host read once, with its insertion context and the places a nodule may go (the lung, found once)."""

    def __init__(self, path: str, pixel_spacing_mm: Optional[float]) -> None:
        from .candidates import CTPlaces, CXRPlaces
        from .insertion import CTContext, CXRContext

        self.host = host = read_host(path)
        if host.kind == "ct":
            self.context: Any = CTContext(host.volume)
            self.places: Any = CTPlaces(host.volume)
        else:
            self.context = CXRContext(host.volume, host.photometric, pixel_spacing_mm or host.pixel_spacing_mm)
            self.places = CXRPlaces(host.volume, self.context.spacing_ji[1], host.photometric)
        self.suffix = _out_suffix(host)  # of its images and masks

    def points(self, diameter_mm: float, seed: int) -> np.ndarray:
        return self.places.points(diameter_mm, max_points=50, seed=seed)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays of this host, its context and its places."""
        total = 0
        for obj in (self.host.volume, self.context, self.places):
            for v in vars(obj).values():
                total += v.nbytes if isinstance(v, np.ndarray) else 0
        return total


_PREPARED: "OrderedDict[Tuple[Any, ...], _PreparedHost]" = OrderedDict()
PREPARED_BUDGET = 768 * 2**20
"""Bytes of prepared hosts kept per process (least recently used go first; the newest is always kept): dozens of
radiographs, a few CTs."""


def prepared_host(path: str, pixel_spacing_mm: Optional[float]) -> _PreparedHost:
    """The prepared host of ``path``, cached in this process (keyed by path, size and modification time), so each
    host is read and its lung found once per process, not once per image."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, pixel_spacing_mm)
    got = _PREPARED.get(key)
    if got is None:
        got = _PreparedHost(path, pixel_spacing_mm)
        _PREPARED[key] = got
        while len(_PREPARED) > 1 and sum(h.nbytes for h in _PREPARED.values()) > PREPARED_BUDGET:
            _PREPARED.popitem(last=False)
    else:
        _PREPARED.move_to_end(key)
    return got


def make_image(job: BatchJob, n: int, model=None) -> Dict[str, Any]:
    """Image ``n`` of the batch: writes ``images/`` and ``masks/`` files (together, or none) and returns its COCO
    ``image`` and ``annotation`` records and the files written."""
    from .insertion import _model, insert_ct_region, insert_cxr_region

    out = Path(job.out)
    path = job.hosts[n % len(job.hosts)]
    prep = prepared_host(path, job.pixel_spacing_mm)
    host, ctx = prep.host, prep.context
    rng = np.random.default_rng([job.seed, n])
    spec = _random_spec(rng, job.space)
    pts = prep.points(spec.diameter_mm, seed=int(rng.integers(1 << 31)))
    if len(pts) == 0:
        raise InputError(f"no place for a nodule found in {Path(path).name}")
    mdl = _model(model)
    if host.kind == "ct":
        res = insert_ct_region(host.volume, pts[0], spec, model=mdl, context=ctx, check=True)
    else:
        res = insert_cxr_region(host.volume, pts[0], spec, model=mdl, context=ctx)
    arr = host.volume.array.copy()
    arr[res.roi] = res.values
    mask = np.zeros(arr.shape, np.uint8)
    mask[res.roi] = res.mask
    vol = host.volume.with_array(arr, name=f"{n:05d}_{stem_of(path)}")
    suf = prep.suffix
    with item_files(out):
        img_path, note = write_result(host, vol, out / "images" / f"{vol.name}{suf}", compress=job.compress)
        mask_path = write_mask(host.volume.with_array(mask), out / "masks" / f"{vol.name}_mask{suf}",
                               compress=job.compress)
    box = mask_box(res.mask > 0, [sl.start for sl in res.roi], two_d=host.kind != "ct")  # the region, not the image
    nk, nj, ni = arr.shape
    image = {"id": n + 1, "file_name": os.path.relpath(img_path, out), "mask_file": os.path.relpath(mask_path, out),
             "width": int(ni), "height": int(nj), "host": Path(path).name, "kind": host.kind}
    if host.kind == "ct":
        image["depth"] = int(nk)
        image["spacing_mm_ijk"] = [float(s) for s in host.volume.spacing]
    else:
        image["pixel_spacing_mm"] = res.info["pixel_spacing_mm"]
        image["photometric"] = "MONOCHROME2" if note else host.photometric
    ann: Dict[str, Any] = {"id": n + 1, "image_id": n + 1, "category_id": 1, "iscrowd": 0,
                           "area": int(mask.sum()), "attributes": dict(res.info["spec"])}
    if box is not None:
        if len(box) == 4:
            ann["bbox"] = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
        else:
            ann["bbox"] = [box[0], box[1], box[3] - box[0], box[4] - box[1]]
            ann["bbox3d"] = [box[0], box[1], box[2], box[3] - box[0], box[4] - box[1], box[5] - box[2]]
    ann["attributes"].update({
        "equivalent_diameter_mm": round(res.info["equivalent_diameter_mm"], 3),
        "ras": [round(float(v), 2) for v in res.info["ras"]],
        "warnings": res.info["warnings"],
    })
    return {"image": image, "annotation": ann, "files": [str(img_path), str(mask_path)]}


def make_images(job: BatchJob, indices: Sequence[int], model=None) -> List[Tuple[int, Optional[Dict[str, Any]], str]]:
    """Images ``indices`` (one task: they share a host): ``(n, result, "")`` or ``(n, None, why it failed)``."""
    done: List[Tuple[int, Optional[Dict[str, Any]], str]] = []
    for n in indices:
        try:
            done.append((n, make_image(job, n, model), ""))
        except (InputError, OSError) as exc:
            done.append((n, None, one_line(exc)))
    return done


def plan_tasks(count: int, n_hosts: int, workers: Workers) -> List[List[int]]:
    """Image indices grouped by host (image ``n`` uses host ``n mod H``): in this process one image a task, host after
    host (each host is prepared once, each image is kept as soon as it is written); on Dask workers a few images of
    one host a task (a worker prepares the host once for them)."""
    size = 1 if workers.in_process else chunk_size(count, workers)
    tasks: List[List[int]] = []
    for h in range(min(n_hosts, count)):
        tasks += chunks(list(range(h, count, n_hosts)), size)
    return tasks


def run_batch(
    images: Path,
    count: int,
    out: Path,
    seed: int = 0,
    model=None,
    space: Optional[SearchSpace] = None,
    pixel_spacing_mm: Optional[float] = None,
    progress=None,
    cancel: Optional[CancelToken] = None,
    workers: Workers = Workers(),
    compress: bool = False,
) -> Dict[str, Any]:
    """Write ``count`` images (hosts taken in turn from ``images``), masks and ``annotations.json`` to ``out``.

    ``workers``: where the images are made (:class:`medsynth.parallel.Workers`; the files are the same whatever it
    is). ``compress``: gzip NRRD outputs and PNG at zlib's default level (smaller, slower to write; default: plain
    NRRD, PNG at level 1). Returns ``coco`` (the JSON path),
    ``images`` (how many were written) and ``failed`` ([(index, host, why)]). Images that failed are missing from
    the folder and from the JSON (its ``info.failed`` lists them); a cancel or Ctrl-C leaves only whole images and
    their JSON."""
    from ..params import validate
    from .params import BATCH_PARAMS

    v = validate(BATCH_PARAMS, {"count": count, "seed": seed})
    count, seed = v["count"], v["seed"]
    files = list_hosts(Path(images))
    out = Path(out)
    if model is not None and not workers.in_process:
        raise InputError("a shape model object can only be used in this process; give workers=Workers()")
    job = BatchJob(tuple(str(f) for f in files), str(out), seed, space or SearchSpace(slider_sd=2.0),
                   pixel_spacing_mm, compress)
    from .insertion import _model

    mdl = _model(model)
    coco: Dict[str, Any] = {
        "info": {"description": "MedSynth NoduleSynth synthetic nodules", "version": "1.1",
                 "date_created": datetime.date.today().isoformat(), "seed": seed, "count": count,
                 "model": f"{mdl.entry.id} {mdl.entry.version}",
                 "rule": "image n: numpy default_rng([seed, n]) on host n mod (number of hosts), hosts sorted by name"},
        "licenses": [],
        "categories": [{"id": 1, "name": "nodule", "supercategory": "lesion"}],
        "images": [],
        "annotations": [],
    }
    tasks = plan_tasks(count, len(files), workers)
    if not workers.in_process:  # the largest hosts first: the last tasks to finish are then short ones
        tasks.sort(key=lambda t: -files[t[0] % len(files)].stat().st_size)
    found: Dict[int, Dict[str, Any]] = {}
    failed: List[Tuple[int, str, str]] = []
    coco_path = out / "annotations.json"

    def collect(_i: int, results) -> List[str]:
        files_done: List[str] = []
        for n, res, why in results:
            if res is None:
                failed.append((n, files[n % len(files)].name, why))
            else:
                found[n] = res
                files_done += res["files"]
        return files_done

    def write_index() -> Optional[Path]:  # also after a cancel: the index of the whole images that are there
        if not found:
            return None
        for n in sorted(found):
            coco["images"].append(found[n]["image"])
            coco["annotations"].append(found[n]["annotation"])
        failed.sort()
        coco["info"]["failed"] = [{"index": n, "host": h, "error": why} for n, h, why in failed]
        missing = count - len(found) - len(failed)
        if missing:
            coco["info"]["incomplete"] = f"{missing} image(s) not made (interrupted)"
        with atomic_output(coco_path) as tmp:
            tmp.write_text(json.dumps(coco, indent=1) + "\n", encoding="utf-8")
        return coco_path

    fill_folder(out, partial(make_images, job, model=model), tasks, collect, lambda: len(found), "images", workers,
                progress, cancel, sizes=[len(t) for t in tasks], write_index=write_index)
    return {"coco": coco_path if found else None, "images": len(found), "failed": failed, "out": out}

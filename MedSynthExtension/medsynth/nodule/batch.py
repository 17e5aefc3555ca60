"""``nodule-batch``: N augmented images with random nodules, their masks and a COCO JSON of boxes + attributes."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import InputError
from ..io import READ_SUFFIXES, atomic_output, stem_of, suffix_of
from ..progress import CancelToken, Reporter
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
) -> Dict[str, Any]:
    """Write ``count`` images (hosts taken in turn from ``images``), masks and ``annotations.json`` to ``out``.

    Under an :class:`medsynth.outputs.OutputPlan` declaring ``out`` (as ``medsynth nodule-batch`` does) the files
    appear only when all are written; an error or a cancel leaves none."""
    from .candidates import ct_candidates, cxr_candidates
    from .insertion import CTContext, CXRContext, _model, insert_ct_region, insert_cxr_region

    from ..params import validate
    from .params import BATCH_PARAMS

    v = validate(BATCH_PARAMS, {"count": count, "seed": seed})
    count, seed = v["count"], v["seed"]
    files = list_hosts(Path(images))
    out = Path(out)  # images/ and masks/ are made by the first write (atomic_output)
    rep = Reporter(progress, cancel)
    rng = np.random.default_rng(seed)
    space = space or SearchSpace(slider_sd=2.0)
    mdl = _model(model)
    hosts: Dict[int, Any] = {}
    coco: Dict[str, Any] = {
        "info": {"description": "MedSynth NoduleSynth synthetic nodules", "version": "1.0",
                 "date_created": datetime.date.today().isoformat(), "seed": seed,
                 "model": f"{mdl.entry.id} {mdl.entry.version}"},
        "licenses": [],
        "categories": [{"id": 1, "name": "nodule", "supercategory": "lesion"}],
        "images": [],
        "annotations": [],
    }
    for n in range(count):
        rep.step(n / count, f"image {n + 1}/{count}")
        h = n % len(files)
        if h not in hosts:
            host = read_host(files[h])
            ctx = CXRContext(host.volume, host.photometric,
                             pixel_spacing_mm or host.pixel_spacing_mm) if host.kind == "cxr" else CTContext(host.volume)
            hosts[h] = (host, ctx)
        host, ctx = hosts[h]
        spec = _random_spec(rng, space)
        if host.kind == "ct":
            pts = ct_candidates(host.volume, spec.diameter_mm, max_points=50, seed=int(rng.integers(1 << 31)))
        else:
            pts = cxr_candidates(host.volume, spec.diameter_mm, ctx.spacing_ji[1], host.photometric, max_points=50,
                                 seed=int(rng.integers(1 << 31)))
        if len(pts) == 0:
            raise InputError(f"no place for a nodule found in {files[h].name}")
        ras = pts[0]
        if host.kind == "ct":
            res = insert_ct_region(host.volume, ras, spec, model=mdl, context=ctx, check=True)
        else:
            res = insert_cxr_region(host.volume, ras, spec, model=mdl, context=ctx)
        arr = host.volume.array.copy()
        arr[res.roi] = res.values
        mask = np.zeros(arr.shape, np.uint8)
        mask[res.roi] = res.mask
        vol = host.volume.with_array(arr, name=f"{n:05d}_{stem_of(files[h])}")
        suf = _out_suffix(host)
        img_path, note = write_result(host, vol, out / "images" / f"{vol.name}{suf}")
        mask_path = write_mask(host.volume.with_array(mask), out / "masks" / f"{vol.name}_mask{suf}")
        box = mask_box(mask > 0)
        nk, nj, ni = arr.shape
        image = {"id": n + 1, "file_name": os.path.relpath(img_path, out), "mask_file": os.path.relpath(mask_path, out),
                 "width": int(ni), "height": int(nj), "host": files[h].name, "kind": host.kind}
        if host.kind == "ct":
            image["depth"] = int(nk)
            image["spacing_mm_ijk"] = [float(s) for s in host.volume.spacing]
        else:
            image["pixel_spacing_mm"] = res.info["pixel_spacing_mm"]
            image["photometric"] = "MONOCHROME2" if note else host.photometric
        coco["images"].append(image)
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
        coco["annotations"].append(ann)
    coco_path = out / "annotations.json"
    with atomic_output(coco_path) as tmp:
        tmp.write_text(json.dumps(coco, indent=1) + "\n", encoding="utf-8")
    rep.step(1.0, f"{count} images written")
    return {"coco": coco_path, "images": len(coco["images"]), "out": out}

"""Command line: ``medsynth nodule`` (one nodule into a CT or radiograph) and ``medsynth nodule-batch``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..params import add_arguments
from .params import NODULE_PARAMS


def run_nodule(args) -> int:
    import numpy as np

    from ..errors import InputError
    from .images import read_host, write_mask, write_result
    from .insertion import insert_ct, insert_cxr, ijk_to_ras
    from .params import NoduleSpec

    spec = NoduleSpec.from_values({p.name: getattr(args, p.name) for p in NODULE_PARAMS})
    host = read_host(args.input)
    if args.ras is None and args.ijk is None:
        raise InputError("give the nodule's place with --ras X Y Z (or --ijk I J [K])")
    ras = np.asarray(args.ras, float) if args.ras is not None else ijk_to_ras(host.volume, args.ijk)
    if host.kind == "ct":
        new, mask, info = insert_ct(host.volume, ras, spec)
    else:
        spacing = args.pixel_spacing if args.pixel_spacing else host.pixel_spacing_mm
        new, mask, info = insert_cxr(host.volume, ras, spec, host.photometric, spacing, args.log_gain)
    path, note = write_result(host, new, args.output)
    if note:
        info.setdefault("notes", []).append(note)
    written = [str(path)]
    if args.mask:
        written.append(str(write_mask(mask, args.mask)))
    for w in info["warnings"]:
        sys.stderr.write(f"warning: {w}\n")
    d = info["equivalent_diameter_mm"]
    print(f"nodule {spec.texture} {spec.diameter_mm:g} mm (inserted equivalent diameter {d:.2f} mm) at RAS "
          f"({', '.join(f'{v:.1f}' for v in info['ras'])}); wrote {', '.join(written)}")
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return 0


def run_batch(args) -> int:
    from ..cli import progress_printer
    from .batch import run_batch as batch

    out = batch(Path(args.images), args.count, Path(args.out), seed=args.seed, pixel_spacing_mm=args.pixel_spacing,
                progress=progress_printer)
    print(f"wrote {out['images']} images, masks and {out['coco']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "nodule",
        help="insert a synthetic lung nodule into a chest CT or radiograph",
        description="CT (3D, HU): the nodule is blended in HU at the RAS point. Radiograph (2D; DICOM, PNG, "
        "JPEG; MONOCHROME1 handled): its projected attenuation is added in the log domain; z is ignored.",
    )
    p.add_argument("input", help="CT volume or radiograph")
    p.add_argument("output", help="output image (.nrrd/.nii.gz/.mha; .png for radiographs)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--ras", nargs=3, type=float, metavar=("X", "Y", "Z"), help="centre in RAS mm")
    where.add_argument("--ijk", nargs="+", type=float, metavar="I", help="centre as voxel/pixel index I J [K]")
    p.add_argument("--diameter", dest="diameter_mm", type=float, default=10.0,
                   help="equivalent-sphere diameter [3..30 mm] (default 10)")
    add_arguments(p, NODULE_PARAMS, skip=("diameter_mm",))
    p.add_argument("--mask", default=None, help="also write the nodule mask here")
    p.add_argument("--json", default=None, help="also write the facts (size reached, warnings, ...) as JSON")
    p.add_argument("--pixel-spacing", type=float, nargs="+", default=None,
                   help="radiographs: pixel spacing in mm (row [column]) when the file lacks it")
    p.add_argument("--log-gain", type=float, default=None,
                   help="radiographs: stored value change per unit of ln attenuation (default: estimated)")
    p.set_defaults(func=run_nodule)

    b = sub.add_parser("nodule-batch", help="N images with random synthetic nodules, masks and COCO boxes")
    b.add_argument("--images", required=True, help="folder of host CTs / radiographs")
    b.add_argument("--count", type=int, required=True, help="number of images to write")
    b.add_argument("--out", required=True, help="output folder (images/, masks/, annotations.json)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--pixel-spacing", type=float, default=None,
                   help="radiographs without pixel spacing: mm per pixel (default: assumed from width)")
    b.set_defaults(func=run_batch)

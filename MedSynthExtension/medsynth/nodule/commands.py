"""Command line: ``medsynth nodule`` (one nodule into a CT or radiograph) and ``medsynth nodule-batch``."""

from __future__ import annotations

import sys
from pathlib import Path

from ..outputs import PARENT_RULE
from ..params import add_arguments, finite_float, positive_float
from .params import BATCH_PARAMS, NODULE_PARAMS


def run_nodule(args) -> int:
    import numpy as np

    from ..errors import InputError
    from ..io import write_json
    from ..outputs import JSON, WRITABLE, OutputPlan
    from .images import read_host, write_mask, write_result
    from .insertion import insert_ct, insert_cxr, ijk_to_ras
    from .params import NoduleSpec

    spec = NoduleSpec.from_values({p.name: getattr(args, p.name) for p in NODULE_PARAMS})
    if args.ras is None and args.ijk is None:
        raise InputError("give the nodule's place with --ras X Y Z (or --ijk I J [K])")
    if args.pixel_spacing is not None and len(args.pixel_spacing) > 2:
        raise InputError(f"--pixel-spacing takes 1 or 2 values (row [column]), got {len(args.pixel_spacing)}")
    plan = OutputPlan(inputs=[args.input])
    plan.file(args.output, "OUT", WRITABLE)
    plan.file(args.mask, "--mask", WRITABLE)
    plan.file(args.json, "--json", JSON)
    with plan:
        host = read_host(args.input)
        if args.ijk is not None:
            need = (3,) if host.kind == "ct" else (2, 3)
            if len(args.ijk) not in need:
                raise InputError(
                    f"--ijk needs {' or '.join(map(str, need))} values (I J{' K' if host.kind == 'ct' else ' [K]'}) "
                    f"for this {'3D image' if host.kind == 'ct' else 'radiograph'}, got {len(args.ijk)}"
                )
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
        if args.json:
            write_json(info, args.json)
            written.append(str(args.json))
    for w in info["warnings"]:
        sys.stderr.write(f"warning: {w}\n")
    d = info["equivalent_diameter_mm"]
    print(f"nodule {spec.texture} {spec.diameter_mm:g} mm (inserted equivalent diameter {d:.2f} mm) at RAS "
          f"({', '.join(f'{v:.1f}' for v in info['ras'])}); wrote {', '.join(written)}")
    return 0


def run_batch(args) -> int:
    from ..cli import progress_printer
    from ..outputs import OutputPlan
    from ..params import from_namespace
    from .batch import run_batch as batch
    from .params import BATCH_PARAMS

    v = from_namespace(BATCH_PARAMS, args)
    plan = OutputPlan(inputs=[args.images])
    plan.folder(args.out, "--out")
    with plan:
        out = batch(Path(args.images), v["count"], Path(args.out), seed=v["seed"], pixel_spacing_mm=args.pixel_spacing,
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
    p.add_argument("output", help=f"output image (.nrrd/.nii.gz/.mha; .png for radiographs); {PARENT_RULE}")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--ras", nargs=3, type=finite_float, metavar=("X", "Y", "Z"), help="centre in RAS mm")
    where.add_argument("--ijk", nargs="+", type=finite_float, metavar="I",
                       help="centre as voxel/pixel index: I J K for a CT, I J for a radiograph")
    p.add_argument("--diameter", dest="diameter_mm", type=finite_float, default=10.0,
                   help="equivalent-sphere diameter [3..30 mm] (default 10)")
    add_arguments(p, NODULE_PARAMS, skip=("diameter_mm",))
    p.add_argument("--mask", default=None, help="also write the nodule mask here (an image format)")
    p.add_argument("--json", default=None, help="also write the facts (size reached, warnings, ...) as .json")
    p.add_argument("--pixel-spacing", type=positive_float, nargs="+", default=None,
                   help="radiographs: pixel spacing in mm (row [column]) when the file lacks it")
    p.add_argument("--log-gain", type=finite_float, default=None,
                   help="radiographs: stored value change per unit of ln attenuation (default: estimated)")
    p.set_defaults(func=run_nodule)

    b = sub.add_parser(
        "nodule-batch", help="N images with random synthetic nodules, masks and COCO boxes",
        description="Writes OUT/images/, OUT/masks/ and OUT/annotations.json, all of them or (after an error or "
        f"Ctrl-C) none; {PARENT_RULE}.",
    )
    b.add_argument("--images", required=True, help="folder of host CTs / radiographs")
    b.add_argument("--out", required=True, help="output folder (images/, masks/, annotations.json)")
    add_arguments(b, BATCH_PARAMS)
    b.add_argument("--pixel-spacing", type=positive_float, default=None,
                   help="radiographs without pixel spacing: mm per pixel (default: assumed from width)")
    for action in b._actions:  # the count has no sensible default: ask for it
        if action.dest == "count":
            action.required = True
            action.help = (action.help or "").replace(" (default 10)", " (required)")
    b.set_defaults(func=run_batch)

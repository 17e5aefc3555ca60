"""Command line: ``medsynth nodule`` (one nodule into a CT or radiograph) and ``medsynth nodule-batch``."""

from __future__ import annotations

import sys
from pathlib import Path

from ..outputs import PARENT_RULE
from ..parallel import WORKER_PARAMS
from ..params import add_arguments, finite_float, positive_float
from .params import BATCH_PARAMS, NODULE_PARAMS


def run_nodule(args) -> int:
    import numpy as np

    from ..errors import InputError
    from ..io import write_json
    from ..outputs import JSON, WRITABLE, OutputPlan
    from .candidates import suggest_lung_point
    from .images import read_host, write_mask, write_result
    from .insertion import CTContext, CXRContext, insert_ct, insert_cxr, ijk_to_ras
    from .params import NoduleSpec

    spec = NoduleSpec.from_values({p.name: getattr(args, p.name) for p in NODULE_PARAMS})
    if args.ras is None and args.ijk is None and args.suggest is None:
        raise InputError("give the nodule's place with --ras X Y Z, --ijk I J [K] or --suggest")
    if args.suggest is not None and args.suggest < 0:
        raise InputError(f"--suggest SEED must be 0 or more, got {args.suggest}")
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
        spacing = args.pixel_spacing if args.pixel_spacing else host.pixel_spacing_mm
        ctx = (CTContext(host.volume) if host.kind == "ct"
               else CXRContext(host.volume, host.photometric, spacing, args.log_gain))  # its lung is found once
        if args.suggest is not None:
            ras = suggest_lung_point(host.volume, spec.diameter_mm, seed=args.suggest, places=ctx.lung_places)
        elif args.ras is not None:
            ras = np.asarray(args.ras, float)
        else:
            ras = ijk_to_ras(host.volume, args.ijk)
        if host.kind == "ct":
            new, mask, info = insert_ct(host.volume, ras, spec, context=ctx)
        else:
            new, mask, info = insert_cxr(host.volume, ras, spec, context=ctx)
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
    if args.suggest is not None:
        print(f"suggested lung point (seed {args.suggest}): RAS {' '.join(f'{v:.1f}' for v in info['ras'])}")
    d = info["equivalent_diameter_mm"]
    print(f"nodule {spec.texture} {spec.diameter_mm:g} mm (inserted equivalent diameter {d:.2f} mm) at RAS "
          f"({', '.join(f'{v:.1f}' for v in info['ras'])}); wrote {', '.join(written)}")
    return 0


def run_batch(args) -> int:
    from ..progress import progress_printer
    from ..outputs import OutputPlan
    from ..parallel import WORKER_PARAMS, Workers, batch_failed
    from ..params import from_namespace
    from .batch import run_batch as batch
    from .params import BATCH_PARAMS

    v = from_namespace(BATCH_PARAMS, args)
    workers = Workers.from_values(from_namespace(WORKER_PARAMS, args))
    plan = OutputPlan(inputs=[args.images])
    plan.folder(args.out, "--out")  # checked here; written image by image (medsynth.parallel.ItemFolder)
    out = batch(Path(args.images), v["count"], Path(args.out), seed=v["seed"], pixel_spacing_mm=args.pixel_spacing,
                progress=progress_printer, workers=workers, compress=args.compress)
    batch_failed(out["failed"], v["count"], "images", f"listed in {out['coco']}")
    print(f"wrote {out['images']} images, masks and {out['coco']}")
    return 0


def _detector_and_threshold(args):
    from .cxr_detector import load_detector

    if args.threshold is not None and not (0.0 <= args.threshold):
        from ..errors import InputError

        raise InputError(f"--threshold must be >= 0, got {args.threshold}")
    return load_detector(args.detector, args.threshold)


def run_detect(args) -> int:
    import numpy as np

    from ..errors import InputError
    from ..io import write_json
    from ..outputs import JSON, OutputPlan
    from .benchmark import load_hosts

    plan = OutputPlan(inputs=[args.image])
    plan.file(args.json, "--json", JSON)
    with plan:
        if not Path(args.image).is_file():
            raise InputError(f"image not found: {args.image}")
        host = load_hosts([Path(args.image)], args.pixel_spacing, args.assume_width)[0]
        detector = _detector_and_threshold(args)
        dets = detector(host.volume)
        result = {
            "image": str(args.image), "detector": getattr(detector, "name", args.detector),
            "threshold": getattr(detector, "threshold", None), "pixel_spacing_mm": host.pixel_mm,
            "detections": [{"box_ij": [round(float(v), 1) for v in d.box], "score": round(float(d.score), 4),
                            "center_ij": [round((d.box[0] + d.box[2]) / 2, 1), round((d.box[1] + d.box[3]) / 2, 1)],
                            "diameter_mm": round(float(np.mean([d.box[2] - d.box[0], d.box[3] - d.box[1]])) *
                                                 host.pixel_mm, 1)} for d in dets],
        }
        if args.json:
            write_json(result, args.json)
    print(f"{len(dets)} detection(s) by {result['detector']} (score >= {result['threshold']}):")
    for d in result["detections"]:
        print(f"  box i {d['box_ij'][0]:.0f}-{d['box_ij'][2]:.0f}, j {d['box_ij'][1]:.0f}-{d['box_ij'][3]:.0f}  "
              f"about {d['diameter_mm']:.0f} mm  score {d['score']:.3f}")
    if args.json:
        print(f"wrote {args.json}")
    return 0


def run_benchmark_cmd(args) -> int:
    from ..progress import progress_printer
    from ..errors import InputError
    from ..outputs import OutputPlan
    from .benchmark import collect_files, run_benchmark, write_report

    if args.per_image < 1:
        raise InputError(f"--per-image must be at least 1, got {args.per_image}")
    plan = OutputPlan(inputs=list(args.images))
    plan.folder(args.out, "--out")
    with plan:
        collect_files([Path(p) for p in args.images])
        detector = _detector_and_threshold(args)
        report = run_benchmark([Path(p) for p in args.images], detector, seed=args.seed, per_image=args.per_image,
                               attributes=args.attributes, pixel_spacing_mm=args.pixel_spacing,
                               assume_width_mm=args.assume_width,
                               progress=progress_printer)
        write_report(report, Path(args.out))
    print(f"detector {report['detector']}: {report['false_positives_per_image']:.2f} false positives per image "
          f"on {len(report['images'])} unmodified image(s) (seed {report['seed']})")
    for s in report["sensitivity"]:
        sens = "n/a" if s["sensitivity"] is None else f"{s['sensitivity']:.2f}"
        print(f"  {s['attribute']:<12} {str(s['value']):<16} {s['hits']:>3}/{s['total']:<3} sensitivity {sens}")
    print(f"wrote {args.out}/report.json, sensitivity.csv, trials.csv and plots")
    return 0


def run_sheet(args) -> int:
    from ..errors import InputError
    from ..progress import progress_printer
    from ..sheets import request, run_sheet_command
    from .sheet import ALIASES, nodule_sheet

    if args.window is not None and not args.window[0] < args.window[1]:
        raise InputError(f"--window LOW HIGH needs LOW < HIGH, got {args.window[0]:g} {args.window[1]:g}")
    vary, fixed = request(args, NODULE_PARAMS, ALIASES)
    facts = run_sheet_command(args, [args.input], lambda: nodule_sheet(
        args.input, args.out, vary, fixed, ras=args.ras, window=args.window, fov_mm=args.fov,
        pixel_spacing_mm=args.pixel_spacing, progress=progress_printer))
    print(f"wrote {args.out}: {len(facts['tiles'])} tiles, nodule at RAS "
          f"({', '.join(f'{v:.1f}' for v in facts['ras'])}), shape model {facts['model']}")
    return 0


def register_sheet(inner) -> None:
    """``medsynth sheet nodule``."""
    names = ", ".join(p.name for p in NODULE_PARAMS)
    s = inner.add_parser("nodule", help="the same nodule at several settings on a chest CT or radiograph",
                         description="A captioned grid: the first --vary runs along the columns, the second (if any) "
                         f"along the rows; NAME is a nodule parameter ({names}; 'diameter' for diameter_mm). CT tiles: "
                         "the axial slice through the nodule's centre; radiograph tiles: the image around it.")
    from ..sheets import add_sheet_arguments

    s.add_argument("--input", required=True, help="chest CT (HU) or radiograph")
    add_sheet_arguments(s, NODULE_PARAMS)
    s.add_argument("--ras", nargs=3, type=finite_float, metavar=("X", "Y", "Z"),
                   help="nodule centre in RAS mm (default: a lung point near the middle)")
    s.add_argument("--window", nargs=2, type=finite_float, metavar=("LOW", "HIGH"),
                   help="display window (CT: HU; default -1200 200; radiographs: stored values, default from the image)")
    s.add_argument("--fov", type=positive_float, default=None, help="field of each tile in mm (default 2.5 x the "
                   "largest diameter, at least 40)")
    s.add_argument("--pixel-spacing", type=positive_float, default=None,
                   help="radiographs without pixel spacing: mm per pixel (default: assumed from width)")
    s.set_defaults(func=run_sheet)


def register(sub) -> None:
    p = sub.add_parser(
        "nodule",
        help="insert a synthetic lung nodule into a chest CT or radiograph",
        description="CT (3D, HU): the nodule is blended in HU at the RAS point. Radiograph (2D; DICOM, PNG, "
        "JPEG; MONOCHROME1 handled): its projected attenuation is added in the log domain; z is ignored. A centre "
        "outside the estimated lung fields is written all the same, with a warning.",
    )
    p.add_argument("input", help="CT volume or radiograph")
    p.add_argument("output", help=f"output image (.nrrd/.nii.gz/.mha; .png for radiographs); {PARENT_RULE}")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--ras", nargs=3, type=finite_float, metavar=("X", "Y", "Z"), help="centre in RAS mm")
    where.add_argument("--ijk", nargs="+", type=finite_float, metavar="I",
                       help="centre as voxel/pixel index: I J K for a CT, I J for a radiograph")
    where.add_argument("--suggest", nargs="?", type=int, const=0, default=None, metavar="SEED",
                       help="centre at a suggested lung point where the nodule fits (printed): without SEED (or 0) "
                       "the one nearest the middle of the image (CT) or of the right lung field (radiograph), other "
                       "seeds random ones")
    add_arguments(p, NODULE_PARAMS, options={"diameter_mm": "--diameter"})
    p.add_argument("--mask", default=None, help="also write the nodule mask here (an image format)")
    p.add_argument("--json", default=None, help="also write the facts (size reached, warnings, ...) as .json")
    p.add_argument("--pixel-spacing", type=positive_float, nargs="+", default=None,
                   help="radiographs: pixel spacing in mm (row [column]) when the file lacks it")
    p.add_argument("--log-gain", type=finite_float, default=None,
                   help="radiographs: stored value change per unit of ln attenuation (default: estimated)")
    p.set_defaults(func=run_nodule)

    b = sub.add_parser(
        "nodule-batch", help="N images with random synthetic nodules, masks and COCO boxes",
        description="Writes OUT/images/, OUT/masks/ and OUT/annotations.json. Image n is a pure function of "
        "(--seed, n, host n mod H), so any --workers / --scheduler writes the same files. An image and its mask "
        "appear together; an image that fails is reported (exit status 2) and the others are finished; after Ctrl-C "
        f"only whole images remain, listed in annotations.json; {PARENT_RULE}.",
    )
    b.add_argument("--images", required=True, help="folder of host CTs / radiographs")
    b.add_argument("--out", required=True, help="output folder (images/, masks/, annotations.json)")
    add_arguments(b, BATCH_PARAMS)
    b.add_argument("--pixel-spacing", type=positive_float, default=None,
                   help="radiographs without pixel spacing: mm per pixel (default: assumed from width)")
    b.add_argument("--compress", action="store_true",
                   help="gzip NRRD images and masks (smaller files, several times slower to write)")
    add_arguments(b, WORKER_PARAMS)
    for action in b._actions:  # the count has no sensible default: ask for it
        if action.dest == "count":
            action.required = True
            action.help = (action.help or "").replace(" (default 10)", " (required)")
    b.set_defaults(func=run_batch)

    detector_help = ("'shipped' (default: the trained RetinaNet, see Resources/Models/nodule-cxr-detector.md), 'log' "
                     "(classical LoG blobs), a detector .onnx exported by medsynth.nodule.train_detector, or "
                     "package.module:callable taking a one-slice MONOCHROME2 volume and returning detections")
    d = sub.add_parser("nodule-detect", help="find nodules in a chest radiograph (boxes and scores)",
                       description="Runs a radiograph nodule detector and prints its boxes (pixel indices i, j of the "
                       "image) and scores.")
    d.add_argument("image", help="chest radiograph (DICOM, PNG, JPEG, NRRD...)")
    d.add_argument("--json", default=None, help="also write the detections as .json")
    d.add_argument("--detector", default="shipped", help=detector_help)
    d.add_argument("--threshold", type=finite_float, default=None,
                   help="minimum score (default: the detector's operating point, about 0.5 false positives per image)")
    d.add_argument("--pixel-spacing", type=positive_float, default=None,
                   help="mm per pixel (default: from the file)")
    d.add_argument("--assume-width", type=positive_float, default=None, metavar="MM",
                   help="for images without pixel spacing (PNG/JPEG): the imaged width in mm (e.g. 370)")
    d.set_defaults(func=run_detect)

    m = sub.add_parser(
        "nodule-benchmark", help="robustness benchmark of a radiograph nodule detector, one attribute at a time",
        description="Inserts synthetic nodules one attribute at a time (diameter, texture, each shape slider, place: "
        "upper / middle / lower lung, retrocardiac, subdiaphragmatic, over a rib, between ribs), runs the detector and "
        "writes OUT/report.json (sensitivity per attribute value, false positives per unmodified image), "
        f"sensitivity.csv, trials.csv and sensitivity_<attribute>.png; {PARENT_RULE}. Same seed, same benchmark.")
    m.add_argument("--images", nargs="+", required=True, help="host radiographs: folders and/or files")
    m.add_argument("--out", required=True, help="output folder")
    m.add_argument("--detector", default="shipped", help=detector_help)
    m.add_argument("--threshold", type=finite_float, default=None, help="minimum score (default: the detector's own)")
    m.add_argument("--seed", type=int, default=0, help="places and shapes of the nodules (default 0)")
    m.add_argument("--per-image", type=int, default=2, help="nodules per attribute value and image (default 2)")
    m.add_argument("--attributes", nargs="+", default=None, metavar="NAME",
                   help="only these attributes (diameter_mm texture sphericity lobulation spiculation zone)")
    m.add_argument("--pixel-spacing", type=positive_float, default=None, help="mm per pixel for all images "
                   "(default: from each file)")
    m.add_argument("--assume-width", type=positive_float, default=None, metavar="MM",
                   help="for images without pixel spacing (PNG/JPEG): the imaged width in mm (e.g. 370)")
    m.set_defaults(func=run_benchmark_cmd)

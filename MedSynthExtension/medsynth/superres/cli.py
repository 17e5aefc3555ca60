"""``medsynth superres IN OUT --spacing MM [--axis auto|i|j|k] [--method sainr|bspline|linear] [--adapt-steps N] [--gate G]``."""

from __future__ import annotations

from ..outputs import PARENT_RULE, VOLUME, OutputPlan
from ..parallel import WORKER_PARAMS
from ..params import add_arguments, from_namespace
from .params import SUPERRES_PARAMS


def run(args) -> int:
    from ..progress import progress_printer
    from .batch import is_volume_folder

    values = from_namespace(SUPERRES_PARAMS, args)
    if is_volume_folder(args.input):
        return _run_folder(args, values)
    from .core import superres_file

    plan = OutputPlan(inputs=[args.input])
    plan.file(args.output, "OUT", VOLUME)
    with plan:
        result = superres_file(
            args.input, args.output, values["spacing"], values["axis"], values["method"], progress=progress_printer,
            adapt_steps=values["adapt_steps"], gate=values["gate"],
        )
    out = args.output
    g = result.grid
    print(f"wrote {out}: {g.describe()}; {result.method} in {result.seconds:.2f} s ({result.provider})")
    if abs(g.spacing - g.requested_spacing) > 1e-9:
        print(f"note: spacing {g.requested_spacing:g} mm was rounded to {g.spacing:.6g} mm so the span divides evenly")
    return 0


def _run_folder(args, values) -> int:
    from ..progress import progress_printer
    from ..parallel import Workers
    from .batch import superres_folder

    workers = Workers.from_values(from_namespace(WORKER_PARAMS, args))
    plan = OutputPlan(inputs=[args.input])
    plan.folder(args.output, "OUT")  # checked here; written volume by volume (medsynth.parallel.ItemFolder)
    done = superres_folder(args.input, args.output, values["spacing"], values["axis"], values["method"],
                           values["adapt_steps"], values["gate"], workers, progress=progress_printer)
    for d in done:
        print(f"{d['input']}: {d['grid']}; {d['method']} in {d['seconds']:.2f} s")
    print(f"wrote {len(done)} volumes to {args.output}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "superres",
        help="reduce the slice spacing along one axis (SA-INR, B-spline or linear)",
        description="Makes a volume with the asked slice spacing along one axis; the first and last slice planes "
        "stay where they were, the spacing is rounded so the span divides evenly (the exact value is printed).",
    )
    p.add_argument("input", help="input volume (NIfTI, NRRD, MHA, DICOM folder), or a folder of volumes (a batch)")
    p.add_argument("output", help=f"output volume; the format follows the suffix ({PARENT_RULE}); for a folder of "
                   "volumes, an output folder (each volume under its own name)")
    add_arguments(p, SUPERRES_PARAMS, required=("spacing",))  # the spacing has no sensible default: ask for it
    add_arguments(p, WORKER_PARAMS)
    p.set_defaults(func=run)


def run_sheet(args) -> int:
    from ..progress import progress_printer
    from ..sheets import request, run_sheet_command
    from .sheet import SHEET_PARAMS, superres_sheet

    vary, fixed = request(args, SHEET_PARAMS)
    facts = run_sheet_command(args, [args.input], lambda: superres_sheet(
        args.input, args.out, vary, fixed, args.ras, args.fov, args.window, progress=progress_printer))
    print(f"wrote {args.out}: {len(facts['tiles'])} settings beside the input, {facts['plane']} plane")
    return 0


def register_sheet(inner) -> None:
    """``medsynth sheet superres``."""
    from ..params import finite_float, positive_float
    from ..sheets import add_sheet_arguments
    from .sheet import SHEET_PARAMS

    s = inner.add_parser("superres", help="one region of a thick-slice volume at several spacings / methods",
                         description="A captioned grid: the input as acquired, then the region super-resolved at "
                         "each setting (first --vary along the columns, second along the rows), in the plane that "
                         "contains the super-resolved axis.")
    s.add_argument("--input", required=True, help="thick-slice volume (NIfTI, NRRD, MHA, DICOM folder)")
    add_sheet_arguments(s, SHEET_PARAMS)
    s.add_argument("--ras", nargs=3, type=finite_float, metavar=("X", "Y", "Z"), help="centre in RAS mm (default: "
                   "the volume's centre)")
    s.add_argument("--fov", type=positive_float, default=None, help="field of each tile in mm (default: half the "
                   "smallest extent, 40-120)")
    s.add_argument("--window", nargs=2, type=finite_float, metavar=("LOW", "HIGH"),
                   help="display window (default: 1st-99.5th percentile of the input's plane)")
    s.set_defaults(func=run_sheet)


__all__ = ["register", "register_sheet", "run", "run_sheet"]

"""``medsynth cells --out DIR [--class NAME] [--count N] [--seed S] [--naming herlev|bethesda]`` (options from
:data:`~medsynth.cyto.params.CYTO_PARAMS`) and ``medsynth sheet cells``."""

from __future__ import annotations

from ..outputs import OutputPlan
from ..parallel import WORKER_PARAMS
from ..params import add_arguments
from .params import CYTO_PARAMS


def run(args) -> int:
    from ..progress import progress_printer
    from ..parallel import Workers
    from ..params import from_namespace, validate
    from .classes import canonical_class
    from .generate import write_cells
    from .params import ALL

    cell_class = ALL if str(args.cell_class).strip().lower() == ALL else canonical_class(args.cell_class)
    v = validate(CYTO_PARAMS, {"cell_class": cell_class, "naming": args.naming, "count": args.count,
                               "seed": args.seed})
    workers = Workers.from_values(from_namespace(WORKER_PARAMS, args))
    plan = OutputPlan()
    plan.folder(args.out, "--out")  # checked here; written run by run (medsynth.parallel.ItemFolder)
    written, csv_path = write_cells(args.out, v["cell_class"], v["count"], v["seed"], v["naming"], args.model,
                                    progress=progress_printer, workers=workers)
    print(f"wrote {len(written)} cells to {args.out} (classes and seeds in {csv_path})")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "cells",
        help="generate cervical cell patches of a class (CellGAN): PNGs plus a CSV of classes and seeds",
        description="Writes OUT/<class>/<requested>_s<seed>.png and OUT/cells.csv (merged with an existing one). "
        "Cell n of a request uses seed S + n, so any cell can be made again alone. --class all writes COUNT cells "
        "of every class of the naming (a class-balanced training set).",
    )
    add_arguments(p, CYTO_PARAMS, skip=("patch_px", "blend"), options={"cell_class": "--class"},
                  lenient=("cell_class",))
    p.add_argument("--out", required=True, help="output folder (created when missing); cells are written in runs of "
                   "up to 64 whose PNGs appear together; after an error or Ctrl-C only whole runs remain, listed in "
                   "cells.csv")
    p.add_argument("--model", default="cellgan", help="generator model id (default cellgan)")
    add_arguments(p, WORKER_PARAMS)
    p.set_defaults(func=run)


def run_sheet(args) -> int:
    from ..progress import progress_printer
    from ..sheets import request, run_sheet_command
    from .sheet import ALIASES, SHEET_PARAMS, cells_sheet

    vary, fixed = request(args, SHEET_PARAMS, ALIASES)
    facts = run_sheet_command(args, [], lambda: cells_sheet(args.out, vary, fixed, args.model, progress=progress_printer))
    print(f"wrote {args.out}: {len(facts['tiles'])} cells ({facts['model']}; synthetic)")
    return 0


def register_sheet(inner) -> None:
    """``medsynth sheet cells``."""
    from ..sheets import add_sheet_arguments
    from .sheet import SHEET_PARAMS

    s = inner.add_parser("cells", help="synthetic cells of several classes and seeds, captioned",
                         description="A captioned grid of generated cells: the first --vary along the columns, the "
                         "second along the rows (e.g. --vary cell_class=all --vary seed=0,1,2). 'class' stands for "
                         "cell_class.")
    add_sheet_arguments(s, SHEET_PARAMS)
    s.add_argument("--model", default="cellgan", help="generator model id (default cellgan)")
    s.set_defaults(func=run_sheet)


__all__ = ["register", "register_sheet", "run", "run_sheet"]

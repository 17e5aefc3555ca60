"""Command line of the PET package: ``medsynth pet-simulate`` and ``medsynth sbr``."""

from __future__ import annotations

from pathlib import Path


def run_simulate(args) -> int:
    from ..cli import progress_printer
    from ..params import from_namespace
    from ..progress import Reporter
    from .simulate import SIMULATE_PARAMS, read_cohort, simulate_cohort

    v = from_namespace(SIMULATE_PARAMS, args)
    paths = simulate_cohort(
        args.out, v["subjects"], v["pd_fraction"], v["seed"], Reporter(progress_printer), overwrite=args.overwrite
    )
    rows = read_cohort(args.out)
    n_pd = sum(r["group"] == "PD" for r in rows)
    print(f"simulated {len(rows)} subjects ({n_pd} PD, {len(rows) - n_pd} NC), seed {v['seed']}: FDG and CFT PET, MNI 2 mm")
    print(f"wrote {len(paths) - 1} volumes and {Path(args.out) / 'cohort.csv'}")
    print("these are simulated images (see docs/pet.md), not real PET")
    return 0


def run_sbr(args) -> int:
    from ..cli import progress_printer
    from ..io import read_volume, write_volume
    from ..params import from_namespace
    from ..progress import Reporter
    from .sbr import SBR_PARAMS, striatal_binding, write_report

    v = from_namespace(SBR_PARAMS, args)
    if args.cohort:
        return _run_cohort_sbr(args, v)
    if not args.cft:
        from ..errors import InputError

        raise InputError("give a CFT volume (or --cohort DIR)")
    volume = read_volume(args.cft)
    result = striatal_binding(
        volume, v["reference"], v["space"], reporter=Reporter(progress_printer), labels_in_input=bool(args.labels)
    )
    print(result.table())
    if result.registration:
        print(f"registered to the CFT template: r = {result.registration['correlation_with_template']:.3f}")
    if args.report:
        print(f"wrote {write_report(result, args.report)}")
    if args.labels and result.labels_in_input is not None:
        print(f"wrote {write_volume(result.labels_in_input, args.labels)}")
    return 0


def _run_cohort_sbr(args, v) -> int:
    import json

    from ..cli import progress_printer
    from ..progress import Reporter
    from .sbr import cohort_sbr, write_report

    data = cohort_sbr(args.cohort, v["reference"], v["space"], Reporter(progress_printer))
    print(json.dumps(data["summary"], indent=2))
    if args.report:
        print(f"wrote {write_report(data, args.report)}")
    return 0


def register(sub) -> None:
    from ..params import add_arguments
    from .sbr import SBR_PARAMS
    from .simulate import SIMULATE_PARAMS

    p = sub.add_parser(
        "pet-simulate",
        help="simulate brain FDG and 11C-CFT PET pairs (normal controls and Parkinson's disease), MNI 2 mm",
    )
    p.add_argument("--out", required=True, help="output folder (sub-NNN_fdg/cft.nii.gz and cohort.csv)")
    add_arguments(p, SIMULATE_PARAMS)
    p.add_argument("--overwrite", action="store_true", help="replace a cohort already in --out")
    p.set_defaults(func=run_simulate)

    q = sub.add_parser("sbr", help="striatal binding ratios (caudate, anterior/posterior putamen) of a CFT PET")
    q.add_argument("cft", nargs="?", help="CFT (dopamine transporter) PET volume, in MNI space or native (registered)")
    q.add_argument("--cohort", help="instead: every CFT of a simulated cohort folder, compared with the simulated SBR")
    q.add_argument("--report", help="write a JSON report here")
    q.add_argument("--labels", help="write the striatal and reference regions on the input's grid here")
    add_arguments(q, SBR_PARAMS)
    q.set_defaults(func=run_sbr)

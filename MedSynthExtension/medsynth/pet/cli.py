"""Command line of the PET package: ``medsynth pet-simulate``, ``medsynth sbr`` and ``medsynth fdg2cft``."""

from __future__ import annotations

from pathlib import Path


def run_simulate(args) -> int:
    from ..progress import progress_printer
    from ..params import from_namespace
    from ..progress import Reporter
    from .simulate import SIMULATE_PARAMS, read_cohort, simulate_cohort

    from ..outputs import OutputPlan

    v = from_namespace(SIMULATE_PARAMS, args)
    plan = OutputPlan()
    plan.folder(args.out, "--out", defer=False)  # simulate_cohort stages its files itself
    with plan:
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
    from ..progress import progress_printer
    from ..io import read_volume, write_volume
    from ..params import from_namespace
    from ..progress import Reporter
    from .sbr import SBR_PARAMS, striatal_binding, write_report

    from ..errors import InputError
    from ..outputs import JSON, PET, OutputPlan

    v = from_namespace(SBR_PARAMS, args)
    if args.cohort and args.cft:
        raise InputError("give a CFT volume or --cohort DIR, not both")
    if not args.cohort and not args.cft:
        raise InputError("give a CFT volume (or --cohort DIR)")
    if args.cohort and args.labels:
        raise InputError("--labels needs a CFT volume; with --cohort only --report is written")
    plan = OutputPlan(inputs=[args.cft, args.cohort])
    plan.file(args.report, "--report", JSON)
    plan.file(args.labels, "--labels", PET)
    if args.cohort:
        with plan:
            return _run_cohort_sbr(args, v)
    written = []
    with plan:
        volume = read_volume(args.cft)
        result = striatal_binding(
            volume, v["reference"], v["space"], reporter=Reporter(progress_printer), labels_in_input=bool(args.labels)
        )
        if args.report:
            written.append(write_report(result, args.report))
        if args.labels and result.labels_in_input is not None:
            written.append(write_volume(result.labels_in_input, args.labels))
    print(result.table())
    if result.registration:
        print(f"registered to the CFT template: r = {result.registration['correlation_with_template']:.3f}")
    for path in written:
        print(f"wrote {path}")
    return 0


def _run_cohort_sbr(args, v) -> int:
    import json

    from ..progress import progress_printer
    from ..progress import Reporter
    from .sbr import cohort_sbr, write_report

    data = cohort_sbr(args.cohort, v["reference"], v["space"], Reporter(progress_printer))
    written = write_report(data, args.report) if args.report else None
    print(json.dumps(data["summary"], indent=2))
    if written:
        print(f"wrote {written}")
    return 0


def run_fdg2cft(args) -> int:
    import json

    from ..progress import progress_printer
    from ..io import atomic_output
    from ..outputs import JSON, PET, OutputPlan
    from .synthesis import synthesize_file

    plan = OutputPlan(inputs=[args.input])
    plan.file(args.output, "OUT", PET)
    plan.file(args.report, "--report", JSON)
    with plan:
        result = synthesize_file(args.input, args.output, "fdg2cft", args.space, progress=progress_printer)
        summary = None
        if args.report:
            summary = result.summary()
            if args.sbr:
                from .sbr import striatal_binding

                summary["sbr_synthetic_cft"] = striatal_binding(result.mni, space="mni",
                                                                labels_in_input=False).to_dict()
            with atomic_output(Path(args.report)) as tmp:
                tmp.write_text(json.dumps(summary, indent=2) + "\n")
    how = {"mni": "already on the MNI atlas grid", "resampled": "resampled from MNI space",
           "registered": "registered to the FDG template"}[result.space]
    print(f"wrote {args.output}: synthetic CFT ({result.units}) on the input's grid; input {how}; "
          f"{result.seconds:.1f} s ({result.model.get('provider', '')})")
    if result.registration is not None:
        print(f"registration: r = {result.registration.summary()['correlation_with_template']:.3f} with the template")
    print("synthetic PET from a generator trained on simulated images (docs/pet.md); not a measurement")
    if args.report:
        print(f"wrote {args.report}")
    elif args.sbr:
        from .sbr import striatal_binding

        print(striatal_binding(result.mni, space="mni", labels_in_input=False).table())
    return 0


def run_pd_classify(args) -> int:
    import json

    from ..progress import progress_printer
    from ..io import atomic_output, read_volume, write_volume
    from ..outputs import JSON, PET, OutputPlan
    from .classify import classify

    plan = OutputPlan(inputs=[args.input])
    plan.file(args.report, "--report", JSON)
    plan.file(args.cft_out, "--cft-out", PET)
    with plan:
        fdg = read_volume(args.input)
        res = classify(fdg, args.space, progress=progress_printer)
        if args.cft_out:
            write_volume(res.synthetic_cft, args.cft_out)
        if args.report:
            with atomic_output(Path(args.report)) as tmp:
                tmp.write_text(json.dumps(res.report(), indent=2) + "\n")
    print(res.line())
    print(f"{res.seconds:.1f} s (input {res.space})")
    for f in (args.cft_out, args.report):
        if f:
            print(f"wrote {f}")
    return 0


def register(sub) -> None:
    from ..params import add_arguments
    from .sbr import SBR_PARAMS
    from .simulate import SIMULATE_PARAMS

    p = sub.add_parser(
        "pet-simulate",
        help="simulate brain FDG and 11C-CFT PET pairs (normal controls and Parkinson's disease), MNI 2 mm",
    )
    p.add_argument("--out", required=True, help="output folder (sub-NNN_fdg/cft.nii.gz and cohort.csv; created when "
                   "missing)")
    add_arguments(p, SIMULATE_PARAMS)
    p.add_argument("--overwrite", action="store_true", help="replace a cohort already in --out")
    p.set_defaults(func=run_simulate)

    q = sub.add_parser("sbr", help="striatal binding ratios (caudate, anterior/posterior putamen) of a CFT PET")
    q.add_argument("cft", nargs="?", help="CFT (dopamine transporter) PET volume, in MNI space or native (registered)")
    q.add_argument("--cohort", help="instead: every CFT of a simulated cohort folder, compared with the simulated SBR")
    q.add_argument("--report", help="write a JSON report (.json) here")
    q.add_argument("--labels", help="write the striatal and reference regions on the input's grid here "
                   "(.nii.gz, .nii, .nrrd or .mha)")
    add_arguments(q, SBR_PARAMS)
    q.set_defaults(func=run_sbr)

    from .sbr import SPACES

    f = sub.add_parser(
        "fdg2cft",
        help="synthesize a CFT (dopamine transporter) PET from an FDG brain PET (generator trained on simulated PET)",
        description="The FDG input is brought to MNI space (used as is on the atlas grid, else registered affinely "
        "to the FDG template), the generator runs there, and the synthetic CFT (SUVR, occipital = 1) is resampled "
        "back onto the input's grid. A failure or a cancel (Ctrl-C) writes nothing.",
    )
    f.add_argument("input", help="FDG PET volume (NIfTI, NRRD, MHA, DICOM folder)")
    f.add_argument("output", help="synthetic CFT volume (.nii.gz, .nii, .nrrd or .mha)")
    f.add_argument("--space", choices=SPACES, default="auto",
                   help="mni = input on an MNI grid; native = register to the FDG template; auto (default) = mni when "
                   "on the atlas grid, else register")
    f.add_argument("--sbr", action="store_true", help="also print (or report) the SBRs of the synthetic CFT")
    f.add_argument("--report", help="write a JSON summary (model, registration, SBRs with --sbr) here")
    f.set_defaults(func=run_fdg2cft)

    c = sub.add_parser(
        "pd-classify",
        help="PD vs NC from an FDG brain PET and its synthetic CFT (3D CNN; trained on simulated PET only)",
        description="The FDG is brought to MNI space, the fdg2cft generator makes its synthetic CFT, and a 3D CNN on "
        "[FDG, synthetic CFT] gives the PD probability (threshold set on validation subjects). The posterior-putamen "
        "SBR of the synthetic CFT is printed beside it. Simulated training data: not a diagnosis.",
    )
    c.add_argument("input", help="FDG PET volume (NIfTI, NRRD, MHA, DICOM folder)")
    c.add_argument("--space", choices=SPACES, default="auto", help="as for fdg2cft")
    c.add_argument("--report", help="write a JSON report here")
    c.add_argument("--cft-out", help="also write the synthetic CFT (.nii.gz, .nii, .nrrd or .mha)")
    c.set_defaults(func=run_pd_classify)

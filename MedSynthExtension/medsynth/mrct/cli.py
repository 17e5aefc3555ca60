"""Command line of the MR part of CrossModality: ``medsynth mr2ct`` and ``medsynth mumap``."""

from __future__ import annotations

from ..outputs import PARENT_RULE, VOLUME, OutputPlan


def run_mr2ct(args) -> int:
    from ..progress import progress_printer
    from ..io import read_volume, write_volume
    from ..params import from_namespace
    from . import MRCT_PARAMS
    from .mumap import mu_map
    from .synthesis import synthesize

    v = from_namespace(MRCT_PARAMS, args)
    plan = OutputPlan(inputs=[args.mr])
    plan.file(args.out, "OUT", VOLUME)
    plan.file(args.mu_map, "--mu-map", VOLUME)
    with plan:
        mr = read_volume(args.mr, modality=None)
        ct, _, info = synthesize(mr, progress=progress_printer, tile=v["tile"])
        mu = mu_map(ct, v["kvp"]) if args.mu_map else None
        out = write_volume(ct, args.out)
        mu_out = write_volume(mu, args.mu_map) if mu is not None else None
    print(f"wrote {out} (synthetic CT, HU; model {info.get('model')} on {info.get('provider')})")
    if mu_out is not None:
        print(f"wrote {mu_out} (linear attenuation at 511 keV, cm^-1)")
    return 0


def run_mumap(args) -> int:
    from ..io import read_volume, write_volume
    from .mumap import mu_map

    plan = OutputPlan(inputs=[args.ct])
    plan.file(args.out, "OUT", VOLUME)
    with plan:
        ct = read_volume(args.ct)
        mu = mu_map(ct, args.kvp)
        out = write_volume(mu, args.out)
    print(f"wrote {out} (linear attenuation at 511 keV, cm^-1, {args.kvp} kVp scaling)")
    return 0


def register(sub) -> None:
    from ..params import add_arguments
    from . import MRCT_PARAMS

    p = sub.add_parser("mr2ct", help="synthesise a CT (HU) from an MR, optionally with its 511 keV mu-map")
    p.add_argument("mr", help="MR volume (any contrast; a whole head, not skull-stripped, for a mu-map with bone)")
    p.add_argument("out", help=f"synthetic CT output file (.nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd; {PARENT_RULE})")
    p.add_argument("--mu-map", dest="mu_map", default=None, metavar="MU_OUT", help="also write the mu-map here")
    add_arguments(p, MRCT_PARAMS)
    p.set_defaults(func=run_mr2ct)

    q = sub.add_parser("mumap", help="linear attenuation map at 511 keV (cm^-1) of a CT in HU (Carney et al. 2006)")
    q.add_argument("ct", help="CT (or synthetic CT) in Hounsfield units")
    q.add_argument("out", help=f"mu-map output file (.nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd; {PARENT_RULE})")
    add_arguments(q, MRCT_PARAMS, skip=("tile",))
    q.set_defaults(func=run_mumap)

"""``medsynth metaad FDG OUT_MAP [--report JSON] [--abs-map ABS] [--z-map Z]``: MetaAD maps and report of one FDG."""

from __future__ import annotations

import argparse


def run_metaad(args) -> int:
    from ..progress import progress_printer
    from ..outputs import JSON, PET, OutputPlan
    from .detect import detect_file

    plan = OutputPlan(inputs=[args.fdg])
    plan.file(args.out_map, "OUT_MAP", PET)
    plan.file(args.abs_map, "--abs-map", PET)
    plan.file(args.z_map, "--z-map", PET)
    plan.file(args.report, "--report", JSON)
    with plan:
        res = detect_file(args.fdg, args.out_map, args.report, args.space, progress_printer, abs_path=args.abs_map,
                          z_path=args.z_map)
    s = res.report()["subject_score"]
    print(f"subject score ({s['name']}): {s['value']:.3f}; threshold {s['threshold']:.3f} "
          f"({s['threshold_rule']}): {'ABNORMAL' if s['abnormal'] else 'within normal controls'}")
    top = sorted(res.table, key=lambda r: -abs(r["z"]))[:5]
    print("regions with the largest |z| of the residual: " + ", ".join(f"{r['region']} {r['z']:+.1f}" for r in top))
    b = res.baselines
    print(f"baselines: voxel z-score mean |z| {b['voxel_z_mean_abs']:.3f}, SSM-PCA PDRP score {b['ssm_pca_pdrp']:.3f}"
          + (f", regional z-score RMS of the FDG {b['fdg_region_z_rms']:.3f}" if "fdg_region_z_rms" in b else ""))
    if args.z_map:
        z = res.z_summary()
        print(f"z map (regional-SD z: signed map / NC SD of the region's residual): {args.z_map}; "
              f"{100 * z['brain_fraction_z_below_minus_2']:.1f} % of the brain below -2, "
              f"{100 * z['brain_fraction_z_above_2']:.1f} % above +2")
    print(f"wrote {args.out_map}" + (f" and {args.report}" if args.report else "") + f" ({res.seconds:.1f} s, "
          f"{res.space}); model trained on simulated PET only")
    return 0


def register(sub) -> None:
    p = sub.add_parser("metaad", help="MetaAD anomaly map of a brain FDG PET (healthy FDG -> CFT -> FDG cycle)")
    p.add_argument("fdg", help="FDG PET volume (native or MNI space)")
    p.add_argument("out_map", help="signed anomaly map (%% of brain mean, on the input's grid): .nii.gz .nii .nrrd .mha")
    p.add_argument("--report", help=".json report: subject score, threshold and how it was set, regional table")
    p.add_argument("--abs-map", help="also write the absolute anomaly map here")
    p.add_argument("--z-map", help="also write the signed map in regional-SD z units here: signed map / the normal "
                                   "controls' SD of the regional residual of the voxel's atlas region (not a "
                                   "voxel-wise z); negative = hypometabolism")
    from ..params import add_arguments
    from .params import METAAD_PARAMS

    add_arguments(p, METAAD_PARAMS, skip=("z_threshold", "opacity"))  # the display settings belong to the panels
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default=argparse.SUPPRESS,
                   help="where the models run (the same as medsynth --device; not given: that one holds)")
    p.set_defaults(func=run_metaad)

"""``medsynth evaluate superres``: thick slices made from a fine reference with the slice-profile
model, reconstructed by every method; PSNR and SSIM inside the foreground and the time of
each method, all measured in the same run."""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .degrade import PROFILES, degrade_volume
from .geometry import AXIS_NAMES
from .metrics import data_range, foreground_mask, psnr, ssim
from .params import METHODS


def evaluate_reference(
    reference: Volume,
    factors: Sequence[float] = (2, 4, 6),
    axis: str = "k",
    profile: str = "box",
    methods: Sequence[str] = METHODS,
    model=None,
    log=None,
    adapt_steps: int = 0,
) -> List[Dict[str, object]]:
    """One row per (factor, method): psnr_db, ssim, seconds, plus the sizes involved. ``adapt_steps`` > 0 adds a
    row ``sainr+adapt`` per factor: SA-INR adapted to the thick input itself (:mod:`.adapt`; needs torch), its
    time including the adaptation."""
    from .core import superres

    if axis not in AXIS_NAMES:
        raise InputError(f"axis must be i, j or k for the evaluation, got {axis!r}")
    if profile not in PROFILES:
        raise InputError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if reference.is_vector:
        raise InputError("the reference must be a scalar volume")
    a = AXIS_NAMES.index(axis)
    arr_axis = 2 - a
    ref_arr = reference.array.astype(np.float32)
    rows: List[Dict[str, object]] = []
    for factor in factors:
        factor = float(factor)
        thick, span = degrade_volume(reference.with_array(ref_arr), axis, factor, profile)
        truth = np.take(ref_arr, np.arange(span + 1), axis=arr_axis)
        mask = foreground_mask(truth)
        drange = data_range(truth)
        spacing = float(reference.spacing[a])
        for method in list(methods) + (["sainr+adapt"] if adapt_steps else []):
            if method.startswith("sainr") and model is None:
                from .sainr import load_sainr

                model = load_sainr()
            t0 = time.perf_counter()
            if method == "sainr+adapt":
                from .adapt import adapt_model

                adapted = adapt_model(thick, axis, model, steps=adapt_steps)
                res = superres(thick, spacing, axis, "sainr", model=adapted)
            else:
                res = superres(thick, spacing, axis, method, model=model if method == "sainr" else None)
            seconds = time.perf_counter() - t0
            out = res.volume.array
            if out.shape != truth.shape:
                raise InputError(f"internal: output {out.shape} vs reference {truth.shape}")
            row = {
                "factor": factor,
                "method": method,
                "psnr_db": round(float(psnr(truth, out, mask, drange)), 3),
                "ssim": round(ssim(truth, out, mask, drange), 4),
                "seconds": round(seconds, 2),
                "input_slices": thick.shape_ijk[a],
                "output_slices": res.grid.n_out,
                "provider": res.provider,
            }
            rows.append(row)
            if log:
                log(row)
    return rows


def format_table(rows: List[Dict[str, object]], title: str = "") -> str:
    lines = []
    if title:
        lines.append(title)
    lines.append("| factor | method | PSNR (dB) | SSIM | time (s) |")
    lines.append("|---:|---|---:|---:|---:|")
    for r in rows:
        lines.append(
            f"| {r['factor']:g} | {r['method']} | {r['psnr_db']:.2f} | {r['ssim']:.4f} | {r['seconds']:.2f} |"
        )
    return "\n".join(lines)


def gains(rows: List[Dict[str, object]], method: str = "sainr", over: str = "bspline") -> Dict[str, float]:
    """PSNR of ``method`` minus that of ``over`` per factor."""
    by = {(r["factor"], r["method"]): r for r in rows}
    out = {}
    for (f, m), r in by.items():
        if m == method and (f, over) in by:
            out[f"x{f:g}"] = round(float(r["psnr_db"]) - float(by[(f, over)]["psnr_db"]), 3)
    return out


def run(args) -> int:
    from ..outputs import JSON, OutputPlan

    if not args.factors or any(f <= 1 for f in args.factors):
        from ..errors import InputError

        raise InputError(f"--factors must be above 1 (got {' '.join(f'{f:g}' for f in args.factors or [])})")
    plan = OutputPlan(inputs=[args.reference])
    plan.file(args.json, "--json", JSON)
    with plan:
        return _run(args)


def _run(args) -> int:
    import json
    import os
    import platform

    from ..io import atomic_output, read_volume

    reference = read_volume(args.reference)
    methods = args.methods or list(METHODS)
    print(
        f"reference {args.reference}: {' x '.join(map(str, reference.shape_ijk))} voxels, "
        f"{' x '.join(f'{s:.3g}' for s in reference.spacing)} mm; axis {args.axis}, {args.profile} slice profile "
        f"(thickness = spacing); device CPU x{os.cpu_count()} ({platform.processor() or platform.machine()})"
    )
    rows = evaluate_reference(reference, args.factors, args.axis, args.profile, methods, adapt_steps=args.adapt)
    print(format_table(rows))
    if "sainr" in methods and "bspline" in methods:
        print("SA-INR minus B-spline PSNR (dB): " + ", ".join(f"{k} {v:+.2f}" for k, v in gains(rows).items()))
    if args.adapt and "bspline" in methods:
        print("SA-INR adapted to the input minus B-spline PSNR (dB): "
              + ", ".join(f"{k} {v:+.2f}" for k, v in gains(rows, "sainr+adapt").items()))
    if args.json:
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps({"reference": str(args.reference), "axis": args.axis, "profile": args.profile,
                                       "rows": rows}, indent=2), encoding="utf-8")
    return 0


def register(sub) -> None:
    from ..params import bounded_int, finite_float

    p = sub.add_parser(
        "superres",
        help="slice super-resolution: thick slices from a fine reference, PSNR/SSIM/time of each method",
    )
    p.add_argument("--reference", required=True, help="fine (high-resolution) volume")
    p.add_argument("--factors", type=finite_float, nargs="+", default=[2, 4, 6],
                   help="slice spacing factors, each above 1 (default 2 4 6)")
    p.add_argument("--axis", choices=AXIS_NAMES, default="k", help="axis made thick (default k)")
    p.add_argument("--profile", choices=PROFILES, default="box", help="slice profile (default box)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=None, help="methods (default all)")
    p.add_argument("--adapt", type=bounded_int(0, 100000), default=0, metavar="STEPS",
                   help="also SA-INR adapted to each thick input with STEPS fine-tuning steps (needs torch; "
                   "medsynth.superres.adapt)")
    p.add_argument("--json", default=None, help="also write the rows as JSON (.json) here")
    p.set_defaults(func=run)


__all__ = ["evaluate_reference", "format_table", "gains", "register", "run"]

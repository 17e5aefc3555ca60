"""Leave-subject-out evaluation of SA-INR on real MRI (``python -m medsynth.superres.evaluate_real``).

For every fold ``k`` of :mod:`.realdata`, the model trained without fold ``k`` (``MODELS/fold<k>``, made by
``python -m medsynth.superres.train --real-fold k``) reconstructs thick-slice copies of fold ``k``'s scans;
cubic B-spline (the strongest simple baseline) and the template-only model (:func:`template_model`: it never saw
any real scan) run on the very same inputs in the same run.  Every figure is therefore on people
the model never trained on; nothing is chosen on them (the fold models are the last step of a fixed schedule).

Thick copies: :func:`.degrade.degrade_volume` (slice thickness = spacing, box or Gaussian profile) along each
requested axis; PSNR / SSIM inside the foreground of the fine reference, cropped to the head first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .realdata import FOLDS, REAL_SCANS, check_folds


def _cropped(volume):
    from ..volume import Volume

    from .data import normalization_scale

    arr = volume.array.astype(np.float32)
    scale = normalization_scale(arr)
    where = np.argwhere(arr / scale > 0.05)
    lo = np.maximum(where.min(axis=0) - 4, 0)
    hi = np.minimum(where.max(axis=0) + 5, arr.shape)
    sub = np.ascontiguousarray(arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
    ijk = np.array([lo[2], lo[1], lo[0], 1.0])
    matrix = volume.ijk_to_ras.copy()
    matrix[:3, 3] = (volume.ijk_to_ras @ ijk)[:3]
    return Volume(sub, matrix, volume.name, volume.modality)


#: The SA-INR trained on templates only, kept beside the shipped model once that one has seen real scans (so the
#: comparison stays fair: it never saw any evaluated subject).
TEMPLATE_MODEL_ID = "sainr-templates"


def template_model():
    """The template-only SA-INR: :data:`TEMPLATE_MODEL_ID` when installed, else the shipped ``sainr`` if that one
    was trained without real scans; :class:`~medsynth.errors.ModelError` otherwise (it would have seen the
    subjects it is scored on)."""
    from .. import runtime
    from ..errors import ModelError
    from .sainr import MODEL_ID, load_sainr

    try:
        runtime.get_entry(TEMPLATE_MODEL_ID)
        return load_sainr(TEMPLATE_MODEL_ID)
    except ModelError:
        pass
    entry = runtime.get_entry(MODEL_ID)
    if "--real-fold" in str(entry.training_command or ""):
        raise ModelError(f"the shipped SA-INR was trained on real scans and the template-only model "
                         f"'{TEMPLATE_MODEL_ID}' is not installed; pass --no-shipped")
    return load_sainr()


def evaluate_folds(models_dir: Path, data_dir: Path, factors: Sequence[float], axes: Sequence[str],
                   profiles: Sequence[str], folds: Sequence[int] = FOLDS, shipped: bool = True,
                   log=print) -> List[Dict[str, object]]:
    """One row per (scan, axis, profile, factor, method); methods bspline, sainr-fold, sainr-shipped."""
    from ..io import read_volume
    from ..runtime import read_manifest
    from .evaluate import evaluate_reference
    from .sainr import SAINRModel

    check_folds()
    shipped_model = template_model() if shipped else None
    rows: List[Dict[str, object]] = []
    for fold in folds:
        folder = Path(models_dir) / f"fold{fold}"
        entries = {e.id: e for e in read_manifest(folder)}
        from ..runtime import load_entry

        fold_model = SAINRModel(load_entry(entries["sainr"]), load_entry(entries["sainr-decoder"]))
        for scan in [s for s in REAL_SCANS if s.fold == fold]:
            ref = _cropped(read_volume(Path(data_dir) / scan.file))
            for axis in axes:
                for profile in profiles:
                    base = dict(scan=Path(scan.file).name, subject=scan.subject, contrast=scan.contrast, fold=fold,
                                axis=axis, profile=profile)
                    runs = [(("bspline", "sainr"), fold_model, "sainr-fold")]
                    if shipped_model is not None:
                        runs.append((("sainr",), shipped_model, "sainr-shipped"))
                    for methods, model, label in runs:
                        for r in evaluate_reference(ref, factors, axis, profile, methods, model=model):
                            name = label if r["method"] == "sainr" else r["method"]
                            row = dict(base, factor=r["factor"], method=name, psnr_db=r["psnr_db"], ssim=r["ssim"],
                                       seconds=r["seconds"])
                            rows.append(row)
                            log(row)
    return rows


def summarise(rows: List[Dict[str, object]], method: str = "sainr-fold", over: str = "bspline") -> List[Dict]:
    """Per (profile, axis, factor): mean, SD and worst subject of the PSNR gain of ``method`` over ``over``
    (subjects: scans grouped by subject, gains averaged within a group), and how often its SSIM is higher."""
    by = {}
    for r in rows:
        by[(r["scan"], r["axis"], r["profile"], r["factor"], r["method"])] = r
    keys = sorted({(r["profile"], r["axis"], r["factor"]) for r in rows})
    out = []
    for profile, axis, factor in keys:
        per_subject: Dict[str, List[float]] = {}
        ssim_wins = total = 0
        for (scan, a, p, f, m), r in by.items():
            if (a, p, f, m) != (axis, profile, factor, method) or (scan, a, p, f, over) not in by:
                continue
            b = by[(scan, a, p, f, over)]
            per_subject.setdefault(str(r["subject"]), []).append(float(r["psnr_db"]) - float(b["psnr_db"]))
            ssim_wins += int(float(r["ssim"]) > float(b["ssim"]))
            total += 1
        gains = [statistics.mean(v) for v in per_subject.values()]
        if not gains:
            continue
        worst = min(per_subject, key=lambda s: statistics.mean(per_subject[s]))
        out.append(dict(profile=profile, axis=axis, factor=factor, method=method, subjects=len(gains), scans=total,
                        mean_gain_db=round(statistics.mean(gains), 3),
                        sd_gain_db=round(statistics.stdev(gains), 3) if len(gains) > 1 else 0.0,
                        worst_gain_db=round(min(gains), 3), worst_subject=worst, ssim_higher=f"{ssim_wins}/{total}"))
    return out


def by_contrast(rows: List[Dict[str, object]], factor: float, method: str = "sainr-fold",
                over: str = "bspline") -> Dict[str, float]:
    """Mean PSNR gain over ``over`` per contrast at one factor (all axes and profiles)."""
    by = {(r["scan"], r["axis"], r["profile"], r["factor"], r["method"]): r for r in rows}
    acc: Dict[str, List[float]] = {}
    for (scan, a, p, f, m), r in by.items():
        if m == method and f == factor and (scan, a, p, f, over) in by:
            acc.setdefault(str(r["contrast"]), []).append(float(r["psnr_db"]) - float(by[(scan, a, p, f, over)]["psnr_db"]))
    return {c: round(statistics.mean(v), 3) for c, v in sorted(acc.items())}


#: What the method names of the rows mean, for tables.
METHOD_LABELS = {
    "sainr-fold": "SA-INR templates + real scans (fold model)",
    "sainr-shipped": "SA-INR templates only (sainr-templates)",
}


def format_summary(summary: List[Dict]) -> str:
    lines = ["| profile | axis | factor | method | subjects | mean gain (dB) | SD | worst subject (dB) | SSIM higher |",
             "|---|---|---:|---|---:|---:|---:|---|---:|"]
    for s in summary:
        label = METHOD_LABELS.get(str(s["method"]), s["method"])
        lines.append(f"| {s['profile']} | {s['axis']} | {s['factor']:g} | {label} | {s['subjects']} | "
                     f"{s['mean_gain_db']:+.2f} | {s['sd_gain_db']:.2f} | {s['worst_gain_db']:+.2f} "
                     f"({s['worst_subject']}) | {s['ssim_higher']} |")
    return "\n".join(lines)


def thick_figures(data_dir: Path, out_dir: Path, models: Dict[str, object], log=print) -> List[Path]:
    """The natively thick clinical scans (:data:`.realdata.THICK_CLINICAL`, no thin-slice truth: for the eye)
    reconstructed to their in-plane spacing by B-spline and each SA-INR model in ``models`` (label -> model):
    one PNG per scan, a row per method (axial, coronal, sagittal through the centre)."""
    from ..io import read_volume
    from ..overview import overview, write_png
    from .core import superres
    from .realdata import THICK_CLINICAL

    written = []
    for rel in THICK_CLINICAL:
        path = Path(data_dir) / rel
        if not path.is_file():
            log(f"{rel}: not found, skipped")
            continue
        vol = read_volume(path)
        thick_axis = "ijk"[int(np.argmax(vol.spacing))]
        target = float(min(vol.spacing))
        center = vol.center_ras()
        window = np.percentile(vol.array, [1.0, 99.5])
        rows, labels = [overview(vol, center, window=window)], ["thick input"]
        for label, model in [("bspline", None)] + list(models.items()):
            method = "bspline" if model is None else "sainr"
            res = superres(vol, target, thick_axis, method, model=model)
            rows.append(overview(res.volume, center, window=window))
            labels.append(f"{label} ({res.seconds:.1f} s)")
        out = write_png(np.concatenate(rows, axis=0), Path(out_dir) / f"{Path(rel).name.split('.')[0]}.png")
        log(f"{out}: rows {', '.join(labels)}; axis {thick_axis} {max(vol.spacing):.2g} mm -> {target:.2g} mm")
        written.append(out)
    return written


def _report(rows: List[Dict[str, object]], factors: Sequence[float], shipped: bool) -> List[Dict]:
    """Print the summary table and the per-contrast means; return the summary."""
    summary = summarise(rows)
    if shipped:
        summary += summarise(rows, "sainr-shipped")
    print(format_summary(summary))
    for f in factors:
        print(f"x{f:g} mean gain over B-spline by contrast: fold models {by_contrast(rows, f)}"
              + (f"; shipped {by_contrast(rows, f, 'sainr-shipped')}" if shipped else ""))
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    from ..errors import MedSynthError
    from ..io import atomic_output
    from ..shared_data import shared_data_dir
    from .degrade import PROFILES
    from .geometry import AXIS_NAMES

    p = argparse.ArgumentParser(prog="python -m medsynth.superres.evaluate_real", description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help="folder with fold0/ fold1/ fold2/ (each a model folder)")
    p.add_argument("--data", default=None, help="the shared data folder (default ../shared/data)")
    p.add_argument("--factors", type=float, nargs="+", default=[2, 4, 6])
    p.add_argument("--axes", nargs="+", choices=AXIS_NAMES, default=list(AXIS_NAMES))
    p.add_argument("--profiles", nargs="+", choices=PROFILES, default=["box"])
    p.add_argument("--folds", type=int, nargs="+", choices=FOLDS, default=list(FOLDS))
    p.add_argument("--no-shipped", action="store_true", help="leave out the template-only model (sainr-templates, or "
                   "the shipped sainr while that one is template-only)")
    p.add_argument("--json", default=None, help="also write every row and the summary here")
    p.add_argument("--thick-figures", default=None, metavar="DIR",
                   help="instead: pictures of the natively thick clinical scans (no truth) by B-spline, the shipped "
                   "SA-INR and the model in --models (a model folder), into DIR")
    p.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                   help="instead: summarise the rows of earlier --json files together (e.g. folds run separately)")
    args = p.parse_args(argv)
    if args.combine:
        rows = []
        for name in args.combine:
            try:
                rows += json.loads(Path(name).read_text())["rows"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                sys.stderr.write(f"error: --combine {name}: not a file written by --json ({exc})\n")
                return 2
        _report(rows, sorted({float(r["factor"]) for r in rows}), any(r["method"] == "sainr-shipped" for r in rows))
        return 0
    if not args.models:
        p.error("--models is required")
    if args.thick_figures:
        from ..runtime import load_entry, read_manifest
        from ..shared_data import shared_data_dir as _shared
        from .sainr import SAINRModel

        entries = {e.id: e for e in read_manifest(Path(args.models))}
        models = {"SA-INR templates only": template_model(),
                  f"SA-INR {Path(args.models).name}": SAINRModel(load_entry(entries["sainr"]),
                                                                  load_entry(entries["sainr-decoder"]))}
        Path(args.thick_figures).mkdir(parents=True, exist_ok=True)
        thick_figures(Path(args.data) if args.data else _shared(), Path(args.thick_figures), models)
        return 0
    if any(f <= 1 for f in args.factors):
        sys.stderr.write("--factors must be above 1\n")
        return 2
    data_dir = Path(args.data) if args.data else shared_data_dir()
    t0 = time.perf_counter()
    print(f"leave-subject-out SA-INR evaluation; device CPU x{os.cpu_count()} ({platform.machine()}); "
          f"models {args.models}; factors {args.factors}; axes {args.axes}; profiles {args.profiles}")
    try:
        rows = evaluate_folds(Path(args.models), data_dir, args.factors, args.axes, args.profiles, args.folds,
                              shipped=not args.no_shipped, log=lambda r: print(f"  {r}", flush=True))
    except MedSynthError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    summary = _report(rows, args.factors, not args.no_shipped)
    print(f"evaluated in {time.perf_counter() - t0:.0f} s")
    if args.json:
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps({"command": "python -m medsynth.superres.evaluate_real " + " ".join(
                argv if argv is not None else sys.argv[1:]), "rows": rows, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``medsynth evaluate mr2ct``: the synthetic CT against the real MR/CT template pair, beside two baselines.

Data (../shared/data/mr_ct_template, tests and evaluation only: the avg152 MR templates are GPL-2, never shipped
or trained on): ``scct.nii`` (a CT template in MNI space, 2 mm) and ``avg152{T1,T2,PD}.nii`` on the same grid.

The CT template is not stored in Hounsfield units but in Rorden's "Cormack" units (neurolabusc/Clinical,
clinical_h2c.m / clinical_c2h.m, constants of clinical_cormack.m: 900 dark units, 200 mid units, ratio 10):
``HU = c - 1024`` for c <= 900, ``HU = (c - 900) / 11 - 124`` for 900 < c <= 3100, ``HU = c - 3024`` above
(:func:`cormack_to_hu`). Checked here: brain tissue peaks at 2530 -> 24 HU, air 0 -> -1024 HU, the maximum
3794 -> 770 HU (skull of an average of many heads, smoothed).

Metrics inside the head (CT > -500 HU, holes filled), on the right half (RAS x >= 0): the two baselines are fitted
on the left half of the same pair (x < 0), so they get to see the evaluation subject, which the network never does.
MAE and PSNR in HU (PSNR peak: 4095 HU, the -1024..3071 range), Dice of bone (CT > 300 HU), and the relative error
of the 511 keV mu-map, sum |mu_s - mu_ct| / sum mu_ct.

Baselines: (a) the MR intensity mapped to HU by a piecewise-linear curve (knots at 10 quantiles of the head's MR
intensities, HU at the knots fitted by least squares); (b) tissue classes: the MR head (foreground, filled) is
split into 4 intensity classes (Otsu multiple thresholds) and each class gets the median HU of its voxels.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ..volume import Volume

MR_FILES = {"T1": "mr_ct_template/avg152T1.nii", "T2": "mr_ct_template/avg152T2.nii", "PD": "mr_ct_template/avg152PD.nii"}
CT_FILE = "mr_ct_template/scct.nii"
PEAK_HU = 4095.0
BONE_HU = 300.0


def cormack_to_hu(c: np.ndarray) -> np.ndarray:
    """Rorden's Cormack units (clinical_c2h.m) -> Hounsfield units."""
    c = np.asarray(c, np.float64)
    img = c - 900.0
    out = img.copy()
    k_max = 200.0 * 11.0
    mid = (img > 0) & (img <= k_max)
    out[mid] = img[mid] / 11.0
    hi = img > k_max
    out[hi] = img[hi] - k_max + k_max / 11.0
    return (out + (900.0 - 1024.0)).astype(np.float32)


def _fill(mask: np.ndarray) -> np.ndarray:
    from .anatomy import _fill_holes

    return _fill_holes(mask, closing_radius=1)


def load_pair(data: Optional[os.PathLike] = None) -> Dict[str, Volume]:
    from ..errors import InputError
    from ..io import read_volume
    from .anatomy import shared_data_dir

    root = shared_data_dir(data)
    need = [CT_FILE] + list(MR_FILES.values())
    missing = [r for r in need if not (root / r).is_file()]
    if missing:
        raise InputError(f"the evaluation needs {', '.join(missing)} under {root} (../shared/data)")
    ct = read_volume(root / CT_FILE)
    out = {"CT": ct.with_array(cormack_to_hu(ct.array), name="scct_hu", modality="CT")}
    for k, rel in MR_FILES.items():
        v = read_volume(root / rel)
        out[k] = Volume(np.asarray(v.array, np.float32), ct.ijk_to_ras.copy(), f"avg152{k}", "MR")
    return out


def metrics(syn: np.ndarray, ref: np.ndarray, region: np.ndarray) -> Dict[str, float]:
    from .mumap import hu_to_mu

    s, r = syn[region].astype(np.float64), ref[region].astype(np.float64)
    mae = float(np.abs(s - r).mean())
    rmse = float(np.sqrt(((s - r) ** 2).mean()))
    bs, br = s > BONE_HU, r > BONE_HU
    dice = float(2 * (bs & br).sum() / max(bs.sum() + br.sum(), 1))
    ms, mr = hu_to_mu(s), hu_to_mu(r)
    rel = float(np.abs(ms - mr).sum() / max(mr.sum(), 1e-12))
    return {"mae_hu": mae, "psnr_db": float(20 * np.log10(PEAK_HU / max(rmse, 1e-9))), "bone_dice": dice,
            "mu_rel_error": rel}


def piecewise_linear_baseline(mr: np.ndarray, ct: np.ndarray, fit: np.ndarray, knots: int = 10) -> np.ndarray:
    x = mr[fit].astype(np.float64)
    y = ct[fit].astype(np.float64)
    k = np.unique(np.quantile(x, np.linspace(0, 1, knots)))

    def basis(v: np.ndarray) -> np.ndarray:
        v = np.clip(v, k[0], k[-1])
        b = np.zeros((v.size, k.size))
        idx = np.clip(np.searchsorted(k, v, side="right") - 1, 0, k.size - 2)
        t = (v - k[idx]) / (k[idx + 1] - k[idx])
        b[np.arange(v.size), idx] = 1 - t
        b[np.arange(v.size), idx + 1] = t
        return b

    coef, *_ = np.linalg.lstsq(basis(x), y, rcond=None)
    return (basis(mr.ravel().astype(np.float64)) @ coef).reshape(mr.shape).astype(np.float32)


def tissue_class_baseline(mr: np.ndarray, ct: np.ndarray, fit: np.ndarray, classes: int = 4) -> np.ndarray:
    import SimpleITK as sitk

    a = np.asarray(mr, np.float32)
    head = _fill(a > 0.1 * float(np.percentile(a, 99.5)))
    f = sitk.OtsuMultipleThresholdsImageFilter()
    f.SetNumberOfThresholds(classes - 1)
    vals = sitk.GetImageFromArray(a[head].reshape(1, 1, -1))
    f.Execute(vals)
    th = sorted(f.GetThresholds())
    lab = np.zeros(a.shape, np.int32)
    lab[head] = 1 + np.searchsorted(th, a[head])
    out = np.full(a.shape, -1000.0, np.float32)
    for c in range(1, classes + 1):
        sel = (lab == c) & fit
        out[lab == c] = float(np.median(ct[sel])) if sel.any() else 0.0
    sel = (lab == 0) & fit
    out[lab == 0] = float(np.median(ct[sel])) if sel.any() else -1000.0
    return out


def evaluate(
    model_dir: Optional[Path] = None, data: Optional[os.PathLike] = None, log: Callable[[str], None] = print,
    progress=None,
) -> Dict[str, Any]:
    from .. import runtime
    from ..progress import Reporter
    from .synthesis import synthesize

    if model_dir is not None:
        runtime.set_user_model_dirs([Path(model_dir)])
        runtime.clear_cache()
    pair = load_pair(data)
    ct = pair["CT"].array.astype(np.float32)
    head = _fill(ct > -500)
    x_ras = pair["CT"].ijk_to_ras_points(
        np.argwhere(np.ones(ct.shape, bool))[:, ::-1]
    )[:, 0].reshape(ct.shape)
    score = head & (x_ras >= 0)
    fit = head & (x_ras < 0)
    rows: List[Dict[str, Any]] = []
    info: Dict[str, Any] = {}
    reporter = Reporter(progress)
    for n, contrast in enumerate(MR_FILES):
        mr = pair[contrast]
        t = time.time()
        syn, _, info = synthesize(mr, progress=reporter.sub(n / 3, (n + 1) / 3).step)
        seconds = time.time() - t
        row = {"mr": contrast, "method": "mr2ct (structure-guided, synthetic-pair training)", "seconds": seconds,
               **metrics(syn.array, ct, score), "whole_head": metrics(syn.array, ct, head)}
        rows.append(row)
        rows.append({"mr": contrast, "method": "baseline: piecewise-linear intensity curve (fitted on the left half)",
                     **metrics(piecewise_linear_baseline(mr.array, ct, fit), ct, score)})
        rows.append({"mr": contrast, "method": "baseline: tissue classes (Otsu, 4 classes; HU fitted on the left half)",
                     **metrics(tissue_class_baseline(mr.array, ct, fit), ct, score)})
        log(f"{contrast}: mr2ct MAE {row['mae_hu']:.1f} HU, bone Dice {row['bone_dice']:.3f} ({seconds:.1f} s)")
    return {
        "evaluation_command": "medsynth evaluate mr2ct",
        "data": "real template pair: scct.nii (Cormack units -> HU) with avg152 T1/T2/PD, MNI 2 mm",
        "region": "head (CT > -500 HU, filled), right half (x >= 0); baselines fitted on the left half",
        "device": f"CPU ({runtime.available_providers()[0] if info.get('provider') is None else info['provider']})",
        "provider": info.get("provider"),
        "rows": rows,
    }


def table(report: Dict[str, Any]) -> str:
    lines = ["| MR | method | MAE (HU) | PSNR (dB) | bone Dice | mu-map rel. error |", "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['mr']} | {r['method']} | {r['mae_hu']:.1f} | {r['psnr_db']:.2f} | {r['bone_dice']:.3f} | "
                     f"{100 * r['mu_rel_error']:.1f} % |")
    return "\n".join(lines)


def write_card_and_metrics(folder: Path, report: Dict[str, Any], entry) -> None:
    """Store the figures in the manifest entry (runtime helper) and write the card."""
    from ..runtime import get_entry, write_manifest_entry
    from .card import write_card

    if entry is None:
        entry = get_entry("mr2ct")
    entry.metrics = report
    write_manifest_entry(Path(folder), entry)
    write_card(Path(folder), entry, report, table(report))


def run(args) -> int:
    from ..progress import progress_printer
    from ..io import atomic_output
    from ..outputs import JSON, OutputPlan

    plan = OutputPlan(inputs=[args.data, args.models])
    plan.file(args.report, "--report", JSON)
    with plan:
        report = evaluate(Path(args.models) if args.models else None, args.data, progress=progress_printer)
        if args.report:
            with atomic_output(Path(args.report)) as tmp:
                tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(table(report))
    print(f"region: {report['region']}; device: {report['device']}")
    if args.report:
        print(f"wrote {args.report}")
    if args.write_card:
        from ..runtime import get_entry

        entry = get_entry("mr2ct")
        write_card_and_metrics(entry.folder, report, entry)
        print(f"wrote {entry.folder / 'mr2ct.md'} and the manifest metrics")
    return 0


def register(sub) -> None:
    p = sub.add_parser("mr2ct", help="MR -> CT on the real MR/CT template pair (T1, T2, PD) beside two baselines")
    p.add_argument("--data", default=None, help="shared reference data folder (default ../shared/data)")
    p.add_argument("--models", default=None, help="model folder to take mr2ct from (default: the installed ones)")
    p.add_argument("--report", default=None, help="write the JSON report (.json) here")
    p.add_argument("--write-card", action="store_true", help="store the figures in the manifest and the model card")
    p.set_defaults(func=run)

"""The super-resolution part of ``medsynth demo``: a thick-slice version of the 2 mm MNI T1
sample (6 mm slices along k, box profile), reconstructed to 2 mm with each method."""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from ..progress import Reporter

SAMPLE = "mni_t1_2mm.nii.gz"
FACTOR = 3


def demo_part(out_dir: Path, reporter: Reporter) -> List[Path]:
    from ..errors import InputError
    from ..io import read_volume, write_volume
    from ..overview import overview, write_png
    from ..runtime import resources_dir
    from .core import superres
    from .degrade import degrade_volume
    from .metrics import data_range, foreground_mask, psnr
    from .sainr import MissingModelError

    path = resources_dir() / "SampleData" / SAMPLE
    if not path.is_file():
        raise InputError(f"sample data file missing: {path}")
    fine = read_volume(path)
    thick, span = degrade_volume(fine.with_array(fine.array.astype(np.float32)), "k", FACTOR, "box")
    truth = fine.array[: span + 1].astype(np.float32)
    mask, drange = foreground_mask(truth), data_range(truth)
    written = [write_volume(thick, out_dir / f"{fine.name}_thick{FACTOR * fine.spacing[2]:g}mm.nii.gz")]
    center = fine.center_ras()
    written.append(write_png(overview(thick, center), out_dir / "thick_overview.png"))
    lines = [
        f"input: {SAMPLE} made thick along k: {thick.shape_ijk[2]} slices at {thick.spacing[2]:g} mm (box profile)",
        "(an MNI template, close to the training data: a demonstration, not an evaluation; see the model card)",
    ]
    methods = ("sainr", "bspline", "linear")
    window = np.percentile(truth, [1.0, 99.5])
    rows = [overview(fine, center, window=window), overview(thick, center, window=window)]
    for n, method in enumerate(methods):
        sub = reporter.sub(0.1 + 0.9 * n / len(methods), 0.1 + 0.9 * (n + 1) / len(methods))
        try:
            res = superres(thick, float(fine.spacing[2]), "k", method, progress=sub.progress, cancel=sub.cancel)
        except MissingModelError as exc:
            lines.append(f"{method}: skipped ({exc})")
            continue
        written.append(write_volume(res.volume, out_dir / f"{fine.name}_{method}.nii.gz"))
        picture = overview(res.volume, center, window=window)
        written.append(write_png(picture, out_dir / f"{method}_overview.png"))
        if method != "linear":
            rows.append(picture)
        score = psnr(truth, res.volume.array, mask, drange)
        lines.append(f"{method}: {res.grid.describe()}; PSNR vs the original {score:.2f} dB; {res.seconds:.2f} s")
    written.append(write_png(np.concatenate(rows, axis=0), out_dir / "comparison.png"))
    lines.append("comparison.png rows: original 2 mm, thick 6 mm input, SA-INR, B-spline (axial, coronal, sagittal)")
    report = out_dir / "superres.txt"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    written.append(report)
    return written


__all__ = ["demo_part"]

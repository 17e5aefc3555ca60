"""What SA-INR's gradient-guided gate saves and what it costs (not a timed test).

    python benchmarks/bench_superres_gate.py [--factor 4] [--axis k] [--gates 0 0.01 0.02 0.05 0.1]

The gate (``superres(..., gate=g)``): output pixels whose input neighbourhood varies by at most ``g`` (intensity
divided by the volume's 99.5th percentile) take the cubic estimate alone; the others go through the decoder.
For each volume (Colin27 and the real scans that no shipped SA-INR model was trained on, see
``medsynth.superres.realdata.NOT_SHIPPED``), thick slices are made with the box profile; each gate setting and
cubic B-spline then reconstruct them in the same run. Printed: wall time, the share of output pixels the decoder
computed, PSNR / SSIM against the thin-slice truth, and the ratios to the ungated run and to B-spline. The gate
values are fixed above, before any run; nothing is chosen on these volumes.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "MedSynthExtension"))

VOLUMES = ("mri/colin27_ch2bet_1mm.nii.gz", "mri/real/ixi012_t1_2mm.nii.gz", "mri/real/afni_data3_anat_brain_t1.nii.gz")


def main() -> int:
    import numpy as np

    from medsynth.io import read_volume
    from medsynth.shared_data import shared_data_dir
    from medsynth.superres import load_sainr, superres
    from medsynth.superres.core import _runner, output_grid
    from medsynth.superres.degrade import degrade_volume
    from medsynth.superres.evaluate_real import _cropped
    from medsynth.superres.geometry import AXIS_NAMES
    from medsynth.superres.metrics import data_range, foreground_mask, psnr, ssim

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--factor", type=float, default=4.0)
    p.add_argument("--axis", choices=AXIS_NAMES, default="k")
    p.add_argument("--gates", type=float, nargs="+", default=[0.0, 0.01, 0.02, 0.05, 0.1])
    p.add_argument("--data", default=None)
    a = p.parse_args()
    data = Path(a.data) if a.data else shared_data_dir()
    model = load_sainr()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}; "
          f"factor {a.factor:g} along {a.axis}, box profile; model {model.entry.id} {model.entry.sha256[:12]}")
    print("| volume | method | gate | decoded pixels | wall (s) | time / ungated | PSNR (dB) | PSNR - ungated | SSIM |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for rel in VOLUMES:
        path = data / rel
        if not path.is_file():
            print(f"| {rel} | (not found, skipped) | | | | | | | |")
            continue
        ref = _cropped(read_volume(path))
        ax = 2 - AXIS_NAMES.index(a.axis)
        thick, span = degrade_volume(ref, a.axis, a.factor, "box")
        truth = np.take(ref.array.astype(np.float32), np.arange(span + 1), axis=ax)
        mask, drange = foreground_mask(truth), data_range(truth)
        spacing = float(ref.spacing[AXIS_NAMES.index(a.axis)])
        name = Path(rel).name.split(".")[0]
        t0 = time.perf_counter()
        bs = superres(thick, spacing, a.axis, "bspline").volume.array
        t_bs = time.perf_counter() - t0
        print(f"| {name} | B-spline | | | {t_bs:.2f} | | {psnr(truth, bs, mask, drange):.2f} | | "
              f"{ssim(truth, bs, mask, drange):.4f} |")
        base_t = base_p = None
        for gate in a.gates:
            grid = output_grid(thick, spacing, a.axis)
            t0 = time.perf_counter()
            runner = _runner(thick, grid, model, gate=gate)
            out = np.moveaxis(runner.run(grid.positions()), 0, grid.array_axis)
            wall = time.perf_counter() - t0
            p_db = psnr(truth, out, mask, drange)
            if base_t is None:
                base_t, base_p = wall, p_db
            share = runner.gate_counts[0] / max(runner.gate_counts[1], 1)
            print(f"| {name} | SA-INR | {gate:g} | {100 * share:.0f} % | {wall:.2f} | {wall / base_t:.2f} | {p_db:.2f} | "
                  f"{p_db - base_p:+.3f} | {ssim(truth, out, mask, drange):.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""NoduleSynth radiograph benchmark: slider change -> updated radiograph, cropped projection vs the whole grid.

    python benchmarks/bench_nodule_cxr.py [--repeats 70] [--spacing 0.2] [--diameters 10 28]

Host: a synthetic 2000 x 2000 uint16 radiograph at --spacing mm pixels.  "Slider change" = NoduleSession.update
after changing one parameter (sliders, seed, diameter, texture, solid fraction in turn).  Two ways of rasterising
the projection are timed alternately in the same run: the shipped one (the pixel grid built only over the box the
nodule can reach) and the former one (the whole 32 x N x N grid, forced by disabling the cropped path).  Prints the
medians and their ratio; CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "MedSynthExtension"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_nodule import CHANGES, changed  # noqa: E402  (the same slider changes as the CT benchmark)


def main() -> int:
    from medsynth import Volume, make_ijk_to_ras
    from medsynth.nodule import NoduleSession, NoduleSpec
    from medsynth.nodule import raster
    from medsynth.nodule.shape import default_shape_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=70)
    p.add_argument("--spacing", type=float, default=0.2)
    p.add_argument("--diameters", type=float, nargs="+", default=[10.0, 28.0])
    a = p.parse_args()
    cropped = raster._project_cropped
    arr = np.rint(np.random.default_rng(0).normal(2000, 20, (1, 2000, 2000))).astype(np.uint16)
    vol = Volume(arr, make_ijk_to_ras((a.spacing, a.spacing, 1.0)), name="cxr")
    model = default_shape_model()
    ras = vol.center_ras()
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {a.repeats} changes per "
          f"diameter and way")
    for d in a.diameters:
        times = {"cropped": [], "whole grid": []}
        for way in ("cropped", "whole grid"):
            raster._project_cropped = cropped if way == "cropped" else (lambda *x, **k: None)
            spec = NoduleSpec(diameter_mm=d, texture="part-solid", solid_fraction=0.5)
            s = NoduleSession(vol, model=model, log_gain=1000.0)
            s.update(spec, ras)
            rng = np.random.default_rng(0)
            for n in range(a.repeats):
                spec = changed(spec, CHANGES[n % len(CHANGES)], n, rng, d)
                t = time.perf_counter()
                s.update(spec)
                times[way].append(time.perf_counter() - t)
        raster._project_cropped = cropped
        m_c, m_w = statistics.median(times["cropped"]) * 1000, statistics.median(times["whole grid"]) * 1000
        print(f"{d:5.1f} mm: cropped {m_c:.1f} ms (p90 {np.percentile(times['cropped'], 90) * 1000:.1f}), whole grid "
              f"{m_w:.1f} ms; ratio {m_w / m_c:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

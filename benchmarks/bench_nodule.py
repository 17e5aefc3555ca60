"""NoduleSynth benchmark: slider change -> updated output volume (64^3 region) vs regenerating the whole volume.

    python benchmarks/bench_nodule.py [--repeats 60] [--full-shape 256 512 512]

Host: a synthetic CT (int16 HU, 0.7 mm isotropic, lung-like background with noise) of --full-shape [k j i].
"Slider change" = NoduleSession.update after changing one parameter (shape sliders and seed decode a new
shape with the ONNX decoder; diameter re-rasterises; texture/HU only re-composite), all in one 64^3 region.
"Whole volume" = insert_ct on the full volume (new output + mask volumes), as a panel without regions would do.
Both are measured in the same run, on CPU.
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


CHANGES = ["sphericity", "lobulation", "spiculation", "seed", "diameter_mm", "texture", "solid_fraction"]


def changed(spec, what: str, n: int, rng, diameter: float):
    """``spec`` with one parameter changed the way a user drags it (the n-th change of the benchmark)."""
    if what == "seed":
        return spec.with_(seed=int(rng.integers(0, 999999)))
    if what == "diameter_mm":
        return spec.with_(diameter_mm=round(float(rng.uniform(diameter - 0.4, diameter + 0.4)), 2))
    if what == "texture":
        return spec.with_(texture=["solid", "part-solid", "ggo"][n % 3])
    if what == "solid_fraction":
        return spec.with_(solid_fraction=round(float(rng.uniform(0.1, 0.9)), 2))
    return spec.with_(**{what: round(float(rng.uniform(-3, 3)), 2)})


def synthetic_ct(shape, spacing=0.7, seed=0):
    from medsynth import Volume, make_ijk_to_ras

    rng = np.random.default_rng(seed)
    block = (rng.normal(-850, 30, size=(64, 64, 64))).astype(np.int16)
    reps = [int(np.ceil(s / 64)) for s in shape]
    arr = np.tile(block, reps)[: shape[0], : shape[1], : shape[2]].copy()
    return Volume(arr, make_ijk_to_ras((spacing,) * 3), name="bench_ct", modality="CT")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=60)
    p.add_argument("--full-shape", type=int, nargs=3, default=(256, 512, 512), metavar=("K", "J", "I"))
    p.add_argument("--full-repeats", type=int, default=5)
    p.add_argument("--size-check", action="store_true", help="also print the size error over diameters x spacings")
    args = p.parse_args(argv)

    from medsynth.nodule import NoduleSession, NoduleSpec, insert_ct
    from medsynth.nodule.shape import default_shape_model

    vol = synthetic_ct(args.full_shape)
    ras = vol.center_ras()
    model = default_shape_model()
    diameter = 21.5  # region = 64 voxels per axis at 0.7 mm
    spec = NoduleSpec(diameter_mm=diameter, texture="part-solid", solid_fraction=0.5)
    session = NoduleSession(vol, model=model)
    first = session.update(spec, ras)  # warm-up: noise bank, statistics, first decode
    roi_shape = tuple(s.stop - s.start for s in first.roi)
    rng = np.random.default_rng(0)
    changes = CHANGES
    times = {c: [] for c in changes}
    for n in range(args.repeats):
        c = changes[n % len(changes)]
        spec = changed(spec, c, n, rng, diameter)
        t = time.perf_counter()
        res = session.update(spec)
        times[c].append(time.perf_counter() - t)
    all_t = [t for v in times.values() for t in v]
    full = []
    for _ in range(args.full_repeats):
        t = time.perf_counter()
        insert_ct(vol, ras, spec, model=model, context=session.context)  # the lung found once (at the warm-up)
        full.append(time.perf_counter() - t)
    import onnxruntime

    print(f"device: CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} logical cores), "
          f"numpy {np.__version__}, onnxruntime {onnxruntime.__version__}")
    print(f"host volume [k,j,i] {args.full_shape} int16 at 0.7 mm; region {roi_shape} for a {diameter} mm nodule")
    print(f"slider change -> updated output (region), median {statistics.median(all_t) * 1000:.1f} ms, "
          f"p90 {np.percentile(all_t, 90) * 1000:.1f} ms over {len(all_t)} changes")
    for c, v in times.items():
        print(f"  {c:15s} median {statistics.median(v) * 1000:6.1f} ms  (n={len(v)})")
    print(f"whole-volume regeneration (insert_ct), median {statistics.median(full) * 1000:.1f} ms over {len(full)} runs")
    if args.size_check:
        size_check(model)
    return 0


def size_check(model) -> None:
    """Equivalent diameter of the inserted mask (and of the partial-volume sum) vs the request."""
    from medsynth import Volume, make_ijk_to_ras
    from medsynth.nodule import NoduleSpec, insert_ct

    worst_mask, worst_soft, n = 0.0, 0.0, 0
    for spacing in ((0.7, 0.7, 1.25), (0.6, 0.6, 2.5), (1.5, 1.5, 1.5), (0.9, 0.9, 5.0)):
        for d in (3.0, 4.0, 6.0, 10.0, 15.0, 22.0, 30.0):
            for seed in (0, 1, 2):
                shape = tuple(int(np.ceil(2.4 * d / s)) + 6 for s in spacing[::-1])
                vol = Volume(np.full(shape, -850, np.int16), make_ijk_to_ras(spacing))
                spec = NoduleSpec(diameter_mm=d, seed=seed, sphericity=float(seed - 1), spiculation=1.0)
                _, mask, info = insert_ct(vol, vol.center_ras() + 0.17, spec, model=model)
                dm = (6.0 * mask.array.sum() * np.prod(spacing) / np.pi) ** (1.0 / 3.0)
                worst_mask = max(worst_mask, abs(dm - d))
                worst_soft = max(worst_soft, abs(info["equivalent_diameter_mm"] - d))
                n += 1
    print(f"size: {n} nodules (3..30 mm, 4 spacings incl. 5 mm slices): max |mask equivalent diameter - request| "
          f"{worst_mask:.3f} mm, max |partial-volume equivalent diameter - request| {worst_soft:.2e} mm")


if __name__ == "__main__":
    sys.exit(main())

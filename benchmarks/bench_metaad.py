"""CPU inference time of MetaAD (``medsynth.metaad.detect``) on a 2 mm brain FDG PET (simulated).

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=MedSynthExtension python benchmarks/bench_metaad.py [--repeat 3] [--native]

Times the whole call (checks, MNI alignment, ONNX cycle on CPU, maps, table, baselines, back to the input grid):
an FDG on the MNI 2 mm atlas grid (91 x 109 x 91), and with ``--native`` one on a rotated 2 mm grid (registration).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedSynthExtension"))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--native", action="store_true", help="also time a native-space input (affine registration)")
    args = p.parse_args()
    import numpy as np

    from medsynth.metaad.detect import detect
    from medsynth.pet.atlas import load_atlas
    from medsynth.pet.simulate import draw_params, simulate_subject, subject_rng
    from medsynth.runtime import set_device

    set_device("cpu")
    rng = subject_rng(21, 0)
    fdg = simulate_subject(draw_params(rng, "PD", "bench"), rng, load_atlas()).fdg
    detect(fdg)  # warm-up: model load, caches
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        r = detect(fdg)
        times.append(time.perf_counter() - t)
    print(f"MetaAD, FDG 2 mm on the MNI grid {fdg.shape_ijk}, CPU ({platform.processor() or platform.machine()}), "
          f"ONNX Runtime {r.model['provider']}: median {np.median(times):.2f} s over {args.repeat} "
          f"(min {min(times):.2f} s)")
    if args.native:
        from medsynth.resample import resample_like  # noqa: F401
        from medsynth.volume import Volume

        m = fdg.ijk_to_ras.copy()
        c, s = np.cos(np.radians(6)), np.sin(np.radians(6))
        rot = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
        native = Volume(fdg.array, rot @ m, "native", "PET")
        t = time.perf_counter()
        r = detect(native)
        print(f"MetaAD, native-space FDG (rotated 6 deg; registration included): {time.perf_counter() - t:.2f} s "
              f"({r.space})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

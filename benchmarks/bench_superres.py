"""Benchmark of slice super-resolution (not a timed test).

    python benchmarks/bench_superres.py [--threads N] [--size 256] [--slices 64]

Prints, for a 256 x 256 x 64 volume (1 x 1 x 4 mm) reconstructed to 256 slices
(64 -> 256 along k): wall and CPU seconds and peak memory (each method in its own
process, so peaks do not mix) for SA-INR and B-spline and their time ratio, then
the latency of the live-preview slab (one and three output slices) along k and j.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "MedSynthExtension"))


def phantom(size: int, slices: int):
    import numpy as np
    from scipy import ndimage

    from medsynth import Volume, make_ijk_to_ras

    rng = np.random.default_rng(0)
    arr = ndimage.gaussian_filter(rng.random((slices, size, size), dtype=np.float32), (0.7, 3, 3))
    arr = (arr - arr.min()) / (arr.max() - arr.min()) * 1000.0
    return Volume(arr.astype(np.float32), make_ijk_to_ras((1.0, 1.0, 4.0)), name="bench", modality="MR")


def target_spacing(slices: int, out_slices: int = 256) -> float:
    return 4.0 * (slices - 1) / (out_slices - 1)


def child(method: str, size: int, slices: int, threads: int) -> None:
    """Run one whole-volume reconstruction and print JSON (wall, cpu, peak RSS)."""
    from medsynth.superres import load_sainr, superres

    vol = phantom(size, slices)
    model = load_sainr(threads=threads or None) if method == "sainr" else None
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    t0, c0 = time.perf_counter(), time.process_time()
    res = superres(vol, target_spacing(slices), "k", method, model=model)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {
                "method": method,
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_rss_mb": peak,
                "rss_before_mb": base_rss,
                "out_shape_ijk": list(res.grid.shape_ijk),
                "provider": res.provider,
            }
        )
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--slices", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = its default)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child, a.size, a.slices, a.threads)
        return 0
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPU(s), Python {platform.python_version()}")
    print(f"volume {a.size} x {a.size} x {a.slices} at 1 x 1 x 4 mm -> 256 slices at {target_spacing(a.slices):.4f} mm")
    results = {}
    for method in ("sainr", "bspline"):
        cmd = [sys.executable, __file__, "--child", method, "--size", str(a.size), "--slices", str(a.slices), "--threads", str(a.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        results[method] = r
        print(
            f"  {method:8s} wall {r['wall_s']:7.2f} s  CPU {r['cpu_s']:7.2f} s  peak RSS {r['peak_rss_mb']:7.0f} MB "
            f"(process before the call {r['rss_before_mb']:.0f} MB)  output {r['out_shape_ijk']}  [{r['provider']}]"
        )
    ratio = results["sainr"]["wall_s"] / results["bspline"]["wall_s"]
    print(f"  SA-INR / B-spline time ratio (wall): {ratio:.1f}")

    import numpy as np

    from medsynth.superres import load_sainr

    vol = phantom(a.size, a.slices)
    model = load_sainr(threads=a.threads or None)
    sp = target_spacing(a.slices)
    from medsynth.superres import SuperResPreview, output_index_of_ras

    print("live-preview slab (SA-INR, median of 5):")
    for view, half in (("k", 0), ("k", 1), ("j", 0), ("j", 1)):
        cold, warm = [], []
        for rep in range(5):
            preview = SuperResPreview(vol, model)  # a fresh preview: encoder features computed (cold)
            idx = 100 + 7 * rep
            t0 = time.perf_counter()
            first = preview.slab(sp, idx, view, half, "k", "sainr")
            cold.append(time.perf_counter() - t0)
            # the spacing slider moves; the red view stays at the same place: decoder only (warm)
            v = "ijk".index(view)
            ijk = [0, 0, 0]
            ijk[v] = idx
            ras = first.grid.ijk_to_ras[:3, :3] @ np.array(ijk, float) + first.grid.ijk_to_ras[:3, 3]
            for new_sp in (sp * 1.1, sp * 0.8, sp * 1.4):
                j = output_index_of_ras(vol, new_sp, ras, view, "k")
                t0 = time.perf_counter()
                preview.slab(new_sp, j, view, half, "k", "sainr")
                warm.append(time.perf_counter() - t0)
        cold.sort()
        warm.sort()
        print(
            f"  {2 * half + 1} slice(s) across {view}: first {cold[2] * 1000:6.0f} ms, "
            f"after a spacing change {warm[len(warm) // 2] * 1000:6.0f} ms"
        )
    logic_preview(vol, sp)
    return 0


def logic_preview(vol, sp: float) -> None:
    """The module's path (Slicer panel and studio): SliceSuperResLogic.preview on a volume node after a spacing
    change, SA-INR beside B-spline in the same run (median of 6 changes each)."""
    try:
        import slicer
    except ImportError:
        print("SliceSuperResLogic.preview: skipped (needs the slicer-core wheel)")
        return
    sys.path.insert(0, str(HERE.parent / "SliceSuperRes"))
    from medsynth_mrml import node_from_volume
    from SliceSuperResLib import SliceSuperResLogic

    scene = slicer.vtkMRMLScene()
    import numpy as np

    node = node_from_volume(scene, vol)
    ras = vol.ijk_to_ras[:3, :3] @ ((np.array(vol.shape_ijk, float) - 1) / 2) + vol.ijk_to_ras[:3, 3]
    times = {}
    for method in ("bspline", "sainr"):
        logic = SliceSuperResLogic(scene)
        out = logic.preview(node, {"spacing": sp, "axis": "k", "method": method}, ras)  # first: encoder for SA-INR
        first = logic.lastPreviewMilliseconds
        warm = []
        for factor in (1.1, 0.8, 1.4, 0.9, 1.2, 0.7):
            logic.preview(node, {"spacing": sp * factor, "axis": "k", "method": method}, ras, preview_node=out)
            warm.append(logic.lastPreviewMilliseconds)
        warm.sort()
        times[method] = (first, warm[len(warm) // 2])
        print(f"SliceSuperResLogic.preview {method:8s}: first {first:6.0f} ms, after a spacing change "
              f"{times[method][1]:6.0f} ms (median of 6)")
    print(f"  SA-INR / B-spline preview after a spacing change: {times['sainr'][1] / times['bspline'][1]:.1f}")


if __name__ == "__main__":
    sys.exit(main())

"""Radiograph detectors on the real masses of RG1_UNCR.dcm: hits, misses and false positives, with a figure.

    python benchmarks/nodule_real_rg1.py [--detectors shipped log] [--out output/nodule_rg1]

The five round masses are marked in benchmarks/data/rg1_uncr_nodules.json (by eye, by a developer: approximate
centres and diameters; not a radiologist's annotation).  A mass is found when a detection's centre lies inside its
circle's box or their IoU >= 0.2 (the benchmark's rule); every other detection counts as a false positive (the
image may hold smaller unmarked nodules).  Writes OUT/rg1_<detector>.png (the radiograph at 1/4 size, marked masses
green when found and red when missed, detections as yellow boxes) and OUT/rg1.json.  The DICOM file states no pixel
spacing: a 370 mm imaged width is assumed (0.20 mm pixels), as the marks' diameters are.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "MedSynthExtension"))


def main() -> int:
    from medsynth.io import write_json
    from medsynth.nodule.benchmark import load_hosts
    from medsynth.nodule.cxr_detector import is_hit, load_detector
    from medsynth.overview import write_png

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--detectors", nargs="+", default=["shipped", "log"])
    p.add_argument("--out", default=str(ROOT / "output" / "nodule_rg1"))
    a = p.parse_args()
    marks = json.loads((Path(__file__).parent / "data" / "rg1_uncr_nodules.json").read_text())
    image = (ROOT / marks["image"]).resolve() if not Path(marks["image"]).is_absolute() else Path(marks["image"])
    host = load_hosts([image], assume_width_mm=370.0)[0]  # the file states no pixel spacing: 370 mm width assumed
    ps = host.pixel_mm
    gts = []
    for n in marks["nodules"]:
        r = n["diameter_mm"] / ps / 2
        gts.append((n["id"], (n["i"] - r, n["j"] - r, n["i"] + r, n["j"] + r)))
    out = Path(a.out)
    result = {"image": str(image), "pixel_mm": ps, "marks": marks["who"], "detectors": {}}
    for spec in a.detectors:
        det = load_detector(spec)
        dets = det(host.volume)
        found = {gid: any(is_hit(d.box, g) for d in dets) for gid, g in gts}
        # how far below the operating point each mass is: the best score of a detection on it at a low threshold
        low = load_detector(spec, threshold=3.0 if spec == "log" else 0.02)
        all_dets = low(host.volume)
        best = {gid: max((d.score for d in all_dets if is_hit(d.box, g)), default=None) for gid, g in gts}
        rank = {gid: (None if best[gid] is None else 1 + sum(d.score > best[gid] for d in all_dets)) for gid in best}
        fps = [d for d in dets if not any(is_hit(d.box, g) for _, g in gts)]
        result["detectors"][spec] = {"name": getattr(det, "name", spec), "threshold": getattr(det, "threshold", None),
                                     "found": found, "hits": sum(found.values()), "masses": len(gts),
                                     "false_positives": len(fps), "best_score_on_mass": best,
                                     "rank_of_mass_among_detections": rank,
                                     "detections": [{"box_ij": [round(v, 1) for v in d.box], "score": round(d.score, 3)}
                                                    for d in dets]}
        print(f"{spec} ({result['detectors'][spec]['name']}): found {sum(found.values())}/{len(gts)} marked masses "
              f"({', '.join(k for k, v in found.items() if v) or 'none'}), {len(fps)} other detections; best score on "
              f"each mass (rank among all detections): "
              + ", ".join(f"{k} {'-' if best[k] is None else f'{best[k]:.3f} (#{rank[k]})'}" for k in best))
        # figure: 1/4 size, MONOCHROME2 display
        arr = host.volume.array[0]
        small = arr[::4, ::4].astype(np.float32)
        lo, hi = np.percentile(small, [1, 99])
        g = np.clip((small - lo) / (hi - lo + 1e-6), 0, 1)
        rgb = (np.stack([g] * 3, -1) * 255).astype(np.uint8)

        def rect(box, colour, width=2):
            i0, j0, i1, j1 = (int(round(v / 4)) for v in box)
            i0, j0 = max(i0, 0), max(j0, 0)
            i1, j1 = min(i1, rgb.shape[1] - 1), min(j1, rgb.shape[0] - 1)
            rgb[j0 : j0 + width, i0:i1] = colour
            rgb[j1 - width : j1, i0:i1] = colour
            rgb[j0:j1, i0 : i0 + width] = colour
            rgb[j0:j1, i1 - width : i1] = colour

        for gid, g_box in gts:
            rect(g_box, (0, 200, 0) if found[gid] else (220, 0, 0), 3)
        for d in dets:
            rect(d.box, (255, 220, 0), 1)
        write_png(rgb, out / f"rg1_{spec.replace('/', '_').replace(':', '_')}.png")
    write_json(result, out / "rg1.json")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

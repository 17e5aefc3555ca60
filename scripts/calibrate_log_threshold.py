"""Score thresholds of the LoG blob baseline at 0.5 and 2 detections per unmodified image, on the training and
validation hosts of the detector's patient split (never on its test hosts).

    python scripts/calibrate_log_threshold.py [--split-seed 0]

Prints the thresholds; ``medsynth.nodule.cxr_detector.LOG_THRESHOLD`` holds the 0.5-per-image one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "MedSynthExtension"))


def main() -> int:
    from medsynth.nodule.benchmark import load_hosts
    from medsynth.nodule.detect import LoGBlobDetector
    from medsynth.nodule.train_detector import host_split

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--images", nargs="+", default=[str(ROOT.parent / "shared/data/cxr/figure1/images"),
                                                    str(ROOT.parent / "shared/data/cxr/nih")])
    a = p.parse_args()
    split = host_split(a.images, a.split_seed)
    hosts = load_hosts(split["train"] + split["val"], assume_width_mm=370.0)
    scores = []
    for h in hosts:
        scores.extend(d.score for d in LoGBlobDetector(threshold=3.0, pixel_spacing_mm=h.pixel_mm)(h.volume))
    scores.sort(reverse=True)
    n = len(hosts)
    for per_image in (0.5, 2.0):
        k = int(per_image * n)
        print(f"{per_image:g} detections per image on {n} training/validation hosts: threshold {scores[k]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

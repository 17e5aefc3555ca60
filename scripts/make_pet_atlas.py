"""Rebuild Resources/PET (the PET region atlas and GM/WM maps, MNI 2 mm) from ../shared/data.

    python scripts/make_pet_atlas.py [--shared ../shared/data] [--out Resources/PET]

Uses only permissively licensed sources: AAL (free with citation) and the MNI ICBM152 2009a symmetric
T1 and GM/WM probability maps (BSD-3 style MNI terms). Harvard-Oxford / Neuromorphometrics are not used.
Region definitions: see the docstring of medsynth/pet/atlas.py and docs/pet.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medsynth.pet.atlas import LABELS, build_atlas, write_atlas

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "Resources" / "PET"))
    args = ap.parse_args()
    labels, gm, wm, info = build_atlas(args.shared)
    for path in write_atlas(args.out, labels, gm, wm, info):
        print(f"{path}: {path.stat().st_size / 1e3:.0f} kB")
    for k, name in LABELS.items():
        print(f"  {k:2d} {name:<22} {info['voxels'][name]:7d} voxels")
    print(f"  putamen split at MNI y = {info['putamen_split_y_mm']} mm")


if __name__ == "__main__":
    main()

"""Rebuild Resources/SampleData from ../shared/data (only permissively licensed sources).

    python scripts/make_sample_data.py [--shared ../shared/data]

- mni_t1_2mm.nii.gz: MNI ICBM152 2009a symmetric T1 (nilearn, BSD-3 + MNI template terms:
  free with attribution), resampled from 1 mm to 2 mm, int16.
- head_ct_2mm.nii.gz: TotalSegmentator's skull-stripped head CT atlas (Apache-2.0), 1 mm -> 2 mm, int16 HU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from medsynth.io import read_volume, write_volume
from medsynth.resample import resample_to_spacing

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {
    "mni_t1_2mm": ("mri/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz", "MR"),
    "head_ct_2mm": ("ct/head_ct_atlas_1mm.nii.gz", "CT"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "Resources" / "SampleData"))
    args = ap.parse_args()
    for name, (rel, modality) in SOURCES.items():
        vol = read_volume(Path(args.shared) / rel, modality=modality)
        small = resample_to_spacing(vol.with_array(vol.array.astype(np.float32)), (2.0, 2.0, 2.0), "linear")
        arr = np.round(small.array).astype(np.int16)
        out = write_volume(small.with_array(arr, name=name), Path(args.out) / f"{name}.nii.gz")
        print(f"{out}: {small.shape_ijk} voxels, {out.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()

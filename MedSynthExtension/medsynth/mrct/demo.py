"""``medsynth demo`` part: synthetic CT and mu-map of the shipped MNI T1 (2 mm) with overview pictures."""

from __future__ import annotations

from pathlib import Path
from typing import List

from ..progress import Reporter


def mrct_part(out_dir: Path, reporter: Reporter) -> List[Path]:
    from ..commands.demo import sample_path
    from ..io import read_volume, write_volume
    from ..overview import overview, write_png
    from .mumap import mu_map
    from .synthesis import synthesize_ct

    mr = read_volume(sample_path("mni_t1_2mm.nii.gz"), modality="MR")
    ct = synthesize_ct(mr, progress=reporter.sub(0.0, 0.8).step)
    mu = mu_map(ct)
    reporter.step(0.9, "mr2ct overviews")
    return [
        write_volume(ct, out_dir / "mni_t1_synthCT.nii.gz"),
        write_volume(mu, out_dir / "mni_t1_mu511.nii.gz"),
        write_png(overview(ct, window=(-200, 1200)), out_dir / "mni_t1_synthCT_overview.png"),
        write_png(overview(mu, window=(0, 0.15)), out_dir / "mni_t1_mu511_overview.png"),
    ]

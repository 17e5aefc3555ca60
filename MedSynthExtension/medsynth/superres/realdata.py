"""Real single-subject MRI for SA-INR: which scans, which person group, which fold (numpy only).

The scans are in ``../shared/data/mri/real`` (terms in ``../shared/data/README.md``).  Folds are by
*subject group*: scans whose source does not name the subject (the niivue demo images) may show the
same person, so they form one group and always fall in the same fold; every other scan is a person
of its own, placed so that each fold mixes contrasts and ages.  A model for fold ``k`` trains on the
other folds (plus the templates) and is evaluated only on fold ``k``: every reported figure is on
people that model never saw.

Only near-isotropic scans serve as thin-slice truth (largest / smallest spacing <= 1.35), so that a
thick-slice copy along any axis has a fine reference.  Left out: the 1.5 mm-slice TCIA scan and
the 2 mm-slice T2 TSE (coarse along one axis), and the four natively thick clinical scans (no truth;
for looking at, :data:`THICK_CLINICAL`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

REAL_DIR = "mri/real"


@dataclass(frozen=True)
class RealScan:
    file: str  # relative to the shared data folder
    subject: str  # person, or group of possibly-the-same persons
    contrast: str  # T1, T1c (post-contrast), T2
    fold: int
    note: str = ""


REAL_SCANS: Tuple[RealScan, ...] = (
    RealScan(f"{REAL_DIR}/fnndsc_child3y_t1_mprage.nii.gz", "fnndsc-child", "T1", 0, "3-year-old, 3T MPRAGE"),
    RealScan(f"{REAL_DIR}/arc_m2208_t2w_mni.nii.gz", "arc-m2208", "T2", 0, "chronic stroke, MNI-normalised, 8-bit"),
    RealScan(f"{REAL_DIR}/ixi012_t1_2mm.nii.gz", "ixi012", "T1", 0, "healthy adult, 2 mm"),
    RealScan(f"{REAL_DIR}/afni_data3_anat_brain_t1.nii.gz", "afni-data3", "T1", 0, "skull-stripped SPGR"),
    RealScan(f"{REAL_DIR}/seg3d_t1_head.nii.gz", "seg3d-epilepsy", "T1", 1, "epilepsy, electrodes, 8-bit"),
    RealScan(f"{REAL_DIR}/lindner_t1gd_brain.nii.gz", "lindner", "T1c", 1, "clinical, skull-stripped"),
    RealScan(f"{REAL_DIR}/ixi015_t1_2mm.nii.gz", "ixi015", "T1", 1, "healthy adult, 2 mm"),
    RealScan(f"{REAL_DIR}/niivue_t1_head.nii.gz", "niivue-unnamed", "T1", 2, "subject not stated, 8-bit"),
    RealScan(f"{REAL_DIR}/freesurfer_norm_t1.nii.gz", "niivue-unnamed", "T1", 2, "FreeSurfer norm, subject not stated"),
    RealScan(f"{REAL_DIR}/t1_head_neck_1.6mm.nii.gz", "niivue-unnamed", "T1", 2, "head and neck, 1.6 mm, 8-bit"),
)
FOLDS = (0, 1, 2)
#: Real scans not used as thin-slice truth (coarse along one axis), and why.
EXCLUDED = {
    f"{REAL_DIR}/tcia_vsseg001_t1c_0.82mm.nii.gz": "1.5 mm slices under 0.82 mm pixels (in-plane smoothed)",
    f"{REAL_DIR}/niivue_t2w_tse_2mm_slices.nii.gz": "2 mm slices under 1 mm pixels",
}
#: Real scans left out of the *shipped* model (``--real-fold all``) for their terms; the fold models (evaluation
#: only, never shipped) use them.
NOT_SHIPPED = {
    f"{REAL_DIR}/afni_data3_anat_brain_t1.nii.gz": "'with attribution, free for non-clinical purposes'",
    f"{REAL_DIR}/ixi012_t1_2mm.nii.gz": "IXI CC BY-SA 3.0 (share-alike)",
    f"{REAL_DIR}/ixi015_t1_2mm.nii.gz": "IXI CC BY-SA 3.0 (share-alike)",
}
THICK_CLINICAL = (
    f"{REAL_DIR}/thick_t1c_tumour1_6.5mm.nii.gz",
    f"{REAL_DIR}/thick_t1c_tumour2_6.5mm.nii.gz",
    f"{REAL_DIR}/thick_t1_spm_moae_3mm.nii.gz",
    f"{REAL_DIR}/thick_t1_2d_sag_4.8mm.nii.gz",
)
REAL_TERMS = (
    "Real single-subject MRI from ../shared/data/mri/real (FNNDSC SAG-anon MIT; Seg3D/SCI MIT; ARC ds004884 CC0; "
    "Lindner et al. figshare CC BY 4.0; IXI CC BY-SA 3.0; AFNI data3 'with attribution, non-clinical'; niivue demo "
    "images BSD-2 / CC0). The shipped model leaves out the IXI (share-alike) and AFNI (non-clinical) scans; the "
    "fold models used for evaluation include them and are not shipped."
)


def scans_in(folds: Sequence[int]) -> List[RealScan]:
    return [s for s in REAL_SCANS if s.fold in set(folds)]


def training_scans(held_out_fold) -> List[RealScan]:
    """The scans a model for ``held_out_fold`` trains on (``None``: the shipped model: every scan whose terms
    allow shipping a model trained on it, see :data:`NOT_SHIPPED`)."""
    if held_out_fold is None:
        return [s for s in REAL_SCANS if s.file not in NOT_SHIPPED]
    if held_out_fold not in FOLDS:
        raise ValueError(f"fold must be one of {FOLDS}, got {held_out_fold!r}")
    return [s for s in REAL_SCANS if s.fold != held_out_fold]


def check_folds() -> None:
    """No subject group in two folds (raises ValueError)."""
    seen: Dict[str, int] = {}
    for s in REAL_SCANS:
        if seen.setdefault(s.subject, s.fold) != s.fold:
            raise ValueError(f"subject {s.subject} is in folds {seen[s.subject]} and {s.fold}")


def load_real_volumes(data_dir: Path, scans: Sequence[RealScan]) -> Dict[str, np.ndarray]:
    """The scans as float32 arrays normalised like the templates (99.5th percentile -> 1), cropped to the head."""
    from ..io import read_volume
    from .data import normalization_scale

    out = {}
    for s in scans:
        arr = read_volume(Path(data_dir) / s.file).array.astype(np.float32)
        arr /= normalization_scale(arr)
        out[s.file] = crop_to_foreground(arr)
    return out


def crop_to_foreground(arr: np.ndarray, threshold: float = 0.05, margin: int = 4) -> np.ndarray:
    """The bounding box of voxels above ``threshold`` (after normalisation), with a margin."""
    where = np.argwhere(arr > threshold)
    if where.size == 0:
        return arr
    lo = np.maximum(where.min(axis=0) - margin, 0)
    hi = np.minimum(where.max(axis=0) + margin + 1, arr.shape)
    return np.ascontiguousarray(arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])


__all__ = ["EXCLUDED", "FOLDS", "NOT_SHIPPED", "REAL_SCANS", "REAL_TERMS", "RealScan", "THICK_CLINICAL", "check_folds",
           "crop_to_foreground", "load_real_volumes", "scans_in", "training_scans"]

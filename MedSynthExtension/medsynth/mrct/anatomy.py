"""Tissue fractions of a head on the 2 mm MNI grid, the anatomy the synthetic MR/CT training pairs are drawn from.

Six classes, as partial-volume fractions that sum to one in every voxel (:data:`TISSUES`):

* grey matter, white matter, CSF: the tissue probability maps ``mr_ct_template/sc{grey,white,csf}.nii``
  (neurolabusc/Clinical, BSD-2), already on the 2 mm MNI grid (91 x 109 x 91);
* bone, soft tissue (scalp, muscle), air: from the Colin27 single-subject T1 with skull
  (``mri/colin27_ch2_1mm.nii.gz``, mricron-data, BSD-3) and its brain-extracted copy: the head is the hole-filled
  foreground of the T1, bone is the T1-dark shell inside the head and outside the (dilated) brain, soft tissue the
  rest of the head, air everything outside it.

The 1 mm head CT atlas of the shared data was looked at for bone and is of no use for it: it is skull-stripped
(brain only, -30..385 HU). No image of the evaluation pair (``scct*.nii``, ``avg152*.nii``) is read here.
Built once and cached as a compressed ``.npz`` (``MEDSYNTH_CACHE`` or ``~/.cache/medsynth``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import InputError
from ..shared_data import shared_data_dir
from ..volume import Volume

TISSUES = ("air", "soft", "bone", "csf", "grey", "white")
ANATOMY_FILES = {
    "grey": "mr_ct_template/scgrey.nii",
    "white": "mr_ct_template/scwhite.nii",
    "csf": "mr_ct_template/sccsf.nii",
    "head_t1": "mri/colin27_ch2_1mm.nii.gz",
    "brain_t1": "mri/colin27_ch2bet_1mm.nii.gz",
}
CACHE_VERSION = 1


def _cache_dir() -> Path:
    return Path(os.environ.get("MEDSYNTH_CACHE", Path.home() / ".cache" / "medsynth"))


def _fill_holes(mask: np.ndarray, closing_radius: int = 2) -> np.ndarray:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    img = sitk.BinaryMorphologicalClosing(img, [closing_radius] * 3)
    img = sitk.BinaryFillhole(img)
    # keep the largest connected component (the head)
    cc = sitk.RelabelComponent(sitk.ConnectedComponent(img), sortByObjectSize=True)
    out = sitk.GetArrayFromImage(cc) == 1
    # fill holes slice by slice too (sinuses and ear canals open to the outside)
    for k in range(out.shape[0]):
        sl = sitk.BinaryFillhole(sitk.GetImageFromArray(out[k].astype(np.uint8)))
        out[k] = sitk.GetArrayFromImage(sl) > 0
    return out


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    import SimpleITK as sitk

    img = sitk.BinaryDilate(sitk.GetImageFromArray(mask.astype(np.uint8)), [radius] * 3)
    return sitk.GetArrayFromImage(img) > 0


def build_anatomy(data: Optional[os.PathLike] = None) -> Tuple[np.ndarray, Volume]:
    """Tissue fractions ``(6, k, j, i)`` float32 in :data:`TISSUES` order, and the 2 mm MNI grid they lie on."""
    from ..io import read_volume
    from ..pet._img import gaussian_array
    from ..resample import resample_like

    root = shared_data_dir(data)
    missing = [rel for rel in ANATOMY_FILES.values() if not (root / rel).is_file()]
    if missing:
        raise InputError(
            f"the training anatomy needs {', '.join(missing)} under {root} (the project's ../shared/data); "
            "pass --data DIR to point at it"
        )
    grey = read_volume(root / ANATOMY_FILES["grey"])
    grid = grey.with_array(np.zeros(grey.array.shape, np.float32), name="mni_2mm")
    gm = np.clip(np.asarray(grey.array, np.float32), 0, 1)
    wm = np.clip(np.asarray(read_volume(root / ANATOMY_FILES["white"]).array, np.float32), 0, 1)
    csf = np.clip(np.asarray(read_volume(root / ANATOMY_FILES["csf"]).array, np.float32), 0, 1)
    brain = gm + wm + csf
    over = np.maximum(brain, 1.0)
    gm, wm, csf = gm / over, wm / over, csf / over
    brain = gm + wm + csf

    head_t1 = read_volume(root / ANATOMY_FILES["head_t1"])
    t1 = resample_like(head_t1.with_array(np.asarray(head_t1.array, np.float32)), grid, "linear").array
    t1 = np.asarray(t1, np.float32) / max(float(np.percentile(t1, 99.5)), 1e-6)
    bet = read_volume(root / ANATOMY_FILES["brain_t1"])
    bet = resample_like(bet.with_array((np.asarray(bet.array) > 0).astype(np.float32)), grid, "linear").array > 0.5

    head = _fill_holes(t1 > 0.12) | (brain > 0.5)
    inner = _dilate(bet | (brain > 0.3), 1)
    # skull: dark on T1, inside the head, outside the brain; a shell at least one voxel thick
    bone = head & ~inner & (t1 < 0.33)
    bone = gaussian_array(grid, bone.astype(np.float32), 1.0)  # 1 mm: partial volume at the bone edges
    bone = np.clip(bone, 0, 1) * (1.0 - brain)
    head_f = gaussian_array(grid, head.astype(np.float32), 1.0)
    head_f = np.clip(np.maximum(head_f, brain + bone), 0, 1)
    soft = np.clip(head_f - brain - bone, 0, 1)
    air = np.clip(1.0 - brain - bone - soft, 0, 1)
    fr = np.stack([air, soft, bone, csf, gm, wm]).astype(np.float32)
    fr /= np.maximum(fr.sum(0, keepdims=True), 1e-6)
    return fr, grid


def anatomy(data: Optional[os.PathLike] = None, cache: bool = True) -> Tuple[np.ndarray, Volume]:
    """:func:`build_anatomy`, cached."""
    from ..volume import make_ijk_to_ras  # noqa: F401  (grid is stored as its matrix)

    path = _cache_dir() / f"mrct_anatomy_v{CACHE_VERSION}.npz"
    if cache and path.is_file() and not data:
        with np.load(path) as z:
            return z["fractions"].astype(np.float32), Volume(np.zeros(z["fractions"].shape[1:], np.float32), z["ijk_to_ras"], "mni_2mm")
    fr, grid = build_anatomy(data)
    if cache and not data:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".partial.npz")
            np.savez_compressed(tmp, fractions=fr.astype(np.float16), ijk_to_ras=grid.ijk_to_ras)
            os.replace(tmp, path)
        except OSError:
            pass
    return fr, grid


def labels_of(fractions: np.ndarray) -> np.ndarray:
    """The majority tissue index per voxel (uint8)."""
    return np.argmax(fractions, axis=0).astype(np.uint8)


def tissue_volumes(fractions: np.ndarray, grid: Volume) -> Dict[str, Volume]:
    return {t: grid.with_array(fractions[n], name=t) for n, t in enumerate(TISSUES)}

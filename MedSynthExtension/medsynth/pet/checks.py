"""Bad-input checks for brain PET: shape, field of view, CT/MR given where PET is expected.

Two kinds of checks:

* :func:`check_pet_volume` on the input as given: a 3D scalar volume, finite, not constant, a field of view
  that can hold a brain and is not a whole-body scan, no CT-like Hounsfield values (air at -1000).
* :func:`check_pet_contrast` once the image is in MNI space: the tissue contrast must be that of the tracer.
  FDG: cortex well above white matter (grey/white >= 1.4; T1 MR and CT are about 0.6-1.3). CFT: striatum above
  occipital cortex (>= 1.3) and white matter not above cortex (a T1 MR has white matter brighter). Both: CSF in
  the ventricles not far above white matter (a T2 MR has bright CSF).
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .atlas import PetAtlas

MIN_FOV_MM = 80.0
MAX_FOV_MM = 500.0


def check_pet_volume(volume: Volume, tracer: str = "PET") -> None:
    """Raise :class:`InputError` with a clear message when ``volume`` cannot be a brain PET of ``tracer``."""
    what = f"a {tracer} PET" if tracer != "PET" else "a brain PET"
    if volume.is_vector:
        raise InputError(
            f"'{volume.name}' has {volume.components} components per voxel (colour or vector image); {what} is a "
            "3D scalar volume"
        )
    nk = volume.array.shape[0]
    if nk < 8 or min(volume.array.shape[:3]) < 8:
        raise InputError(
            f"'{volume.name}' is not a 3D volume (grid {volume.shape_ijk}); {what} must be a 3D scalar volume with "
            "at least 8 voxels along each axis"
        )
    if volume.modality and volume.modality.upper() in ("CT", "MR", "MRI", "CXR", "US"):
        raise InputError(f"'{volume.name}' is tagged as {volume.modality}, not PET; {what} is expected")
    volume.check_finite()
    arr = np.asarray(volume.array, dtype=np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        raise InputError(f"'{volume.name}' is constant ({lo:g}); {what} is expected")
    extent = np.asarray(volume.shape_ijk, float) * volume.spacing
    if extent.min() < MIN_FOV_MM:
        raise InputError(
            f"'{volume.name}' covers only {extent.min():.0f} mm along one axis (field of view "
            f"{' x '.join(f'{e:.0f}' for e in extent)} mm); {what} of the whole brain needs at least {MIN_FOV_MM:.0f} mm"
        )
    if extent.max() > MAX_FOV_MM:
        raise InputError(
            f"'{volume.name}' spans {extent.max():.0f} mm: this looks like a whole-body scan; crop it to the head first"
        )
    very_neg = float((arr < -500).mean())
    if lo <= -500 and very_neg > 0.02:
        raise InputError(
            f"'{volume.name}' looks like a CT, not {what}: {very_neg * 100:.0f} % of voxels are below -500 "
            f"(minimum {lo:g}, as Hounsfield units of air)"
        )
    neg = float((arr < -0.05 * max(abs(hi), 1e-12)).mean())
    if neg > 0.05:
        raise InputError(
            f"'{volume.name}' has {neg * 100:.0f} % clearly negative voxels; PET activity is not negative "
            f"(values {lo:g}..{hi:g}). Is it a CT or a processed (difference, z-score) image?"
        )


def _ventricles(atlas: PetAtlas) -> np.ndarray:
    """Core of the lateral ventricles: CSF >= 0.8 inside the brain, in a central box."""
    from .simulate import _ras

    x, y, z = _ras(atlas)
    box = (np.abs(x) < 30) & (y > -45) & (y < 30) & (z > -5) & (z < 35)
    return (atlas.csf >= 0.8) & atlas.mask("other_brain") & box


def contrast_ratios(array: np.ndarray, atlas: PetAtlas) -> Dict[str, float]:
    """Mean intensities in MNI masks and the ratios used to recognise a tracer (image on the atlas grid)."""
    a = np.asarray(array, np.float64)
    cortex = atlas.mask("occipital", "posterior_parietal", "lateral_premotor", "sensorimotor") & (atlas.gm.array >= 0.6)
    wm = (atlas.wm.array >= 0.95) & atlas.mask("other_brain")
    striatum = atlas.mask("caudate", "putamen_anterior", "putamen_posterior")
    occ = atlas.mask("occipital")
    vent = _ventricles(atlas)
    means = {
        "cortex": float(a[cortex].mean()),
        "white_matter": float(a[wm].mean()),
        "striatum": float(a[striatum].mean()),
        "occipital": float(a[occ].mean()),
        "ventricles": float(a[vent].mean()) if vent.any() else float("nan"),
    }
    eps = 1e-12

    def ratio(p: str, q: str) -> float:
        return means[p] / means[q] if abs(means[q]) > eps else float("inf")

    return {
        **{f"mean_{k}": v for k, v in means.items()},
        "grey_white": ratio("cortex", "white_matter"),
        "striatum_occipital": ratio("striatum", "occipital"),
        "ventricles_white": ratio("ventricles", "white_matter"),
    }


def check_pet_contrast(array: np.ndarray, atlas: PetAtlas, tracer: str, name: str = "input") -> Dict[str, float]:
    """Raise :class:`InputError` when the tissue contrast (image in MNI space) is not that of ``tracer``."""
    r = contrast_ratios(array, atlas)
    problems: List[str] = []
    hint: Optional[str] = None
    if not (r["mean_white_matter"] > 0 and r["mean_cortex"] > 0 and r["mean_occipital"] > 0):
        raise InputError(
            f"'{name}' has no signal where the brain should be (mean cortex {r['mean_cortex']:.3g}, white matter "
            f"{r['mean_white_matter']:.3g}): it is not a brain {tracer} PET, or it is not in MNI space (use space "
            "'native' / 'auto' to register it)"
        )
    if r["grey_white"] < 1.0 / 1.15:
        problems.append(f"white matter is brighter than cortex (grey/white {r['grey_white']:.2f})")
        hint = "a T1-weighted MR"
    if r["ventricles_white"] > 1.5:
        problems.append(f"CSF in the ventricles is bright ({r['ventricles_white']:.2f} x white matter)")
        hint = hint or "a T2-weighted MR"
    if tracer == "FDG" and r["grey_white"] < 1.4:
        problems.append(f"cortex is not well above white matter (grey/white {r['grey_white']:.2f}; FDG >= 1.4)")
    if tracer == "CFT" and r["striatum_occipital"] < 1.3:
        problems.append(
            f"no striatal binding (striatum/occipital {r['striatum_occipital']:.2f}; a dopamine-transporter PET >= 1.3)"
        )
    if problems:
        guess = f" It may be {hint}, a CT or another tracer." if hint else " It may be an MR, a CT or another tracer."
        raise InputError(f"'{name}' does not look like a {tracer} PET: {'; '.join(problems)}.{guess}")
    return r


__all__ = ["check_pet_contrast", "check_pet_volume", "contrast_ratios"]

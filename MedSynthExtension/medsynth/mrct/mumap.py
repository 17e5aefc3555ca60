"""CT Hounsfield units -> linear attenuation coefficient at 511 keV (PET annihilation photons), in cm^-1.

Bilinear scaling of Carney, Townsend, Rappoport, Bendriem, "Method for transforming CT images for attenuation
correction in PET/CT imaging", Med. Phys. 33(4):976-983, 2006 (Table 1), the form also used by Burger et al. 2002
(Eur. J. Nucl. Med. 29:922-927) and by PET/CT vendors:

* up to a break point BP (about water/soft tissue, 30-52 HU by tube voltage): air-water mixture,
  ``mu = 9.6e-5 * (HU + 1000)`` (water, HU 0: 0.096 cm^-1; air, HU -1000: 0);
* above it: water-bone mixture, ``mu = a * (HU + 1000) + b`` with ``a, b`` depending on the CT tube voltage
  (kVp), because bone's CT number depends on the X-ray spectrum while its 511 keV attenuation does not.

The two lines meet at BP (continuous). Values below -1000 HU give 0 (no negative attenuation).
Synthetic CT from :func:`medsynth.mrct.synthesize_ct` is on a 120 kVp-like scale (the default).
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from ..errors import InputError
from ..volume import Volume

MU_WATER_511 = 0.096  # cm^-1
# kVp: (a [cm^-1 per HU], b [cm^-1], break point [HU]); Carney et al. 2006, Table 1
CARNEY_2006: Dict[int, Tuple[float, float, float]] = {
    80: (3.64e-5, 6.26e-2, 50.0),
    100: (4.43e-5, 5.44e-2, 52.0),
    110: (4.92e-5, 4.88e-2, 43.0),
    120: (5.10e-5, 4.71e-2, 47.0),
    130: (5.51e-5, 4.24e-2, 37.0),
    140: (5.64e-5, 4.08e-2, 30.0),
}
SOURCE = (
    "bilinear HU -> mu(511 keV), Carney et al., Med Phys 33:976 (2006), Table 1; "
    "mu = 9.6e-5*(HU+1000) below the break point, a*(HU+1000)+b above (cm^-1)"
)


def hu_to_mu(hu: np.ndarray, kvp: int = 120) -> np.ndarray:
    """Linear attenuation at 511 keV (cm^-1, float32) of an array of Hounsfield units."""
    if int(kvp) not in CARNEY_2006:
        raise InputError(f"kvp must be one of {', '.join(map(str, sorted(CARNEY_2006)))} (Carney 2006); got {kvp}")
    a, b, bp = CARNEY_2006[int(kvp)]
    h = np.asarray(hu, dtype=np.float64)
    low = 9.6e-5 * (h + 1000.0)
    high = a * (h + 1000.0) + b
    mu = np.where(h <= bp, low, high)
    return np.clip(mu, 0.0, None).astype(np.float32)


def mu_map(ct: Volume, kvp: int = 120) -> Volume:
    """The 511 keV attenuation map (cm^-1) of a CT or synthetic CT in Hounsfield units, on the CT's grid."""
    if ct.is_vector:
        raise InputError(f"'{ct.name}' has {ct.components} components per voxel; a CT is a scalar volume")
    ct.check_finite()
    arr = np.asarray(ct.array, np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0 or hi <= lo:
        raise InputError(
            f"'{ct.name}' does not look like a CT in Hounsfield units (values {lo:g}..{hi:g}: nothing below 0, while "
            "air is -1000 HU and fat about -100 HU). Rescale it to HU first (DICOM RescaleSlope/Intercept)"
        )
    return ct.with_array(hu_to_mu(arr, kvp), name=f"{ct.name}_mu511", modality="PET")


__all__ = ["CARNEY_2006", "MU_WATER_511", "SOURCE", "hu_to_mu", "mu_map"]

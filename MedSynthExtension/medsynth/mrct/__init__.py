"""CrossModality, MR part: MR -> synthetic CT (structure-guided generator, ONNX) and the 511 keV attenuation map.

API for the faces (Slicer module, command line, studio)::

    synthesize_ct(mr: Volume, progress=None, cancel=None) -> Volume   # HU, on mr's grid, modality "CT"
    mu_map(ct: Volume, kvp=120) -> Volume                             # cm^-1 at 511 keV, on ct's grid
    MRCT_PARAMS                                                       # Param declarations (tile, kvp)

Inference needs numpy, SimpleITK and ONNX Runtime; torch/MONAI only for training (:mod:`medsynth.mrct.train`).
"""

from __future__ import annotations

from .mumap import hu_to_mu, mu_map
from .params import MRCT_PARAMS
from .synthesis import check_mr, synthesize, synthesize_ct

__all__ = ["MRCT_PARAMS", "check_mr", "hu_to_mu", "mu_map", "synthesize", "synthesize_ct"]

"""CrossModality, MR part: MR -> synthetic CT (structure-guided generator, ONNX) and the 511 keV attenuation map.

API for the faces (Slicer module, command line, studio)::

    synthesize_ct(mr: Volume, progress=None, cancel=None) -> Volume   # HU, on mr's grid, modality "CT"
    mu_map(ct: Volume, kvp=120) -> Volume                             # cm^-1 at 511 keV, on ct's grid
    MRCT_PARAMS                                                       # Param declarations (tile, kvp)

Inference needs numpy, SimpleITK and ONNX Runtime; torch/MONAI only for training (:mod:`medsynth.mrct.train`).
"""

from __future__ import annotations

from ..params import Param
from .mumap import hu_to_mu, mu_map
from .synthesis import check_mr, synthesize, synthesize_ct

MRCT_PARAMS = (
    Param("tile", int, 96, "Tile size", minimum=32, maximum=512, step=16, unit="voxels",
          help="edge of the tiles the MR is processed in, in 2 mm voxels (memory; the result does not depend on it)"),
    Param("kvp", str, "120", "CT tube voltage", choices=("80", "100", "110", "120", "130", "140"), unit="kVp",
          help="tube voltage whose bone scaling the mu-map uses (the kVp values of Carney et al. 2006; synthetic CT: "
               "120)"),
)

__all__ = ["MRCT_PARAMS", "check_mr", "hu_to_mu", "mu_map", "synthesize", "synthesize_ct"]

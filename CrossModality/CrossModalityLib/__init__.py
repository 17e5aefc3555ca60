"""Logic of the CrossModality module (MRML floor): no Qt, no ``slicer.app``; the scene is passed in.

PET part: FDG -> CFT synthesis, striatal binding ratios of the synthetic CFT and PD classification from the FDG
with its synthetic CFT (``medsynth.pet``).
MR part: MR -> synthetic CT and the 511 keV attenuation map (``medsynth.mrct``).
"""

from .logic import (
    MR_PARAMS,
    NODE_REFERENCES,
    PARAMS,
    PET_PARAMS,
    CrossModalityLogic,
    PDClassification,
)

__all__ = ["MR_PARAMS", "NODE_REFERENCES", "PARAMS", "PET_PARAMS", "CrossModalityLogic",
           "PDClassification"]

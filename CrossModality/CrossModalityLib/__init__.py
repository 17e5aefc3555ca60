"""Logic of the CrossModality module (MRML floor): no Qt, no ``slicer.app``; the scene is passed in.

PET part: FDG -> CFT synthesis and striatal binding ratios of the synthetic CFT (``medsynth.pet``).
"""

from .logic import NODE_REFERENCES, PARAMS, PET_PARAMS, CrossModalityLogic

__all__ = ["NODE_REFERENCES", "PARAMS", "PET_PARAMS", "CrossModalityLogic"]

"""Logic of the SliceSuperRes module (MRML floor): no Qt, no ``slicer.app``; the scene is passed in."""

from medsynth.superres.params import SUPERRES_PARAMS as PARAMS

from .logic import NODE_REFERENCES, SliceSuperResLogic

__all__ = ["NODE_REFERENCES", "PARAMS", "SliceSuperResLogic"]

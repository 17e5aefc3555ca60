"""Logic of the CytoSynth module (MRML floor): no Qt, no ``slicer.app``; the scene is passed in."""

from medsynth.cyto.params import CYTO_PARAMS as PARAMS

from .logic import NODE_REFERENCES, CytoSynthLogic

__all__ = ["NODE_REFERENCES", "PARAMS", "CytoSynthLogic"]

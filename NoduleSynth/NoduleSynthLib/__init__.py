"""Logic of the NoduleSynth module (MRML floor): no Qt, no ``slicer.app``; the scene is passed in."""

from medsynth.nodule.params import NODULE_PARAMS as PARAMS

from .logic import NODE_REFERENCES, NoduleSynthLogic

__all__ = ["NODE_REFERENCES", "PARAMS", "NoduleSynthLogic"]

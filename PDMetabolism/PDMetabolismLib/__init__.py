"""Logic of the PDMetabolism module (MRML floor): no Qt, no ``slicer.app``; the scene is passed in."""

from .logic import NODE_REFERENCES, PARAMS, PDMetabolismLogic

__all__ = ["NODE_REFERENCES", "PARAMS", "PDMetabolismLogic"]

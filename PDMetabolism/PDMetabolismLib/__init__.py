"""Logic of the PDMetabolism module (MRML floor): no Qt, no ``slicer.app``; the scene is passed in."""

from .logic import NODE_REFERENCES, PARAMS, Z_LEGEND_TITLE, AnomalyNodes, PDMetabolismLogic, z_legend

__all__ = ["AnomalyNodes", "NODE_REFERENCES", "PARAMS", "PDMetabolismLogic", "Z_LEGEND_TITLE", "z_legend"]

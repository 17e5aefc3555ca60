"""MR -> CT parameters, declared once (command line, CrossModality panel, studio)."""

from __future__ import annotations

from ..params import Param

MRCT_PARAMS = (
    Param("tile", int, 96, "Tile size", minimum=32, maximum=512, step=16, unit="voxels",
          help="edge of the tiles the MR is processed in, in 2 mm voxels (memory; the result does not depend on it)"),
    Param("kvp", str, "120", "CT tube voltage", choices=("80", "100", "110", "120", "130", "140"), unit="kVp",
          help="tube voltage whose bone scaling the mu-map uses (the kVp values of Carney et al. 2006; synthetic CT: "
               "120)"),
)


__all__ = ["MRCT_PARAMS"]

"""CytoSynth parameters: one declaration for the command line, the Slicer panel and the web studio."""

from __future__ import annotations

from ..params import Param
from .classes import ALL_CLASSES, NAMINGS

ALL = "all"
BLENDS = ("poisson", "alpha")

CYTO_PARAMS = (
    Param("cell_class", str, ALL, "Class", choices=(ALL,) + ALL_CLASSES,
          help="cell class to generate: a Herlev class, a Bethesda category, or all (a row per class of the naming)"),
    Param("naming", str, "bethesda", "Naming", choices=NAMINGS,
          help="how labels are written: herlev (7 classes) or bethesda (NILM, LSIL, HSIL, carcinoma)"),
    Param("count", int, 8, "Count", 1, 10000, 1, help="cells to generate (per class for 'all')"),
    Param("seed", int, 0, "Seed", 0, 999999, 1, help="seed of the first cell; cell n uses seed + n"),
    Param("patch_px", int, 64, "Inserted size", 16, 512, 1, unit="px",
          help="size of an inserted cell patch in host pixels"),
    Param("blend", str, "poisson", "Blending", choices=BLENDS,
          help="poisson (gradient-domain, seamless) or alpha (feathered disc)"),
)

__all__ = ["ALL", "BLENDS", "CYTO_PARAMS"]

"""MetaAD parameters, declared once: the PDMetabolism panel, the studio panel and ``medsynth metaad`` derive from these."""

from __future__ import annotations

from ..params import Param
from ..pet.params import SPACES

METAAD_PARAMS = (
    Param("space", str, "auto", "Input space", choices=SPACES,
          help="auto: as is on the MNI 2 mm atlas grid, else registered to the FDG template"),
    Param("z_threshold", float, 2.0, "Map threshold |z|", minimum=0.0, maximum=10.0, step=0.1, unit="z", live=True,
          help="voxels of the z map with |z| below this are hidden (z = signed residual / the normal controls' SD "
               "of the regional residual of the voxel's atlas region)"),
    Param("opacity", float, 0.6, "Map opacity", minimum=0.0, maximum=1.0, step=0.05, live=True,
          help="opacity of the anomaly map over the FDG"),
)

__all__ = ["METAAD_PARAMS"]

"""SliceSuperRes engine: reduce MRI slice spacing along one axis (SA-INR, B-spline, linear).

Faces call :func:`superres` (whole volume, progress + cancel) and :func:`superres_slab`
(a few output slices, for a live preview).  Inference needs numpy, SimpleITK and ONNX
Runtime only; torch is used by :mod:`.train` (training and export) alone.
"""

from __future__ import annotations

from .core import SuperResPreview, SuperResResult, output_index_of_ras, superres, superres_file, superres_slab
from .degrade import PROFILES, degrade_volume, thick_slices
from .geometry import SuperResGrid, choose_axis, output_grid
from .params import AXES, METHODS, SUPERRES_PARAMS
from .sainr import MODEL_ID, MissingModelError, SAINRModel, load_sainr

__all__ = [
    "AXES",
    "METHODS",
    "MODEL_ID",
    "MissingModelError",
    "PROFILES",
    "SAINRModel",
    "SUPERRES_PARAMS",
    "SuperResGrid",
    "SuperResPreview",
    "SuperResResult",
    "choose_axis",
    "degrade_volume",
    "load_sainr",
    "output_grid",
    "output_index_of_ras",
    "superres",
    "superres_file",
    "superres_slab",
    "thick_slices",
]

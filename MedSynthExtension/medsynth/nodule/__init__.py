"""NoduleSynth: controllable synthetic lung nodules for chest CT and chest radiographs.

Shape from a conditional VAE learned on LIDC-IDRI reader outlines (ONNX decoder; sliders for sphericity,
lobulation and spiculation), exact size, solid / part-solid / ground-glass texture, insertion in HU (CT) or in
the Beer-Lambert log domain (radiographs), live region updates, batch augmentation with COCO boxes, a classical
LoG detector and hard-example mining.  numpy, scipy and ONNX Runtime only (torch only to train).

Slicer-panel API (one line each)::

    spec = NoduleSpec(diameter_mm=12, texture="part-solid", solid_fraction=0.4, lobulation=1, seed=7)
    hu_patch, mask_patch = make_nodule(spec, spacing=(0.7, 0.7, 1.25))
    new_volume, mask_volume, info = insert(volume, ras, spec)          # CT or radiograph
    result = insert_ct_region(volume, ras, spec)                       # region only: result.roi/values/mask
    session = NoduleSession(volume); session.update(spec, ras); session.commit(); session.undo()

Names are imported on first use (the command line stays quick to start).
"""

from __future__ import annotations

import importlib

from .params import NODULE_PARAMS, TEXTURES, NoduleSpec

_LAZY = {
    "CTContext": "insertion",
    "CXRContext": "insertion",
    "NoduleSession": "insertion",
    "RegionResult": "insertion",
    "insert": "insertion",
    "insert_ct": "insertion",
    "insert_ct_region": "insertion",
    "insert_cxr": "insertion",
    "insert_cxr_region": "insertion",
    "make_nodule": "insertion",
    "ShapeModel": "shape",
    "default_shape_model": "shape",
    "LoGBlobDetector": "detect",
    "Detection": "detect",
    "mine_hard_examples": "detect",
    "SearchSpace": "detect",
    "read_host": "images",
    "array_photometric": "images",
}

__all__ = ["NODULE_PARAMS", "TEXTURES", "NoduleSpec"] + sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

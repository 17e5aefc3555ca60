"""NoduleSynth: controllable synthetic lung nodules for chest CT and chest radiographs.

Shape from a VAE learned on LIDC-IDRI reader outlines (ONNX decoder, sliders for sphericity, lobulation and
spiculation), exact size, solid / part-solid / ground-glass texture, insertion in HU (CT) or in the
Beer-Lambert log domain (radiographs), live region updates, batch augmentation with COCO boxes, a classical
LoG detector and hard-example mining.  numpy, scipy and ONNX Runtime only (torch for training).

Slicer-panel API (one line each)::

    spec = NoduleSpec(diameter_mm=12, texture="part-solid", solid_fraction=0.4, sphericity=0, lobulation=1,
                      spiculation=0, seed=7)
    hu_patch, mask_patch = make_nodule(spec, spacing=(0.7, 0.7, 1.25))
    new_volume, mask_volume, info = insert(volume, ras, spec)          # CT or radiograph
    result = insert_ct_region(volume, ras, spec)                       # region only: result.roi/values/mask
    session = NoduleSession(volume); session.update(spec, ras); session.commit(); session.undo()
"""

from .params import NODULE_PARAMS, TEXTURES, NoduleSpec
from .insert import (
    CTContext,
    CXRContext,
    NoduleSession,
    RegionResult,
    insert,
    insert_ct,
    insert_ct_region,
    insert_cxr,
    insert_cxr_region,
    make_nodule,
)

__all__ = [
    "NODULE_PARAMS",
    "TEXTURES",
    "NoduleSpec",
    "CTContext",
    "CXRContext",
    "NoduleSession",
    "RegionResult",
    "insert",
    "insert_ct",
    "insert_ct_region",
    "insert_cxr",
    "insert_cxr_region",
    "make_nodule",
]

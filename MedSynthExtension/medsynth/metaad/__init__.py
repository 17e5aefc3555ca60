"""MetaAD: metabolic anomaly detection in brain FDG PET (healthy FDG -> CFT -> FDG cycle trained on normal controls).

Builds on :mod:`medsynth.pet` (simulator, atlas, registration, generators). Inference (:func:`detect`) needs ONNX
Runtime only; training (:mod:`medsynth.metaad.train`) needs torch and MONAI. See docs/metaad.md.
"""

from __future__ import annotations


def detect(*args, **kwargs):
    from .detect import detect as _d

    return _d(*args, **kwargs)


def detect_file(*args, **kwargs):
    from .detect import detect_file as _d

    return _d(*args, **kwargs)


__all__ = ["detect", "detect_file"]

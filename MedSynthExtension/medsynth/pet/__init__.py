"""Brain PET: a region atlas in MNI space, an FDG/CFT simulator, registration to a template, striatal binding ratios,
FDG <-> CFT synthesis, PD classification from FDG with its synthetic CFT.

The simulator is a simulator: it makes FDG and 11C-CFT-like images from MRI tissue maps and an atlas with
approximate literature uptake ratios (see :mod:`medsynth.pet.simulate` and docs/pet.md); it is not real PET.

Names are imported lazily (PEP 562), so that ``medsynth.pet.train`` and ``medsynth.pet.nets`` import on a machine
with only numpy, torch and MONAI (the GPU training machine has no SimpleITK).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "LABELS": "atlas",
    "PetAtlas": "atlas",
    "load_atlas": "atlas",
    "check_pet_contrast": "checks",
    "check_pet_volume": "checks",
    "ClassifyResult": "classify",
    "classify": "classify",
    "fresh_seed": "cohorts",
    "Registration": "register",
    "RegistrationError": "register",
    "register_to_template": "register",
    "SBR_PARAMS": "sbr",
    "SBRResult": "sbr",
    "sbr_from_labels": "sbr",
    "striatal_binding": "sbr",
    "to_mni": "sbr",
    "SIMULATE_PARAMS": "simulate",
    "draw_params": "simulate",
    "pet_template": "simulate",
    "simulate_cohort": "simulate",
    "simulate_subject": "simulate",
    "SynthesisResult": "synthesis",
    "synthesize": "synthesis",
    "synthetic_cft_sbr": "synthesis",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)

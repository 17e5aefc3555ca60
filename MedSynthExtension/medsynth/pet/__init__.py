"""Brain PET: a region atlas in MNI space, an FDG/CFT simulator, registration to a template, striatal binding ratios.

The simulator is a simulator: it makes FDG and 11C-CFT-like images from MRI tissue maps and an atlas with
approximate literature uptake ratios (see :mod:`medsynth.pet.simulate` and docs/pet.md); it is not real PET.
"""

from .atlas import LABELS, PetAtlas, load_atlas
from .checks import check_pet_contrast, check_pet_volume
from .register import Registration, RegistrationError, register_to_template
from .sbr import SBR_PARAMS, SBRResult, sbr_from_labels, striatal_binding, to_mni
from .simulate import SIMULATE_PARAMS, draw_params, pet_template, simulate_cohort, simulate_subject

__all__ = [
    "LABELS",
    "PetAtlas",
    "Registration",
    "RegistrationError",
    "SBRResult",
    "SBR_PARAMS",
    "SIMULATE_PARAMS",
    "check_pet_contrast",
    "check_pet_volume",
    "draw_params",
    "load_atlas",
    "pet_template",
    "register_to_template",
    "sbr_from_labels",
    "simulate_cohort",
    "simulate_subject",
    "striatal_binding",
    "to_mni",
]

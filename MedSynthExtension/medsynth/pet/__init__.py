"""Brain PET: a region atlas in MNI space, an FDG/CFT simulator, striatal binding ratios.

The simulator is a simulator: it makes FDG and 11C-CFT-like images from MRI tissue maps and an atlas
with approximate literature uptake ratios (see ``simulate`` and docs/pet.md); it is not real PET.
"""

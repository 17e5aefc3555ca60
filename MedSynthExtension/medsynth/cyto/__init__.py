"""CytoSynth engine: class-conditional cervical cell synthesis (CellGAN) for augmentation and teaching.

* :mod:`.classes`: the seven Herlev classes, their Bethesda categories, either naming.
* :mod:`.data`: Herlev reading, letterbox padding removal, patches, the fixed held-out split (numpy).
* :mod:`.generate`: cells of a class from the shipped ONNX generator (ONNX Runtime; no torch), galleries,
  PNG + CSV training sets.
* :mod:`.blend`: pasting a cell into an RGB cytology image (Poisson or feathered alpha).
* :mod:`.evaluate`: ``medsynth evaluate cells``; :mod:`.augmentation`: ``medsynth evaluate cells-augmentation``
  (does CellGAN make a cell classifier better? needs torch and MONAI).
* :mod:`.model`, :mod:`.train`: CellGAN and its baseline (torch + MONAI; training and export only).
"""

from .blend import Insertion, insert_cell
from .classes import (
    ALL_CLASSES,
    BETHESDA_CLASSES,
    HERLEV_CLASSES,
    HERLEV_TO_BETHESDA,
    NAMINGS,
    canonical_class,
    classes_of,
    label_of,
)
from .data import find_content_box, padding_mask, remove_padding
from .generate import Cell, gallery, generate_cells, write_cells
from .params import CYTO_PARAMS

__all__ = [
    "ALL_CLASSES",
    "BETHESDA_CLASSES",
    "CYTO_PARAMS",
    "Cell",
    "HERLEV_CLASSES",
    "HERLEV_TO_BETHESDA",
    "Insertion",
    "NAMINGS",
    "canonical_class",
    "classes_of",
    "find_content_box",
    "gallery",
    "generate_cells",
    "insert_cell",
    "label_of",
    "padding_mask",
    "remove_padding",
    "write_cells",
]

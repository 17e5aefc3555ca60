"""MedSynth engine: geometry, IO, algorithms and model runtime, free of Slicer and Qt.

The Slicer modules, the MRML bridge (``medsynth_mrml``), the ``medsynth`` command
line and the studio are faces over this package.
"""

from .errors import Cancelled, InputError, MedSynthError, ModelError
from .progress import CancelToken, Reporter
from .volume import Volume, make_ijk_to_ras

__version__ = "0.1.0"

__all__ = [
    "Cancelled",
    "CancelToken",
    "InputError",
    "MedSynthError",
    "ModelError",
    "Reporter",
    "Volume",
    "make_ijk_to_ras",
    "__version__",
]

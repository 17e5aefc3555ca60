"""Where the studio finds the Slicer modules' logic packages (``<Module>Lib``).

The module panels call the same ``<Module>Lib`` logic classes as the Slicer modules.  Those
packages live in the module folders (``SliceSuperRes/SliceSuperResLib``,
``NoduleSynth/NoduleSynthLib``), not in an installed package, so the studio puts the module
folders on ``sys.path`` - here, and only here.  Searched, in order:

1. ``MEDSYNTH_MODULES_DIR``: folders (``os.pathsep``-separated) that hold the module folders,
   or are module folders themselves;
2. the repository / extension root (the folder above ``MedSynthExtension``), as the Slicer
   modules find ``MedSynthExtension`` from their own folder;
3. the folder holding ``medsynth_studio`` (an installed extension puts the ``<Module>Lib``
   packages beside it in ``qt-scripted-modules``: then they are importable already).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import List

ENV = "MEDSYNTH_MODULES_DIR"


def search_roots() -> List[Path]:
    roots: List[Path] = []
    for part in os.environ.get(ENV, "").split(os.pathsep):
        if part.strip():
            roots.append(Path(part.strip()))
    here = Path(__file__).resolve().parent  # .../MedSynthExtension/medsynth_studio
    roots += [here.parent.parent, here.parent]
    return roots


def module_folder(module: str) -> Path:
    """The folder holding ``<module>Lib`` (e.g. ``.../SliceSuperRes``); ImportError naming the places searched."""
    lib = f"{module}Lib"
    for root in search_roots():
        for folder in (root / module, root):
            if (folder / lib / "__init__.py").is_file():
                return folder
    searched = ", ".join(str(r) for r in search_roots())
    raise ImportError(f"{lib} not found (module {module} not landed or not installed); searched {searched}; "
                      f"set {ENV} to the folder holding {module}/")


def import_lib(module: str):
    """Import ``<module>Lib`` (adding its module folder to ``sys.path`` once) and return it."""
    name = f"{module}Lib"
    if name not in sys.modules:
        folder = str(module_folder(module))
        if folder not in sys.path:
            sys.path.append(folder)
    return importlib.import_module(name)


def model_available(model_id: str) -> bool:
    """Whether a model id is in a manifest (the nodule shape model and SA-INR are installed separately)."""
    from medsynth.runtime import list_models

    try:
        return model_id in list_models()
    except Exception:  # noqa: BLE001 - a broken manifest reads as "not available"; using it shows the error
        return False

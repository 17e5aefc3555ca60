"""Dependency check for Slicer: which Python packages MedSynth needs that are missing,
and their installation after the user confirms (never at import).

Slicer's own numpy, SimpleITK and vtk are never replaced: the pip call pins them to
the versions already installed through a constraints file.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from importlib import metadata
from typing import Callable, Dict, List, Optional, Sequence

# import name -> pip requirement
REQUIRED: Dict[str, str] = {
    "onnxruntime": "onnxruntime>=1.16",
    "scipy": "scipy>=1.9",
}
# optional: only for training and "adapt to this volume"
OPTIONAL: Dict[str, str] = {
    "torch": "torch",
    "monai": "monai>=1.3",
}
PROTECTED = ("numpy", "SimpleITK", "vtk")


def missing_packages(required: Optional[Dict[str, str]] = None) -> List[str]:
    """pip requirements of the packages that cannot be imported."""
    required = REQUIRED if required is None else required
    return [req for mod, req in required.items() if importlib.util.find_spec(mod) is None]


def protected_constraints() -> List[str]:
    """``name==version`` for each protected package present now."""
    pins = []
    for name in PROTECTED:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def install_missing(
    confirm: Callable[[str], bool],
    pip_install: Callable[[Sequence[str]], None],
    required: Optional[Dict[str, str]] = None,
) -> List[str]:
    """Ask ``confirm(message)``; if it says yes, ``pip_install(args)`` the missing packages.

    Returns the requirements installed (empty when nothing was missing or the user said no).
    In Slicer: ``confirm=slicer.util.confirmOkCancelDisplay`` and
    ``pip_install=lambda args: slicer.util.pip_install(args)``.
    """
    missing = missing_packages(required)
    if not missing:
        return []
    if not confirm("MedSynth needs these Python packages: " + ", ".join(missing) + ".\nInstall them now?"):
        return []
    fd, path = tempfile.mkstemp(prefix="medsynth-constraints-", suffix=".txt")
    try:
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(protected_constraints()) + "\n")
        pip_install(list(missing) + ["-c", path])
    finally:
        os.unlink(path)
    return missing

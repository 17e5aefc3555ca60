"""The three floors (README "The shape of the house"): arrows only downward.

- the engine (``medsynth``) imports no face (Slicer, Qt, VTK, trame, the bridge, the studio, the module Lib
  packages), and outside its command-line files (``cli.py``, ``__main__.py``, ``commands/``) it does not import
  ``medsynth.cli``;
- the bridge (``medsynth_mrml``) imports no face above it and never uses ``slicer.app``, ``slicer.mrmlScene`` or
  ``slicer.modules``;
- faces (module Lib packages, ``medsynth_slicer``, the studio) use the engine's public names: no private engine
  module (``medsynth.pet._img``) and no private name (``from medsynth.x import _helper``).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from conftest import REPO

EXT = REPO / "MedSynthExtension"
ENGINE = EXT / "medsynth"
BRIDGE = EXT / "medsynth_mrml"
MODULES = ("NoduleSynth", "CytoSynth", "CrossModality", "PDMetabolism", "SliceSuperRes")
FACE_PACKAGES = ("medsynth_slicer", "medsynth_studio", "medsynth_mrml") + tuple(f"{m}Lib" for m in MODULES)
GUI_TOPS = ("slicer", "qt", "ctk", "vtk", "vtkmodules", "PySide6", "PythonQt", "trame", "trame_slicer",
            "trame_vuetify", "trame_server", "trame_client")


def _package_of(path: Path, root: Path) -> List[str]:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1] if parts[-1] != "__init__" else parts[:-1]


def imports(path: Path, root: Path) -> Iterator[Tuple[str, List[str], int]]:
    """(absolute module, imported names, line) of every import in ``path`` (relative imports resolved; ``root``
    holds the top-level package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = _package_of(path, root)
    if path.name == "__init__.py":
        pkg = list(path.relative_to(root).parent.parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod, [a.name for a in node.names], node.lineno


def _py(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_engine_imports_no_face():
    bad = []
    for path in _py(ENGINE):
        cli_file = path.name in ("cli.py", "__main__.py") and path.parent == ENGINE or "commands" in path.parts
        for mod, names, line in imports(path, EXT):
            top = mod.split(".")[0]
            where = f"{path.relative_to(REPO)}:{line}: {mod}"
            if top in GUI_TOPS or top in FACE_PACKAGES:
                if not (path.parent.name == "commands" and top == "medsynth_studio"):  # `medsynth studio` starts it
                    bad.append(where)
            if mod == "medsynth.cli" and not cli_file:
                bad.append(where + " (the engine does not import the command line)")
            if mod == "medsynth" and "cli" in names and not cli_file:
                bad.append(where + " import cli")
    assert not bad, "\n".join(bad)


def test_bridge_imports_no_face_and_no_application():
    bad = []
    for path in _py(BRIDGE):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "slicer"
                    and node.attr in ("app", "mrmlScene", "modules")):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno} uses slicer.{node.attr} (the scene is an argument)")
        for mod, _names, line in imports(path, EXT):
            top = mod.split(".")[0]
            if top in ("medsynth_slicer", "medsynth_studio", "qt", "ctk", "PythonQt", "PySide6") or top.endswith("Lib"):
                bad.append(f"{path.relative_to(REPO)}:{line}: {mod}")
    assert not bad, "\n".join(bad)


def _face_files() -> List[Tuple[Path, Path]]:
    out = [(p, EXT) for name in ("medsynth_slicer", "medsynth_studio") for p in _py(EXT / name)]
    for m in MODULES:
        out += [(p, REPO / m) for p in _py(REPO / m)]
    return out


def test_faces_use_only_public_engine_names():
    bad = []
    for path, root in _face_files():
        for mod, names, line in imports(path, root):
            if mod.split(".")[0] != "medsynth":
                continue
            where = f"{path.relative_to(REPO)}:{line}: {mod}"
            if any(part.startswith("_") for part in mod.split(".")[1:]):
                bad.append(where + " (a private engine module)")
            private = [n for n in names if n.startswith("_")]
            if private:
                bad.append(where + f" imports private {', '.join(private)}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("text,expected", [
    ("from ..cli import x", "medsynth.cli"),
    ("from .sbr import x", "medsynth.pet.sbr"),
    ("from . import sheets", "medsynth.pet"),
])
def test_relative_imports_resolve(tmp_path, text, expected):
    f = tmp_path / "medsynth" / "pet" / "mod.py"
    f.parent.mkdir(parents=True)
    f.write_text(text + "\n")
    assert [m for m, _n, _l in imports(f, tmp_path)] == [expected]

"""Checks of the Slicer modules that can run without Slicer.

- every module listed in the top CMakeLists has its CMakeLists listing every Python file;
- its .ui file loads with PySide6's QUiLoader (offscreen), every widget name the module
  code uses (``self.ui.X``) exists in it, and every declared parameter has a widget
  with that ``SlicerParameterName`` and the declared range or choices;
- all Python files parse as Python 3.9 and 3.12 (and compile with those interpreters
  where they are installed).
"""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

MODULES = re.findall(r"^add_subdirectory\((\w+)\)", (REPO / "CMakeLists.txt").read_text(), re.M)
PY_FILES = sorted(
    p for p in REPO.rglob("*.py") if ".venv" not in p.parts and "build" not in p.parts and not p.name.startswith(".")
)


def test_extension_lists_modules():
    assert "MedSynthExtension" in MODULES
    for name in MODULES:
        assert (REPO / name / f"{name}.py").is_file(), name


@pytest.mark.parametrize("module", MODULES)
def test_cmake_lists_every_python_file_and_resource(module):
    folder = REPO / module
    text = (folder / "CMakeLists.txt").read_text()
    listed = set(re.findall(r"^\s+([\w/${}.-]+\.py)\s*$", text, re.M))
    listed = {s.replace("${MODULE_NAME}", module) for s in listed}
    present = {str(p.relative_to(folder)) for p in folder.rglob("*.py") if "__pycache__" not in p.parts}
    assert present - listed == set(), f"{module}/CMakeLists.txt misses {sorted(present - listed)}"
    assert listed - present == set(), f"{module}/CMakeLists.txt lists missing files {sorted(listed - present)}"
    for res in re.findall(r"(Resources/\S+)", text):
        assert (folder / res.replace("${MODULE_NAME}", module)).is_file(), res


def _load_ui(path: Path):
    pytest.importorskip("PySide6", reason="PySide6 (pyside6-essentials) is needed to load .ui files")
    from PySide6.QtCore import QFile
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    loader = QUiLoader()
    f = QFile(str(path))
    assert f.open(QFile.ReadOnly), path
    widget = loader.load(f)
    f.close()
    assert widget is not None, f"QUiLoader could not load {path}: {loader.errorString()}"
    return app, widget


def _ui_names_used(source: str) -> set:
    """Names X in ``self.ui.X`` / ``ui.X`` attribute chains of a module file."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui":
            names.add(node.attr)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ui":
            names.add(node.attr)
    return names


def _params_of(module: str):
    """The module's parameter declarations: ``<Module>Lib.PARAMS`` when the module has a Lib package."""
    if not (REPO / module / f"{module}Lib").is_dir():
        return ()
    sys.path.insert(0, str(REPO / module))
    try:
        return tuple(importlib.import_module(f"{module}Lib").PARAMS)
    finally:
        sys.path.remove(str(REPO / module))


@pytest.mark.parametrize("module", MODULES)
def test_ui_file_matches_module_code_and_parameters(module):
    from PySide6.QtWidgets import QComboBox, QWidget

    ui_path = REPO / module / "Resources" / "UI" / f"{module}.ui"
    _, widget = _load_ui(ui_path)
    found = {w.objectName(): w for w in widget.findChildren(QWidget)}
    used = _ui_names_used((REPO / module / f"{module}.py").read_text())
    assert used, f"{module}.py uses no ui widgets?"
    missing = sorted(used - set(found))
    assert not missing, f"{module}.py uses widgets absent from {ui_path.name} (or dropped by QUiLoader): {missing}"

    by_param = {}
    for w in found.values():
        name = w.property("SlicerParameterName")
        if name:
            by_param[str(name)] = w
    for p in _params_of(module):
        assert p.name in by_param, f"{ui_path.name} has no widget with SlicerParameterName={p.name}"
        w = by_param[p.name]
        if p.minimum is not None:
            lo, hi = w.property("minimum"), w.property("maximum")
            assert (lo, hi) == (p.minimum, p.maximum), f"{p.name}: .ui range {lo}..{hi} != declared {p.minimum}..{p.maximum}"
        if p.choices:
            assert isinstance(w, QComboBox), f"{p.name} should be a combo box"
            items = tuple(w.itemText(i) for i in range(w.count()))
            assert items == p.choices, f"{p.name}: .ui items {items} != declared {p.choices}"
    unknown = set(by_param) - {p.name for p in _params_of(module)} - set(_node_refs(module))
    assert not unknown, f"{ui_path.name} binds undeclared parameters {sorted(unknown)}"


def _node_refs(module: str) -> dict:
    if not (REPO / module / f"{module}Lib").is_dir():
        return {}
    sys.path.insert(0, str(REPO / module))
    try:
        return dict(getattr(importlib.import_module(f"{module}Lib"), "NODE_REFERENCES", {}))
    finally:
        sys.path.remove(str(REPO / module))


@pytest.mark.parametrize("version", [(3, 9), (3, 12)])
def test_sources_parse_as_python(version):
    bad = []
    for path in PY_FILES:
        try:
            ast.parse(path.read_text(), filename=str(path), feature_version=version)
        except SyntaxError as exc:
            bad.append(f"{path.relative_to(REPO)}:{exc.lineno}: {exc.msg}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("exe", ["python3.9", "python3.12"])
def test_sources_compile_with_other_interpreters(exe, tmp_path):
    candidates = [shutil.which(exe)] + sorted(Path.home().glob(f".pyenv/versions/{exe[6:]}*/bin/{exe}"))
    path = next((str(c) for c in candidates if c and subprocess.run([str(c), "--version"], capture_output=True).returncode == 0), None)
    if path is None:
        pytest.skip(f"{exe} is not installed here")
    code = (
        "import sys\n"
        "bad = []\n"
        "for f in sys.argv[1:]:\n"
        "    try:\n"
        "        compile(open(f, encoding='utf-8').read(), f, 'exec', dont_inherit=True)\n"
        "    except SyntaxError as e:\n"
        "        bad.append(f'{f}:{e.lineno}: {e.msg}')\n"
        "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([path, "-c", code] + [str(p) for p in PY_FILES], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_engine_never_imports_slicer_or_qt():
    engine = REPO / "MedSynthExtension" / "medsynth"
    for path in engine.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                top = n.split(".")[0]
                assert top not in ("slicer", "qt", "ctk", "vtk", "PySide6", "PythonQt"), f"{path}: imports {n}"

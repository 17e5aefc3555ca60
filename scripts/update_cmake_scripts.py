"""Rewrite MODULE_PYTHON_SCRIPTS in each module's CMakeLists.txt from the Python files present.

    python scripts/update_cmake_scripts.py   (Testing/test_slicer_modules.py checks the lists)
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def scripts_of(folder: Path) -> list:
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.py") if "__pycache__" not in p.parts)
    main = f"{folder.name}.py"
    return [main] + [f for f in files if f != main]


def main() -> None:
    modules = re.findall(r"^add_subdirectory\((\w+)\)", (ROOT / "CMakeLists.txt").read_text(), re.M)
    for name in modules:
        cmake = ROOT / name / "CMakeLists.txt"
        text = cmake.read_text()
        lines = "\n".join("  " + f.replace(name, "${MODULE_NAME}", 1) if f.startswith(name) else "  " + f
                          for f in scripts_of(ROOT / name))
        new = re.sub(r"set\(MODULE_PYTHON_SCRIPTS\n.*?\n  \)", f"set(MODULE_PYTHON_SCRIPTS\n{lines}\n  )", text,
                     flags=re.S)
        if new != text:
            cmake.write_text(new)
            print(f"updated {cmake.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

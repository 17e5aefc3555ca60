"""``medsynth sheet WHAT``: variation sheets for teaching (a captioned grid of one lesion at several settings).

Each module that makes sheets adds ``register_sheet(subparsers)`` to :data:`SHEET_MODULES`.
"""

from __future__ import annotations

import importlib
from typing import List

SHEET_MODULES: List[str] = ["medsynth.nodule.commands"]


def register(sub) -> None:
    p = sub.add_parser("sheet", help="variation sheet for teaching: one lesion at several settings, captioned (PNG/PDF)")
    inner = p.add_subparsers(dest="what", metavar="WHAT")
    inner.required = True
    for name in SHEET_MODULES:
        importlib.import_module(name).register_sheet(inner)

"""``medsynth sheet WHAT``: variation sheets for teaching (a captioned grid of one lesion at several settings).

Each module that makes sheets adds ``register_sheet(subparsers)`` to :data:`SHEET_MODULES`.
"""

from __future__ import annotations

from typing import List

SHEET_MODULES: List[str] = ["medsynth.nodule.commands", "medsynth.cyto.cli", "medsynth.superres.cli"]


def register(sub) -> None:
    from . import register_group

    register_group(sub, "sheet", "variation sheet for teaching: one lesion at several settings, captioned (PNG/PDF)",
                   SHEET_MODULES, hook="register_sheet")

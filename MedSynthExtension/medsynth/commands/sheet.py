"""``medsynth sheet WHAT``: variation sheets for teaching (a captioned grid of one lesion at several settings).

The modules (each with ``register_sheet(subparsers)``) come from :data:`medsynth.packages.PACKAGES`.
"""

from __future__ import annotations

from typing import List

from ..packages import sheet_modules

SHEET_MODULES: List[str] = sheet_modules()


def register(sub) -> None:
    from . import register_group

    register_group(sub, "sheet", "variation sheet for teaching: one lesion at several settings, captioned (PNG/PDF)",
                   SHEET_MODULES, hook="register_sheet")

"""``medsynth evaluate WHAT ...``: measured comparisons against baselines, run on demand.

A module issue adds a module to :data:`EVALUATOR_MODULES`; each has
``register(subparsers)`` adding its ``evaluate`` sub-subcommand.
"""

from __future__ import annotations

import importlib
from typing import List

EVALUATOR_MODULES: List[str] = []
EVALUATOR_MODULES.append("medsynth.superres.evaluate")
EVALUATOR_MODULES.append("medsynth.cyto.evaluate")
EVALUATOR_MODULES.append("medsynth.cyto.augmentation")
EVALUATOR_MODULES.append("medsynth.mrct.evaluate")
EVALUATOR_MODULES.append("medsynth.pet.evaluate")
EVALUATOR_MODULES.append("medsynth.metaad.evaluate")
EVALUATOR_MODULES.append("medsynth.nodule.mining")


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a method against its baselines")
    inner = p.add_subparsers(dest="what", metavar="WHAT")
    inner.required = True
    for name in EVALUATOR_MODULES:
        importlib.import_module(name).register(inner)

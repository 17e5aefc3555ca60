"""``medsynth evaluate WHAT ...``: measured comparisons against baselines, run on demand.

A package adds a module to :data:`EVALUATOR_MODULES`; each has
``register(subparsers)`` adding its ``evaluate`` sub-subcommand.
"""

from __future__ import annotations

from typing import List

EVALUATOR_MODULES: List[str] = []
EVALUATOR_MODULES.append("medsynth.superres.evaluate")
EVALUATOR_MODULES.append("medsynth.cyto.evaluate")
EVALUATOR_MODULES.append("medsynth.cyto.augmentation")
EVALUATOR_MODULES.append("medsynth.mrct.evaluate")
EVALUATOR_MODULES.append("medsynth.pet.evaluate")
EVALUATOR_MODULES.append("medsynth.metaad.evaluate")
EVALUATOR_MODULES.append("medsynth.pet.classify_evaluate")
EVALUATOR_MODULES.append("medsynth.nodule.mining")


def register(sub) -> None:
    from . import register_group

    register_group(sub, "evaluate", "evaluate a method against its baselines", EVALUATOR_MODULES)

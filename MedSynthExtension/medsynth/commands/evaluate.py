"""``medsynth evaluate WHAT ...``: measured comparisons against baselines, run on demand.

The modules come from :data:`medsynth.packages.PACKAGES`; each has ``register(subparsers)`` adding its
``evaluate`` sub-subcommand.
"""

from __future__ import annotations

from typing import List

from ..packages import evaluator_modules

EVALUATOR_MODULES: List[str] = evaluator_modules()


def register(sub) -> None:
    from . import register_group

    register_group(sub, "evaluate", "evaluate a method against its baselines", EVALUATOR_MODULES)

"""The engine's module packages, registered once: the command list, the evaluators, the teaching sheets and the demo
parts are derived from :data:`PACKAGES` (``medsynth.commands``). A new package adds one :class:`Package` here.

Each field names modules, not objects, so nothing is imported until a command needs it (``medsynth --help`` stays
fast): ``commands`` has ``register(subparsers)``, each ``evaluate`` module ``register(subparsers)`` for
``medsynth evaluate``, ``sheet`` ``register_sheet(subparsers)`` for ``medsynth sheet``, and each demo part is
``(name, "module:function")`` with ``function(out_dir, reporter) -> [paths]``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, List, Tuple


@dataclass(frozen=True)
class Package:
    """What one engine package offers the faces."""

    name: str
    commands: str = ""
    evaluate: Tuple[str, ...] = ()
    sheet: str = ""
    demo: Tuple[Tuple[str, str], ...] = ()


PACKAGES: Tuple[Package, ...] = (
    Package("pet", commands="medsynth.pet.cli",
            evaluate=("medsynth.pet.evaluate", "medsynth.pet.classify_evaluate"),
            demo=(("pet", "medsynth.pet.demo:pet_demo_part"),)),
    Package("superres", commands="medsynth.superres.cli", evaluate=("medsynth.superres.evaluate",),
            sheet="medsynth.superres.cli", demo=(("superres", "medsynth.superres.demo:demo_part"),)),
    Package("nodule", commands="medsynth.nodule.cli", evaluate=("medsynth.nodule.mining",),
            sheet="medsynth.nodule.cli", demo=(("nodule", "medsynth.nodule.demo:nodule_part"),)),
    Package("cyto", commands="medsynth.cyto.cli", evaluate=("medsynth.cyto.evaluate", "medsynth.cyto.augmentation"),
            sheet="medsynth.cyto.cli", demo=(("cyto", "medsynth.cyto.demo:cyto_part"),)),
    Package("mrct", commands="medsynth.mrct.cli", evaluate=("medsynth.mrct.evaluate",),
            demo=(("mrct", "medsynth.mrct.demo:mrct_part"),)),
    Package("metaad", commands="medsynth.metaad.cli", evaluate=("medsynth.metaad.evaluate",),
            demo=(("anomaly-detection", "medsynth.metaad.demo:demo_part"),)),
)


def command_modules() -> List[str]:
    return [p.commands for p in PACKAGES if p.commands]


def evaluator_modules() -> List[str]:
    return [m for p in PACKAGES for m in p.evaluate]


def sheet_modules() -> List[str]:
    return [p.sheet for p in PACKAGES if p.sheet]


def _lazy(target: str) -> Callable[..., Any]:
    module, _, func = target.partition(":")

    def part(out_dir, reporter):
        return getattr(importlib.import_module(module), func)(out_dir, reporter)

    part.__name__ = func
    return part


def demo_parts() -> List[Tuple[str, Callable[..., Any]]]:
    """(name, function) of every package's demo parts, imported when called."""
    return [(name, _lazy(target)) for p in PACKAGES for name, target in p.demo]


__all__ = ["PACKAGES", "Package", "command_modules", "demo_parts", "evaluator_modules", "sheet_modules"]

"""The ``medsynth`` command line: one module per subcommand, each with ``register(subparsers)``.

The commands of the engine's packages, their evaluators, sheets and demo parts come from
:data:`medsynth.packages.PACKAGES` (one registration per package).
"""

import importlib
from typing import Sequence

from ..packages import command_modules

COMMAND_MODULES = [
    "medsynth.commands.info",
    "medsynth.commands.convert",
    "medsynth.commands.demo",
    "medsynth.commands.evaluate",
    "medsynth.commands.studio",
    "medsynth.commands.sheet",
] + command_modules()


def register_group(sub, name: str, help: str, modules: Sequence[str], hook: str = "register") -> None:
    """A command with sub-commands (``medsynth evaluate WHAT``, ``medsynth sheet WHAT``): each module in ``modules``
    adds its own through ``hook(subparsers)``."""
    p = sub.add_parser(name, help=help)
    inner = p.add_subparsers(dest="what", metavar="WHAT")
    inner.required = True
    for module in modules:
        getattr(importlib.import_module(module), hook)(inner)

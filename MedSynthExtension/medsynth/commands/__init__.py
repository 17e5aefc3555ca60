"""The ``medsynth`` command line: one module per subcommand, each with ``register(subparsers)``.

A new package adds its command module to :data:`COMMAND_MODULES` and, for the demo,
a part to ``medsynth.commands.demo.DEMO_PARTS``.
"""

import importlib
from typing import Sequence

COMMAND_MODULES = [
    "medsynth.commands.info",
    "medsynth.commands.convert",
    "medsynth.commands.demo",
    "medsynth.commands.evaluate",
    "medsynth.commands.studio",
    "medsynth.commands.sheet",
    "medsynth.pet.cli",
    "medsynth.superres.cli",
    "medsynth.nodule.commands",
    "medsynth.cyto.cli",
    "medsynth.mrct.cli",
    "medsynth.metaad.cli",
]


def register_group(sub, name: str, help: str, modules: Sequence[str], hook: str = "register") -> None:
    """A command with sub-commands (``medsynth evaluate WHAT``, ``medsynth sheet WHAT``): each module in ``modules``
    adds its own through ``hook(subparsers)``."""
    p = sub.add_parser(name, help=help)
    inner = p.add_subparsers(dest="what", metavar="WHAT")
    inner.required = True
    for module in modules:
        getattr(importlib.import_module(module), hook)(inner)

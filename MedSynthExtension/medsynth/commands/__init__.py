"""The ``medsynth`` command line: one module per subcommand, each with ``register(subparsers)``.

A module issue adds its command module to :data:`COMMAND_MODULES` and, for the demo,
a part to ``medsynth.commands.demo.DEMO_PARTS``.
"""

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

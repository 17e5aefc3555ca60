"""Entry point of the ``medsynth`` command."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from . import __version__
from .commands import COMMAND_MODULES
from .errors import Cancelled, MedSynthError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medsynth", description="MedSynth: controllable medical image synthesis")
    parser.add_argument("--version", action="version", version=f"medsynth {__version__}")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default=None, help="where models run")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def progress_printer(fraction: float, message: str) -> None:
    """Progress for terminals: one rewritten line on stderr."""
    end = "\n" if fraction >= 1.0 else ""
    sys.stderr.write(f"\r[{fraction * 100:5.1f}%] {message[:70]:<70}{end}")
    sys.stderr.flush()


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.device:
        from .runtime import set_device

        set_device(args.device)
    try:
        return int(args.func(args) or 0)
    except Cancelled:
        sys.stderr.write("\ncancelled; no output written\n")
        return 130
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted; no output written\n")
        return 130
    except MedSynthError as exc:
        sys.stderr.write(f"medsynth {args.command}: error: {exc}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Entry point of the ``medsynth`` command."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from . import __version__
from .commands import COMMAND_MODULES
from .errors import Cancelled, MedSynthError, Stopped, one_line
from .progress import progress_printer, reset_terminal_line, terminal_message  # noqa: F401 (re-exported)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medsynth",
        description="MedSynth: controllable medical image synthesis",
        epilog="Every command checks its output paths before any work (not an input, a suffix it can write, not a "
        "folder, a writable place; missing parent folders are created) and writes all its outputs or none. "
        "Exit status: 0 done; 2 bad input or a system error (one line on stderr); 130 cancelled or interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"medsynth {__version__}")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default=None, help="where models run")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


# the terminal helpers live in the engine's progress module (command modules of every package use them)
_say = terminal_message


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command. Exit status: 0 done; 2 bad input or an error of the system (a file that cannot be read or
    written, a full disk: one line on stderr, no traceback, no output left); 130 cancelled or interrupted (Ctrl-C),
    no output left (batch commands keep the whole items made before the stop and say so). Any other exception is a bug in MedSynth and keeps its traceback."""
    reset_terminal_line()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.device:
        from .runtime import set_device

        set_device(args.device)
    try:
        return int(args.func(args) or 0)
    except Stopped as exc:  # a batch: the whole items written before the stop are kept, and said
        _say(str(exc))
        return 130
    except Cancelled:
        _say("cancelled; no output written")
        return 130
    except KeyboardInterrupt:
        _say("interrupted; no output written")
        return 130
    except MedSynthError as exc:
        _say(f"medsynth {args.command}: error: {exc}")
        return 2
    except OSError as exc:
        _say(f"medsynth {args.command}: error: {one_line(exc)}")
        return 2


def run() -> None:
    """The program's entry point (``medsynth`` and ``python -m medsynth``): :func:`main`, then exit with its status.

    An interrupted run exits 130 through ``os._exit`` once its cleanup is done and stdout/stderr are flushed. CPython
    remembers a Ctrl-C that arrived while an extension module ran Python code of its own (pybind11 ``exec``, as
    ONNX Runtime's does) and, at exit, kills the process with SIGINT even though :func:`main` caught the interrupt
    and cleaned up; the shell would then see a signal instead of the status 130 that the help promises."""
    status = main()
    if status == 130:
        import os

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(130)
    sys.exit(status)


if __name__ == "__main__":  # pragma: no cover
    run()

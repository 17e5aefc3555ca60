"""Parameter declarations: each module declares its parameters once, here in plain Python.

From one tuple of :class:`Param` the faces derive what they need: command-line
options (:func:`add_arguments`), validation with clear errors (:func:`validate`),
defaults, the Slicer parameter node (``medsynth_slicer.parameters``), the checks that
the module's .ui file has a widget for each parameter with the declared range, and
the studio's web controls.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

from .errors import InputError


@dataclass(frozen=True)
class Param:
    """One user-facing parameter.

    Args:
        name: identifier (parameter node key, CLI option ``--name-with-dashes``, .ui ``SlicerParameterName``).
        kind: ``float``, ``int``, ``bool`` or ``str``.
        default: default value.
        label: short label for panels.
        minimum, maximum, step: numeric range (inclusive) and slider step.
        choices: allowed values for ``str`` parameters.
        unit: unit shown beside the value ("mm", "HU", ...).
        help: one sentence for tooltips and ``--help``.
        live: whether a change should update the view without pressing Apply.
    """

    name: str
    kind: type
    default: Any
    label: str
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    step: Optional[float] = None
    choices: Tuple[str, ...] = ()
    unit: str = ""
    help: str = ""
    live: bool = False

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> Any:
        """Convert ``value`` to the declared kind and check its range; raise :class:`InputError` naming it."""
        try:
            if self.kind is bool and isinstance(value, str):
                v: Any = value.strip().lower() in ("1", "true", "yes", "on")
            else:
                v = self.kind(value)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"{self.name}: {value!r} is not a valid {self.kind.__name__}") from None
        if self.kind is float and not math.isfinite(v):
            raise InputError(f"{self.name}: {value!r} is not a finite number")
        if self.choices and v not in self.choices:
            raise InputError(f"{self.name}: {v!r} is not one of {', '.join(map(str, self.choices))}")
        if self.minimum is not None and v < self.minimum:
            raise InputError(f"{self.name}: {v} is below the minimum {self.minimum}{self.unit and ' ' + self.unit}")
        if self.maximum is not None and v > self.maximum:
            raise InputError(f"{self.name}: {v} is above the maximum {self.maximum}{self.unit and ' ' + self.unit}")
        return v


def finite_float(text: Any) -> float:
    """argparse ``type`` for float options: a finite number (``nan``, ``inf`` are refused with exit status 2)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def bounded_int(minimum: int, maximum: int) -> Any:
    """argparse ``type`` for an integer option within ``[minimum, maximum]``."""

    def convert(text: Any) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is outside [{minimum}..{maximum}]")
        return value

    convert.__name__ = "int"
    return convert


def positive_float(text: Any) -> float:
    """argparse ``type``: a finite number above 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
    return value


def defaults(params: Iterable[Param]) -> Dict[str, Any]:
    return {p.name: p.default for p in params}


def validate(params: Sequence[Param], values: Mapping[str, Any]) -> Dict[str, Any]:
    """Defaults overlaid with ``values``, each converted and range-checked. Unknown names are an error."""
    by_name = {p.name: p for p in params}
    unknown = [k for k in values if k not in by_name]
    if unknown:
        raise InputError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    out = defaults(params)
    out.update({k: by_name[k].check(v) for k, v in values.items()})
    return out


def add_arguments(parser: argparse.ArgumentParser, params: Iterable[Param], skip: Iterable[str] = (),
                  options: Optional[Mapping[str, str]] = None, required: Iterable[str] = (),
                  lenient: Iterable[str] = ()) -> None:
    """Add one ``--option`` per parameter (defaults, ranges, choices and help from the declaration).

    ``options`` renames an option (``{"cell_class": "--class"}``); a parameter in ``required`` must be given (no
    default: for values that have no sensible default on the command line, such as a target spacing); for one in
    ``lenient`` argparse does not enforce the choices, because the command first normalises the spelling (e.g.
    "nilm" -> "NILM") and then checks the value against the declaration."""
    skip, required, options, lenient = set(skip), set(required), dict(options or {}), set(lenient)
    for p in params:
        if p.name in skip:
            continue
        text = p.help or p.label
        if p.minimum is not None or p.maximum is not None:
            text += f" [{p.minimum:g}..{p.maximum:g}{(' ' + p.unit) if p.unit else ''}]"
        text += " (required)" if p.name in required else f" (default {p.default})"
        text = text.replace("%", "%%")  # argparse formats help with %
        flag = options.get(p.name, p.option)
        if p.kind is bool:
            parser.add_argument(flag, dest=p.name, action=argparse.BooleanOptionalAction, default=p.default, help=text)
        else:
            kind = finite_float if p.kind is float else p.kind
            extra: Dict[str, Any] = {"required": True} if p.name in required else {"default": p.default}
            choices = None if p.name in lenient else (p.choices or None)
            if p.choices and p.name in lenient:
                text += f"; one of {', '.join(p.choices)}".replace("%", "%%")
            parser.add_argument(flag, dest=p.name, type=kind, choices=choices, help=text, **extra)


def from_namespace(params: Sequence[Param], ns: argparse.Namespace) -> Dict[str, Any]:
    """The validated values of ``params`` found in an argparse namespace."""
    return validate(params, {p.name: getattr(ns, p.name) for p in params if hasattr(ns, p.name)})

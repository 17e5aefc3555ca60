"""Variation sheets for teaching, shared by every module (``medsynth sheet nodule|cells|superres``).

A sheet is a captioned grid: one or two declared parameters vary (``--vary NAME=v1,v2,...``; columns, then rows),
the others keep their given (``--set NAME=VALUE``) or default values. Names, ranges and choices come from the
module's parameter declarations (:class:`medsynth.params.Param`), so a sheet accepts exactly what the module's
command and panels accept. Each module makes its tiles; :func:`write_grid` lays them out with their captions and a
title (model id and version included) and writes PNG or PDF atomically (matplotlib, Agg).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import InputError

SHEET_SUFFIXES = (".png", ".pdf")
MAX_TILES = 60

Vary = Tuple[str, List[Any]]


def parse_vary(text: str, params: Sequence[Any], aliases: Optional[Mapping[str, str]] = None,
               exclude: Sequence[str] = ()) -> Vary:
    """``NAME=v1,v2,...`` -> (name, values checked by the declaration); ``aliases`` maps short names."""
    by_name = {p.name: p for p in params if p.name not in exclude}
    name, sep, values = str(text).partition("=")
    name = name.strip().replace("-", "_")
    name = dict(aliases or {}).get(name, name)
    if not sep or not values.strip():
        raise InputError(f"--vary {text!r}: give NAME=v1,v2,...")
    if name not in by_name:
        raise InputError(f"--vary {text!r}: unknown parameter {name!r}; one of {', '.join(by_name)}")
    items = [v.strip() for v in values.split(",") if v.strip()]
    return name, [by_name[name].check(v) for v in items]


def parse_set(text: str, params: Sequence[Any], aliases: Optional[Mapping[str, str]] = None,
              exclude: Sequence[str] = ()) -> Tuple[str, Any]:
    """``NAME=VALUE`` for a parameter held fixed."""
    name, values = parse_vary(text, params, aliases, exclude)
    if len(values) != 1:
        raise InputError(f"--set {text!r}: one value (use --vary for several)")
    return name, values[0]


def grid_of(vary: Sequence[Vary], fixed: Mapping[str, Any]) -> Tuple[Vary, Vary]:
    """(columns, rows) of a sheet; rows is ("", [None]) for one varied parameter. Checks the request."""
    if not 1 <= len(vary) <= 2:
        raise InputError("give one or two --vary NAME=v1,v2,... (columns, then rows)")
    if len(vary) == 2 and vary[0][0] == vary[1][0]:
        raise InputError(f"--vary {vary[0][0]} is given twice")
    for name, values in vary:
        if name in fixed:
            raise InputError(f"{name} is both varied and set")
        if not values:
            raise InputError(f"--vary {name}: no values")
    cols = (vary[0][0], list(vary[0][1]))
    rows = (vary[1][0], list(vary[1][1])) if len(vary) == 2 else ("", [None])
    if len(cols[1]) * len(rows[1]) > MAX_TILES:
        raise InputError(f"{len(cols[1]) * len(rows[1])} tiles; at most {MAX_TILES} fit on a sheet")
    return cols, rows


def settings(cols: Vary, rows: Vary) -> List[List[Dict[str, Any]]]:
    """The changes of every tile, row by row."""
    return [[{cols[0]: c, **({rows[0]: r} if rows[0] else {})} for c in cols[1]] for r in rows[1]]


def check_out(out: os.PathLike) -> Path:
    from .io import suffix_of

    if suffix_of(out) not in SHEET_SUFFIXES:
        raise InputError(f"cannot write a sheet as '{Path(out).name}'; use {' or '.join(SHEET_SUFFIXES)}")
    return Path(out)


def write_grid(out: os.PathLike, tiles: Sequence[Sequence[np.ndarray]], captions: Sequence[Sequence[str]],
               title: Sequence[str], tile_inches: float = 2.2) -> Path:
    """Lay ``tiles`` (rows of uint8 images, grey 2D or RGB) out with their captions under a wrapped title and write
    the sheet (PNG or PDF) atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_output, suffix_of

    target = check_out(out)
    n_rows, n_cols = len(tiles), max(len(r) for r in tiles)
    lines: List[str] = []
    for t in title:
        lines += textwrap.wrap(t, width=max(40, 24 * n_cols)) or [""]
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False, layout="constrained")
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(tiles[r]):
                ax.axis("off")
                continue
            img = np.asarray(tiles[r][c])
            if img.ndim == 2:
                ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            else:
                ax.imshow(img, interpolation="nearest")
            ax.set_title(captions[r][c], fontsize=7)
    fig.set_size_inches(max(4.5, tile_inches * n_cols), (tile_inches + 0.25) * n_rows + 0.14 * len(lines))
    fig.suptitle("\n".join(lines), fontsize=7)
    try:
        with atomic_output(target) as tmp:
            fig.savefig(str(tmp), dpi=150, format=suffix_of(target).lstrip("."))
    finally:
        plt.close(fig)
    return target


def add_sheet_arguments(p, params: Sequence[Any]) -> None:
    """``--out``, ``--vary`` (once or twice) and ``--set`` on a ``medsynth sheet WHAT`` parser."""
    from .outputs import PARENT_RULE

    names = ", ".join(q.name for q in params)
    p.add_argument("--out", required=True, help=f"sheet file (.png or .pdf); {PARENT_RULE}")
    p.add_argument("--vary", action="append", required=True, metavar="NAME=V1,V2,...",
                   help=f"a parameter and its values, once (columns) or twice (then rows); NAME: {names}")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a parameter held at a value (default: its "
                   "default)")


def request(args, params: Sequence[Any], aliases: Optional[Mapping[str, str]] = None) -> Tuple[List[Vary], Dict[str, Any]]:
    """(vary, fixed) from the parsed ``--vary`` / ``--set`` options."""
    vary = [parse_vary(v, params, aliases) for v in args.vary]
    fixed = dict(parse_set(t, params, aliases) for t in (args.set or []))
    return vary, fixed


def run_sheet_command(args, inputs: Sequence[Any], make) -> Dict[str, Any]:
    """The command-line body of ``medsynth sheet WHAT``: the output checked before any work (not an input, a .png
    or .pdf, a writable place), then ``make()``; all or nothing."""
    from .outputs import OutputPlan

    plan = OutputPlan(inputs=list(inputs))
    plan.file(args.out, "--out", SHEET_SUFFIXES)
    with plan:
        return make()


def caption(params: Sequence[Any], changes: Mapping[str, Any], names: bool = False) -> str:
    """"label value unit" (or "name value unit" with ``names``) of each changed parameter, comma-separated."""
    by_name = {p.name: p for p in params}
    out = []
    for k, v in changes.items():
        p = by_name.get(k)
        text = f"{v:g}" if isinstance(v, float) else str(v)
        unit = f" {p.unit}" if p is not None and p.unit and p.unit != "SD" else ""
        word = k if names or p is None else p.label.lower()
        out.append(f"{word} {text}{unit}")
    return ", ".join(out)


__all__ = ["MAX_TILES", "SHEET_SUFFIXES", "add_sheet_arguments", "caption", "request", "run_sheet_command", "check_out", "grid_of", "parse_set", "parse_vary", "settings",
           "write_grid"]

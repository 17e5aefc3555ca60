"""Variation sheet of synthetic cells for teaching (``medsynth sheet cells``): the same generator at several
classes and seeds, one captioned grid.

``cell_class`` and ``seed`` (and ``naming``, for the captions) come from :data:`~medsynth.cyto.params.CYTO_PARAMS`;
``--vary cell_class=all`` stands for every class of the naming. A tile is one generated cell (``seed`` is the
cell's own seed, as for ``medsynth cells``). The title names the generator (id and version) and says the cells are
synthetic.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence

from ..errors import InputError
from ..sheets import Vary, caption, check_out, grid_of, settings, write_grid
from .params import ALL, CYTO_PARAMS

#: parameters a cell sheet can vary or set (count, patch size and blending do not apply to one generated cell)
SHEET_PARAMS = tuple(p for p in CYTO_PARAMS if p.name in ("cell_class", "seed", "naming"))
ALIASES = {"class": "cell_class"}


def cells_sheet(out: os.PathLike, vary: Sequence[Vary], fixed: Optional[Dict[str, Any]] = None,
                model_id: Optional[str] = None, progress=None) -> Dict[str, Any]:
    """Write the sheet to ``out`` (.png or .pdf); returns its facts (tiles, model)."""
    from ..progress import Reporter
    from .generate import DEFAULT_MODEL, classes_for, get_generator

    check_out(out)
    fixed = dict(fixed or {})
    naming = fixed.get("naming", "bethesda")
    vary = [(n, [c for v in vals for c in (classes_for(v, naming) if n == "cell_class" else [v])]) for n, vals in vary]
    cols, rows = grid_of(vary, fixed)
    varied = {cols[0], rows[0]}
    if "cell_class" not in varied and str(fixed.get("cell_class", ALL)).lower() == ALL:
        raise InputError("choose the class: --vary cell_class=... (all = every class of the naming) or --set "
                         "cell_class=NAME")
    gen = get_generator(model_id or DEFAULT_MODEL)
    grid = settings(cols, rows)
    rep = Reporter(progress)
    n, done = sum(len(r) for r in grid), 0
    tiles, captions, facts = [], [], []
    for row in grid:
        t_row, c_row = [], []
        for changes in row:
            rep.step(done / n, f"cell {done + 1}/{n}")
            v = {"seed": 0, **fixed, **changes}
            cell = gen.generate(v["cell_class"], 1, int(v["seed"]), naming)[0]
            t_row.append(cell.image)
            c_row.append(caption(SHEET_PARAMS, {**changes, **({"cell_class": cell.label} if "cell_class" in changes
                                                                 else {})}))
            facts.append({**changes, "herlev_class": cell.herlev_class, "label": cell.label})
            done += 1
        tiles.append(t_row)
        captions.append(c_row)
    fixed_text = ", ".join(f"{k} {v}" for k, v in {"naming": naming, **fixed}.items() if k not in varied)
    title = [f"Synthetic cervical cells ({gen.model_id} {gen.version}, a class-conditional GAN trained on Herlev "
             f"cells); {fixed_text}", "MedSynth CytoSynth: generated images, not patient cells"]
    write_grid(out, tiles, captions, title, tile_inches=1.6)
    rep.step(1.0, f"{n} cells")
    return {"out": str(out), "tiles": facts, "model": f"{gen.model_id} {gen.version}"}


__all__ = ["SHEET_PARAMS", "cells_sheet"]

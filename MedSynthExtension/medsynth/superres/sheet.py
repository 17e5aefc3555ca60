"""Variation sheet for teaching slice super-resolution (``medsynth sheet superres``): one region of a thick-slice
volume at several target spacings and methods, side by side with the input as acquired.

``spacing``, ``axis``, ``method`` and ``gate`` come from :data:`~medsynth.superres.params.SUPERRES_PARAMS`. Each
tile is the plane through ``--ras`` (default: the volume's centre) that contains the super-resolved axis (coronal
for an axial stack, axial for a coronal stack, coronal for a sagittal stack), ``--fov`` mm wide, all tiles in one
window (from the input). Only a block around the point is super-resolved (quick even with SA-INR on a CPU); the
first column of each row is the input itself, resampled with nearest neighbour so its slices show.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from ..errors import InputError
from ..sheets import Vary, caption, check_out, grid_of, settings, write_grid
from ..volume import Volume
from .params import SUPERRES_PARAMS

SHEET_PARAMS = tuple(p for p in SUPERRES_PARAMS if p.name in ("spacing", "axis", "method", "gate"))
TILE_PX = 192
#: super-resolved axis's main anatomical direction (R, A, S) -> display plane that contains it
_PLANE_FOR = {0: "coronal", 1: "axial", 2: "coronal"}


def _block(volume: Volume, ras: np.ndarray, half_mm: float) -> Volume:
    """The voxels within ``half_mm`` (plus 3 voxels) of ``ras`` along each axis, with their geometry."""
    ijk = volume.ras_to_ijk_points(np.asarray(ras, float)[None])[0]
    lo, hi = [], []
    for a in range(3):
        n = volume.shape_ijk[a]
        h = int(np.ceil(half_mm / volume.spacing[a])) + 3
        c = int(round(ijk[a]))
        lo.append(max(0, c - h))
        hi.append(min(n, c + h + 1))
    if any(h - low < 2 for low, h in zip(lo, hi)):
        raise InputError("the point lies outside the volume (or too close to its edge): give --ras inside it")
    arr = volume.array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    m = volume.ijk_to_ras.copy()
    m[:3, 3] = volume.ijk_to_ras_points(np.array([lo], float))[0]
    return Volume(np.ascontiguousarray(arr), m, volume.name, volume.modality)


def superres_sheet(image: Union[os.PathLike, Volume], out: os.PathLike, vary: Sequence[Vary],
                   fixed: Optional[Dict[str, Any]] = None, ras: Optional[Sequence[float]] = None,
                   fov_mm: Optional[float] = None, window: Optional[Sequence[float]] = None,
                   progress=None) -> Dict[str, Any]:
    """Write the sheet to ``out`` (.png or .pdf); returns its facts (tiles, plane, model).
    ``image``: a file, or a :class:`~medsynth.volume.Volume` already in memory (a studio or Slicer node's image;
    the title names it by its ``name``)."""
    from ..io import read_volume
    from ..overview import plane, to_uint8
    from ..progress import Reporter
    from ..runtime import get_entry
    from .core import superres
    from .geometry import check_volume, choose_axis

    check_out(out)
    fixed = dict(fixed or {})
    cols, rows = grid_of(vary, fixed)
    volume = image if isinstance(image, Volume) else read_volume(image)
    check_volume(volume)
    source = volume.name if isinstance(image, Volume) else Path(str(image)).name
    centre = np.asarray(ras if ras is not None else volume.center_ras(), float)
    extent = np.asarray(volume.shape_ijk) * volume.spacing
    fov = float(fov_mm) if fov_mm else float(min(120.0, max(40.0, 0.5 * float(np.min(extent)))))
    block = _block(volume, centre, 0.75 * fov)
    axis = choose_axis(volume, fixed.get("axis", "auto"))
    direction = volume.directions[:, "ijk".index(axis)]
    orientation = _PLANE_FOR[int(np.argmax(np.abs(direction)))]
    reference = plane(block, orientation, centre, fov, TILE_PX, interpolation="nearest")
    win = tuple(window) if window is not None else tuple(np.percentile(reference, [1.0, 99.5]))
    grid = settings(cols, rows)
    n = sum(len(r) for r in grid)
    rep = Reporter(progress)
    tiles, captions, facts, done = [], [], [], 0
    for row in grid:
        t_row, c_row = [to_uint8(reference, win)], ["input as acquired"]
        for changes in row:
            rep.step(done / n, f"tile {done + 1}/{n}")
            v = {**{p.name: p.default for p in SHEET_PARAMS}, **fixed, **changes}
            res = superres(block, v["spacing"], v["axis"], v["method"], gate=v["gate"])
            t_row.append(to_uint8(plane(res.volume, orientation, centre, fov, TILE_PX), win))
            exact = float(res.grid.spacing)
            note = f" ({exact:.2f})" if "spacing" in changes and abs(exact - v["spacing"]) > 0.005 else ""
            c_row.append(caption(SHEET_PARAMS, changes, names=True) + note)
            facts.append({**changes, "exact_spacing_mm": round(float(res.grid.spacing), 4)})
            done += 1
        tiles.append(t_row)
        captions.append(c_row)
    methods = {v for r in grid for c in r for v in [c.get("method", fixed.get("method", "sainr"))]}
    model = ""
    if "sainr" in methods:
        e = get_entry("sainr")
        model = f"; SA-INR model {e.id} {e.version}"
    fixed_text = ", ".join(f"{k} {v}" for k, v in fixed.items())
    title = [f"{source}: {orientation} plane through RAS ({', '.join(f'{x:.0f}' for x in centre)}), "
             f"field {fov:.0f} mm, input spacing {volume.spacing[0]:.2f} x {volume.spacing[1]:.2f} x "
             f"{volume.spacing[2]:.2f} mm (axis {axis}){'; ' + fixed_text if fixed_text else ''}",
             f"MedSynth SliceSuperRes{model}"]
    write_grid(out, tiles, captions, title, tile_inches=2.3)
    rep.step(1.0, f"{n} tiles")
    return {"out": str(out), "tiles": facts, "plane": orientation, "ras": [float(x) for x in centre], "fov_mm": fov,
            "axis": axis, "model": model.lstrip("; ")}


__all__ = ["SHEET_PARAMS", "superres_sheet"]

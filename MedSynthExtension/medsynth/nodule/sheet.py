"""Variation sheets for teaching: the same nodule at several settings, one captioned grid (``medsynth sheet nodule``).

One or two parameters of :data:`~medsynth.nodule.params.NODULE_PARAMS` vary (columns, then rows); every other
parameter keeps its given or default value. Each tile is the lesion at its setting, centred on the nodule: for a CT
the axial slice through its centre in a window you choose (default lung window), for a radiograph the image around
it. The caption of each tile gives its values; the title gives the host, the centre, the fixed parameters and the
shape model's id and version. PNG or PDF (matplotlib, Agg).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import sheets
from ..errors import InputError
from ..sheets import MAX_TILES, SHEET_SUFFIXES, Vary
from .params import NODULE_PARAMS, NoduleSpec

ALIASES = {"diameter": "diameter_mm"}


def parse_vary(text: str) -> Vary:
    """``NAME=v1,v2,...`` -> (name, checked values); names and ranges from the nodule parameter declarations."""
    return sheets.parse_vary(text, NODULE_PARAMS, ALIASES)


def parse_set(text: str) -> Tuple[str, Any]:
    """``NAME=VALUE`` for a parameter that stays fixed."""
    return sheets.parse_set(text, NODULE_PARAMS, ALIASES)


def lung_point(host, diameter_mm: float, pixel_spacing_mm: Optional[Sequence[float]] = None) -> np.ndarray:
    """A lung point near the middle of the image (CT) or of the right lung field (radiograph): the first suggestion
    of :func:`.candidates.suggest_lung_point`, as every face makes it."""
    from .candidates import suggest_lung_point

    try:
        return suggest_lung_point(host.volume, diameter_mm, host.photometric, pixel_spacing_mm or host.pixel_spacing_mm)
    except InputError:
        raise InputError(f"no lung found in {Path(host.source).name} for a {diameter_mm:g} mm nodule: give --ras"
                         ) from None


LUNG_WINDOW = (-1200.0, 200.0)
"""Default display window of CT tiles (HU)."""


def ct_tile(volume, ras, fov: float = 60.0, window: Sequence[float] = LUNG_WINDOW) -> np.ndarray:
    """uint8 tile (160 px): the axial slice through ``ras``, ``fov`` mm wide, in ``window`` (HU)."""
    from ..overview import plane, to_uint8

    return to_uint8(plane(volume, "axial", center_ras=ras, fov_mm=fov, pixels=160), window=tuple(window))


def _cxr_crop(array2d: np.ndarray, center_ji, spacing: float, fov: float) -> np.ndarray:
    half = int(round(fov / 2 / spacing))
    j, i = int(round(center_ji[0])), int(round(center_ji[1]))
    return array2d[max(0, j - half) : j + half, max(0, i - half) : i + half]


def cxr_tile(host, array2d: np.ndarray, center_ji, spacing: float, fov: float = 70.0, window=None) -> np.ndarray:
    """uint8 tile (160 px) of a radiograph around ``center_ji`` (row, column), ``fov`` mm wide, shown as
    MONOCHROME2 in ``window`` (stored values; None: the tile's own range)."""
    from scipy import ndimage

    from ..overview import to_uint8
    from .images import display_monochrome2

    crop = display_monochrome2(host, _cxr_crop(array2d, center_ji, spacing, fov)).astype(np.float32)
    crop = ndimage.zoom(crop, 160.0 / max(crop.shape), order=1)
    return to_uint8(crop, window)


def cxr_window(host, array2d: np.ndarray, center_ji, spacing: float, fov: float = 70.0) -> Tuple[float, float]:
    """One display window for a row of radiograph tiles: the 1st-99.5th percentiles of the unmodified image in the
    tile's field (so the tiles differ only by the nodule)."""
    from .images import display_monochrome2

    crop = display_monochrome2(host, _cxr_crop(array2d, center_ji, spacing, fov)).astype(np.float32)
    lo, hi = np.percentile(crop, [1.0, 99.5])
    return float(lo), float(max(hi, lo + 1e-3))


def montage(tiles: List[np.ndarray]) -> np.ndarray:
    """Tiles side by side, 4 px apart."""
    h = max(t.shape[0] for t in tiles)
    padded = [np.pad(t, ((0, h - t.shape[0]), (0, 4))) for t in tiles]
    return np.concatenate(padded, axis=1)


def _tile(host, spec: NoduleSpec, ras, fov_mm: float, window: Optional[Sequence[float]], model,
          pixel_spacing_mm: Optional[Sequence[float]] = None) -> np.ndarray:
    from .insertion import insert_ct, insert_cxr

    if host.kind == "ct":
        new = insert_ct(host.volume, ras, spec, model=model, lung_check=False)[0]  # tiles: no warnings shown
        return ct_tile(new, ras, fov_mm, LUNG_WINDOW if window is None else window)
    new, _mask, info = insert_cxr(host.volume, ras, spec, host.photometric, pixel_spacing_mm or host.pixel_spacing_mm,
                                  model=model, lung_check=False)
    spacing = float(info["pixel_spacing_mm"][1])  # (row, column) mm
    return cxr_tile(host, new.array[0], (info["ijk"][1], info["ijk"][0]), spacing, fov=fov_mm, window=window)


def nodule_sheet(
    image: Any,
    out: os.PathLike,
    vary: Sequence[Vary],
    fixed: Optional[Dict[str, Any]] = None,
    ras: Optional[Sequence[float]] = None,
    window: Optional[Sequence[float]] = None,
    fov_mm: Optional[float] = None,
    pixel_spacing_mm: Optional[float] = None,
    progress=None,
) -> Dict[str, Any]:
    """Write the sheet to ``out`` (.png or .pdf, atomically); returns its facts (tiles, centre, model).
    ``image``: a file, or a :class:`~medsynth.nodule.images.Host` already in memory (a Slicer node's image)."""
    from ..progress import Reporter
    from .images import Host, read_host
    from .shape import default_shape_model

    sheets.check_out(out)
    fixed = dict(fixed or {})
    cols, rows = sheets.grid_of(vary, fixed)
    base = NoduleSpec.from_values(fixed)
    host = image if isinstance(image, Host) else read_host(image)
    spacing = (float(pixel_spacing_mm),) * 2 if pixel_spacing_mm else None  # radiographs without it in the file
    largest = max([base.diameter_mm] + [v for n, vs in vary if n == "diameter_mm" for v in vs])
    centre = np.asarray(ras, float) if ras is not None else lung_point(host, largest, spacing)
    fov = float(fov_mm) if fov_mm else max(40.0, 2.5 * largest)
    if host.kind == "cxr" and window is None:
        from .insertion import CXRContext

        ps = CXRContext(host.volume, host.photometric, spacing or host.pixel_spacing_mm).spacing_ji[1]
        i, j = (np.linalg.inv(host.volume.ijk_to_ras) @ np.append(centre, 1.0))[:2]
        window = cxr_window(host, host.volume.array[0], (j, i), ps, fov)
    model = default_shape_model()
    rep = Reporter(progress)
    grid = sheets.settings(cols, rows)
    n_tiles = sum(len(r) for r in grid)
    tiles, captions, facts = [], [], []
    for row in grid:
        t_row, c_row = [], []
        for changes in row:
            rep.step(len(facts) / n_tiles, f"tile {len(facts) + 1}/{n_tiles}")
            t_row.append(_tile(host, base.with_(**changes), centre, fov, window, model, spacing))
            c_row.append(sheets.caption(NODULE_PARAMS, changes))
            facts.append(dict(changes))
        tiles.append(t_row)
        captions.append(c_row)
    entry = model.entry
    fixed_text = sheets.caption(NODULE_PARAMS, {k: v for k, v in base.to_dict().items() if k not in dict(vary)})
    title = [f"{Path(host.source).name}: nodule at RAS ({', '.join(f'{v:.0f}' for v in centre)}), field {fov:.0f} mm",
             fixed_text, f"MedSynth NoduleSynth, shape model {entry.id} {entry.version}"]
    target = sheets.write_grid(out, tiles, captions, title)
    rep.step(1.0, f"{n_tiles} tiles")
    return {"out": str(target), "tiles": facts, "ras": [float(v) for v in centre], "fov_mm": fov,
            "model": f"{entry.id} {entry.version}", "kind": host.kind}


__all__ = ["MAX_TILES", "SHEET_SUFFIXES", "ct_tile", "cxr_tile", "cxr_window", "lung_point", "montage", "nodule_sheet",
           "parse_set", "parse_vary"]

"""Exact-volume rasterisation of a decoded nodule field onto an image grid (numpy only, separable, fast).

The nodule's grid axes are aligned with the image's voxel axes (k, j, i), so every resampling is a
product of three small 1-D matrices (BLAS), never a 3-D interpolation:

* along an axis where the image voxel ``s`` is finer than the nodule grid voxel ``g = D / 16``, the
  field is linearly interpolated at the image voxel centres (working voxel = image voxel);
* along an axis where it is coarser, the nodule is handled at grid resolution and the occupancy is then
  averaged into image voxels by exact interval overlaps (mass preserving).

On the working grid the occupancy is ``clip(0.5 - (field - L) / delta, 0, 1)`` (delta = one working voxel in
field units: a partial-volume ramp across the boundary) and the level ``L`` is solved (Newton on the
piecewise-linear volume) so that the occupancy integrates to exactly the requested volume pi/6 D^3.
The solid core of a part-solid nodule is the same field at a deeper level holding the core's volume.
For a radiograph (projection along axis 0) the working grid is built only over the box where the field
can reach the level (zero occupancy elsewhere, checked after solving; else the whole grid is used).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError


@dataclass
class Raster:
    """A nodule rasterised into a region of an image grid.

    ``roi``: slices of the image array [k, j, i] (or [j, i] when projected); ``frac``: nodule
    occupancy 0..1 (partial volume); ``core``: solid-core occupancy (<= frac); ``mask``: the ``round(V / v)``
    voxels of largest occupancy (exact-volume binary mask); for a projection ``frac``/``core`` are
    thicknesses in mm along the projected axis and ``mask`` is the silhouette (coverage >= 0.5).
    """

    roi: Tuple[slice, ...]
    frac: np.ndarray
    core: np.ndarray
    mask: np.ndarray
    target_volume_mm3: float
    volume_mm3: float
    core_volume_mm3: float
    level: float
    core_level: float
    clipped: bool
    voxel_mm3: float


def _axis_plan(g: float, s: float, c: float, n_img: int, grid: int):
    """ROI range on one axis and its two sparse 1-D operators (U: grid -> working, W: working -> image).

    Operators are ``(index, weight)`` arrays of shape (n_out, K) (``None`` = identity); applying one along an
    axis is K gathers and multiply-adds (no BLAS: small matrix products oversubscribe shared CPUs).
    """
    half = grid * g / 2.0  # mm from centre to the grid's outer edge
    t0 = int(np.floor(c - half / s - 0.5))
    t1 = int(np.ceil(c + half / s + 0.5)) + 1
    clipped = t0 < 0 or t1 > n_img
    t0, t1 = max(t0, 0), min(t1, n_img)
    if t1 <= t0:
        raise InputError("the nodule lies entirely outside the image")
    y = (np.arange(t0, t1) - c) * s  # image voxel centres, mm from the nodule centre
    if s < g:  # fine axis: interpolate the field at the image voxel centres
        p = np.clip(y / g + (grid - 1) / 2.0, 0.0, grid - 1.0)
        lo = np.minimum(np.floor(p).astype(np.intp), grid - 2)
        w = (p - lo).astype(np.float32)
        op = (np.stack([lo, lo + 1], axis=1), np.stack([1.0 - w, w], axis=1))
        return (t0, t1), op, None, s, clipped
    # coarse axis: keep grid resolution, average into image voxels by interval overlap
    x = (np.arange(grid) - (grid - 1) / 2.0) * g
    a = np.maximum(y[:, None] - s / 2, x[None, :] - g / 2)
    b = np.minimum(y[:, None] + s / 2, x[None, :] + g / 2)
    wmat = np.clip(b - a, 0.0, None) / s
    k = max(1, int((wmat > 0).sum(axis=1).max()))
    first = np.clip(np.argmax(wmat > 0, axis=1), 0, grid - k)
    idx = first[:, None] + np.arange(k)[None, :]
    wts = np.take_along_axis(wmat, idx, axis=1).astype(np.float32)
    return (t0, t1), None, (idx, wts), g, clipped


def _apply_axis(arr: np.ndarray, op, axis: int) -> np.ndarray:
    if op is None:
        return arr
    idx, wts = op
    shape = [1] * arr.ndim
    shape[axis] = idx.shape[0]
    out = np.take(arr, idx[:, 0], axis=axis) * wts[:, 0].reshape(shape)
    for k in range(1, idx.shape[1]):
        out += np.take(arr, idx[:, k], axis=axis) * wts[:, k].reshape(shape)
    return out


def _apply(ops: Sequence, arr: np.ndarray) -> np.ndarray:
    """Apply per-axis sparse operators (None = identity) along the leading axes of ``arr``."""
    out = arr
    for axis in reversed(range(len(ops))):  # last axis first: the largest result is made along axis 0 (contiguous)
        out = _apply_axis(out, ops[axis], axis)
    return np.ascontiguousarray(out, dtype=np.float32)


def _apply2(m1, m2, arr: np.ndarray) -> np.ndarray:
    return _apply([m1, m2], arr)


def _newton(f: np.ndarray, delta: float, target: float, lo: float, hi: float, start: float, base: float = 0.0):
    """Newton with a bisection safeguard for base + sum(clip((L - f) / delta + 0.5, 0, 1)) == target on [lo, hi]."""
    level = float(min(max(start, lo), hi))
    for _ in range(60):
        x = (level - f) / delta + 0.5
        s = base + float(np.clip(x, 0.0, 1.0).sum(dtype=np.float64))
        err = s - target
        if abs(err) <= 1e-6 * max(target, 1.0):
            return level, True
        if err > 0:
            hi = level
        else:
            lo = level
        slope = float(np.count_nonzero((x > 0.0) & (x < 1.0))) / delta
        nxt = level - err / slope if slope > 0 else 0.5 * (lo + hi)
        if not (lo < nxt < hi):
            nxt = 0.5 * (lo + hi)
        level = nxt
        if hi - lo < 1e-9:
            break
    return level, False


def solve_level(field: np.ndarray, delta: float, target: float, start: float = 0.0, band: float = 0.2) -> float:
    """Level L with sum(clip(0.5 - (field - L) / delta, 0, 1)) == target.

    Newton on the piecewise-linear sum, first restricted to the values within ``band`` (+ delta) of ``start``
    (voxels below the band count as full, above as empty), else on all values.
    """
    f = np.asarray(field, np.float32).ravel()
    target = float(min(max(target, 0.0), f.size))
    margin = band + delta
    b_lo, b_hi = start - margin, start + margin
    inband = (f > b_lo) & (f < b_hi)
    sub = f[inband]
    base = float(np.count_nonzero(f <= b_lo))
    lo, hi = b_lo + delta / 2, b_hi - delta / 2
    if sub.size:
        level, ok = _newton(sub, delta, target, lo, hi, start, base)
        if ok and lo < level < hi:
            return level
    level, _ = _newton(f, delta, target, float(f.min()) - delta, float(f.max()) + delta, start)
    return level


def _top_n_mask(frac: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask of the n voxels with the largest occupancy (deterministic)."""
    flat = frac.ravel()
    mask = np.zeros(flat.shape, bool)
    n = int(min(max(n, 0), flat.size))
    if n == 0:
        return mask.reshape(frac.shape)
    full = flat >= 1.0 - 1e-6
    n_full = int(full.sum())
    if n_full >= n:
        idx = np.flatnonzero(full)[:n]
        mask[idx] = True
        return mask.reshape(frac.shape)
    mask[full] = True
    band = np.flatnonzero((flat > 0.0) & ~full)
    k = n - n_full
    if k >= band.size:
        mask[band] = True
    else:
        part = np.argpartition(-flat[band], k - 1)[:k]
        mask[band[part]] = True
    return mask.reshape(frac.shape)


_coarse_cache: "dict" = {}


def coarse_level(field: np.ndarray, fraction: float, unit_voxels: float, sdf_clip: float) -> float:
    """Level at which the field on its own grid holds ``fraction`` of the unit-sphere volume (cached per field)."""
    key = (id(field), field.__array_interface__["data"][0], round(float(fraction), 6))
    hit = _coarse_cache.get(key)
    if hit is not None and hit[0] is field:
        return hit[1]
    target = fraction * np.pi / 6.0 * unit_voxels**3
    lev = solve_level(field, 1.0 / sdf_clip, target, start=0.0, band=1.0)
    if len(_coarse_cache) > 256:
        _coarse_cache.clear()
    _coarse_cache[key] = (field, lev)
    return lev


def _projected_raster(plans, ws, sp, thick, core_thick, cover, target, level, core_level, clipped) -> Raster:
    """The projected Raster from thickness / core thickness / coverage maps on the working (j, i) grid."""
    frac = _apply2(ws[1], ws[2], thick)
    core = _apply2(ws[1], ws[2], core_thick) if core_thick is not None else np.zeros_like(frac)
    mask = _apply2(ws[1], ws[2], cover) >= 0.5
    roi = tuple(slice(p[0][0], p[0][1]) for p in plans[1:])
    v_img = float(sp[1] * sp[2])
    vol = float(frac.sum(dtype=np.float64) * v_img)
    core_vol = float(core.sum(dtype=np.float64) * v_img)
    clipped = clipped and vol < 0.995 * target
    return Raster(roi=roi, frac=frac, core=core, mask=mask, target_volume_mm3=float(target), volume_mm3=vol,
                  core_volume_mm3=core_vol, level=float(level), core_level=float(core_level), clipped=clipped,
                  voxel_mm3=v_img)


_CROP_MARGIN = 0.05  # field units (0.4 grid voxels) above the coarse level: the fine level stays within ~0.005 of it


def _project_cropped(field, ups, delta, target_vox, start, cf, unit_voxels, sdf_clip):
    """Beam-axis sums of the occupancy (and core occupancy) and its max, on the working (j, i) grid, computed
    only inside the box where the interpolated field can be below ``T = start + margin + delta``.

    A working voxel is interpolated from a convex combination of grid values, so outside the box (every tap
    >= T) its value is >= T and its occupancy is exactly 0 as long as the solved level satisfies
    ``level + delta / 2 < T``; the level then also solves the equation on the whole working grid (the voxels
    left out add 0).  Returns ``(level, core_level, thick, core_thick, cover)`` (sums in working voxels,
    ``core_thick`` None without a core), or None when that check fails (the caller uses the whole grid).
    """
    thresh = start + _CROP_MARGIN + delta
    inside = field < thresh
    if not inside.any():
        return None
    grid = field.shape[0]
    sel = [slice(None)] * 3
    ops_c = [None, None, None]
    out_sl = [slice(None), slice(None)]
    n_out = []
    for a in range(3):
        used = np.flatnonzero(inside.any(axis=tuple(b for b in range(3) if b != a)))
        g0, g1 = int(used[0]), int(used[-1]) + 1
        op = ups[a]
        if op is None:  # working axis = grid axis: crop the field itself
            sel[a] = slice(g0, g1)
            if a:
                out_sl[a - 1] = slice(g0, g1)
                n_out.append(grid)
            continue
        idx, wts = op
        need = ((idx >= g0) & (idx < g1)).any(axis=1)  # working voxels with a tap inside the box
        rows = np.flatnonzero(need)
        n_out.append(idx.shape[0])
        if not rows.size:
            return None
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        ops_c[a] = (idx[r0:r1], wts[r0:r1])
        out_sl[a - 1] = slice(r0, r1)
    work = _apply(ops_c, field[tuple(sel)])
    limit = thresh - 1e-5 - delta / 2.0  # float32 rounding of the interpolation
    level = solve_level(work, delta, target_vox, start=start)
    occ = np.clip((level - work) / delta + 0.5, 0.0, 1.0)
    if not (level < limit and abs(float(occ.sum(dtype=np.float64)) - target_vox) <= 1e-5 * max(target_vox, 1.0)):
        return None
    core_occ = None
    core_level = level
    if cf <= 0.0:
        core_level = float("-inf")
    elif cf < 1.0:
        core_start = coarse_level(field, cf, unit_voxels, sdf_clip)
        core_level = solve_level(work, delta, cf * target_vox, start=core_start + (level - start))
        core_occ = np.clip((core_level - work) / delta + 0.5, 0.0, 1.0)
        if not (core_level < limit and abs(float(core_occ.sum(dtype=np.float64)) - cf * target_vox)
                <= 1e-5 * max(cf * target_vox, 1.0)):
            return None
    thick = np.zeros(n_out, np.float32)
    thick[tuple(out_sl)] = occ.sum(axis=0)
    cover = np.zeros(n_out, np.float32)
    cover[tuple(out_sl)] = occ.max(axis=0)
    core_thick = None
    if cf >= 1.0:
        core_thick = thick.copy()
    elif core_occ is not None:
        core_thick = np.zeros(n_out, np.float32)
        core_thick[tuple(out_sl)] = core_occ.sum(axis=0)
    return level, core_level, thick, core_thick, cover


def rasterize(
    field: np.ndarray,
    diameter_mm: float,
    spacing_kji: Sequence[float],
    center_kji: Sequence[float],
    shape_kji: Sequence[int],
    core_fraction: float = 1.0,
    unit_voxels: float = 16.0,
    sdf_clip: float = 8.0,
    project_axis0: bool = False,
) -> Raster:
    """Rasterise ``field`` (G^3, negative inside) as a nodule of equivalent diameter ``diameter_mm``.

    ``spacing_kji``: image voxel size (mm) along k, j, i; ``center_kji``: nodule centre in (fractional)
    voxel indices; ``shape_kji``: image array shape.  With ``project_axis0`` the image is 2-D (j, i):
    the nodule is integrated along axis 0 (the beam) and ``frac``/``core`` hold thickness in mm.
    """
    field = np.asarray(field, np.float32)
    grid = field.shape[0]
    d = float(diameter_mm)
    g = d / unit_voxels
    sp = [float(v) for v in spacing_kji]
    if project_axis0:
        sp[0] = g  # the beam axis stays at grid resolution and is summed
    plans = []
    for a in range(3):
        if project_axis0 and a == 0:
            plans.append(((0, grid), None, None, g, False))
        else:
            plans.append(_axis_plan(g, sp[a], float(center_kji[a]), int(shape_kji[a]), grid))
    ups = [p[1] for p in plans]
    ws = [p[2] for p in plans]
    hw = np.array([p[3] for p in plans])  # working voxel size per axis (mm)
    clipped = any(p[4] for p in plans)
    # ramp width: one working voxel (geometric mean) in field units
    delta = float(np.prod(hw) ** (1.0 / 3.0)) / (sdf_clip * g)
    v_work = float(np.prod(hw))
    target = np.pi / 6.0 * d**3
    start = coarse_level(field, 1.0, unit_voxels, sdf_clip)
    cf = float(min(max(core_fraction, 0.0), 1.0))
    if project_axis0:
        proj = _project_cropped(field, ups, delta, target / v_work, start, cf, unit_voxels, sdf_clip)
        if proj is not None:  # None: the level left the cropped box; fall back to the whole working grid
            level, core_level, thick_w, core_w, cover_w = proj
            thick_w *= hw[0]
            if core_w is not None:
                core_w *= hw[0]
            return _projected_raster(plans, ws, sp, thick_w, core_w, cover_w, target, level, core_level, clipped)
    work = _apply(ups, field)
    level = solve_level(work, delta, target / v_work, start=start)
    occ = np.clip((level - work) / delta + 0.5, 0.0, 1.0)
    if cf >= 1.0:
        core_level, core_occ = level, occ
    elif cf <= 0.0:
        core_level, core_occ = float("-inf"), None
    else:
        core_start = coarse_level(field, cf, unit_voxels, sdf_clip)
        core_level = solve_level(work, delta, cf * target / v_work, start=core_start + (level - start))
        core_occ = np.clip((core_level - work) / delta + 0.5, 0.0, 1.0)
    if project_axis0:
        return _projected_raster(plans, ws, sp, occ.sum(axis=0) * hw[0],
                                 core_occ.sum(axis=0) * hw[0] if core_occ is not None else None,
                                 occ.max(axis=0), target, level, core_level, clipped)
    else:
        frac = _apply(ws, occ)
        core = _apply(ws, core_occ) if core_occ is not None else np.zeros_like(frac)
        if core_occ is not None and cf < 1.0:
            np.minimum(core, frac, out=core)
        v_img = float(np.prod(sp))
        vol = float(frac.sum(dtype=np.float64) * v_img)  # = target unless the image border cuts the nodule
        mask = _top_n_mask(frac, int(round(vol / v_img)))
        roi = tuple(slice(p[0][0], p[0][1]) for p in plans)
        core_vol = float(core.sum(dtype=np.float64) * v_img)
    clipped = clipped and vol < 0.995 * target  # the region met the image border and the nodule lost volume there
    return Raster(roi=roi, frac=frac, core=core, mask=mask, target_volume_mm3=float(target), volume_mm3=vol,
                  core_volume_mm3=core_vol, level=float(level), core_level=float(core_level), clipped=clipped,
                  voxel_mm3=v_img)

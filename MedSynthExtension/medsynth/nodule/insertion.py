"""Insert synthetic nodules into chest CT (HU) and chest radiographs (log domain). No torch, no Slicer.

Functional API::

    new, mask, info = insert_ct(volume, ras, spec)            # whole new volume, input untouched
    new, mask, info = insert_cxr(volume, ras, spec, photometric="MONOCHROME1")

Live API (sliders): :class:`NoduleSession` keeps one output array and rewrites only the nodule's region
on every :meth:`NoduleSession.update`; :meth:`commit` keeps the nodule (several per image), :meth:`undo`
removes the last one.  :func:`insert_ct_region` / :func:`insert_cxr_region` are the single-region steps.

Everything outside the returned region is bit-for-bit the input; inside it only voxels the nodule
touches change.  The nodule's grid axes follow the image's voxel axes (k, j, i).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .params import NoduleSpec, check_spec
from .raster import Raster, rasterize
from .texture import (
    LUNG_HU_DEFAULT,
    NOISE_BANK,
    NoiseBank,
    composite_ct,
    ggo_alpha,
    tissue_alpha,
    host_statistics,
    to_dtype,
)

MU_WATER_PER_MM = 0.0206  # linear attenuation of water at ~60 keV (effective energy of a ~120 kVp chest beam)
CXR_LOG_RANGE = 2.5  # assumed ln-exposure spread between the 2nd and 98th percentile of the central image
DEFAULT_CXR_WIDTH_MM = 370.0  # assumed detector width when a radiograph carries no pixel spacing
CXR_LUNG_HU = LUNG_HU_DEFAULT
PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2")


# --------------------------------------------------------------------------- checks
def _check_scalar(volume: Volume) -> None:
    if not isinstance(volume, Volume):
        raise InputError(f"expected a Volume, got {type(volume).__name__}")
    if volume.is_vector:
        raise InputError(
            f"'{volume.name}' has {volume.components} components per voxel (RGB or vector image); "
            "nodule insertion needs a greyscale CT or radiograph"
        )
    dt = volume.array.dtype
    if not (np.issubdtype(dt, np.integer) or np.issubdtype(dt, np.floating)) or dt == np.bool_:
        raise InputError(f"'{volume.name}' has voxel type {dt}; expected integers or floats")


def is_radiograph(volume: Volume) -> bool:
    return volume.array.shape[0] == 1


def _center_ijk(volume: Volume, ras: Sequence[float], two_d: bool) -> np.ndarray:
    ras = np.asarray(ras, dtype=float).ravel()
    if ras.size != 3 or not np.all(np.isfinite(ras)):
        raise InputError(f"the point must be three finite RAS coordinates, got {ras.tolist()}")
    ijk = volume.ras_to_ijk_points(ras)[0]
    if two_d:
        ijk[2] = 0.0
    ni, nj, nk = volume.shape_ijk
    for a, (v, n, name) in enumerate(zip(ijk, (ni, nj, nk), "ijk")):
        if two_d and a == 2:
            continue
        if not (-0.5 <= v <= n - 0.5):
            raise InputError(
                f"point RAS ({ras[0]:.1f}, {ras[1]:.1f}, {ras[2]:.1f}) is outside the image: voxel index {name}={v:.1f} "
                f"not in [0, {n - 1}]"
            )
    return ijk


def ijk_to_ras(volume: Volume, ijk: Sequence[float]) -> np.ndarray:
    """RAS of a voxel index (i, j[, k]) — for callers that think in pixels."""
    p = list(float(v) for v in ijk) + [0.0] * (3 - len(ijk))
    return volume.ijk_to_ras_points(p)[0]


# --------------------------------------------------------------------------- model
def _model(model):
    if model is not None:
        return model
    from .shape import default_shape_model

    return default_shape_model()


def _field(model, spec: NoduleSpec) -> np.ndarray:
    return model.field(spec.seed, spec.sphericity, spec.lobulation, spec.spiculation)


def _deq(volume_mm3: float) -> float:
    return float((6.0 * max(volume_mm3, 0.0) / np.pi) ** (1.0 / 3.0))


# --------------------------------------------------------------------------- region results
@dataclass
class RegionResult:
    """The values of one nodule's region: write ``values`` into ``roi`` of the image, ``mask`` is the nodule."""

    roi: Tuple[slice, ...]  # slices of the [k, j, i] array
    values: np.ndarray  # new voxel values (image dtype), shape of the region
    mask: np.ndarray  # bool, nodule voxels/pixels of the region
    info: Dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- a nodule on its own
def make_nodule(spec: Any, spacing: Sequence[float] = (1.0, 1.0, 1.0), model=None,
                background_hu: float = LUNG_HU_DEFAULT) -> Tuple[np.ndarray, np.ndarray]:
    """A nodule on its own: (HU patch over a uniform ``background_hu``, float32 [k, j, i]; exact-volume bool mask).

    ``spacing`` is the voxel size along i, j, k in mm (as :attr:`Volume.spacing`); the patch is centred on
    the nodule and spans twice its diameter.  No noise (use :func:`insert_ct` for a host's noise).
    """
    spec = check_spec(spec)
    mdl = _model(model)
    sp = np.asarray(spacing, float).ravel()
    if sp.size != 3 or np.any(sp <= 0):
        raise InputError(f"spacing must be three positive numbers (i, j, k) in mm, got {sp.tolist()}")
    sp_kji = sp[::-1]
    shape = [int(np.ceil(2.0 * spec.diameter_mm / s)) + 3 for s in sp_kji]
    center = [(n - 1) / 2.0 for n in shape]
    r = rasterize(_field(mdl, spec), spec.diameter_mm, sp_kji, center, shape, spec.core_fraction,
                  mdl.unit_voxels, mdl.sdf_clip)
    alpha = tissue_alpha(r.frac, r.core, spec.ggo_hu, spec.solid_hu, background_hu)
    hu = np.float32(background_hu) + alpha * np.float32(spec.solid_hu - background_hu)
    return hu.astype(np.float32), r.mask


# --------------------------------------------------------------------------- CT
class CTContext:
    """Per-image facts reused across slider changes: spacing, whether it looks like HU, local statistics."""

    def __init__(self, volume: Volume) -> None:
        _check_scalar(volume)
        if is_radiograph(volume):
            raise InputError(f"'{volume.name}' is a 2D image; use insert_cxr for radiographs")
        self.volume = volume
        self.spacing_kji = volume.spacing[::-1].astype(float)
        arr = volume.array
        step = max(1, arr.size // 500_000)
        sample = arr.reshape(-1)[::step]
        self.looks_like_hu = bool(np.min(sample) < -500)
        self._stats: Dict[Tuple[int, int, int], Dict[str, float]] = {}
        self._lung_places: Any = None

    @property
    def lung_places(self):
        """The lung of this CT (:class:`.candidates.CTPlaces`), found on first use."""
        if self._lung_places is None:
            from .candidates import CTPlaces

            self._lung_places = CTPlaces(self.volume)
        return self._lung_places

    def outside_body(self, center_kji: np.ndarray) -> bool:
        """Whether the point lies in air (below -400 HU) that reaches the border of its axial slice, in a slice that
        holds a body (at least 5 % of it above -400 HU): outside the body, where lung air does not reach."""
        from scipy import ndimage

        arr = self.volume.array
        k, j, i = (min(max(int(round(v)), 0), n - 1) for v, n in zip(center_kji, arr.shape))
        if not hasattr(self, "_outside"):
            self._outside: Dict[int, np.ndarray] = {}
        out = self._outside.get(k)
        if out is None:
            air = arr[k] < -400
            lab, _ = ndimage.label(air)
            edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
            out = np.isin(lab, edge[edge > 0])
            if float(np.mean(~air)) < 0.05:  # no body in this slice (a block of lung, a phantom): nothing to say
                out[:] = False
            if len(self._outside) > 16:
                self._outside.clear()
            self._outside[k] = out
        return bool(out[j, i])

    def stats(self, center_kji: np.ndarray) -> Dict[str, float]:
        key = tuple(int(round(v)) for v in center_kji)
        hit = self._stats.get(key)
        if hit is None:
            radius = [max(6, int(np.ceil(15.0 / s))) for s in self.spacing_kji]
            hit = host_statistics(self.volume.array, center_kji, radius)
            c = [min(max(k, 0), n - 1) for k, n in zip(key, self.volume.array.shape)]
            sl = tuple(slice(max(0, c[a] - 1), c[a] + 2) for a in range(3))
            hit["hu_at_point"] = float(np.mean(self.volume.array[sl]))
            if len(self._stats) > 64:
                self._stats.clear()
            self._stats[key] = hit
        return hit


def _noise_seed(center_voxel) -> int:
    """Noise pattern per place (not per shape seed): moving a shape slider or the seed never regenerates noise."""
    k, j, i = (int(v) for v in center_voxel)
    return (k * 73856093 ^ j * 19349663 ^ i * 83492791) & 0xFFFFFFFF


def _ct_region(ctx: CTContext, center_kji: np.ndarray, spec: NoduleSpec, model, host: np.ndarray,
               bank: NoiseBank, check: bool, lung_check: bool = False) -> RegionResult:
    fld = _field(model, spec)
    r = rasterize(fld, spec.diameter_mm, ctx.spacing_kji, center_kji, host.shape, spec.core_fraction,
                  model.unit_voxels, model.sdf_clip)
    st = ctx.stats(center_kji)
    host_roi = host[r.roi]
    c_round = np.round(center_kji).astype(int)
    start_rel = [sl.start - c for sl, c in zip(r.roi, c_round)]
    noise = bank.region(_noise_seed(c_round), ctx.spacing_kji, start_rel, r.frac.shape)
    lung_hu = st["lung_hu"] if ctx.looks_like_hu else LUNG_HU_DEFAULT
    vals, alpha = composite_ct(host_roi, r.frac, r.core, spec.solid_hu, spec.ggo_hu, lung_hu, st["noise_hp_mad"], noise)
    new = np.where(alpha > 0, to_dtype(vals, host.dtype), host_roi)
    info = _ct_info(ctx, center_kji, spec, r, st, lung_hu, model)
    if lung_check:
        _lung_field_check(ctx, info)
    if check:
        info["warnings"].extend(_lung_warnings(host_roi, r, st, ctx))
    return RegionResult(r.roi, new, r.mask, info)


def _ct_info(ctx: CTContext, center_kji, spec: NoduleSpec, r: Raster, st, lung_hu, model) -> Dict[str, Any]:
    warnings: List[str] = []
    if not ctx.looks_like_hu:
        warnings.append("the image does not look like CT in Hounsfield units (no air below -500 HU); values may be off")
    elif st["hu_at_point"] > -500:
        warnings.append(f"the point is not in lung tissue: {st['hu_at_point']:.0f} HU there (lung is below -500 HU)")
    elif st["hu_at_point"] < -900 and ctx.outside_body(center_kji):
        warnings.append(f"the point is in air outside the body ({st['hu_at_point']:.0f} HU, connected to the image "
                        "border), not in lung: the nodule floats in air")
    if r.clipped:
        warnings.append("the nodule is cut by the image border: its size is smaller than requested")
    idx = np.argwhere(r.mask)
    bbox = None
    if len(idx):
        lo = idx.min(axis=0) + [s.start for s in r.roi]
        hi = idx.max(axis=0) + [s.start for s in r.roi]
        bbox = {"k": [int(lo[0]), int(hi[0])], "j": [int(lo[1]), int(hi[1])], "i": [int(lo[2]), int(hi[2])]}
    return {
        "kind": "ct",
        "spec": spec.to_dict(),
        "ras": ctx.volume.ijk_to_ras_points(np.asarray(center_kji)[::-1])[0].tolist(),
        "ijk": [float(v) for v in np.asarray(center_kji)[::-1]],
        "diameter_mm": spec.diameter_mm,
        "equivalent_diameter_mm": _deq(r.volume_mm3),
        "mask_equivalent_diameter_mm": _deq(float(r.mask.sum()) * r.voxel_mm3),
        "volume_mm3": r.volume_mm3,
        "solid_core_fraction": r.core_volume_mm3 / r.volume_mm3 if r.volume_mm3 > 0 else 0.0,
        "lung_hu": float(lung_hu),
        "ggo_alpha": ggo_alpha(spec.ggo_hu, spec.solid_hu, lung_hu),
        "host_noise_highpass_mad_hu": st["noise_hp_mad"],
        "roi_kji": [[s.start, s.stop] for s in r.roi],
        "bbox_kji": bbox,
        "model": f"{model.entry.id} {model.entry.version}",
        "warnings": warnings,
    }


def _lung_warnings(host_roi: np.ndarray, r: Raster, st, ctx: CTContext) -> List[str]:
    """Lung mask by threshold + connectivity in the region: the nodule should lie in the point's lung component."""
    from scipy import ndimage

    if not ctx.looks_like_hu or st["hu_at_point"] > -500:
        return []
    lung = host_roi < -400
    lung = ndimage.binary_closing(lung, iterations=1) | lung
    lab, _ = ndimage.label(lung)
    cen = tuple(min(max(int(round(v)), 0), n - 1) for v, n in zip(np.array(r.frac.shape) / 2.0, r.frac.shape))
    comp = lab[cen]
    if comp == 0:
        vals = lab[r.mask]
        vals = vals[vals > 0]
        comp = int(np.bincount(vals).argmax()) if vals.size else 0
    if comp == 0 or not r.mask.any():
        return []
    outside = float(np.mean(lab[r.mask] != comp))
    if outside > 0.25:
        return [f"{outside * 100:.0f} % of the nodule lies outside the lung region around the point "
                "(juxtapleural, mediastinal or vessel-overlapping)"]
    return []


def insert_ct_region(
    volume: Volume,
    ras: Sequence[float],
    spec: Any,
    model=None,
    context: Optional[CTContext] = None,
    host: Optional[np.ndarray] = None,
    check: bool = False,
    bank: Optional[NoiseBank] = None,
    lung_check: bool = False,
) -> RegionResult:
    """Compute only the nodule's region of a CT: new values and mask for ``roi`` (nothing is written).

    ``host`` (default ``volume.array``) is the array the nodule is blended into (a session passes its
    current base, with earlier nodules).  ``check`` adds the lung-connectivity warning (a few ms).
    ``lung_check`` adds ``info["lung_fields"]`` and a warning when the centre lies outside the estimated lung
    (:func:`.candidates.check_lung_point`; the lung is found once per context).
    """
    spec = check_spec(spec)
    ctx = context if context is not None else CTContext(volume)
    center = _center_ijk(volume, ras, two_d=False)[::-1]
    return _ct_region(ctx, center, spec, _model(model), volume.array if host is None else host,
                      bank or NOISE_BANK, check, lung_check)


def insert_ct(volume: Volume, ras: Sequence[float], spec: Any, model=None, lung_check: bool = True,
              context: Optional[CTContext] = None) -> Tuple[Volume, Volume, Dict[str, Any]]:
    """A new CT with the nodule at ``ras`` (HU), its mask (uint8 labelmap, 1 = nodule) and facts; input untouched.
    ``lung_check``: warn when the centre lies outside the estimated lung (see :func:`insert_ct_region`);
    ``context``: a :class:`CTContext` of ``volume`` already made (its lung is reused)."""
    res = insert_ct_region(volume, ras, spec, model=model, context=context, check=True, lung_check=lung_check)
    out = volume.array.copy()
    out[res.roi] = res.values
    mask = np.zeros(volume.array.shape, np.uint8)
    mask[res.roi] = res.mask
    new = volume.with_array(out, name=f"{volume.name}_nodule")
    return new, volume.with_array(mask, name=f"{volume.name}_nodule_mask"), res.info


# --------------------------------------------------------------------------- radiographs
class CXRContext:
    """Per-radiograph facts: photometric sign, pixel spacing (given, from the file, or assumed) and log gain."""

    def __init__(self, volume: Volume, photometric: str = "MONOCHROME2", pixel_spacing_mm: Optional[Sequence[float]] = None,
                 log_gain: Optional[float] = None) -> None:
        _check_scalar(volume)
        if not is_radiograph(volume):
            raise InputError(f"'{volume.name}' has {volume.array.shape[0]} slices; use insert_ct for CT volumes")
        photometric = (photometric or "MONOCHROME2").strip().upper()
        if photometric not in PHOTOMETRICS:
            raise InputError(f"photometric interpretation {photometric!r} is not greyscale ({', '.join(PHOTOMETRICS)})")
        self.volume = volume
        self.photometric = photometric
        self.notes: List[str] = []
        nj, ni = volume.array.shape[1:]
        if pixel_spacing_mm is not None:
            ps = np.asarray(pixel_spacing_mm, float).ravel()
            ps = np.repeat(ps, 2) if ps.size == 1 else ps
            if ps.size != 2 or np.any(ps <= 0) or not np.all(np.isfinite(ps)):
                raise InputError(f"pixel spacing must be one or two positive numbers (row, column) in mm, got {ps.tolist()}")
            self.spacing_ji = (float(ps[0]), float(ps[1]))
            self.spacing_assumed = False
        else:
            si, sj = float(volume.spacing[0]), float(volume.spacing[1])
            if abs(si - 1.0) < 1e-9 and abs(sj - 1.0) < 1e-9:
                s = DEFAULT_CXR_WIDTH_MM / ni
                self.spacing_ji = (s, s)
                self.spacing_assumed = True
                self.notes.append(
                    f"the image carries no pixel spacing: assumed {s:.3f} mm ({DEFAULT_CXR_WIDTH_MM:g} mm detector width); "
                    "pass the pixel spacing for exact sizes"
                )
            else:
                self.spacing_ji = (sj, si)
                self.spacing_assumed = False
        arr = volume.array[0]
        if log_gain is not None:
            if not (np.isfinite(log_gain) and log_gain > 0):
                raise InputError(f"log gain must be positive, got {log_gain}")
            self.log_gain = float(log_gain)
            self.gain_assumed = False
        else:
            cj, ci = nj // 5, ni // 5
            central = np.asarray(arr[cj : nj - cj or None, ci : ni - ci or None], np.float64)
            step = max(1, central.size // 400_000)
            lo, hi = np.percentile(central.reshape(-1)[::step], [2.0, 98.0])
            self.log_gain = float(max(hi - lo, 1e-6) / CXR_LOG_RANGE)
            self.gain_assumed = True
        self.sign = -1.0 if photometric == "MONOCHROME1" else 1.0
        self._lung_places: Any = None

    @property
    def lung_places(self):
        """The lung fields of this radiograph (:class:`.candidates.CXRPlaces`), found on first use."""
        if self._lung_places is None:
            from .candidates import CXRPlaces

            self._lung_places = CXRPlaces(self.volume, self.spacing_ji[1], self.photometric)
        return self._lung_places


def _lung_field_check(ctx: Any, info: Dict[str, Any]) -> None:
    """Whether the nodule's centre lies in the estimated lung fields: ``info["lung_fields"]`` and, outside them, a
    warning (CT only when the image looks like HU: the lung estimate thresholds HU)."""
    if isinstance(ctx, CTContext) and not ctx.looks_like_hu:
        return
    check = ctx.lung_places.check(info["ras"])
    info["lung_fields"] = check.to_dict()
    if check.warning:
        info["warnings"].append(check.warning)


def _cxr_region(ctx: CXRContext, center_ji: np.ndarray, spec: NoduleSpec, model, host: np.ndarray,
                lung_check: bool = False) -> RegionResult:
    fld = _field(model, spec)
    sj, si = ctx.spacing_ji
    r = rasterize(fld, spec.diameter_mm, (1.0, sj, si), (0.0, center_ji[0], center_ji[1]), (1,) + host.shape[1:],
                  spec.core_fraction, model.unit_voxels, model.sdf_clip, project_axis0=True)
    mu_per_mm = MU_WATER_PER_MM * (spec.solid_hu - CXR_LUNG_HU) / 1000.0
    line = mu_per_mm * tissue_alpha(r.frac, r.core, spec.ggo_hu, spec.solid_hu, CXR_LUNG_HU)  # ln attenuation added
    roi = (slice(0, 1),) + tuple(r.roi)
    host_roi = host[roi][0]
    vals = host_roi.astype(np.float64) + ctx.sign * ctx.log_gain * line
    new = np.where(line > 0, to_dtype(vals, host.dtype), host_roi)[None]
    idx = np.argwhere(r.mask)
    bbox = None
    if len(idx):
        lo = idx.min(axis=0) + [s.start for s in r.roi]
        hi = idx.max(axis=0) + [s.start for s in r.roi]
        bbox = {"j": [int(lo[0]), int(hi[0])], "i": [int(lo[1]), int(hi[1])]}
    warnings = list(ctx.notes)
    if r.clipped:
        warnings.append("the nodule is cut by the image border")
    info = {
        "kind": "cxr",
        "spec": spec.to_dict(),
        "ras": ctx.volume.ijk_to_ras_points([center_ji[1], center_ji[0], 0.0])[0].tolist(),
        "ijk": [float(center_ji[1]), float(center_ji[0]), 0.0],
        "diameter_mm": spec.diameter_mm,
        "equivalent_diameter_mm": _deq(r.volume_mm3),
        "silhouette_equivalent_diameter_mm": float(np.sqrt(4.0 * r.mask.sum() * sj * si / np.pi)),
        "pixel_spacing_mm": [sj, si],
        "pixel_spacing_assumed": ctx.spacing_assumed,
        "photometric": ctx.photometric,
        "log_gain": ctx.log_gain,
        "log_gain_assumed": ctx.gain_assumed,
        "peak_ln_attenuation": float(line.max()) if line.size else 0.0,
        "peak_pixel_change": float(ctx.sign * ctx.log_gain * line.max()) if line.size else 0.0,
        "roi_ji": [[s.start, s.stop] for s in r.roi],
        "bbox_ji": bbox,
        "model": f"{model.entry.id} {model.entry.version}",
        "warnings": warnings,
    }
    if lung_check:
        _lung_field_check(ctx, info)
    full_mask = r.mask[None]
    return RegionResult(roi, new, full_mask, info)


def insert_cxr_region(
    volume: Volume,
    ras: Sequence[float],
    spec: Any,
    photometric: str = "MONOCHROME2",
    pixel_spacing_mm: Optional[Sequence[float]] = None,
    log_gain: Optional[float] = None,
    model=None,
    context: Optional[CXRContext] = None,
    host: Optional[np.ndarray] = None,
    lung_check: bool = False,
) -> RegionResult:
    """Compute only the nodule's region of a radiograph (z of ``ras`` ignored); nothing is written.
    ``lung_check`` adds ``info["lung_fields"]`` and a warning when the centre lies outside the estimated lung
    fields (:func:`.candidates.check_lung_point`; the lung fields are found once per context)."""
    spec = check_spec(spec)
    ctx = context if context is not None else CXRContext(volume, photometric, pixel_spacing_mm, log_gain)
    ijk = _center_ijk(volume, ras, two_d=True)
    return _cxr_region(ctx, np.array([ijk[1], ijk[0]]), spec, _model(model), volume.array if host is None else host,
                       lung_check)


def insert_cxr(
    volume: Volume,
    ras: Sequence[float],
    spec: Any,
    photometric: str = "MONOCHROME2",
    pixel_spacing_mm: Optional[Sequence[float]] = None,
    log_gain: Optional[float] = None,
    model=None,
    lung_check: bool = True,
    context: Optional[CXRContext] = None,
) -> Tuple[Volume, Volume, Dict[str, Any]]:
    """A new radiograph with the nodule's projected attenuation added in the log domain, its mask, facts.
    ``lung_check``: warn when the centre lies outside the estimated lung fields (see :func:`insert_cxr_region`);
    ``context``: a :class:`CXRContext` of ``volume`` already made (it holds photometric, spacing and gain)."""
    res = insert_cxr_region(volume, ras, spec, photometric, pixel_spacing_mm, log_gain, model, context=context,
                            lung_check=lung_check)
    out = volume.array.copy()
    out[res.roi] = res.values
    mask = np.zeros(volume.array.shape, np.uint8)
    mask[res.roi] = res.mask
    return (volume.with_array(out, name=f"{volume.name}_nodule"),
            volume.with_array(mask, name=f"{volume.name}_nodule_mask"), res.info)


def insert(volume: Volume, ras: Sequence[float], spec: Any, model=None, **cxr_options) -> Tuple[Volume, Volume, Dict[str, Any]]:
    """:func:`insert_ct` for 3D volumes, :func:`insert_cxr` for one-slice images."""
    _check_scalar(volume)
    if is_radiograph(volume):
        return insert_cxr(volume, ras, spec, model=model, **cxr_options)
    return insert_ct(volume, ras, spec, model=model)


# --------------------------------------------------------------------------- live session
class NoduleSession:
    """Live editing of nodules in one image: fast region updates, several nodules, undo.

    ``session = NoduleSession(volume)``; ``session.update(spec, ras)`` -> :class:`RegionResult` (the output
    array ``session.output`` is rewritten only inside ``result.roi``; the previous pending region is restored
    first); ``session.commit()`` keeps the pending nodule; ``session.undo()`` removes the last kept one.
    ``session.output_volume()`` / ``session.mask_volume()`` wrap the arrays (labels 1, 2, ... per nodule).
    The input volume is never modified.  For radiographs pass ``photometric`` etc. as for :func:`insert_cxr`.
    """

    def __init__(self, volume: Volume, model=None, photometric: str = "MONOCHROME2",
                 pixel_spacing_mm: Optional[Sequence[float]] = None, log_gain: Optional[float] = None) -> None:
        _check_scalar(volume)
        self.volume = volume
        self.model = _model(model)
        self.two_d = is_radiograph(volume)
        if self.two_d:
            self.context: Any = CXRContext(volume, photometric, pixel_spacing_mm, log_gain)
        else:
            self.context = CTContext(volume)
        self.bank = NoiseBank()
        self._base = volume.array  # read only until the first commit
        self._base_owned = False
        self.output = volume.array.copy()
        self.labels = np.zeros(volume.array.shape, np.uint8)
        self._pending: Optional[RegionResult] = None
        self._undo: List[Tuple[Tuple[slice, ...], np.ndarray, np.ndarray, Dict[str, Any]]] = []
        self.ras: Optional[np.ndarray] = None

    @property
    def nodules(self) -> List[Dict[str, Any]]:
        """Info of the kept nodules, oldest first."""
        return [u[3] for u in self._undo]

    def set_point(self, ras: Sequence[float]) -> None:
        center = _center_ijk(self.volume, ras, self.two_d)  # validates
        del center
        self.ras = np.asarray(ras, float).ravel()

    def _restore_pending(self) -> None:
        if self._pending is not None:
            roi = self._pending.roi
            self.output[roi] = self._base[roi]
            self.labels[roi] = np.where(self.labels[roi] == self._label(), 0, self.labels[roi])
            self._pending = None

    def _label(self) -> int:
        return min(len(self._undo) + 1, 255)

    def update(self, spec: Any, ras: Optional[Sequence[float]] = None, check: bool = False,
               lung_check: bool = True) -> RegionResult:
        """Recompute the pending nodule for ``spec`` (and ``ras`` if given) and write it into :attr:`output`.
        ``lung_check``: warn when the centre lies outside the estimated lung (fields); the lung is found at the
        first update, later ones only look the point up."""
        spec = check_spec(spec)
        if ras is not None:
            self.set_point(ras)
        if self.ras is None:
            raise InputError("place a point first (set_point or the ras argument)")
        ijk = _center_ijk(self.volume, self.ras, self.two_d)
        if self.two_d:
            res = _cxr_region(self.context, np.array([ijk[1], ijk[0]]), spec, self.model, self._base, lung_check)
        else:
            res = _ct_region(self.context, ijk[::-1], spec, self.model, self._base, self.bank, check, lung_check)
        self._restore_pending()
        self.output[res.roi] = res.values
        lab = self.labels[res.roi]
        lab[res.mask & (lab == 0)] = self._label()
        self._pending = res
        return res

    def region_union(self, a: Optional[Tuple[slice, ...]], b: Tuple[slice, ...]) -> Tuple[slice, ...]:
        """Smallest region covering two regions (what a view must refresh after an update)."""
        if a is None:
            return b
        return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))

    def commit(self) -> Optional[Dict[str, Any]]:
        """Keep the pending nodule; returns its info (None when nothing is pending)."""
        if self._pending is None:
            return None
        if not self._base_owned:
            self._base = self.volume.array.copy()
            self._base_owned = True
        roi = self._pending.roi
        saved = self._base[roi].copy()
        saved_labels = np.where(self.labels[roi] == self._label(), 0, self.labels[roi])
        self._base[roi] = self.output[roi]
        info = dict(self._pending.info)
        info["label"] = self._label()
        self._undo.append((roi, saved, saved_labels, info))
        self._pending = None
        return info

    def discard(self) -> None:
        """Drop the pending (not kept) nodule."""
        self._restore_pending()

    def undo(self) -> Optional[Dict[str, Any]]:
        """Remove the last kept nodule (and any pending one); returns its info."""
        self._restore_pending()
        if not self._undo:
            return None
        roi, saved, saved_labels, info = self._undo.pop()
        self._base[roi] = saved
        self.output[roi] = saved
        self.labels[roi] = saved_labels
        return info

    def output_volume(self, copy: bool = True) -> Volume:
        arr = self.output.copy() if copy else self.output
        return self.volume.with_array(arr, name=f"{self.volume.name}_nodule")

    def mask_volume(self, copy: bool = True) -> Volume:
        arr = self.labels.copy() if copy else self.labels
        return self.volume.with_array(arr, name=f"{self.volume.name}_nodule_mask")

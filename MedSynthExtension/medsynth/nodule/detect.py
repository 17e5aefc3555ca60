"""A classical nodule detector and hard-example mining (numpy + scipy).

Detector interface: any callable ``detector(volume) -> list of Detection`` (boxes in voxel indices, with a
score).  :class:`LoGBlobDetector` is an honest classical baseline: scale-normalised Laplacian-of-Gaussian
blobs over radii 2..12 mm on a copy resampled to ~1 mm (radiographs) or ~1.5 mm (CT) pixels, in the
attenuation sense (MONOCHROME1 flipped), scored as a z-score of the response; it finds round bright
blobs and also fires on rib crossings and vessels.

:func:`mine_hard_examples` searches nodule attributes and places that a detector misses within a budget
of detector calls: random trials first, then, from each miss, more conspicuous variants (larger, more
solid) at the same place until one is found or the budget ends.  A miss is a nodule no detection overlaps
with IoU >= ``iou_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from scipy import ndimage

from ..progress import CancelToken, Reporter
from ..volume import Volume
from .params import NoduleSpec


@dataclass
class Detection:
    """A detected blob: ``box`` = (i0, j0, [k0,] i1, j1, [k1]) in voxel indices (inclusive-exclusive), ``score``."""

    box: tuple
    score: float

    @property
    def ndim(self) -> int:
        return len(self.box) // 2


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    n = len(a) // 2
    inter, va, vb = 1.0, 1.0, 1.0
    for d in range(n):
        lo, hi = max(a[d], b[d]), min(a[d + n], b[d + n])
        inter *= max(0.0, hi - lo)
        va *= max(0.0, a[d + n] - a[d])
        vb *= max(0.0, b[d + n] - b[d])
    union = va + vb - inter
    return float(inter / union) if union > 0 else 0.0


def mask_box(mask: np.ndarray, start_kji: Optional[Sequence[int]] = None, two_d: Optional[bool] = None
             ) -> Optional[tuple]:
    """Box (i0, j0, [k0,] i1, j1, [k1]) of a [k, j, i] mask (one-slice masks give 2D boxes). For the mask of a region
    of a larger image: ``start_kji``, the region's first index, and ``two_d``, whether the image has one slice."""
    idx = np.argwhere(mask)
    if len(idx) == 0:
        return None
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    if start_kji is not None:
        lo, hi = lo + np.asarray(start_kji), hi + np.asarray(start_kji)
    if (mask.shape[0] == 1) if two_d is None else two_d:
        return (int(lo[2]), int(lo[1]), int(hi[2]), int(hi[1]))
    return (int(lo[2]), int(lo[1]), int(lo[0]), int(hi[2]), int(hi[1]), int(hi[0]))


class LoGBlobDetector:
    """Multi-scale LoG blob detector for radiographs (2D) and CT (3D)."""

    def __init__(self, radii_mm: Sequence[float] = (2.0, 3.0, 4.5, 6.5, 9.0, 12.0), threshold: float = 4.0,
                 photometric: str = "MONOCHROME2", pixel_spacing_mm: Optional[float] = None,
                 work_mm: Optional[float] = None, max_detections: int = 100) -> None:
        self.radii_mm = tuple(float(r) for r in radii_mm)
        self.threshold = float(threshold)
        self.photometric = photometric
        self.pixel_spacing_mm = pixel_spacing_mm
        self.work_mm = work_mm
        self.max_detections = int(max_detections)

    def __call__(self, volume: Volume) -> List[Detection]:
        two_d = volume.array.shape[0] == 1
        if two_d:
            img = volume.array[0].astype(np.float32)
            if self.photometric == "MONOCHROME1":
                img = -img
            ps = float(self.pixel_spacing_mm or volume.spacing[0])
            work = float(self.work_mm or 1.0)
            spacing = np.array([ps, ps])
        else:
            img = volume.array.astype(np.float32)
            spacing = volume.spacing[::-1].astype(float)
            work = float(self.work_mm or 1.5)
        zoom = np.minimum(1.0, spacing / work)
        small = ndimage.zoom(img, zoom, order=1) if np.any(zoom < 1.0) else img
        ws = spacing / zoom  # working pixel size per axis (mm)
        nd = small.ndim
        # robust image scale: the spread of fine detail (noise + texture), so scores are comparable across images
        detail = small - ndimage.uniform_filter(small, 3)
        unit = 1.4826 * float(np.median(np.abs(detail - np.median(detail)))) + 1e-6
        responses = []
        for r in self.radii_mm:
            sig = (r / np.sqrt(nd)) / ws
            # scale-normalised LoG (sigma^2 * Laplacian): a blob's peak response does not depend on its size
            responses.append(-float(np.mean(sig) ** 2) * ndimage.gaussian_laplace(small, sig) / unit)
        stack = np.stack(responses)
        peaks = (stack == ndimage.maximum_filter(stack, size=3, mode="nearest")) & (stack > self.threshold)
        found = np.argwhere(peaks)
        dets = []
        for s_idx, *pos in found:
            r = self.radii_mm[s_idx]
            c = (np.array(pos) + 0.5) * ws / spacing  # original voxel index (k, j, i) or (j, i)
            half = r / spacing
            lo, hi = (c - half)[::-1], (c + half)[::-1]  # (i, j[, k])
            dets.append(Detection(tuple(float(v) for v in np.concatenate([lo, hi])), float(stack[(s_idx, *pos)])))
        dets.sort(key=lambda d: -d.score)
        kept: List[Detection] = []
        for d in dets:
            if all(box_iou(d.box, k.box) < 0.3 for k in kept):
                kept.append(d)
            if len(kept) >= self.max_detections:
                break
        return kept


# --------------------------------------------------------------------------- mining
@dataclass
class SearchSpace:
    diameter_mm: Sequence[float] = (4.0, 30.0)
    textures: Sequence[str] = ("solid", "part-solid", "ggo")
    slider_sd: float = 2.0


@dataclass
class Trial:
    spec: NoduleSpec
    ras: List[float]
    hit: bool
    best_iou: float
    best_score: float
    conspicuity: float
    box: Optional[tuple] = None
    info: Dict[str, Any] = field(default_factory=dict)


@dataclass
class MiningResult:
    misses: List[Trial]  # most conspicuous first
    trials: List[Trial]

    @property
    def miss_rate(self) -> float:
        return len([t for t in self.trials if not t.hit]) / max(len(self.trials), 1)


def conspicuity(spec: NoduleSpec, lung_hu: Optional[float] = None) -> float:
    """Diameter x mean attenuation contrast (mm x fraction of the solid contrast): larger = easier to see."""
    from .texture import LUNG_HU_DEFAULT, tissue_alpha

    lung = LUNG_HU_DEFAULT if lung_hu is None else lung_hu
    return float(spec.diameter_mm * tissue_alpha(1.0, spec.core_fraction, spec.ggo_hu, spec.solid_hu, lung))


def _random_spec(rng: np.random.Generator, space: SearchSpace) -> NoduleSpec:
    lo, hi = space.diameter_mm
    d = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    s = space.slider_sd
    return NoduleSpec(
        diameter_mm=round(d, 1), texture=str(rng.choice(list(space.textures))),
        solid_fraction=round(float(rng.uniform(0.2, 0.8)), 2),
        sphericity=round(float(np.clip(rng.normal(0, 1), -s, s)), 2),
        lobulation=round(float(np.clip(rng.normal(0, 1), -s, s)), 2),
        spiculation=round(float(np.clip(rng.normal(0, 1), -s, s)), 2),
        seed=int(rng.integers(0, 1_000_000)),
    )


def _harder_variant(spec: NoduleSpec, space: SearchSpace) -> Optional[NoduleSpec]:
    """A more conspicuous version of a missed nodule (None when none is left)."""
    if spec.texture == "ggo":
        return spec.with_(texture="part-solid", solid_fraction=0.5)
    if spec.texture == "part-solid" and spec.solid_fraction < 0.95:
        return spec.with_(solid_fraction=round(min(1.0, spec.solid_fraction + 0.25), 2))
    d = min(space.diameter_mm[1], round(spec.diameter_mm * 1.35, 1))
    if d > spec.diameter_mm:
        return spec.with_(diameter_mm=d)
    return None


def mine_hard_examples(
    volume: Volume,
    detector: Callable[[Volume], List[Detection]],
    budget: int = 30,
    seed: int = 0,
    points: Optional[np.ndarray] = None,
    space: Optional[SearchSpace] = None,
    iou_threshold: float = 0.2,
    model=None,
    progress=None,
    cancel: Optional[CancelToken] = None,
    **cxr_options: Any,
) -> MiningResult:
    """Search nodules (attributes + places) the detector misses, spending at most ``budget`` detector calls.

    ``points``: candidate RAS points (default: lung points of the image, see :mod:`.candidates`).
    ``cxr_options``: photometric, pixel_spacing_mm, log_gain for radiographs.
    """
    from .insertion import CTContext, CXRContext, _model, is_radiograph, insert_ct_region, insert_cxr_region

    space = space or SearchSpace()
    rep = Reporter(progress, cancel)
    rng = np.random.default_rng(seed)
    mdl = _model(model)
    two_d = is_radiograph(volume)
    if two_d:
        ctx: Any = CXRContext(volume, cxr_options.get("photometric", "MONOCHROME2"),
                              cxr_options.get("pixel_spacing_mm"), cxr_options.get("log_gain"))
    else:
        ctx = CTContext(volume)
    if points is None:
        from .candidates import ct_candidates, cxr_candidates

        mid = float(np.mean(space.diameter_mm))
        if two_d:
            points = cxr_candidates(volume, mid, ctx.spacing_ji[1], ctx.photometric, seed=seed)
        else:
            points = ct_candidates(volume, mid, seed=seed)
    points = np.atleast_2d(np.asarray(points, float))
    if len(points) == 0:
        from ..errors import InputError

        raise InputError("no candidate places for nodules in this image")
    trials: List[Trial] = []

    def run(spec: NoduleSpec, ras: np.ndarray) -> Trial:
        if two_d:
            res = insert_cxr_region(volume, ras, spec, model=mdl, context=ctx)
        else:
            res = insert_ct_region(volume, ras, spec, model=mdl, context=ctx)
        arr = volume.array.copy()
        arr[res.roi] = res.values
        full = np.zeros(volume.array.shape, bool)
        full[res.roi] = res.mask
        gt = mask_box(full)
        dets = detector(volume.with_array(arr))
        best_iou, best_score = 0.0, 0.0
        for d in dets:
            iou = box_iou(d.box, gt) if gt is not None else 0.0
            if iou > best_iou:
                best_iou, best_score = iou, d.score
        t = Trial(spec, [float(v) for v in ras], best_iou >= iou_threshold, best_iou, best_score,
                  conspicuity(spec), gt, res.info)
        trials.append(t)
        rep.step(len(trials) / budget, f"trial {len(trials)}/{budget}: {'hit' if t.hit else 'miss'}")
        return t

    n_random = max(1, budget // 2)
    for _ in range(n_random):
        run(_random_spec(rng, space), points[rng.integers(len(points))])
    frontier = sorted([t for t in trials if not t.hit], key=lambda t: -t.conspicuity)
    while len(trials) < budget:
        if frontier:
            base = frontier.pop(0)
            nxt = _harder_variant(base.spec, space)
            if nxt is None:
                continue
            t = run(nxt, np.asarray(base.ras))
            if not t.hit:
                frontier.insert(0, t)
        else:
            t = run(_random_spec(rng, space), points[rng.integers(len(points))])
            if not t.hit:
                frontier.append(t)
    misses = sorted([t for t in trials if not t.hit], key=lambda t: -t.conspicuity)
    return MiningResult(misses, trials)

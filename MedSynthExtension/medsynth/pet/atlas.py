"""A brain region atlas for PET in MNI space at 2 mm (the grid of SPM/FSL 2 mm templates).

Shipped in ``Resources/PET`` (rebuilt by ``scripts/make_pet_atlas.py`` from ``../shared/data``):

* ``pet_atlas_2mm.nii.gz`` - uint8 labels, 91 x 109 x 91 voxels of 2 mm, RAS origin (-90, -126, -72);
* ``gm_2mm.nii.gz``, ``wm_2mm.nii.gz`` - grey / white matter probability in percent (uint8, 100 = 1);
* ``pet_atlas_labels.json`` - label names, region groups, sources and how each region was made.

Sources (only permissively licensed ones are used for anything shipped):

* AAL (Tzourio-Mazoyer et al., NeuroImage 2002; the 1 mm ``aal.nii.gz`` of MRIcron), "free with citation":
  caudate, putamen, pallidum, thalamus, cerebellar hemispheres and the cortical parcels grouped below.
* MNI ICBM152 2009a symmetric GM/WM probability maps (Fonov et al., NeuroImage 2011; BSD-3 style MNI terms,
  free with attribution): tissue maps and the brain hull.
* Colin27 T1 with scalp (Holmes et al., J Comput Assist Tomogr 1998; the 1 mm ``colin27_ch2_1mm`` of MRIcron,
  BSD-3 package): the extracerebral head.

Harvard-Oxford and Neuromorphometrics (non-commercial/academic terms) are *not* used.

Region definitions (approximate, documented, not expert-drawn):

* caudate, pallidum, thalamus: the AAL labels.
* putamen anterior / posterior: the AAL putamen split by the coronal plane through the centroid of both
  putamina (MNI y of the centroid, stored in the JSON as ``putamen_split_y_mm``; about the anterior
  commissure's plane). Voxels with y >= the plane are anterior.
* pons (brainstem): brain tissue in an ellipsoid centred at MNI (0, -26, -30) mm with semi-axes (14, 13, 12) mm,
  outside every AAL label (AAL has no brainstem).
* cerebellum_gm: AAL cerebellar hemispheres (vermis excluded) where the GM probability is >= 0.5.
* lateral_premotor: AAL superior frontal, middle frontal and precentral gyri with -12 <= y <= 12 mm and
  |x| >= 20 mm (lateral BA6, approximately), GM >= 0.3.
* sensorimotor: AAL precentral, postcentral, paracentral lobule not already lateral premotor, GM >= 0.3.
* posterior_parietal: AAL superior/inferior parietal, supramarginal, angular gyri, precuneus; GM >= 0.3.
* occipital: AAL calcarine, cuneus, lingual, superior/middle/inferior occipital; GM >= 0.3.
* other_brain: the rest of the brain hull (smoothed GM+WM >= 0.4, holes filled: includes ventricles).
* head: the extracerebral head (scalp, skull, face) from the Colin27 T1, for simulating extracerebral uptake.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from ..errors import InputError
from ..volume import Volume, make_ijk_to_ras

ATLAS_SPACING = 2.0
ATLAS_SHAPE_IJK = (91, 109, 91)
ATLAS_ORIGIN_RAS = (-90.0, -126.0, -72.0)
ATLAS_IJK_TO_RAS = make_ijk_to_ras((ATLAS_SPACING,) * 3, ATLAS_ORIGIN_RAS)

ATLAS_FILE = "pet_atlas_2mm.nii.gz"
GM_FILE = "gm_2mm.nii.gz"
WM_FILE = "wm_2mm.nii.gz"
LABELS_FILE = "pet_atlas_labels.json"
TISSUE_SCALE = 100  # tissue maps are stored in percent (1 % steps; below 1 % is 0)

# label value -> name; L/R suffixes are the patient's left and right
LABELS: Dict[int, str] = {
    1: "caudate_L",
    2: "caudate_R",
    3: "putamen_anterior_L",
    4: "putamen_anterior_R",
    5: "putamen_posterior_L",
    6: "putamen_posterior_R",
    7: "pallidum_L",
    8: "pallidum_R",
    9: "thalamus_L",
    10: "thalamus_R",
    11: "pons",
    12: "cerebellum_gm_L",
    13: "cerebellum_gm_R",
    14: "lateral_premotor_L",
    15: "lateral_premotor_R",
    16: "posterior_parietal_L",
    17: "posterior_parietal_R",
    18: "occipital_L",
    19: "occipital_R",
    20: "sensorimotor_L",
    21: "sensorimotor_R",
    22: "other_brain",
    23: "head",
}
LABEL_OF: Dict[str, int] = {v: k for k, v in LABELS.items()}
BRAIN_LABELS = tuple(range(1, 23))
STRIATAL_REGIONS = ("caudate", "putamen_anterior", "putamen_posterior")
REFERENCE_REGIONS = {"occipital": ("occipital_L", "occipital_R"), "cerebellum": ("cerebellum_gm_L", "cerebellum_gm_R")}

# AAL (MRIcron aal.nii.gz, values 1..116) parcels used per region
AAL = {
    "caudate": (71, 72),
    "putamen": (73, 74),
    "pallidum": (75, 76),
    "thalamus": (77, 78),
    "cerebellum": tuple(range(91, 109)),  # hemispheres only, odd = left
    "premotor_src": (1, 2, 3, 4, 7, 8),  # precentral, frontal sup, frontal mid
    "sensorimotor": (1, 2, 57, 58, 69, 70),  # precentral, postcentral, paracentral lobule
    "posterior_parietal": (59, 60, 61, 62, 63, 64, 65, 66, 67, 68),
    "occipital": tuple(range(43, 55)),
}
PONS_CENTER_MM = (0.0, -26.0, -30.0)
PONS_SEMI_AXES_MM = (14.0, 13.0, 12.0)
PREMOTOR_Y_RANGE_MM = (-12.0, 12.0)
PREMOTOR_MIN_ABS_X_MM = 20.0


def atlas_grid(dtype=np.uint8) -> Volume:
    """An empty volume on the atlas grid."""
    ni, nj, nk = ATLAS_SHAPE_IJK
    return Volume(np.zeros((nk, nj, ni), dtype), ATLAS_IJK_TO_RAS.copy(), name="mni_2mm")


def pet_resources_dir() -> Path:
    from ..runtime import resources_dir

    return resources_dir() / "PET"


@dataclass(frozen=True)
class PetAtlas:
    """The PET atlas: labels and tissue probabilities on the MNI 2 mm grid."""

    labels: Volume
    gm: Volume
    wm: Volume
    info: dict = field(default_factory=dict)

    @property
    def grid(self) -> Volume:
        return self.labels

    def mask(self, *names: str) -> np.ndarray:
        """Boolean mask of one or more labels given by name (``"caudate_L"``) or region (``"caudate"``, both sides)."""
        ids: List[int] = []
        for name in names:
            if name in LABEL_OF:
                ids.append(LABEL_OF[name])
            else:
                found = [LABEL_OF[n] for n in (f"{name}_L", f"{name}_R") if n in LABEL_OF]
                if not found:
                    raise InputError(f"unknown atlas region '{name}'; known: {', '.join(LABELS.values())}")
                ids.extend(found)
        return np.isin(self.labels.array, ids)

    @property
    def brain(self) -> np.ndarray:
        return np.isin(self.labels.array, BRAIN_LABELS)

    @property
    def csf(self) -> np.ndarray:
        """CSF fraction inside the brain hull: 1 - GM - WM, clipped (ventricles and sulci)."""
        return np.where(self.brain, np.clip(1.0 - self.gm.array - self.wm.array, 0.0, 1.0), 0.0).astype(np.float32)

    def centroid_ras(self, *names: str) -> np.ndarray:
        kji = np.argwhere(self.mask(*names))
        if kji.size == 0:
            raise InputError(f"atlas region(s) {names} are empty")
        return self.labels.ijk_to_ras_points(kji[:, ::-1].mean(axis=0, keepdims=True))[0]

    def is_on_grid(self, volume: Volume, tol_mm: float = 1e-3) -> bool:
        """True when ``volume`` has exactly the atlas grid (same shape and matrix)."""
        return tuple(volume.shape_ijk) == tuple(self.labels.shape_ijk) and bool(
            np.allclose(volume.ijk_to_ras, self.labels.ijk_to_ras, atol=tol_mm)
        )


def load_atlas(folder: Optional[Union[str, Path]] = None) -> PetAtlas:
    """Load the shipped atlas (``Resources/PET`` unless ``folder`` is given); cached per folder."""
    return _load_atlas(str(Path(folder) if folder is not None else pet_resources_dir()))


@lru_cache(maxsize=4)
def _load_atlas(folder: str) -> PetAtlas:
    from ..io import read_volume

    d = Path(folder)
    missing = [f for f in (ATLAS_FILE, GM_FILE, WM_FILE, LABELS_FILE) if not (d / f).is_file()]
    if missing:
        raise InputError(
            f"PET atlas file(s) missing in {d}: {', '.join(missing)}; rebuild them with "
            "'python scripts/make_pet_atlas.py' (needs ../shared/data)"
        )
    labels = read_volume(d / ATLAS_FILE, name="pet_atlas")
    gm = read_volume(d / GM_FILE, name="gm")
    wm = read_volume(d / WM_FILE, name="wm")
    info = json.loads((d / LABELS_FILE).read_text())
    scale = float(info.get("tissue_scale", TISSUE_SCALE))
    # files are written on the atlas grid; keep the exact matrix (no LPS round-off)
    m = ATLAS_IJK_TO_RAS.copy()
    for v in (labels, gm, wm):
        if not np.allclose(v.ijk_to_ras, m, atol=1e-3) or v.shape_ijk != ATLAS_SHAPE_IJK:
            raise InputError(f"PET atlas file '{v.name}' in {d} is not on the MNI 2 mm grid; rebuild it")
    return PetAtlas(
        labels=Volume(labels.array.astype(np.uint8), m, "pet_atlas"),
        gm=Volume(np.clip(gm.array.astype(np.float32) / scale, 0, 1), m, "gm"),
        wm=Volume(np.clip(wm.array.astype(np.float32) / scale, 0, 1), m, "wm"),
        info=info,
    )


# --------------------------------------------------------------------------- building (from ../shared/data)
SOURCES = {
    "t1": "mri/colin27_ch2_1mm.nii.gz",
    "gm": "mri/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mri/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
    "aal": "atlas/aal.nii.gz",
}


def _to_grid(volume: Volume, interpolation: str) -> Volume:
    from ..resample import resample_like
    from ._img import gaussian_array

    if interpolation == "nearest":
        return resample_like(volume, atlas_grid(), "nearest")
    f = volume.with_array(volume.array.astype(np.float32))
    # 1 mm -> 2 mm: low-pass first (sigma ~ 0.85 mm) so the 2 mm values are local averages
    f = f.with_array(gaussian_array(f, f.array, 0.85))
    return resample_like(f, atlas_grid(np.float32), "linear")


def _fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    import SimpleITK as sitk

    out = np.empty_like(mask)
    for k in range(mask.shape[0]):
        img = sitk.GetImageFromArray(mask[k].astype(np.uint8))
        out[k] = sitk.GetArrayFromImage(sitk.BinaryFillhole(img)) > 0
    return out


def _largest_component(mask: np.ndarray) -> np.ndarray:
    import SimpleITK as sitk

    cc = sitk.RelabelComponent(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8))))
    return sitk.GetArrayFromImage(cc) == 1


def build_atlas(shared_dir: Union[str, Path]) -> Tuple[Volume, Volume, Volume, dict]:
    """Build (labels uint8, gm uint8, wm uint8, info) on the MNI 2 mm grid from ``shared_dir`` (../shared/data)."""
    import SimpleITK as sitk

    from ..io import read_volume
    from ._img import gaussian_array

    shared = Path(shared_dir)
    for rel in SOURCES.values():
        if not (shared / rel).is_file():
            raise InputError(f"atlas source missing: {shared / rel}")
    grid = atlas_grid()
    t1 = _to_grid(read_volume(shared / SOURCES["t1"]), "linear").array
    gm = np.clip(_to_grid(read_volume(shared / SOURCES["gm"]), "linear").array / 255.0, 0, 1)
    wm = np.clip(_to_grid(read_volume(shared / SOURCES["wm"]), "linear").array / 255.0, 0, 1)
    aal = _to_grid(read_volume(shared / SOURCES["aal"]), "nearest").array.astype(np.int32)

    # RAS coordinates of every voxel
    nk, nj, ni = aal.shape
    kk, jj, ii = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    ras = grid.ijk_to_ras_points(np.stack([ii.ravel(), jj.ravel(), kk.ravel()], 1))
    x, y, z = (ras[:, n].reshape(aal.shape) for n in range(3))

    # brain hull: smoothed tissue, holes (ventricles) filled, one component
    tissue = gaussian_array(grid, gm + wm, 2.0)
    brain = tissue >= 0.4
    brain = sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(brain.astype(np.uint8)))) > 0
    brain = _largest_component(brain)
    # head: the Colin27 T1 (with scalp) above a low threshold, filled slice by slice
    t1s = gaussian_array(grid, t1, 2.0)
    head = t1s > 0.12 * float(np.percentile(t1s[brain], 95))
    head = _largest_component(_fill_holes_2d(head)) | brain

    labels = np.zeros(aal.shape, np.uint8)
    in_aal = aal > 0

    def put(name: str, mask: np.ndarray) -> None:
        labels[mask & (labels == 0)] = LABEL_OF[name]

    left = x < 0
    for region in ("caudate", "pallidum", "thalamus"):
        lid, rid = AAL[region]
        put(f"{region}_L", aal == lid)
        put(f"{region}_R", aal == rid)
    putamen = np.isin(aal, AAL["putamen"])
    split_y = float(y[putamen].mean())
    for side, lab in (("L", AAL["putamen"][0]), ("R", AAL["putamen"][1])):
        m = aal == lab
        put(f"putamen_anterior_{side}", m & (y >= split_y))
        put(f"putamen_posterior_{side}", m & (y < split_y))
    c, a = np.asarray(PONS_CENTER_MM), np.asarray(PONS_SEMI_AXES_MM)
    ell = ((x - c[0]) / a[0]) ** 2 + ((y - c[1]) / a[1]) ** 2 + ((z - c[2]) / a[2]) ** 2 <= 1.0
    put("pons", ell & ((gm + wm) >= 0.5) & ~in_aal & brain)
    cereb = np.isin(aal, AAL["cerebellum"]) & (gm >= 0.5)
    put("cerebellum_gm_L", cereb & (aal % 2 == 1))
    put("cerebellum_gm_R", cereb & (aal % 2 == 0))
    cortex_gm = gm >= 0.3
    premotor = (
        np.isin(aal, AAL["premotor_src"])
        & (y >= PREMOTOR_Y_RANGE_MM[0])
        & (y <= PREMOTOR_Y_RANGE_MM[1])
        & (np.abs(x) >= PREMOTOR_MIN_ABS_X_MM)
        & cortex_gm
    )
    put("lateral_premotor_L", premotor & left)
    put("lateral_premotor_R", premotor & ~left)
    for region in ("posterior_parietal", "occipital", "sensorimotor"):
        m = np.isin(aal, AAL[region]) & cortex_gm
        put(f"{region}_L", m & (aal % 2 == 1))
        put(f"{region}_R", m & (aal % 2 == 0))
    put("other_brain", brain)
    labels[(labels == 0) & head & ~brain] = LABEL_OF["head"]

    counts = {LABELS[k]: int((labels == k).sum()) for k in LABELS}
    empty = [n for n, c_ in counts.items() if c_ == 0]
    if empty:
        raise InputError(f"atlas build produced empty region(s): {', '.join(empty)}")
    info = {
        "description": "MedSynth PET atlas, MNI ICBM152 space, 2 mm (91x109x91, RAS origin -90,-126,-72)",
        "labels": {str(k): v for k, v in LABELS.items()},
        "voxels": counts,
        "striatal_regions": list(STRIATAL_REGIONS),
        "reference_regions": {k: list(v) for k, v in REFERENCE_REGIONS.items()},
        "putamen_split_y_mm": round(split_y, 2),
        "putamen_split_rule": "coronal plane through the centroid of both AAL putamina; y >= plane is anterior",
        "pons_ellipsoid_mm": {"center": list(PONS_CENTER_MM), "semi_axes": list(PONS_SEMI_AXES_MM)},
        "lateral_premotor_rule": "AAL precentral/frontal sup/frontal mid, -12<=y<=12 mm, |x|>=20 mm, GM>=0.3",
        "tissue_maps": "gm_2mm / wm_2mm: uint8, probability = value / tissue_scale",
        "tissue_scale": TISSUE_SCALE,
        "sources": {
            "AAL": "Tzourio-Mazoyer N. et al., NeuroImage 15:273-289 (2002); aal.nii.gz from MRIcron "
            "(Debian mricron-data); free with citation",
            "MNI ICBM152 2009a symmetric GM/WM maps": "Fonov V. et al., NeuroImage 54:313-327 (2011); "
            "Fonov V. et al., NeuroImage 47:S102 (2009); (c) McConnell Brain Imaging Centre, MNI; "
            "BSD-3 style terms, free with attribution (via nilearn)",
            "Colin27 T1 with scalp (head outline only)": "Holmes C.J. et al., J Comput Assist Tomogr 22:324-333 "
            "(1998); colin27_ch2_1mm from MRIcron (Debian mricron-data), BSD-3",
        },
        "not_used": "Harvard-Oxford and Neuromorphometrics (non-commercial / academic terms)",
        "built_by": "scripts/make_pet_atlas.py",
    }
    m = ATLAS_IJK_TO_RAS.copy()
    return (
        Volume(labels, m, "pet_atlas"),
        Volume(np.round(gm * TISSUE_SCALE).astype(np.uint8), m, "gm"),
        Volume(np.round(wm * TISSUE_SCALE).astype(np.uint8), m, "wm"),
        info,
    )


def write_atlas(out_dir: Union[str, Path], labels: Volume, gm: Volume, wm: Volume, info: dict) -> List[Path]:
    """Write the four atlas files (each atomically)."""
    from ..io import atomic_output, write_volume

    d = Path(out_dir)
    paths = [write_volume(labels, d / ATLAS_FILE), write_volume(gm, d / GM_FILE), write_volume(wm, d / WM_FILE)]
    with atomic_output(d / LABELS_FILE) as tmp:
        tmp.write_text(json.dumps(info, indent=2) + "\n")
    paths.append(d / LABELS_FILE)
    _load_atlas.cache_clear()
    return paths


def region_names(regions: Iterable[str] = STRIATAL_REGIONS) -> List[str]:
    return [f"{r}_{s}" for r in regions for s in ("L", "R")]


__all__ = [
    "ATLAS_IJK_TO_RAS",
    "ATLAS_SHAPE_IJK",
    "LABELS",
    "LABEL_OF",
    "REFERENCE_REGIONS",
    "STRIATAL_REGIONS",
    "PetAtlas",
    "atlas_grid",
    "build_atlas",
    "load_atlas",
    "pet_resources_dir",
    "region_names",
    "write_atlas",
]

"""Rebuild Resources/SampleData: real images from permissively licensed sources in ../shared/data, and the
project's own simulated samples (fixed seeds), then Resources/SampleData/README.md (what each file is, its terms).

    python scripts/make_sample_data.py [--only KEY ...] [--shared ../shared/data] [--out Resources/SampleData]

The catalogue (file names, titles, sources, terms) is ``medsynth.sample_data.SAMPLES``; keys:

- brain_mri  mni_t1_2mm.nii.gz: MNI ICBM152 2009a symmetric T1 (nilearn, BSD-3 + MNI template terms:
  free with attribution), resampled from 1 mm to 2 mm, int16.                                 [needs ../shared/data]
- head_ct    head_ct_2mm.nii.gz: TotalSegmentator's skull-stripped head CT atlas (Apache-2.0), 1 mm -> 2 mm,
  int16 HU.                                                                                   [needs ../shared/data]
- chest_xray chest_xray_rg1_half.nrrd: RG1_UNCR.dcm (pydicom-data, MIT), 2 x 2 pixel mean, uint16 MONOCHROME2,
  pixel spacing from the assumed 370 mm width (the file states none).                         [needs ../shared/data]
- chest_ct   chest_ct_phantom_simulated.nii.gz: medsynth.nodule.phantom.chest_ct_phantom(seed=0).
- cytology   pap_smear_field_simulated.nrrd: 16 CellGAN cells (fixed classes and seeds) blended into a
  synthetic smear background (seed 5).
- fdg_pet    fdg_pet_pd_simulated.nii.gz: medsynth.pet.simulate.example_subject("PD", seed=11).fdg.

Not shipped (terms): ct/chest_ct_crop_pulmonary.nii.gz (image terms not stated), the Herlev cell images, the
Figure1 radiographs, the GPL SPM templates.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from medsynth import Volume, make_ijk_to_ras
from medsynth.io import read_volume, write_volume
from medsynth.resample import resample_to_spacing
from medsynth.sample_data import SAMPLES, get_sample

ROOT = Path(__file__).resolve().parent.parent

#: the 2 mm resampled atlases: key -> (file in ../shared/data, modality)
RESAMPLED = {
    "brain_mri": ("mri/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz", "MR"),
    "head_ct": ("ct/head_ct_atlas_1mm.nii.gz", "CT"),
}
CXR_SOURCE = "cxr/RG1_UNCR.dcm"
CXR_WIDTH_MM = 370.0  # medsynth.nodule.insertion.DEFAULT_CXR_WIDTH_MM: RG1_UNCR states no pixel spacing
CHEST_CT_SEED = 0
PET_SEED = 11
#: the cytology field: background, grid, cells (Bethesda category, CellGAN seed), row by row
FIELD_PX, FIELD_PITCH, FIELD_MARGIN, CELL_PX, SMEAR_SEED = 336, 80, 8, 64, 5
FIELD_CELLS: Tuple[Tuple[str, int], ...] = (
    ("NILM", 100), ("NILM", 101), ("LSIL", 102), ("NILM", 103),
    ("HSIL", 104), ("NILM", 105), ("NILM", 106), ("carcinoma", 107),
    ("NILM", 108), ("LSIL", 109), ("NILM", 110), ("HSIL", 111),
    ("NILM", 112), ("carcinoma", 113), ("NILM", 114), ("LSIL", 115),
)
#: an RGB image upright in Slicer's axial view (CytoSynthLib.logic.IMAGE_DIRECTIONS)
IMAGE_DIRECTIONS = np.diag([-1.0, -1.0, 1.0])


def _name(key: str) -> str:
    return get_sample(key).node_name


def build_resampled(key: str, shared: Path) -> Volume:
    rel, modality = RESAMPLED[key]
    vol = read_volume(shared / rel, modality=modality)
    small = resample_to_spacing(vol.with_array(vol.array.astype(np.float32)), (2.0, 2.0, 2.0), "linear")
    return small.with_array(np.round(small.array).astype(np.int16), name=_name(key))


def build_chest_xray(shared: Path) -> Volume:
    from medsynth.nodule.images import read_host

    host = read_host(shared / CXR_SOURCE)
    if host.photometric != "MONOCHROME2":  # ITK flips MONOCHROME1 on reading; flip here if a reader does not
        top = (1 << int(host.bits_stored or 16)) - 1
        arr = top - host.volume.array.astype(np.int64)
    else:
        arr = host.volume.array.astype(np.int64)
    img = arr[0]
    nj, ni = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    half = img[:nj, :ni].reshape(nj // 2, 2, ni // 2, 2).mean(axis=(1, 3))
    native = CXR_WIDTH_MM / img.shape[1]  # mm per native pixel (assumed width / columns)
    m = host.volume.ijk_to_ras.copy()
    directions = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0)
    origin = m[:3, 3] + directions @ np.array([0.5 * native, 0.5 * native, 0.0])  # centre of the first 2x2 block
    geometry = make_ijk_to_ras((2 * native, 2 * native, 1.0), tuple(origin), directions)
    return Volume(np.round(half).astype(np.uint16)[None], geometry, name=_name("chest_xray"), modality="CXR")


def build_chest_ct() -> Volume:
    from medsynth.nodule.phantom import chest_ct_phantom

    ct = chest_ct_phantom(seed=CHEST_CT_SEED)
    return ct.with_array(ct.array, name=_name("chest_ct"))


def build_cytology() -> Volume:
    from medsynth.cyto.blend import insert_cell
    from medsynth.cyto.demo import smear_background
    from medsynth.cyto.generate import generate_cells

    host = Volume(smear_background(FIELD_PX, seed=SMEAR_SEED)[np.newaxis],
                  make_ijk_to_ras(directions=IMAGE_DIRECTIONS), name=_name("cytology"))
    per_row = (FIELD_PX - 2 * FIELD_MARGIN) // FIELD_PITCH
    for n, (category, seed) in enumerate(FIELD_CELLS):
        row, col = divmod(n, per_row)
        jitter = np.random.default_rng(seed).integers(-6, 7, size=2)
        i = FIELD_MARGIN + FIELD_PITCH * col + FIELD_PITCH // 2 + int(jitter[0])
        j = FIELD_MARGIN + FIELD_PITCH * row + FIELD_PITCH // 2 + int(jitter[1])
        cell = generate_cells(category, 1, seed=seed, naming="bethesda")[0]
        ras = host.ijk_to_ras_points(np.array([[i, j, 0]], float))[0]
        host = insert_cell(host, cell.image, ras, size_px=CELL_PX, method="poisson").volume
    return host


def build_fdg_pet() -> Volume:
    from medsynth.pet.simulate import example_subject

    fdg = example_subject("PD", seed=PET_SEED).fdg
    return fdg.with_array(np.round(fdg.array.astype(np.float32), 2).astype(np.float32), name=_name("fdg_pet"))


def builders(shared: Path) -> Dict[str, Callable[[], Volume]]:
    return {
        "brain_mri": lambda: build_resampled("brain_mri", shared),
        "head_ct": lambda: build_resampled("head_ct", shared),
        "chest_xray": lambda: build_chest_xray(shared),
        "chest_ct": build_chest_ct,
        "cytology": build_cytology,
        "fdg_pet": build_fdg_pet,
    }


def readme() -> str:
    lines = [
        "# MedSynth sample data",
        "",
        "Written by `scripts/make_sample_data.py` (which rebuilds every file here with fixed seeds) from the catalogue",
        "`medsynth.sample_data.SAMPLES`. Slicer lists them under *Sample Data > MedSynth*; the studio's *Load sample*",
        "menu loads them. Files whose name says `simulated` were made by MedSynth's own simulators or generators:",
        "no patient is behind them; never use them as evidence about patients.",
        "",
        "| file | what | source | terms |",
        "|---|---|---|---|",
    ]
    for s in SAMPLES:
        cells = [f"`{s.file}`" + (" (**simulated**)" if s.simulated else ""), s.what, s.source, s.terms]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    per_row = (FIELD_PX - 2 * FIELD_MARGIN) // FIELD_PITCH
    rows = [", ".join(f"{c} (seed {s})" for c, s in FIELD_CELLS[r:r + per_row]) for r in range(0, len(FIELD_CELLS), per_row)]
    lines += [
        "",
        f"Cells of `{get_sample('cytology').file}` (Bethesda category and CellGAN seed; rows top to bottom, left to "
        "right in the image as Slicer's axial view shows it):",
        "",
    ] + [f"{n + 1}. {r}" for n, r in enumerate(rows)] + [
        "",
        "Not shipped because of their terms: `ct/chest_ct_crop_pulmonary.nii.gz` (image terms not stated; the chest CT",
        "here is the simulated phantom instead), the Herlev cell images and the Figure1 radiographs (research use), the",
        "SPM templates (GPL).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "Resources" / "SampleData"))
    ap.add_argument("--only", nargs="+", metavar="KEY", choices=[s.key for s in SAMPLES],
                    help="rebuild only these samples (the README is always written)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    build = builders(Path(args.shared))
    written: List[Path] = []
    for s in SAMPLES:
        if args.only and s.key not in args.only:
            continue
        vol = build[s.key]()
        path = write_volume(vol, out / s.file)
        written.append(path)
        print(f"{path}: {vol.shape_ijk} voxels, {vol.array.dtype}, {path.stat().st_size / 1e3:.0f} kB")
    (out / "README.md").write_text(readme(), encoding="utf-8")
    print(f"{out / 'README.md'}")


if __name__ == "__main__":
    main()

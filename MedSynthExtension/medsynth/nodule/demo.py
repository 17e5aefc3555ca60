"""``medsynth demo`` part "nodule": nodules in a chest CT and a chest radiograph, five sizes, three textures,
hard-example mining with the LoG detector.

Hosts: ../shared/data/ct/chest_ct_crop_pulmonary.nii.gz and ../shared/data/cxr/RG1_UNCR.dcm when present
(read in place, never copied into the project), otherwise the synthetic chest phantom of
:mod:`medsynth.nodule.phantom` (the shipped sample data holds no chest image).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import numpy as np


def _hosts():
    from .images import Host, read_host
    from ..shared_data import shared_data_dir
    from .phantom import chest_ct_phantom, radiograph_from_ct

    data = shared_data_dir()
    ct_path, cxr_path = data / "ct" / "chest_ct_crop_pulmonary.nii.gz", data / "cxr" / "RG1_UNCR.dcm"
    phantom = None
    if ct_path.is_file():
        ct = read_host(ct_path)
    else:
        phantom = chest_ct_phantom()
        ct = Host(phantom, "ct", source="synthetic chest phantom")
    if cxr_path.is_file():
        cxr = read_host(cxr_path)
    else:
        phantom = phantom if phantom is not None else chest_ct_phantom()
        img = radiograph_from_ct(phantom)[0]
        cxr = Host(img, "cxr", "MONOCHROME2", (float(img.spacing[1]), float(img.spacing[0])),
                   source="projection of the chest phantom")
    return ct, cxr


def nodule_part(out_dir: Path, reporter) -> List[Path]:
    from ..io import write_volume
    from ..overview import overview, write_png
    from .candidates import ct_candidates, cxr_candidates
    from .detect import LoGBlobDetector, mine_hard_examples
    from .images import write_mask, write_result
    from .insertion import CXRContext, insert_ct, insert_cxr
    from .params import NoduleSpec
    from .sheet import ct_tile, cxr_tile, cxr_window, montage

    out_dir = Path(out_dir)
    written: List[Path] = []
    ct, cxr = _hosts()
    reporter.step(0.05, f"nodule: CT host {Path(ct.source).name}")
    # ---- CT: one part-solid nodule, five sizes, three textures
    pts = ct_candidates(ct.volume, 20.0, max_points=300, seed=1)
    ras = pts[int(np.argmin(np.linalg.norm(pts - ct.volume.center_ras(), axis=1)))]  # a central lung point
    spec = NoduleSpec(diameter_mm=16.0, texture="part-solid", solid_fraction=0.4, seed=3, spiculation=1.0)
    new, mask, info = insert_ct(ct.volume, ras, spec)
    written.append(write_volume(new, out_dir / "ct_nodule.nrrd"))
    written.append(write_volume(mask, out_dir / "ct_nodule_mask.nrrd"))
    written.append(write_png(overview(new, center_ras=ras, overlay=mask, window=(-1200, 200)),
                             out_dir / "ct_nodule_overview.png"))
    facts = {"ct": {"host": ct.source, "info": info}}
    reporter.step(0.25, "nodule: five sizes")
    tiles = [ct_tile(insert_ct(ct.volume, ras, spec.with_(diameter_mm=d, texture="solid"), lung_check=False)[0], ras)
             for d in (5.0, 10.0, 15.0, 20.0, 25.0)]
    written.append(write_png(montage(tiles), out_dir / "ct_five_sizes.png"))
    reporter.step(0.4, "nodule: three textures")
    tiles = [ct_tile(insert_ct(ct.volume, ras, spec.with_(texture=t), lung_check=False)[0], ras)
             for t in ("solid", "part-solid", "ggo")]
    written.append(write_png(montage(tiles), out_dir / "ct_three_textures.png"))
    tiles = [ct_tile(insert_ct(ct.volume, ras, spec.with_(texture="solid", **{a: v}), lung_check=False)[0], ras)
             for a in ("sphericity", "lobulation", "spiculation") for v in (-2.5, 2.5)]
    written.append(write_png(montage(tiles), out_dir / "ct_sliders_minus_plus.png"))
    # shape gallery at fine spacing: rows sphericity, lobulation, spiculation; columns -3 .. +3
    from ..overview import to_uint8
    from .insertion import make_nodule

    rows = []
    for a in ("sphericity", "lobulation", "spiculation"):
        row = []
        for v in (-3.0, -1.5, 0.0, 1.5, 3.0):
            hu, m = make_nodule(NoduleSpec(diameter_mm=20.0, seed=3, **{a: v}), spacing=(0.4, 0.4, 0.4))
            k = m.shape[0] // 2
            row.append(np.pad(to_uint8(hu[k], window=(-900, 100)), 2))
        rows.append(np.concatenate(row, axis=1))
    written.append(write_png(np.concatenate(rows, axis=0), out_dir / "shape_sliders_gallery.png"))
    # ---- radiograph
    reporter.step(0.55, f"nodule: radiograph host {Path(cxr.source).name}")
    ctx = CXRContext(cxr.volume, cxr.photometric, cxr.pixel_spacing_mm)
    ps = ctx.spacing_ji[1]
    pts = cxr_candidates(cxr.volume, 20.0, ps, cxr.photometric, max_points=300, seed=2)
    nj, ni = cxr.volume.array.shape[1:]
    mid_right_lung = cxr.volume.ijk_to_ras_points([0.3 * ni, 0.45 * nj, 0])[0]
    cras = pts[int(np.argmin(np.linalg.norm(pts - mid_right_lung, axis=1)))]
    cspec = NoduleSpec(diameter_mm=18.0, texture="solid", seed=5)
    cnew, cmask, cinfo = insert_cxr(cxr.volume, cras, cspec, cxr.photometric, cxr.pixel_spacing_mm)
    p, note = write_result(cxr, cnew, out_dir / "cxr_nodule.png")
    written.append(p)
    written.append(write_mask(cmask.with_array(cmask.array * 255), out_dir / "cxr_nodule_mask.png"))
    cij = (cinfo["ijk"][1], cinfo["ijk"][0])
    window = cxr_window(cxr, cxr.volume.array[0], cij, ps)  # one window for all tiles
    tiles = [cxr_tile(cxr, insert_cxr(cxr.volume, cras, cspec.with_(diameter_mm=d), cxr.photometric,
                                       cxr.pixel_spacing_mm)[0].array[0], cij, ps, window=window)
             for d in (5.0, 10.0, 15.0, 20.0, 25.0)]
    tiles.insert(0, cxr_tile(cxr, cxr.volume.array[0], cij, ps, window=window))
    written.append(write_png(montage(tiles), out_dir / "cxr_none_and_five_sizes.png"))
    facts["cxr"] = {"host": cxr.source, "info": cinfo, "note": note}
    # ---- hard-example mining on the radiograph with the classical detector
    reporter.step(0.7, "nodule: hard-example mining (LoG detector)")
    det = LoGBlobDetector(photometric=cxr.photometric, pixel_spacing_mm=ps, work_mm=2.0)
    mined = mine_hard_examples(cxr.volume, det, budget=10, seed=0, points=pts,
                               photometric=cxr.photometric, pixel_spacing_mm=cxr.pixel_spacing_mm)
    facts["mining"] = {
        "detector": "LoGBlobDetector(work_mm=2.0, threshold=4.0)",
        "trials": len(mined.trials),
        "miss_rate": mined.miss_rate,
        "hardest_misses": [{"spec": t.spec.to_dict(), "ras": t.ras, "best_iou": t.best_iou, "conspicuity": t.conspicuity}
                           for t in mined.misses[:5]],
    }
    fp = out_dir / "nodule_facts.json"
    fp.write_text(json.dumps(facts, indent=1, default=str) + "\n", encoding="utf-8")
    written.append(fp)
    reporter.step(1.0, "nodule: done")
    return written

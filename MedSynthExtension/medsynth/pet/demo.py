"""The PET part of ``medsynth demo``: two simulated subjects (NC and PD), their SBR reports and overview PNGs, and
the CFT synthesized from each FDG (``fdg2cft``) with its SBRs beside those of the simulated CFT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import numpy as np

from ..progress import Reporter


#: seed of the demo pair (index 0 NC, 1 PD); both "typical" in the simulator's FDG <-> DAT link (version 2)
DEMO_SEED = 1

def pet_demo_part(out_dir: Path, reporter: Reporter) -> List[Path]:
    from ..io import atomic_output, read_volume, write_volume
    from ..overview import overview, write_png
    from .atlas import load_atlas
    from .sbr import striatal_binding, write_report
    from ..runtime import list_models
    from .simulate import read_cohort, simulate_cohort
    from .synthesis import synthetic_cft_sbr

    out_dir = Path(out_dir)
    cohort = out_dir / "cohort"
    written = simulate_cohort(cohort, 2, 0.5, DEMO_SEED, reporter.sub(0.0, 0.6), groups=["NC", "PD"], overwrite=True)
    atlas = load_atlas()
    center = atlas.centroid_ras("putamen_anterior", "putamen_posterior")
    center[0] = 0.0
    summary = {"note": "simulated subjects (medsynth pet-simulate), not real PET", "subjects": {}}
    rows = read_cohort(cohort)
    synthesis = "fdg2cft" in list_models()
    if not synthesis:
        summary["synthesis"] = "skipped: the fdg2cft model is not installed (Resources/Models)"
    for n, row in enumerate(rows):
        reporter.sub(0.6, 1.0).step(n / len(rows), f"SBR {row['subject']}")
        fdg = read_volume(cohort / row["fdg_file"])
        cft = read_volume(cohort / row["cft_file"])
        result = striatal_binding(cft)
        written.append(write_report(result, out_dir / f"{row['subject']}_sbr.json"))
        striatum = result.labels_in_input.with_array((np.isin(result.labels_in_input.array, range(1, 7))).astype(np.uint8))
        written.append(write_png(overview(fdg, center, fov_mm=180), out_dir / f"{row['subject']}_{row['group']}_fdg.png"))
        written.append(
            write_png(overview(cft, center, overlay=None, fov_mm=180), out_dir / f"{row['subject']}_{row['group']}_cft.png")
        )
        written.append(
            write_png(
                overview(cft, center, overlay=striatum, fov_mm=180),
                out_dir / f"{row['subject']}_{row['group']}_cft_regions.png",
            )
        )
        d = result.to_dict()["regions"]
        summary["subjects"][row["subject"]] = {
            "group": row["group"],
            "stage": float(row["stage"]),
            "sbr_putamen_posterior": d["putamen_posterior"]["sbr"],
            "sbr_putamen_posterior_simulated": {
                s: float(row[f"sbr_true_putamen_posterior_{s}"]) for s in ("L", "R")
            },
            "asymmetry_index_putamen_posterior_percent": d["putamen_posterior"]["asymmetry_index_percent"],
        }
        if synthesis:
            syn, syn_sbr = synthetic_cft_sbr(fdg)
            written.append(write_volume(syn.volume, out_dir / f"{row['subject']}_{row['group']}_synthetic_cft.nii.gz"))
            written.append(
                write_png(
                    overview(syn.volume, center, overlay=striatum, fov_mm=180),
                    out_dir / f"{row['subject']}_{row['group']}_synthetic_cft_regions.png",
                )
            )
            written.append(write_report(syn_sbr, out_dir / f"{row['subject']}_synthetic_cft_sbr.json"))
            summary["subjects"][row["subject"]]["sbr_putamen_posterior_synthetic_cft"] = (
                syn_sbr.to_dict()["regions"]["putamen_posterior"]["sbr"]
            )
    target = out_dir / "pet_summary.json"
    with atomic_output(target) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    written.append(target)
    reporter.step(1.0, "PET demo done")
    return written

"""The anomaly-detection part of ``medsynth demo``: MetaAD on two simulated subjects (NC, PD): maps, reports, PNGs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

from ..progress import Reporter


#: seed of the demo pair (index 0 NC, 1 PD); both "typical" in the simulator's FDG <-> DAT link (version 2)
DEMO_SEED = 1

def demo_part(out_dir: Path, reporter: Reporter) -> List[Path]:
    from ..io import read_volume, write_volume
    from ..overview import overview, write_png
    from ..pet.simulate import read_cohort, simulate_cohort
    from ..runtime import list_models
    from .detect import detect

    out_dir = Path(out_dir)
    if "metaad-cycle" not in list_models():
        p = out_dir / "skipped.txt"
        p.write_text("the metaad-cycle model is not installed (Resources/Models)\n")
        return [p]
    cohort = out_dir / "cohort"
    written = simulate_cohort(cohort, 2, 0.5, DEMO_SEED, reporter.sub(0.0, 0.5), groups=["NC", "PD"], overwrite=True)
    summary = {"note": "simulated subjects, not real PET", "subjects": {}}
    for n, row in enumerate(read_cohort(cohort)):
        reporter.sub(0.5, 1.0).step(n / 2, f"MetaAD {row['subject']}")
        fdg = read_volume(cohort / row["fdg_file"])
        res = detect(fdg)
        tag = f"{row['subject']}_{row['group']}"
        written.append(write_volume(res.signed, out_dir / f"{tag}_anomaly.nii.gz"))
        rp = out_dir / f"{tag}_metaad.json"
        rp.write_text(json.dumps(res.report(), indent=2) + "\n")
        written.append(rp)
        try:
            written.append(write_png(overview(res.absolute), out_dir / f"{tag}_anomaly_abs.png"))
        except Exception:  # pictures are a convenience
            pass
        summary["subjects"][tag] = {"score": round(res.score, 3), "threshold": round(res.threshold, 3),
                                    "abnormal": res.abnormal}
    sp = out_dir / "metaad_summary.json"
    sp.write_text(json.dumps(summary, indent=2) + "\n")
    written.append(sp)
    return written

"""Ship a trained radiograph nodule detector as ``nodule-cxr-detector`` (ONNX file + manifest entry).

    python scripts/ship_nodule_detector.py output/nodule_det/base [Resources/Models]

Copies OUT/detector.onnx and writes the manifest entry (sha256 of the copied file, input/output description,
operating point and patient split from OUT/facts.json, training command).  The card
(Resources/Models/nodule-cxr-detector.md) is written by hand from the commands it quotes.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedSynthExtension"))


def main(argv) -> int:
    from medsynth.nodule.cxr_data import CANVAS, LOCAL_SIGMA_MM, WORK_MM
    from medsynth.runtime import ModelEntry, sha256_of, write_manifest_entry

    src = Path(argv[0])
    dst = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "Resources" / "Models"
    facts = json.loads((src / "facts.json").read_text())
    file = "nodule-cxr-detector.onnx"
    shutil.copyfile(src / "detector.onnx", dst / file)
    op = dict(facts["operating_point"])
    op.pop("val_hosts", None)
    entry = ModelEntry(
        id="nodule-cxr-detector", version="1.0.0", file=file, sha256=sha256_of(dst / file),
        inputs=[{"name": "image", "shape": [1, 2, CANVAS, CANVAS], "dtype": "float32"}],
        outputs=[{"name": "scores", "shape": ["A"], "dtype": "float32"},
                 {"name": "boxes", "shape": ["A", 4], "dtype": "float32"}],
        task="chest radiograph nodule detection: MONAI RetinaNet (ResNet-10 + FPN, 2D), trained on synthetic nodules "
             "inserted into host radiographs; scores and decoded boxes for every anchor (threshold + NMS in numpy)",
        spacing_mm=[WORK_MM, WORK_MM],
        normalization={
            "input": f"the radiograph in attenuation sense resampled to {WORK_MM:g} mm pixels (smaller when it would "
                     f"not fit) at the top left of a {CANVAS}x{CANVAS} canvas; channel 0 scaled so the central "
                     "region's 1st..99th percentiles span 0..1; channel 1 = local contrast (image minus its Gaussian "
                     f"mean over {LOCAL_SIGMA_MM:g} mm, over the local SD, clipped +-4, /4); see medsynth.nodule.cxr_data",
            "output boxes": "(row0, col0, row1, col1) on the canvas",
        },
        training_command=facts.get("command", ""),
        metrics={"training": {k: facts[k] for k in ("steps", "seconds", "final_loss", "device", "seed") if k in facts}},
        data_terms="host radiographs: Figure1-COVID-chestxray-dataset (agchung, 'for research purposes') and two NIH "
                   "ChestX-ray14 images (unrestricted use with citation); the trained weights inherit the research-only "
                   "terms: research use only, not for clinical use",
        card="nodule-cxr-detector.md",
        extra={"operating_point": op, "patient_split": {k: [Path(p).name for p in v]
                                                          for k, v in facts["split"].items()},
               "split_seed": facts.get("split_seed", 0)},
        folder=dst,
    )
    write_manifest_entry(dst, entry)
    print(f"shipped {src / 'detector.onnx'} as nodule-cxr-detector 1.0.0 (threshold {op['score_threshold']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Ship the SA-INR trained on templates + real scans (``--real-fold all``) as ``sainr``, keeping the template-only
model beside it as ``sainr-templates`` (the fair comparison for the leave-subject-out evaluation).

    python scripts/ship_sainr_real.py output/sr_real/all [Resources/Models]

Copies the model files and writes their manifest entries (with the sha256 of each copied file; the runtime checks
it on load), and leaves the cards to ``python -m medsynth.superres.train --card-only``. Refuses to run twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedSynthExtension"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv) -> int:
    from medsynth.runtime import read_manifest, write_manifest_entry

    src = Path(argv[0])
    dst = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "Resources" / "Models"
    shipped = {e.id: e for e in read_manifest(dst)}
    new = {e.id: e for e in read_manifest(src)}
    if "sainr-templates" in shipped:
        sys.stderr.write("sainr-templates is already there: the real-scan model was shipped before\n")
        return 2
    if "--real-fold all" not in new["sainr"].training_command:
        sys.stderr.write(f"{src} does not hold a --real-fold all model\n")
        return 2
    # 1. the template-only model under its own ids and file names
    enc, dec = shipped["sainr"], shipped["sainr-decoder"]
    for entry, new_id, other in ((dec, "sainr-templates-decoder", {"encoder": "sainr-templates"}),
                                 (enc, "sainr-templates", {"decoder": "sainr-templates-decoder"})):
        file = f"{new_id}.onnx"
        shutil.copyfile(entry.path, dst / file)
        extra = dict(entry.extra, **{k: v for k, v in other.items() if k in entry.extra})
        copy = dataclasses.replace(entry, id=new_id, file=file, sha256=sha256(dst / file), card="sainr-templates.md",
                                   extra=extra, folder=dst)
        write_manifest_entry(dst, copy)
    shutil.copyfile(dst / "sainr.md", dst / "sainr-templates.md")
    # 2. the real-scan model as sainr
    for model_id in ("sainr-decoder", "sainr"):
        entry = new[model_id]
        shutil.copyfile(entry.path, dst / entry.file)
        write_manifest_entry(dst, dataclasses.replace(entry, version="1.1.0", folder=dst))
    print(f"shipped {src} as sainr 1.1.0; the template-only model is now sainr-templates")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

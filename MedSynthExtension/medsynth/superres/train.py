"""Train SA-INR, export it to ONNX with its manifest entry, evaluate it, write its model card.

    python -m medsynth.superres.train --out Resources/Models --seed 0 [--steps N] [--tiny]

Fixed seed, CPU, reproducible on the same machine and library versions.  Data: the
fine MRI templates of ../shared/data/mri (see :mod:`.data`), cut into thick-slice /
fine-slice pairs by the same slice-profile model as the evaluation (factor 2..6,
random axis, box or Gaussian profile, flips, gamma/gain changes, some noise).  The
Colin27 subject is held out and used for the evaluation numbers in the manifest.
torch and MONAI are needed here only; inference runs on ONNX Runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

VERSION = "1.0.0"
CITATION = (
    "Wang X, Wang S, Xiong H, Xuan K, Zhuang Z, Liu M, Shen Z, Zhao X, Zhang L, Wang Q. "
    "Spatial attention-based implicit neural representation for arbitrary reduction of MRI slice spacing. "
    "Medical Image Analysis 2024;94:103158. doi:10.1016/j.media.2024.103158"
)


PREPARED = "superres_volumes.npz"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m medsynth.superres.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="Resources/Models", help="model folder (manifest.json is updated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default 1500; --tiny 15)")
    p.add_argument("--tiny", action="store_true", help="a very small model and run (for tests, < 1 min)")
    p.add_argument("--data", default=None, help="the shared data folder (default ../shared/data)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--channels", type=int, default=None, help="encoder channels (default 24)")
    p.add_argument("--window", type=int, default=None, help="in-plane attention window radius (default 0)")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation on the held-out volume")
    p.add_argument("--model-id", default=None, help="id in the manifest (default sainr; --tiny: sainr-tiny)")
    p.add_argument("--checkpoint", default=None, help="also save the torch weights here (not shipped)")
    p.add_argument("--card-only", action="store_true", help="only rewrite the model card from the manifest entry")
    p.add_argument("--lso-json", nargs="+", default=None, metavar="JSON",
                   help="with --card-only: the --json files of `python -m medsynth.superres.evaluate_real`, shown "
                   "in the card as its leave-subject-out evaluation")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (export runs on CPU)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop training after this long (the schedule "
                   "is set for --steps; a stop ends it early)")
    p.add_argument("--init", default=None, metavar="FILE",
                   help="start from these weights: a torch checkpoint (--checkpoint) or a shipped encoder ONNX "
                   "(its decoder <id>-decoder.onnx beside it); the learning rate then decays from --lr to 0 "
                   "(cosine, no warm-up)")
    p.add_argument("--real-fold", choices=("none", "0", "1", "2", "all"), default="none",
                   help="also train on the real scans (medsynth.superres.realdata) except those of this fold "
                   "(all: every real scan, for the shipped model); adds realistic degradations (Rician noise, bias "
                   "field, 8-bit quantisation)")
    p.add_argument("--checkpoint-every", type=int, default=100, metavar="N",
                   help="with --checkpoint: save the whole training state every N steps (and at a time limit)")
    p.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint (model, optimiser, schedule, step and random state)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3; with --init 5e-4)")
    p.add_argument("--prepare", default=None, metavar="DIR",
                   help="only write the normalised training volumes to DIR/superres_volumes.npz (for a machine "
                   "without SimpleITK: pass --data DIR there) and stop")
    return p.parse_args(argv)


def config_for(args: argparse.Namespace) -> Dict[str, object]:
    if args.tiny:
        return dict(channels=8, blocks=1, att_dim=8, heads=2, hidden=8, window=0, patch=24, slices=6, batch=2, steps=15,
                    lr=3e-3)
    return dict(channels=24, blocks=3, att_dim=16, heads=2, hidden=32, window=0, patch=40, slices=8, batch=4, steps=1500,
                lr=2e-3)


def train(args: argparse.Namespace, log=print):
    import torch

    from .data import PairSampler, load_training_volumes, shared_data_dir
    from .model import SAINR, count_parameters

    cfg = config_for(args)
    if args.channels:
        cfg["channels"] = args.channels
    if args.window is not None:
        cfg["window"] = args.window
    steps = int(args.steps if args.steps is not None else cfg["steps"])
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, int(args.threads)))
    torch.use_deterministic_algorithms(True, warn_only=True)
    rng = np.random.default_rng(args.seed)
    data_dir = Path(args.data) if args.data else shared_data_dir()
    volumes = load_training_volumes(data_dir)
    fold = getattr(args, "real_fold", "none")
    if fold != "none":
        from .realdata import check_folds, load_real_volumes

        check_folds()
        scans = _fold_scans(fold)
        volumes.update(load_real_volumes(data_dir, scans))
        log(f"real scans ({len(scans)}, fold {fold} held out): " + ", ".join(Path(s.file).name for s in scans))
    device = torch.device(args.device)
    sampler = PairSampler(volumes, rng, int(cfg["patch"]), int(cfg["slices"]), realistic=fold != "none")
    model = SAINR(
        int(cfg["channels"]), int(cfg["blocks"]), int(cfg["att_dim"]), int(cfg["heads"]), int(cfg["hidden"]),
        int(cfg["window"]),
    )
    if args.init:
        load_weights(model, Path(args.init))
        log(f"initialised from {args.init}")
    model.to(device)
    log(f"SA-INR: {count_parameters(model)} parameters, {steps} steps x {cfg['batch']} patches, seed {args.seed}, "
        f"{device}")
    checkpoint = Path(args.checkpoint) if getattr(args, "checkpoint", None) else None
    if getattr(args, "resume", False):
        if checkpoint is None or not checkpoint.is_file():
            raise FileNotFoundError(f"--resume needs an existing --checkpoint (got {checkpoint})")
        from ..export import load_checkpoint_file

        total = int(load_checkpoint_file(checkpoint).get("total_steps", steps))
        if total != steps:
            log(f"--resume: the schedule of {checkpoint} has {total} steps; continuing to step {total}")
        steps = total
    deadline = time.perf_counter() + 60.0 * args.max_minutes if args.max_minutes else None
    lr = float(args.lr if args.lr is not None else (5e-4 if args.init else cfg["lr"]))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    if args.init:  # already trained: decay only
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 2), eta_min=lr * 0.01)
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 2), pct_start=0.08)
    start = 0
    if getattr(args, "resume", False):
        start = resume_state(checkpoint, model, opt, sched, rng)
        model.to(device)
        log(f"resumed from {checkpoint} at step {start}")

    def save(step_done: int) -> None:
        if checkpoint is not None:
            save_training_state(checkpoint, model, opt, sched, rng, step_done, steps)

    t0 = time.perf_counter()
    running = 0.0
    every = max(1, min(100, steps // 5))
    save_every = max(1, int(getattr(args, "checkpoint_every", 100) or 100))
    done = start
    model.train()
    for step in range(start, steps):
        opt.zero_grad()
        total = accumulate_l1(model, sampler, int(cfg["batch"]), device)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running += total
        if (step + 1) % every == 0:
            log(f"  step {step + 1}/{steps}: L1 {running / every:.4f} ({time.perf_counter() - t0:.0f} s)")
            running = 0.0
        if (step + 1) % save_every == 0:
            save(step + 1)
        done = step + 1
        if deadline is not None and time.perf_counter() > deadline and done < steps:
            log(f"  time limit: stopped after {done} of {steps} steps (resume with --resume)")
            save(done)
            break
    seconds = time.perf_counter() - t0
    if done == steps:
        save(steps)
    model.eval()
    model.to("cpu")
    return model, cfg, done, seconds


def save_training_state(path: Path, model, opt, sched, rng, step: int, total: int) -> None:
    """The whole training state (tensors and plain types: loads with ``weights_only=True``)."""
    import json

    import torch

    from ..export import save_checkpoint_file

    save_checkpoint_file({
        "config": dict(model.config), "state_dict": model.state_dict(), "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(), "step": int(step), "total_steps": int(total),
        "numpy_rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state(),
    }, path)


def resume_state(path: Path, model, opt, sched, rng) -> int:
    """Load :func:`save_training_state`'s file into the objects; returns the step to continue from."""
    import json

    import torch

    from ..export import load_checkpoint_file

    ck = load_checkpoint_file(path)
    if "optimizer" not in ck or "step" not in ck:
        raise ValueError(f"{path} holds weights only, not a training state to resume")
    model.load_state_dict(ck["state_dict"])
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    rng.bit_generator.state = json.loads(ck["numpy_rng"])
    torch.set_rng_state(ck["torch_rng"])
    return int(ck["step"])


def accumulate_l1(model, sampler, batch: int, device="cpu") -> float:
    """Back-propagate the mean L1 error over ``batch`` pairs drawn from ``sampler`` (gradients accumulate in
    ``model``); returns the loss. Shared by training and :mod:`.adapt`."""
    import torch

    total = 0.0
    for _ in range(batch):
        s = sampler.sample()
        out = model(
            torch.from_numpy(s.lr)[None, None].to(device),
            torch.from_numpy(s.pos).to(device),
            torch.tensor([s.scale], dtype=torch.float32, device=device),
        )
        target = torch.from_numpy(np.ascontiguousarray(s.target)).to(device)
        loss = (out[0, 0] - target).abs().mean() / batch
        loss.backward()
        total += float(loss.detach())
    return total


def _previous_training(path: Path) -> Optional[dict]:
    """What the manifest beside an ``--init`` ONNX says of its training (None for a torch checkpoint)."""
    if path.suffix != ".onnx":
        return None
    from ..runtime import read_manifest

    for e in read_manifest(path.parent):
        if e.file == path.name:
            return {"file": e.file, "sha256": e.sha256, "command": e.training_command,
                    "training": dict(e.extra.get("training", {}))}
    return None


def load_weights(model, path: Path) -> None:
    """Load ``path`` (torch checkpoint, or an exported encoder ONNX + its decoder beside it) into ``model``."""
    import torch

    if path.suffix == ".onnx":
        import onnx
        from onnx import numpy_helper

        state = {}
        for prefix, file in (("encoder.", path), ("decoder.", path.with_name(f"{path.stem}-decoder.onnx"))):
            if not file.is_file():
                raise FileNotFoundError(f"--init: {file} not found (the decoder must lie beside the encoder)")
            for init in onnx.load(str(file)).graph.initializer:
                state[prefix + init.name] = torch.from_numpy(numpy_helper.to_array(init).copy())
    else:
        from ..export import load_checkpoint_file

        state = load_checkpoint_file(path)["state_dict"]  # torch.load(weights_only=True)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or shapes:
        raise ValueError(f"--init {path}: does not match this architecture (missing {missing[:4]}, "
                         f"shape mismatch {shapes[:4]})")
    model.load_state_dict({k: state[k] for k in own})


def export(model, folder: Path, model_id: str, command: str, cfg: Dict[str, object], train_seconds: float, steps: int):
    """Export the encoder (entry ``model_id``, with metrics and card) and the decoder (``model_id-decoder``)."""
    import torch

    from ..export import export_onnx
    from .data import DATA_TERMS, FACTOR_RANGE, HELD_OUT, TRAIN_FILES
    from .realdata import REAL_TERMS

    decoder_id = f"{model_id}-decoder"
    fold = _real_fold_of(command)
    terms = DATA_TERMS + (" " + REAL_TERMS if fold != "none" else "")
    common = dict(folder=folder, version=VERSION, atol=1e-3, write_manifest=False, training_command=command,
                  data_terms=terms, card=f"{model_id}.md")
    lr = torch.rand(1, 1, 7, 24, 20)
    scale = torch.tensor([4.0])
    with torch.no_grad():
        feats = model.encoder(lr, scale)
    encoder = export_onnx(
        model.encoder,
        (lr, scale),
        model_id=model_id,
        input_names=["lr", "scale"],
        output_names=["features"],
        dynamic_axes={"lr": {2: "D", 3: "H", 4: "W"}, "features": {0: "D", 2: "H", 3: "W"}},
        task="slice super-resolution (SA-INR) encoder: thick slices -> per-slice features",
        normalization={
            "lr": "[1, 1, D, H, W], the refined axis first; intensities divided by the 99.5th percentile of voxels "
            "above the minimum (subsampled); the output is multiplied back",
            "scale": "input slice spacing / mean in-plane spacing, clamped to 2..6",
        },
        **common,
    )
    decoder = export_onnx(
        model.decoder,
        (feats, lr, torch.linspace(0.0, 6.0, 13), scale),
        model_id=decoder_id,
        input_names=["features", "lr", "pos", "scale"],
        output_names=["sr"],
        dynamic_axes={
            "features": {0: "D", 2: "H", 3: "W"},
            "lr": {2: "D", 3: "H", 4: "W"},
            "pos": {0: "Q"},
            "sr": {2: "Q", 3: "H", 4: "W"},
        },
        task="slice super-resolution (SA-INR) decoder: features + output slice positions -> output slices",
        normalization={"pos": "fractional input slice index of each output slice (0 .. D-1)"},
        **common,
    )
    info = {
        "receptive_field": model.receptive_field(),
        "architecture": dict(model.config),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "training": {
            "steps": steps,
            "patches_per_step": cfg["batch"],
            "seconds": round(train_seconds, 1),
            "device": os.environ.get("MEDSYNTH_TRAIN_DEVICE")
            or f"CPU ({platform.machine()}, {os.cpu_count()} cores, torch threads "
            f"{os.environ.get('MEDSYNTH_TRAIN_THREADS', '?')})",
            "factors": list(FACTOR_RANGE),
            "train_files": list(TRAIN_FILES) + [s.file for s in _fold_scans(fold)],
            "held_out": list(HELD_OUT),
        },
        "citation": CITATION,
    }
    encoder.extra.update(info, decoder=decoder_id)
    decoder.extra.update({"encoder": model_id, "receptive_field": info["receptive_field"]})
    return encoder, decoder


def evaluate_entry(encoder, decoder, data_dir: Path, tiny: bool, log=print):
    from ..io import read_volume
    from ..runtime import load_entry
    from .data import EVAL_FILE
    from .evaluate import evaluate_reference, format_table, gains
    from .sainr import SAINRModel

    model = SAINRModel(load_entry(encoder), load_entry(decoder))
    ref = read_volume(data_dir / EVAL_FILE)
    if tiny:  # a small crop, one factor: just proves the path works
        ref = _center_crop(ref, 40)
        factors = (4,)
    else:
        factors = (2, 4, 6)
    rows = evaluate_reference(ref, factors, "k", "box", model=model, log=lambda r: log(f"  {r}"))
    table = format_table(rows)
    log(table)
    cmd = f"medsynth evaluate superres --reference ../shared/data/{EVAL_FILE} --factors {' '.join(f'{f:g}' for f in factors)} --axis k"
    return {
        "reference": EVAL_FILE,
        "held_out": True,
        "axis": "k",
        "profile": "box",
        "command": cmd,
        "device": f"CPU x{os.cpu_count()}",
        "rows": rows,
        "sainr_minus_bspline_psnr_db": gains(rows),
    }, table


def _center_crop(volume, n: int):
    from ..volume import Volume

    k, j, i = volume.array.shape
    arr = volume.array[k // 2 - n // 2 : k // 2 + n // 2, j // 2 - n : j // 2 + n, i // 2 - n : i // 2 + n]
    return Volume(np.ascontiguousarray(arr), volume.ijk_to_ras.copy(), volume.name, volume.modality)


def _real_fold_of(command: str) -> str:
    """The ``--real-fold`` a training command used (``none`` when it used none)."""
    words = str(command or "").split()
    return words[words.index("--real-fold") + 1] if "--real-fold" in words[:-1] else "none"


def _fold_scans(fold: str) -> list:
    """The real scans a ``--real-fold`` value trains on (none for ``none``; ``all``: every shippable scan)."""
    from .realdata import training_scans

    return [] if fold == "none" else training_scans(None if fold == "all" else int(fold))


def write_card(folder: Path, entry, metrics: Optional[dict], table: str, command: str,
               lso: Optional[dict] = None) -> Path:
    """Write the model card. ``lso``: ``{"command": ..., "summary": [...]}`` of the leave-subject-out evaluation on
    real scans (:mod:`.evaluate_real`), shown when given."""
    from .data import DATA_TERMS, HELD_OUT, TRAIN_FILES
    from .realdata import FOLDS, NOT_SHIPPED, REAL_TERMS, scans_in

    decoder_file = entry.folder / f"{entry.extra.get('decoder', entry.id + '-decoder')}.onnx"
    size_kb = (entry.path.stat().st_size + (decoder_file.stat().st_size if decoder_file.is_file() else 0)) / 1024
    tr = entry.extra.get("training", {})
    lines = [
        f"# SA-INR slice super-resolution (`{entry.id}` {entry.version})",
        "",
        "## What",
        "Reduces the slice spacing of a thick-slice scalar volume (MRI) along one voxel axis to any smaller spacing "
        "(non-integer factors included). A small Spatial Attention-based Implicit Neural Representation: a (2+1)D "
        "residual encoder (MONAI blocks) over the thick slices; for every output slice position (a continuous slice "
        "index) a query attends over the features of the four nearest input slices (softmax of query-key "
        "similarity with learned relative-position codes), reading their features and intensities; an MLP decoder adds "
        "a correction to cubic (Catmull-Rom) interpolation of those slices. The paper's gradient-guided gate is "
        "available at run time (`gate`, off by default): pixels where the input slices the decoder reads are flat "
        "(through-plane range and in-plane gradient at most the gate, in normalised intensity) take the cubic "
        "estimate and skip the decoder.",
        f"Two ONNX graphs (opset 17), `{entry.file}` (encoder) and `{decoder_file.name}` (decoder), {size_kb:.0f} kB "
        f"together, {entry.extra.get('parameters')} parameters; run with ONNX Runtime, tiled (a 256 x 256 x 256 "
        "output stays well under 2 GB). The encoder does not depend on the output spacing, so the live preview "
        "keeps its features and re-runs only the decoder when the spacing changes.",
        "Encoder: `lr` [1, 1, D, H, W] (the refined axis first, intensities divided by the 99.5th percentile of "
        "voxels above the minimum), `scale` [1] (slice spacing / in-plane spacing, clamped to 2..6) -> `features` "
        "[D, F, H, W]. Decoder: `features`, `lr`, `pos` [Q] (input slice index of each output slice), `scale` -> "
        "`sr` [1, 1, Q, H, W].",
        "",
        "## Data",
        "Training: " + ", ".join(f"`{f}`" for f in TRAIN_FILES) + " (the grey/white-matter maps also mixed into "
        "random synthetic contrasts). Pairs are made by the slice-profile model of `medsynth.superres.degrade`: "
        "thick slices with thickness = spacing, box or Gaussian (FWHM = spacing) profile, factor 2..6 along a random "
        "axis, random flips, gamma and gain changes, some noise.",
    ]
    fold = _real_fold_of(command)
    if fold != "none":
        real = _fold_scans(fold)
        left = ([f"`{f}` ({why})" for f, why in NOT_SHIPPED.items()] if fold == "all"
                else [f"`{s.file}`" for s in scans_in([int(fold)])])
        lines += [
            f"Real scans ({len(real)} single-subject acquisitions of {len({s.subject for s in real})} subjects or "
            "subject groups, `medsynth.superres.realdata`): " + ", ".join(f"`{s.file}` ({s.contrast})" for s in real)
            + ". With them, realistic degradations of the thick input: a smooth bias field half the time, Rician "
            "noise (sigma up to 4 % of the normalisation intensity) four times in five, 8-bit quantisation one "
            "time in three. Left out: " + ", ".join(left) + ".",
        ]
    lines += [
        "Held out, never read by training: " + ", ".join(f"`{f}`" for f in HELD_OUT) + " (the Colin27 subject).",
        "Terms: " + DATA_TERMS + (" " + REAL_TERMS if fold != "none" else ""),
        "",
        "## Training",
        f"`{command}`",
        f"{tr.get('steps')} steps x {tr.get('patches_per_step')} patches, {tr.get('seconds')} s wall on "
        f"{tr.get('device')}; fixed seed." + (f" {tr['note']}" if tr.get("note") else ""),
        "",
        "## Evaluation (held-out Colin27, thick slices made with the same profile model)",
    ]
    if metrics:
        lines += [
            f"Command: `{metrics['command']}` (device {metrics['device']}, one run; PSNR and SSIM inside the "
            "head foreground, peak = the reference's range; time = whole-volume reconstruction).",
            "",
            table,
            "",
            "SA-INR minus B-spline PSNR: "
            + ", ".join(f"{k} {v:+.2f} dB" for k, v in metrics["sainr_minus_bspline_psnr_db"].items()),
        ]
    else:
        lines.append("(not evaluated in this run)")
    if lso:
        lines += [
            "",
            "## Evaluation on real subjects never trained on (leave-subject-out)",
            f"Command: `{lso['command']}`. Folds by subject (`medsynth.superres.realdata`, {len(FOLDS)} folds): each "
            "fold's scans are reconstructed by a model trained the same way as this one but without that fold "
            "(`--real-fold K`); the shipped template-only model and cubic B-spline run on the same inputs. Gains are "
            "PSNR over B-spline, averaged per subject; 'SSIM higher' counts scans.",
            "",
            _lso_table(lso["summary"]),
        ]
    trained_on = ("brain MRI: templates and " + str(len(_fold_scans(fold)))
                  + " real scans (T1, post-contrast T1, T2)") if fold != "none" else (
                  "brain T1 templates and tissue maps only (few, smooth, averaged images)")
    lines += [
        "",
        "## Limits",
        f"- Trained on {trained_on}: other contrasts, organs, noise levels or real thick-slice acquisitions (slice "
        "gaps, cross-talk, motion) may be reconstructed less well; B-spline stays available as the safe choice.",
        "- One axis at a time; in-plane resolution is not changed. Anisotropy beyond 2..6 is treated as 2 or 6.",
        "- The output is a plausible interpolation, not a measurement: it cannot recover structures thinner than "
        "the slice profile removed. Not for diagnosis.",
        "- Reproducible on the same machine and library versions (seeded); other CPUs may give slightly different "
        "weights.",
        "",
        "## Citation",
        CITATION,
        "",
    ]
    path = folder / (entry.card or f"{entry.id}.md")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _lso_table(summary: List[dict]) -> str:
    from .evaluate_real import format_summary

    return format_summary(summary)


def main(argv: Optional[List[str]] = None) -> int:
    from ..runtime import write_manifest_entry
    from .data import shared_data_dir

    args = parse_args(argv)
    if args.prepare:
        from .data import prepare_volumes

        print(f"wrote {prepare_volumes(Path(args.data) if args.data else shared_data_dir(), Path(args.prepare))}")
        return 0
    folder = Path(args.out)
    model_id = args.model_id or ("sainr-tiny" if args.tiny else "sainr")
    if args.card_only:
        from ..runtime import read_manifest
        from .evaluate import format_table

        entry = {e.id: e for e in read_manifest(folder)}[model_id]
        rows = (entry.metrics or {}).get("rows", [])
        lso = None
        if args.lso_json:
            from .evaluate_real import summarise

            lso_rows, commands = [], []
            for name in args.lso_json:
                data = json.loads(Path(name).read_text())
                lso_rows += data["rows"]
                commands.append(data["command"])
            lso = {"command": "; ".join(commands),
                   "summary": summarise(lso_rows) + summarise(lso_rows, "sainr-shipped")}
        print(write_card(folder, entry, entry.metrics or None, format_table(rows) if rows else "",
                         entry.training_command, lso))
        return 0
    parts = ["python -m medsynth.superres.train", f"--out {args.out}", f"--seed {args.seed}"]
    if args.steps is not None:
        parts.append(f"--steps {args.steps}")
    if args.tiny:
        parts.append("--tiny")
    if args.threads != 2:
        parts.append(f"--threads {args.threads}")
    if args.device != "cpu":
        parts.append(f"--device {args.device} --data DIR (made by --prepare DIR)")
    if args.max_minutes:
        parts.append(f"--max-minutes {args.max_minutes:g}")
    if args.init:
        parts.append(f"--init {args.init}")
    if args.lr is not None:
        parts.append(f"--lr {args.lr:g}")
    if args.real_fold != "none":
        parts.append(f"--real-fold {args.real_fold}")
    command = " ".join(parts)
    previous = _previous_training(Path(args.init)) if args.init else None
    data_dir = Path(args.data) if args.data else shared_data_dir()
    if args.device == "cuda":
        import torch

        os.environ["MEDSYNTH_TRAIN_DEVICE"] = f"CUDA ({torch.cuda.get_device_name(0)})"
    if not (data_dir / "mri").is_dir() and not (data_dir / PREPARED).is_file():
        sys.stderr.write(f"training data not found: {data_dir / 'mri'} (pass --data)\n")
        return 2
    os.environ["MEDSYNTH_TRAIN_THREADS"] = str(args.threads)
    model, cfg, steps, seconds = train(args)
    print(f"trained in {seconds:.0f} s")
    entry, decoder = export(model, folder, model_id, command, cfg, seconds, steps)
    if previous:
        tr = entry.extra["training"]
        tr["continued_from"] = previous
        tr["note"] = (
            f"Continued from `{Path(args.init).name}` (sha256 {previous['sha256'][:12]}..., itself trained by "
            f"`{previous['command']}`: {previous['training'].get('steps')} steps, {previous['training'].get('seconds')} "
            f"s on {previous['training'].get('device')}). " + str(previous["training"].get("note", ""))
        ).strip()
    metrics, table = (None, "")
    if not args.no_eval:
        metrics, table = evaluate_entry(entry, decoder, data_dir, args.tiny)
        entry.metrics = metrics
    write_manifest_entry(folder, decoder)
    write_manifest_entry(folder, entry)
    card = write_card(folder, entry, metrics, table, command)
    size = (entry.path.stat().st_size + decoder.path.stat().st_size) / 1024
    print(f"wrote {entry.path} + {decoder.path.name} ({size:.0f} kB), manifest entries '{entry.id}', '{decoder.id}', card {card}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

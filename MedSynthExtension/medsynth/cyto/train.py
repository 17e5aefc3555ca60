"""Train CellGAN and its plain baseline on the Herlev training split; export the generators to ONNX.

    python -m medsynth.cyto.train --out Resources/Models --seed 0 [--steps N] [--device cpu|cuda] [--tiny]

Needs torch, numpy and MONAI (plus SimpleITK or Pillow to read the JPEGs); uses CUDA when present
(``--device auto``). Each architecture is trained for ``--steps`` steps (fewer when ``--max-minutes``
runs out first; the steps done are recorded) and its EMA generator saved as a checkpoint
(``--checkpoint-dir``, default output/cyto). Then, unless ``--no-export``, the EMA generators are exported
to ``--out`` (``cellgan``, ``cellgan-baseline``: noise + class index -> RGB patch), evaluated on the
held-out split with :mod:`medsynth.cyto.evaluate` (ONNX Runtime) and the model card is written.
``--from-checkpoint DIR`` skips training and exports the checkpoints of DIR (a run made elsewhere,
for example on a GPU machine). ``--tiny`` (tests): 10 cells per class, a few steps, narrow nets: < 60 s.

Training (both architectures, the same loop): hinge loss; R1 penalty on real images (gamma
``--r1``, lazy, every 4 steps); DiffAugment (colour, translation, cutout) on everything D sees; real
cells drawn as random 64 px windows along the long side of the padding-free content, with random
flips and quarter turns (a cell has no orientation); Adam (2e-4, betas 0 / 0.99); generator EMA
(0.999, ramped up). The seed fixes initialisation, batches and augmentation; CPU runs repeat exactly,
CUDA runs up to non-deterministic GPU kernels.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from .classes import HERLEV_CLASSES
from .data import CellSet

VERSION = "1.0.0"
MODEL_ID = "cellgan"
BASELINE_ID = "cellgan-baseline"
MODEL_IDS = {"cellgan": MODEL_ID, "baseline": BASELINE_ID}
Z_DIM = 64
SIZE = 64


def sample_batch(cells: CellSet, idx: np.ndarray, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """(B, 3, size, size) float32 in [-1, 1]: a random square window of each cell, random flip / quarter turn."""
    out = np.empty((len(idx), size, size, 3), np.uint8)
    for n, i in enumerate(idx):
        p = cells.patches[int(i)]
        h, w = p.shape[:2]
        r = int(rng.integers(0, h - size + 1))
        c = int(rng.integers(0, w - size + 1))
        q = p[r : r + size, c : c + size]
        q = np.rot90(q, int(rng.integers(0, 4)))
        if rng.random() < 0.5:
            q = q[:, ::-1]
        out[n] = q
    return out.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0


def train_gan(
    arch: str,
    cells: CellSet,
    steps: int,
    batch: int,
    seed: int,
    device: str,
    width: int,
    d_width: int,
    max_seconds: Optional[float] = None,
    r1_gamma: float = 1.0,
    lr: float = 2e-4,
    log: Optional[Callable[[str], None]] = None,
    on_checkpoint: Optional[Callable[[Dict[str, Any]], None]] = None,
    checkpoint_every_s: float = 60.0,
) -> Dict[str, Any]:
    """Train one architecture; returns a checkpoint dict (EMA generator weights on the CPU + facts).

    ``on_checkpoint`` receives the checkpoint so far every ``checkpoint_every_s`` seconds (a run stopped
    from outside keeps its last one)."""
    import torch
    import torch.nn.functional as F

    from .model import build, count_parameters, diff_augment, real_targets

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_classes = len(HERLEV_CLASSES)
    g, d = build(arch, n_classes, SIZE, Z_DIM, width, d_width)
    g, d = g.to(device), d.to(device)
    g_ema = copy.deepcopy(g).eval()
    for p in g_ema.parameters():
        p.requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.0, 0.99))
    labels = torch.as_tensor(cells.labels, dtype=torch.long)
    r1_every = 4
    t0 = time.time()
    history: List[Dict[str, float]] = []
    done = 0
    last_save = t0

    def snapshot() -> Dict[str, Any]:
        return {
            "format": 1,
            "arch": arch,
            "model_id": MODEL_IDS[arch],
            "config": {"n_classes": n_classes, "size": SIZE, "z_dim": Z_DIM, "width": width, "d_width": d_width},
            "g_ema": {k: v.detach().cpu().clone() for k, v in g_ema.state_dict().items()},
            "steps_requested": steps,
            "steps_done": done,
            "batch": batch,
            "seed": seed,
            "seconds": time.time() - t0,
            "device": _device_name(device),
            "generator_parameters": count_parameters(g),
            "discriminator_parameters": count_parameters(d),
            "class_counts": cells.counts(),
            "train_cells": len(cells),
            "history": list(history),
            "r1_gamma": r1_gamma,
            "lr": lr,
            "torch": torch.__version__,
        }

    log_every = 1 if steps <= 20 else max(10, steps // 40)
    for step in range(steps):
        if max_seconds is not None and time.time() - t0 > max_seconds:
            if log:
                log(f"{arch}: time budget reached after {step} steps")
            break
        idx = rng.integers(0, len(cells), size=batch)
        real = torch.from_numpy(sample_batch(cells, idx, rng)).to(device)
        y = labels[idx].to(device)
        part = int(rng.integers(0, 4))
        # ---- discriminator
        z = torch.randn(batch, Z_DIM, device=device)
        with torch.no_grad():
            fake = g(z, y)
        real_aug = diff_augment(real)
        logit_r, rec_big, rec_part = d(real_aug, y, part)
        logit_f = d(diff_augment(fake), y)[0]
        loss_d = F.relu(1.0 - logit_r).mean() + F.relu(1.0 + logit_f).mean()
        rec = torch.zeros((), device=device)
        if rec_big is not None:
            whole, quad = real_targets(real_aug, part)
            rec = F.l1_loss(rec_big, whole) + F.l1_loss(rec_part, quad)
        r1 = torch.zeros((), device=device)
        if r1_gamma > 0 and step % r1_every == 0:
            x = real_aug.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(d(x, y)[0].sum(), x, create_graph=True)
            r1 = grad.pow(2).sum(dim=(1, 2, 3)).mean()
        opt_d.zero_grad(set_to_none=True)
        (loss_d + rec + 0.5 * r1_gamma * r1_every * r1).backward()
        opt_d.step()
        # ---- generator
        z = torch.randn(batch, Z_DIM, device=device)
        y_g = labels[rng.integers(0, len(cells), size=batch)].to(device)
        loss_g = -d(diff_augment(g(z, y_g)), y_g)[0].mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        # ---- EMA
        beta = min(0.999, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for pe, p in zip(g_ema.parameters(), g.parameters()):
                pe.lerp_(p, 1.0 - beta)
            for be, b in zip(g_ema.buffers(), g.buffers()):
                be.copy_(b)
        done = step + 1
        if on_checkpoint is not None and time.time() - last_save > checkpoint_every_s:
            on_checkpoint(snapshot())
            last_save = time.time()
        if step % log_every == 0 or step == steps - 1:
            row = {"step": done, "loss_d": float(loss_d), "loss_g": float(loss_g), "recon": float(rec),
                   "r1": float(r1), "seconds": time.time() - t0}
            history.append(row)
            if log:
                log(f"{arch} step {done}/{steps}  D {row['loss_d']:.3f}  G {row['loss_g']:.3f}  "
                    f"rec {row['recon']:.3f}  R1 {row['r1']:.3f}  {row['seconds']:.0f} s")
    return snapshot()


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"CUDA ({torch.cuda.get_device_name(0)})"
    return "CPU"


def save_checkpoint(ckpt: Dict[str, Any], folder: Path) -> Path:
    from ..export import save_checkpoint_file

    return save_checkpoint_file(ckpt, Path(folder) / f"{ckpt['model_id']}.pt")


def load_checkpoint(path: Path) -> Dict[str, Any]:
    from ..export import load_checkpoint_file

    return load_checkpoint_file(path)  # torch.load(weights_only=True): tensors and plain types only


def generator_of(ckpt: Dict[str, Any]):
    from .model import build_generator

    c = ckpt["config"]
    g = build_generator(ckpt["arch"], c["n_classes"], c["size"], c["z_dim"], c["width"])
    g.load_state_dict(ckpt["g_ema"])
    return g.eval()


def export_generator(ckpt: Dict[str, Any], out: Path, training_command: str, write_manifest: bool = True):
    """Export the EMA generator of a checkpoint as ``<model_id>.onnx`` with its manifest entry."""
    import torch

    from ..export import export_onnx
    from .data import DATA_TERMS
    from .model import ExportWrapper

    c = ckpt["config"]
    arch = ckpt["arch"]
    task = (
        "CellGAN generator: noise + Herlev class index -> RGB cervical cell patch"
        if arch == "cellgan"
        else "plain class-conditional generator (evaluation baseline of CellGAN): noise + class index -> RGB patch"
    )
    entry = export_onnx(
        ExportWrapper(generator_of(ckpt)),
        [torch.zeros(1, c["z_dim"]), torch.zeros(1, dtype=torch.long)],
        out,
        ckpt["model_id"],
        VERSION,
        ["noise", "class_index"],
        ["image"],
        dynamic_axes={"noise": {0: "N"}, "class_index": {0: "N"}, "image": {0: "N"}},
        write_manifest=False,
        task=task,
        training_command=training_command,
        data_terms=DATA_TERMS,
        card=f"{MODEL_ID}.md",
        normalization={
            "noise": "standard normal, drawn per cell with numpy.random.default_rng(seed).standard_normal(z)",
            "class_index": "index into 'classes'",
            "image": "RGB in 0..1, (N, H, W, 3)",
        },
    )
    entry.extra.update(
        {
            "classes": list(HERLEV_CLASSES),
            "class_counts": ckpt["class_counts"],
            "patch_px": c["size"],
            "z_dim": c["z_dim"],
            "arch": arch,
            "steps": ckpt["steps_done"],
            "train_device": ckpt["device"],
            "train_seconds": round(float(ckpt["seconds"]), 1),
            "seed": ckpt["seed"],
        }
    )
    if write_manifest:
        from ..runtime import write_manifest_entry

        write_manifest_entry(out, entry)
    return entry


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m medsynth.cyto.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="Resources/Models", help="model folder (ONNX files, manifest entries, card)")
    p.add_argument("--data", default=None, help="Herlev folder (7 class sub-folders); default ../shared/data/cytology/herlev")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="training steps per architecture (default 20000; tiny 4)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 32; tiny 4)")
    p.add_argument("--width", type=int, default=None, help="generator channel unit (default 24; tiny 4)")
    p.add_argument("--d-width", type=int, default=None, help="discriminator channel unit (default 32; tiny 4)")
    p.add_argument("--r1", type=float, default=1.0, help="R1 gamma")
    p.add_argument("--arch", choices=("both", "cellgan", "baseline"), default="both")
    p.add_argument("--baseline-share", type=float, default=0.35,
                   help="share of --max-minutes given to the baseline when both are trained")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-time budget of the training (all architectures)")
    p.add_argument("--checkpoint-dir", default="output/cyto", help="where the checkpoints (.pt) go")
    p.add_argument("--no-export", action="store_true", help="only train and save checkpoints")
    p.add_argument("--from-checkpoint", default=None, help="skip training: export the checkpoints in this folder")
    p.add_argument("--eval-count", type=int, default=None, help="generated cells per class for the evaluation (default 100)")
    p.add_argument("--tiny", action="store_true", help="10 cells per class, a few steps, narrow nets (tests)")
    args = p.parse_args(argv)

    import torch

    t_start = time.time()

    def log(msg: str) -> None:
        sys.stderr.write(f"[{time.time() - t_start:6.1f} s] {msg}\n")
        sys.stderr.flush()

    if args.threads:
        torch.set_num_threads(max(1, args.threads))
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            p.error("--device cuda but torch sees no CUDA device")
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tiny = args.tiny
    steps = args.steps if args.steps is not None else (4 if tiny else 20000)
    batch = args.batch or (4 if tiny else 32)
    width = args.width or (4 if tiny else 24)
    d_width = args.d_width or (4 if tiny else 32)
    out = Path(args.out)
    ckpt_dir = Path(args.checkpoint_dir)
    archs = ["cellgan", "baseline"] if args.arch == "both" else [args.arch]

    from .data import default_herlev_dir, load_herlev

    data_dir = Path(args.data) if args.data else default_herlev_dir()
    if args.from_checkpoint:
        src = Path(args.from_checkpoint)
        ckpts = [load_checkpoint(src / f"{MODEL_IDS[a]}.pt") for a in archs if (src / f"{MODEL_IDS[a]}.pt").is_file()]
        if not ckpts:
            p.error(f"no {', '.join(MODEL_IDS[a] + '.pt' for a in archs)} in {src}")
        command = ckpts[0].get("command", "")
        log(f"loaded {len(ckpts)} checkpoint(s) from {src}")
    else:
        cells = load_herlev(data_dir, SIZE, "train", limit_per_class=10 if tiny else None)
        log(f"{len(cells)} training cells from {data_dir} ({device})")
        parts = [a for a in archs]
        command = "python -m medsynth.cyto.train " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        ckpts = []
        for a in parts:
            budget = None
            if args.max_minutes is not None:
                total = args.max_minutes * 60.0
                share = 1.0 if len(parts) == 1 else (args.baseline_share if a == "baseline" else 1 - args.baseline_share)
                budget = total * share
            def keep(ck: Dict[str, Any]) -> None:
                ck.update(command=command, data=str(data_dir), partial=True)
                save_checkpoint(ck, ckpt_dir)

            ck = train_gan(a, cells, steps, batch, args.seed, device, width, d_width, budget, args.r1, log=log,
                           on_checkpoint=keep)
            ck.update(command=command, data=str(data_dir), partial=False)
            path = save_checkpoint(ck, ckpt_dir)
            log(f"{a}: {ck['steps_done']} steps in {ck['seconds']:.0f} s on {ck['device']} -> {path}")
            ckpts.append(ck)
    if args.no_export:
        print(json.dumps({c["model_id"]: {"steps": c["steps_done"], "seconds": round(c["seconds"], 1),
                                          "device": c["device"]} for c in ckpts}))
        return 0

    from ..runtime import write_manifest_entry

    entries = [export_generator(c, out, command, write_manifest=False) for c in ckpts]
    log("exported " + ", ".join(f"{e.id} ({e.path.stat().st_size / 1e6:.2f} MB)" for e in entries))
    evaluation = None
    if not tiny:
        from .evaluate import evaluate_entries

        test_cells = load_herlev(data_dir, SIZE, "test")
        train_cells = load_herlev(data_dir, SIZE, "train")
        evaluation = evaluate_entries(train_cells, test_cells, entries, count=args.eval_count or 100, seed=args.seed,
                                      log=log)
        for e in entries:
            e.metrics = {
                "evaluation_command": evaluation["command"],
                "device": "CPU (ONNX Runtime)",
                "naming": evaluation["naming"],
                "rows": [r for r in evaluation["rows"] if r["source"] in (e.id, "real test cells")],
            }
    for e in entries:
        write_manifest_entry(out, e)
    from .card import write_card

    write_card(out / f"{MODEL_ID}.md", ckpts, entries, evaluation)
    log(f"done: {', '.join(str(e.path) for e in entries)}; card {out / (MODEL_ID + '.md')}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Train the structure-guided MR -> CT generator, export it to ONNX (``mr2ct``) with its manifest entry and card.

    python -m medsynth.mrct.train --out Resources/Models --seed 0 [--steps N] [--tiny] [--device cpu|cuda] [--data DIR]
    python -m medsynth.mrct.train --out MyModels --pairs PAIRS_DIR --seed 0      # also on your own MR/CT pairs

Data: domain-randomised synthetic pairs (:mod:`medsynth.mrct.pairs`) from the tissue anatomy of ``--data``
(default ../shared/data). With ``--pairs DIR`` (files ``<case>_mr.nii.gz`` + ``<case>_ct.nii.gz``, CT in HU, any
body part), each CT is first aligned to its MR (:func:`medsynth.mrct.align.align_ct_to_mr`: affine then B-spline,
Mattes mutual information, SimpleITK) and half of every batch is drawn from these real pairs (semantic classes
from CT thresholds). Losses: L1 on the CT (bone voxels, > 300 HU, weighted x4); edge loss (L1 of the edge decoder against the target's gradient
magnitude, plus L1 between the synthetic CT's and the target's gradient magnitudes); semantic consistency
(cross-entropy between the tissue class (air / soft tissue / bone) implied by the synthetic CT's HU, through soft
thresholds at -400 and 300 HU, and the sample's known class); adversarial (least squares, conditional 3D PatchGAN,
weight 0.01, from 20 % of the steps on).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

VERSION = "1.0.0"
MODEL_ID = "mr2ct"
W_L1, W_EDGE, W_GRAD, W_SEM, W_ADV = 1.0, 0.5, 0.5, 0.3, 0.01
W_BONE = 3.0  # extra L1 weight where the target CT is bone (> 300 HU): a minority class the L1 median would drop


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m medsynth.mrct.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="model folder: mr2ct.onnx, its manifest entry and card go here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default 700; --tiny 6)")
    p.add_argument("--tiny", action="store_true", help="tiny net and run (tests, < 1 min)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--data", default=None, help="folder of the shared reference data (default ../shared/data)")
    p.add_argument("--pairs", default=None, help="folder of your own <case>_mr / <case>_ct pairs (see docs/mrct.md)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--patch", type=int, default=None, help="training patch edge in 2 mm voxels (default 40; tiny 24)")
    p.add_argument("--channels", default=None, help="generator widths, e.g. 8,16,32 (default; tiny 4,8,8)")
    p.add_argument("--pool", type=int, default=None, help="deformed anatomies kept in the pool (default 8; tiny 2)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop training after this long (then export)")
    p.add_argument("--no-eval", action="store_true", help="export without the template-pair evaluation")
    return p.parse_args(argv)


def _log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def semantic_logits(ct: "Any") -> "Any":
    """Log-probabilities of air / soft tissue / bone from a CT in HU/1000 (soft thresholds at -400 and 300 HU)."""
    import torch

    p_air = torch.sigmoid((-0.4 - ct) / 0.05)
    p_bone = torch.sigmoid((ct - 0.3) / 0.05)
    p_soft = torch.clamp(1.0 - p_air - p_bone, min=1e-4)
    return torch.log(torch.cat([p_air, p_soft, p_bone], 1).clamp(min=1e-4))


class Batcher:
    """Synthetic pairs from a refreshed pool of deformed anatomies (plus real pairs with ``--pairs``)."""

    def __init__(self, args, rng: np.random.Generator) -> None:
        from .anatomy import anatomy
        from .pairs import deform

        self.rng = rng
        self.args = args
        self.base, self.grid = anatomy(args.data)
        self.pool = [deform(self.base, rng) for _ in range(args.pool)]
        self.real = []
        if args.pairs:
            from .align import load_pairs

            self.real = load_pairs(args.pairs, log=_log)

    def refresh(self) -> None:
        from .pairs import deform

        self.pool[int(self.rng.integers(len(self.pool)))] = deform(self.base, self.rng)

    def batch(self):
        from .pairs import draw_pair

        mr, ct, cl = [], [], []
        for b in range(self.args.batch):
            if self.real and b % 2 == 1:
                from .align import draw_real

                s = draw_real(self.real[int(self.rng.integers(len(self.real)))], self.rng, self.args.patch)
            else:
                s = draw_pair(self.pool[int(self.rng.integers(len(self.pool)))], self.rng, self.args.patch)
            mr.append(s.mr)
            ct.append(s.ct)
            cl.append(s.classes)
        return np.stack(mr)[:, None], np.stack(ct)[:, None], np.stack(cl)


def train(args) -> Dict[str, Any]:
    import torch

    from .nets import PatchDiscriminator, StructureGuidedGenerator, edge_map

    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, args.threads))
    rng = np.random.default_rng(args.seed)
    dev = torch.device(args.device)
    t0 = time.time()
    data = Batcher(args, rng)
    _log(f"anatomy pool of {args.pool} ready in {time.time() - t0:.1f} s")
    channels = tuple(int(c) for c in args.channels.split(","))
    gen = StructureGuidedGenerator(channels).to(dev)
    disc = PatchDiscriminator(4 if args.tiny else 8).to(dev)
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt_g, max_lr=2e-3, total_steps=args.steps, pct_start=0.1)
    adv_from = int(0.2 * args.steps)
    history = []
    t_train = time.time()
    step = 0
    for step in range(args.steps):
        if args.max_minutes and time.time() - t_train > 60 * args.max_minutes:
            _log(f"time limit reached after {step} steps")
            break
        if step and step % 25 == 0:
            data.refresh()
        mr, ct, cl = (torch.from_numpy(a).to(dev) for a in data.batch())
        fake, edges = gen(mr)
        target_edges = edge_map(ct)
        l1 = ((fake - ct).abs() * (1.0 + W_BONE * (ct > 0.3).float())).mean()
        l_edge = (edges - target_edges).abs().mean()
        l_grad = (edge_map(fake) - target_edges).abs().mean()
        l_sem = torch.nn.functional.nll_loss(semantic_logits(fake), cl)
        loss = W_L1 * l1 + W_EDGE * l_edge + W_GRAD * l_grad + W_SEM * l_sem
        l_adv = torch.zeros(())
        if step >= adv_from:
            l_adv = ((disc(mr, fake) - 1.0) ** 2).mean()
            loss = loss + W_ADV * l_adv
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        sched.step()
        if step >= adv_from - 20:
            d_real = disc(mr, ct)
            d_fake = disc(mr, fake.detach())
            l_d = 0.5 * (((d_real - 1) ** 2).mean() + (d_fake ** 2).mean())
            opt_d.zero_grad()
            l_d.backward()
            opt_d.step()
        if step % 25 == 0 or step == args.steps - 1:
            rec = {"step": step, "l1_hu": l1.item() * 1000, "edge": l_edge.item(), "grad": l_grad.item(),
                   "semantic": l_sem.item(), "adv": l_adv.item(), "seconds": round(time.time() - t_train, 1)}
            history.append(rec)
            _log(json.dumps(rec))
    gen.eval()
    return {"generator": gen.cpu(), "steps_done": step + 1, "train_seconds": time.time() - t_train, "history": history,
            "channels": list(channels)}


def export(result: Dict[str, Any], args, command: str) -> "Any":
    import torch

    from ..export import export_onnx
    from .mumap import SOURCE
    from .synthesis import NORMALIZATION, SPACING_MM

    gen = result["generator"]
    example = torch.zeros(1, 1, 32, 32, 32)
    n_params = int(sum(p.numel() for p in gen.parameters()))
    entry = export_onnx(
        gen, [example], Path(args.out), MODEL_ID, VERSION, ["mr"], ["ct", "edges"],
        dynamic_axes={"mr": {0: "N", 2: "D", 3: "H", 4: "W"}, "ct": {0: "N", 2: "D", 3: "H", 4: "W"},
                      "edges": {0: "N", 2: "D", 3: "H", 4: "W"}},
        task="MR (any contrast) -> synthetic CT in HU, structure-guided generator (shared encoder, CT and edge "
        "decoders, edge attention gates at 3 scales)",
        spacing_mm=[SPACING_MM] * 3,
        normalization=NORMALIZATION,
        training_command=command,
        data_terms="trained only on synthetic pairs drawn from tissue maps of neurolabusc/Clinical (BSD-2) and "
        "Colin27 (mricron-data, BSD-3); the GPL avg152 templates were used for evaluation only, never for training",
        card="mr2ct.md",
        metrics={},
        write_manifest=True,
    )
    entry.extra.update({
        "parameters": n_params, "channels": result["channels"], "steps": result["steps_done"], "seed": args.seed,
        "train_seconds": round(result["train_seconds"], 1), "train_device": args.device,
        "train_threads": args.threads, "host": platform.processor() or platform.machine(),
        "mu_map": SOURCE, "model_is_tiny": bool(args.tiny),
    })
    from ..runtime import write_manifest_entry

    write_manifest_entry(Path(args.out), entry)
    return entry


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.tiny:
        args.steps = args.steps or 6
        args.patch = args.patch or 24
        args.channels = args.channels or "4,8,8"
        args.pool = args.pool or 1
    else:
        args.steps = args.steps or 700
        args.patch = args.patch or 40
        args.channels = args.channels or "8,16,32"
        args.pool = args.pool or 8
    args.patch = int(-(-args.patch // 4) * 4)
    command = "python -m medsynth.mrct.train " + " ".join(argv if argv is not None else sys.argv[1:])
    result = train(args)
    entry = export(result, args, command)
    _log(f"exported {entry.path} ({entry.path.stat().st_size / 1e6:.2f} MB, {entry.extra['parameters']} parameters)")
    if not args.no_eval and not args.tiny:
        from .evaluate import evaluate, write_card_and_metrics

        try:
            report = evaluate(model_dir=Path(args.out), data=args.data, log=_log)
        except Exception as exc:  # noqa: BLE001 - the evaluation needs ../shared/data; the model is exported anyway
            _log(f"evaluation skipped: {exc}")
        else:
            write_card_and_metrics(Path(args.out), report, entry)
    with open(Path(args.out) / f".{MODEL_ID}_history.json", "w", encoding="utf-8") as f:
        json.dump(result["history"], f)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

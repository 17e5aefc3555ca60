"""Train MetaAD (healthy FDG -> CFT -> FDG cycle) on normal controls of the simulated cohort; export; calibrate.

    python -m medsynth.metaad.train --out Resources/Models --seed 0 [--steps N] [--tiny] [--device cpu|cuda] [--data DIR]

After MetaAD (MICCAI 2024): two generators (:mod:`medsynth.pet.nets`, size ``metaad``: residual 3D U-Nets on the
4 mm grid, the 2 mm crop averaged 2 x 2 x 2) learn the healthy metabolism from **normal controls only** (NC subjects
of the training indices), from scratch. Each step, for one NC subject (left-right flip, 3 % global gain jitter):

* clean path, both directions: FDG -> G -> CFT -> F -> FDG and CFT -> F -> FDG -> G -> CFT; cycle L1 (x5);
* paired: G(FDG) is held to the subject's own CFT (the simulator gives pairs) (x5), which keeps the intermediate a
  real CFT and leaves F little room to copy the FDG through it;
* identity: F([fdg, prior_fdg]) = fdg (x1; the generators take the output tracer's prior as their second channel);
* corrupted path: the FDG is corrupted (cuboid patches set to the healthy template, i.e. masked; smooth
  multiplicative blobs; or whole atlas regions scaled by +-5..25 %) and the cycle must return the *clean* FDG
  (restoration L1 x5, weighted x3 inside the corruption), and G on the corrupted FDG must give the subject's CFT (x2);
* adversarial hinge (x0.1) with a PatchGAN on the reconstructed corrupted FDG, from 20 % of the steps.

Export: the whole cycle as one ONNX graph ``metaad-cycle`` (input: the normalised 2 mm FDG crop; outputs: the
reconstruction, whose residual is the 4 mm cycle's residual, and the synthetic CFT; float16 priors and the mask
inside the graph). Calibration (numpy + ONNX Runtime, :mod:`medsynth.metaad.calibrate`): NC statistics, score choice
and threshold on held-out calibration subjects, stored in ``metaad_stats.npz``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

VERSION = "1.0.0"
MODEL_ID = "metaad-cycle"
CITATION = (
    "MetaAD (MICCAI 2024): metabolic anomaly detection in FDG PET by a cyclic FDG -> CFT -> FDG translation "
    "trained on normal controls"
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m medsynth.metaad.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="model folder (metaad-cycle.onnx, metaad_stats.npz, manifest)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default 1500; --tiny 2)")
    p.add_argument("--tiny", action="store_true", help="tiny data, net and run (tests, < 60 s)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", help="prepared folder (python -m medsynth.pet.train --prepare) or a simulated cohort")
    p.add_argument("--subjects", type=int, default=None, help="subjects to simulate without --data (default 40; tiny 6)")
    p.add_argument("--train-fraction", type=float, default=0.6,
                   help="first fraction of the subjects whose NCs are trained on; the rest calibrate (default 0.6)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop training after this long")
    return p.parse_args(argv)


def load_training_data(args: argparse.Namespace, log=print) -> Dict[str, Any]:
    from ..pet.train import DATA_FILE, data_from_cohort, load_data, prepare

    if args.data:
        d = Path(args.data)
        return load_data(d) if (d / DATA_FILE).is_file() else data_from_cohort(d, 1, log)  # its val split is unused here
    import tempfile

    n = args.subjects or (6 if args.tiny else 40)
    with tempfile.TemporaryDirectory(prefix="medsynth-metaad-") as tmp:
        prepare(Path(tmp), n, 0, args.seed, 0.5, log)
        return load_data(Path(tmp))


def split_subjects(arrays: Dict[str, np.ndarray], train_fraction: float) -> Dict[str, List[int]]:
    n = int(arrays["fdg"].shape[0])
    n_tr = max(2, int(round(n * train_fraction)))
    grp = arrays["group"].astype(int)
    train_nc = [i for i in range(n_tr) if grp[i] == 0]
    calib = list(range(n_tr, n))
    if not train_nc or not any(grp[i] == 0 for i in calib):
        raise SystemExit(f"need normal controls both among the first {n_tr} subjects and the rest ({n} subjects)")
    return {"train_nc": train_nc, "train_all": list(range(n_tr)), "calibration": calib}


def pool(t: "Any") -> "Any":
    """2 mm crop -> the networks' 4 mm grid (2 x 2 x 2 mean)."""
    import torch.nn.functional as tf

    return tf.avg_pool3d(t, 2)


def grids(mask: np.ndarray, prior_fdg: np.ndarray, prior_cft: np.ndarray):
    """(2 mm mask, 4 mm mask, 4 mm FDG prior, 4 mm CFT prior) as torch tensors [1, 1, ...]: the one derivation that
    training and the exported graph share."""
    import torch

    m2 = torch.from_numpy(mask.astype(np.float32))[None, None]
    m4 = (pool(m2) > 0.5).float()

    def p4(a: np.ndarray):
        return pool(torch.from_numpy(a.astype(np.float32))[None, None] * m2) * m4

    return m2, m4, p4(prior_fdg), p4(prior_cft)


def corrupt(x: "Any", prior: "Any", mask: "Any", labels: "Any", region_ids: List[int], rng: np.random.Generator):
    """(corrupted FDG, weight map) on the 4 mm grid: one of masked patches (set to the healthy prior), smooth
    multiplicative blobs, or whole atlas regions scaled up or down (metabolic anomalies are regional)."""
    import torch
    import torch.nn.functional as tf

    _, _, d, h, w = x.shape
    region = torch.zeros_like(x)
    out = x.clone()
    kind = ("patch", "blob", "region")[int(rng.integers(3))]
    zz = torch.arange(d, dtype=x.dtype, device=x.device)[:, None, None]
    yy = torch.arange(h, dtype=x.dtype, device=x.device)[None, :, None]
    xx = torch.arange(w, dtype=x.dtype, device=x.device)[None, None, :]
    idx = torch.nonzero(mask[0, 0] > 0)
    for _ in range(int(rng.integers(1, 5))):
        c = idx[int(rng.integers(len(idx)))].tolist()
        amp = float(rng.uniform(0.05, 0.25)) * (1 if rng.random() < 0.5 else -1)
        if kind == "patch":
            s = rng.integers(2, 6, size=3)
            sl = tuple(slice(max(0, int(c[a] - s[a])), int(c[a] + s[a])) for a in range(3))
            out[(0, 0) + sl] = prior[(0, 0) + sl]
            region[(0, 0) + sl] = 1.0
        elif kind == "blob":
            sig = float(rng.uniform(1.5, 4.0))
            g = torch.exp(-((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) / (2 * sig * sig))
            out = out * (1.0 + amp * g[None, None])
            region = torch.maximum(region, (g > 0.2).to(x.dtype)[None, None])
        else:
            rid = int(region_ids[int(rng.integers(len(region_ids)))])
            m = tf.avg_pool3d((labels == rid).to(x.dtype), 3, 1, 1)  # soft edges (one 4 mm voxel)
            out = out * (1.0 + amp * m)
            region = torch.maximum(region, (m > 0.2).to(x.dtype))
    return out * mask, region * mask


def train(data: Dict[str, Any], args: argparse.Namespace, log=print) -> Dict[str, Any]:
    import torch
    import torch.nn.functional as tf

    from ..pet.nets import build, count_parameters
    from .core import crop_layout

    arrays, meta = data["arrays"], data["meta"]
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, int(args.threads)))
    dev = torch.device(args.device)
    rng = np.random.default_rng([args.seed, 6])
    split = split_subjects(arrays, args.train_fraction)
    size = "tiny" if args.tiny else "metaad"
    G, F, D_cft, D_fdg = build(size)
    del D_cft  # the adversarial term acts on the reconstructed FDG only
    G, F, D_fdg = (m.to(dev) for m in (G, F, D_fdg))
    vmax = meta.get("quant_vmax", {"FDG": 4.0, "CFT": 9.0})

    def deq(q, tracer):
        return (torch.from_numpy(q).to(dev).float() / 255.0) ** 2 * float(vmax[tracer])

    mask2, mask, pf, pc = (t.to(dev) for t in grids(arrays["mask"], arrays["prior_fdg"], arrays["prior_cft"]))
    labels = torch.from_numpy(np.ascontiguousarray(arrays["labels"][::2, ::2, ::2]).astype(np.float32)).to(dev)[None, None]
    region_ids = list(crop_layout()["region_ids"])
    lr = 2e-3 if args.tiny else 1e-3
    opt_g = torch.optim.Adam(list(G.parameters()) + list(F.parameters()), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D_fdg.parameters(), lr=lr / 2, betas=(0.5, 0.999))
    lam = {"cycle": 5.0, "paired_cft": 5.0, "identity": 1.0, "restore": 5.0, "restore_cft": 2.0, "adv": 0.1}
    steps = int(args.steps if args.steps is not None else (2 if args.tiny else 1500))
    limit = float(args.max_minutes) * 60 if args.max_minutes else float("inf")

    def l1(a, b, w):
        return ((a - b).abs() * w).sum() / w.sum().clamp_min(1.0)

    log(f"MetaAD ({size}, 4 mm grid {tuple(mask.shape[2:])}): G and F {count_parameters(G)} parameters each; "
        f"{len(split['train_nc'])} NC training subjects {split['train_nc']}; {steps} steps on {args.device}, "
        f"seed {args.seed}, from scratch")
    hist: List[Dict[str, Any]] = []
    run: Dict[str, float] = {}
    t0 = time.perf_counter()
    done = 0
    for step in range(steps):
        if time.perf_counter() - t0 > limit:
            log(f"  time limit after {step} steps")
            break
        s = 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
        for gr in opt_g.param_groups:
            gr["lr"] = lr * (0.02 + 0.98 * s)
        i = int(rng.choice(split["train_nc"]))
        flip = bool(rng.random() < 0.5)
        x = pool(deq(arrays["fdg"][i], "FDG")[None, None] * mask2) * mask
        c = pool(deq(arrays["cft"][i], "CFT")[None, None] * mask2) * mask
        lab = labels
        if flip:
            x, c, lab = x.flip(-1), c.flip(-1), lab.flip(-1)
        gain = float(np.exp(rng.normal(0.0, 0.03)))  # residual global scaling after the brain-mean normalisation
        x = x * gain
        xc, region = corrupt(x, pf, mask, lab, region_ids, rng)
        # clean FDG cycle; G is also held to the subject's real CFT (the simulated pairs)
        fake_c = G(torch.cat([x, pc], 1)) * mask
        rec_x = F(torch.cat([fake_c, pf], 1)) * mask
        l_cyc = l1(rec_x, x, mask)
        l_pair = l1(fake_c, c, mask)
        # corrupted FDG cycle -> the clean FDG
        fake_cc = G(torch.cat([xc, pc], 1)) * mask
        rec_xc = F(torch.cat([fake_cc, pf], 1)) * mask
        l_res = l1(rec_xc, x, mask * (1.0 + 2.0 * region))
        l_res_c = l1(fake_cc, c, mask)
        # CFT cycle and identity
        fake_x = F(torch.cat([c, pf], 1)) * mask
        rec_c = G(torch.cat([fake_x, pc], 1)) * mask
        l_cyc_c = l1(rec_c, c, mask)
        l_id = l1(F(torch.cat([x, pf], 1)) * mask, x, mask)
        l_adv = -D_fdg(rec_xc).mean()
        w_adv = lam["adv"] if step >= steps // 5 else 0.0
        loss = (lam["cycle"] * (l_cyc + l_cyc_c) + lam["paired_cft"] * l_pair + lam["restore"] * l_res
                + lam["restore_cft"] * l_res_c + lam["identity"] * l_id + w_adv * l_adv)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(G.parameters()) + list(F.parameters()), 5.0)
        opt_g.step()
        l_d = tf.relu(1.0 - D_fdg(x)).mean() + tf.relu(1.0 + D_fdg(rec_xc.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        l_d.backward()
        opt_d.step()
        for k, v in (("cycle", l_cyc), ("cycle_cft", l_cyc_c), ("paired_cft", l_pair), ("identity", l_id),
                     ("restore", l_res), ("restore_cft", l_res_c), ("adv", l_adv), ("d", l_d)):
            run[k] = run.get(k, 0.0) + float(v.detach())
        done = step + 1
        every = max(1, steps // 10)
        if done % every == 0 or done == steps:
            rec = {"step": done, "seconds": round(time.perf_counter() - t0, 1)}
            rec.update({f"loss_{k}": round(v / every, 4) for k, v in run.items()})
            hist.append(rec)
            log("  " + json.dumps(rec))
            run = {}
    seconds = time.perf_counter() - t0
    dev_name = torch.cuda.get_device_name(0) if args.device == "cuda" else (
        f"CPU ({platform.processor() or platform.machine()}), {args.threads} thread(s)")
    return {
        "G": G.cpu().eval(), "F": F.cpu().eval(), "size": size, "split": split, "history": hist,
        "training": {
            "seed": int(args.seed), "steps_planned": steps, "steps_done": done, "seconds": round(seconds, 1),
            "device": dev_name, "torch": torch.__version__, "python": platform.python_version(),
            "init": "from scratch", "grid": "4 mm grid (the 2 mm crop averaged 2 x 2 x 2)",
            "data_seed": meta.get("seed"), "train_nc_indices": [int(arrays["index"][i]) for i in split["train_nc"]],
            "calibration_indices": [int(arrays["index"][i]) for i in split["calibration"]],
            "losses": {"cycle_l1": "x5 (FDG -> CFT -> FDG and CFT -> FDG -> CFT)",
                       "paired_cft": "x5 G(FDG) vs the subject's real CFT (simulated pairs)",
                       "identity": "x1 F(FDG) = FDG",
                       "restore": "x5 corrupted FDG cycle vs clean FDG (x3 inside the corruption)",
                       "restore_cft": "x2 G(corrupted FDG) vs the subject's CFT",
                       "adversarial": "hinge x0.1 (PatchGAN on the reconstructed corrupted FDG) from 20 % of the steps"},
            "corruption": "per step one kind, 1-4 times: cuboid patches (4-10 voxels of 4 mm a side) replaced by "
                          "the healthy FDG template (masking), Gaussian blobs (sigma 1.5-4 voxels) scaling uptake by "
                          "+-5-25 %, or whole atlas regions (soft edges) scaled by +-5-25 %",
            "optimiser": f"Adam (beta1 0.5), lr {lr:g} cosine to 2 %, batch 1, left-right flips, global gain "
                         "jitter 3 %",
        },
    }


def cycle_module(G, F, prior_fdg: np.ndarray, prior_cft: np.ndarray, mask: np.ndarray):
    """The exported graph: 2 mm crop -> 4 mm cycle; ``fdg_reconstructed = fdg - up(pool(fdg) - rec_4mm)`` so the
    residual is the 4 mm cycle's residual (no 2 mm detail the 4 mm networks cannot see), ``cft`` upsampled."""
    import torch
    import torch.nn.functional as tf
    from torch import nn

    m2, m4, pf4, pc4 = grids(mask, prior_fdg, prior_cft)

    class _Cycle(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.G, self.F = G, F
            self.register_buffer("pf", pf4.half())  # float16: the graph stays small
            self.register_buffer("pc", pc4.half())
            self.register_buffer("m2", m2.to(torch.bool))
            self.register_buffer("m4", m4.to(torch.bool))

        def forward(self, fdg):
            n = fdg.shape[0]
            zero = torch.zeros((), dtype=fdg.dtype)
            in2 = lambda t: torch.where(self.m2, t, zero)  # noqa: E731  (bool masks: no float32 copies in the graph)
            in4 = lambda t: torch.where(self.m4, t, zero)  # noqa: E731
            up = lambda t: tf.interpolate(t, scale_factor=2.0, mode="trilinear", align_corners=False)  # noqa: E731
            x = in2(fdg)
            x4 = in4(tf.avg_pool3d(x, 2))
            cft = in4(self.G(torch.cat([x4, self.pc.float().expand(n, -1, -1, -1, -1)], 1)))
            rec = in4(self.F(torch.cat([cft, self.pf.float().expand(n, -1, -1, -1, -1)], 1)))
            return in2(x - up(x4 - rec)), in2(up(cft))

    return _Cycle().eval()


def export(res: Dict[str, Any], data: Dict[str, Any], out: Path, log=print):
    import torch

    from ..export import export_onnx
    from ..pet.nets import count_parameters
    from ..pet.synthesis import CROP, CROP_SHAPE, NORMALISATION
    from ..runtime import write_manifest_entry

    a = data["arrays"]
    mod = cycle_module(res["G"], res["F"], a["prior_fdg"], a["prior_cft"], a["mask"])
    tr = res["training"]
    cmd = "python -m medsynth.metaad.train --out Resources/Models --seed %d --steps %d --threads 1 --device %s%s" % (
        tr["seed"], tr["steps_planned"], "cuda" if "CPU" not in tr["device"] else "cpu",
        " --data DIR (python -m medsynth.pet.train --prepare DIR --subjects 60 --val 8 --seed 0)" if data["meta"].get(
            "subjects") == 60 else "")
    entry = export_onnx(
        mod, (torch.rand(1, 1, *CROP_SHAPE),), Path(out), MODEL_ID, VERSION, ["fdg"], ["fdg_reconstructed", "cft"],
        dynamic_axes={"fdg": {0: "N"}, "fdg_reconstructed": {0: "N"}, "cft": {0: "N"}}, atol=5e-3,
        write_manifest=False,
        task="metabolic anomaly detection in brain FDG PET (MetaAD): healthy cycle FDG -> synthetic CFT -> FDG; "
             "anomaly map = FDG minus its reconstruction",
        spacing_mm=[2.0, 2.0, 2.0],
        normalization={
            "input": f"FDG in MNI space (atlas grid), {NORMALISATION['FDG']}, cropped to atlas voxels k/j/i {CROP} "
                     "(the brain mask and both priors are inside the graph)",
            "output": "fdg_reconstructed: the healthy reconstruction, same units; cft: the intermediate synthetic "
                      "CFT (SUVR)",
            "space": "MNI ICBM152 2 mm; native inputs are registered (medsynth.pet.sbr.to_mni), maps resampled back",
        },
        training_command=cmd,
        data_terms="Trained only on simulated PET (medsynth pet-simulate; docs/pet.md, docs/metaad.md). No real "
                   "patient data. Not for clinical use.",
        card="metaad.md",
    )
    entry.extra["parameters"] = count_parameters(res["G"]) + count_parameters(res["F"])
    entry.extra["training"] = tr
    entry.extra["history_last"] = res["history"][-1] if res["history"] else None
    entry.extra["citation"] = CITATION
    entry.extra["data"] = "simulated PET only (medsynth pet-simulate); normal controls only in MetaAD's fine-tuning"
    write_manifest_entry(Path(out), entry)
    log(f"exported {entry.path} ({entry.path.stat().st_size / 1e6:.1f} MB)")
    return entry


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)

    def log(m: str) -> None:
        print(m, flush=True)

    data = load_training_data(args, log)
    res = train(data, args, log)
    out = Path(args.out)
    entry = export(res, data, out, log)
    from .calibrate import calibrate, write_card

    cal = calibrate(data, res["split"], out, log=log)
    entry.extra["calibration"] = cal["summary"]
    from ..runtime import clear_cache, write_manifest_entry
    from .calibrate import STATS_FILE
    from .core import STATS_ROLE

    entry.add_side_file(STATS_ROLE, out / STATS_FILE)  # recorded with its sha256, checked before each use
    write_manifest_entry(out, entry)
    clear_cache()
    write_card(out / "metaad.md", entry, cal)
    log(f"wrote {out / 'metaad.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

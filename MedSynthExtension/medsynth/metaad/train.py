"""Train MetaAD (healthy FDG -> CFT -> FDG cycle) on normal controls of the simulated cohort; export; calibrate.

    python -m medsynth.metaad.train --out Resources/Models --seed 0 [--steps N] [--tiny] [--device cpu|cuda] [--data DIR]

After MetaAD (MICCAI 2024): the two generators of the FDG <-> CFT CycleGAN (:mod:`medsynth.pet.nets`) learn the
healthy metabolism from **normal controls only** (NC subjects of the training indices). Each step, for one NC subject:

* clean path, both directions: FDG -> G -> CFT -> F -> FDG and CFT -> F -> FDG -> G -> CFT; cycle L1 (x5);
* identity: F([fdg, prior_fdg]) = fdg and G([cft, prior_cft]) = cft (x1; the generators take the output tracer's
  prior as their second channel, so the identity term is "given the target tracer, change nothing");
* corrupted path: the FDG is corrupted (random cuboid patches set to the healthy template's value, i.e. masked, or
  smooth noise blobs of +-8..25 % at random places) and the cycle must return the *clean* FDG (restoration L1 x5,
  weighted x3 inside the corrupted region), and G on the corrupted FDG must give the clean subject's CFT (x2);
* adversarial hinge (x0.1) with the PatchGAN of the FDG domain on the reconstructed FDG.

Initialisation: the shipped fdg2cft/cft2fdg training checkpoint (``--init``, default ``output/pet_gpu/pet_synthesis.pt``
if present; it was trained on NC *and* PD subjects, see docs/metaad.md), otherwise from scratch. Export: the whole
cycle as one ONNX graph ``metaad-cycle`` (input: normalised FDG crop; outputs: reconstructed FDG and synthetic CFT;
priors and mask inside the graph). Calibration (numpy + ONNX Runtime, :mod:`medsynth.metaad.calibrate`): NC
statistics, score choice and threshold on held-out calibration subjects, stored in ``metaad_stats.npz``.
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
DEFAULT_INIT = ("output/pet_gpu/pet_synthesis.pt", ".device/pet_gpu/pet_synthesis.pt")
CITATION = (
    "MetaAD (MICCAI 2024): metabolic anomaly detection in FDG PET by a cyclic FDG -> CFT -> FDG translation "
    "trained on normal controls"
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m medsynth.metaad.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="model folder (metaad-cycle.onnx, metaad_stats.npz, manifest)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default 60; --tiny 2)")
    p.add_argument("--tiny", action="store_true", help="tiny data, net and run (tests, < 60 s)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", help="prepared folder (python -m medsynth.pet.train --prepare) or a simulated cohort")
    p.add_argument("--subjects", type=int, default=None, help="subjects to simulate without --data (default 40; tiny 6)")
    p.add_argument("--train-fraction", type=float, default=0.6,
                   help="first fraction of the subjects whose NCs are trained on; the rest calibrate (default 0.6)")
    p.add_argument("--init", default=None, help="FDG<->CFT checkpoint to start from ('none': from scratch)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop training after this long")
    return p.parse_args(argv)


def _find_init(arg: Optional[str]) -> Optional[Path]:
    if arg and arg.lower() == "none":
        return None
    if arg:
        return Path(arg)
    root = Path(__file__).resolve().parents[3]
    for c in DEFAULT_INIT:
        for base in (Path.cwd(), root):
            if (base / c).is_file():
                return base / c
    return None


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


def corrupt(x: "Any", prior: "Any", mask: "Any", rng: np.random.Generator):
    """(corrupted FDG, weight map): random masked patches (set to the healthy prior) or smooth noise blobs."""
    import torch

    _, _, d, h, w = x.shape
    region = torch.zeros_like(x)
    out = x.clone()
    kind = "patch" if rng.random() < 0.5 else "blob"
    zz = torch.arange(d, dtype=x.dtype, device=x.device)[:, None, None]
    yy = torch.arange(h, dtype=x.dtype, device=x.device)[None, :, None]
    xx = torch.arange(w, dtype=x.dtype, device=x.device)[None, None, :]
    idx = torch.nonzero(mask[0, 0] > 0)
    for _ in range(int(rng.integers(1, 4))):
        c = idx[int(rng.integers(len(idx)))].tolist()
        if kind == "patch":
            s = rng.integers(4, 10, size=3)
            sl = tuple(slice(max(0, int(c[a] - s[a])), int(c[a] + s[a])) for a in range(3))
            out[(0, 0) + sl] = prior[(0, 0) + sl]
            region[(0, 0) + sl] = 1.0
        else:
            sig = float(rng.uniform(3.0, 7.0))
            amp = float(rng.uniform(0.08, 0.25)) * (1 if rng.random() < 0.5 else -1)
            g = torch.exp(-((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) / (2 * sig * sig))
            out = out * (1.0 + amp * g[None, None])
            region = torch.maximum(region, (g > 0.2).to(x.dtype)[None, None])
    return out * mask, region * mask


def train(data: Dict[str, Any], args: argparse.Namespace, log=print) -> Dict[str, Any]:
    import torch
    import torch.nn.functional as tf

    from ..pet.nets import build, count_parameters

    arrays, meta = data["arrays"], data["meta"]
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, int(args.threads)))
    dev = torch.device(args.device)
    rng = np.random.default_rng([args.seed, 6])
    split = split_subjects(arrays, args.train_fraction)
    init = _find_init(args.init)
    size = "tiny" if args.tiny else "base"
    ck0 = None
    if init is not None and not args.tiny:
        ck0 = torch.load(str(init), map_location="cpu", weights_only=False)
        size = ck0["size"]
    G, F, D_cft, D_fdg = build(size)
    if ck0 is not None:
        G.load_state_dict(ck0["G"])
        F.load_state_dict(ck0["F"])
        log(f"initialised G and F from {init} ({ck0['training'].get('steps_done')} steps, {ck0['training'].get('device')})")
    else:
        log("initialised from scratch" + (" (--tiny)" if args.tiny else " (no FDG<->CFT checkpoint found)"))
    G, F, D_cft, D_fdg = (m.to(dev) for m in (G, F, D_cft, D_fdg))
    vmax = meta.get("quant_vmax", {"FDG": 4.0, "CFT": 9.0})

    def deq(q, tracer):
        return (torch.from_numpy(q).to(dev).float() / 255.0) ** 2 * float(vmax[tracer])

    mask = torch.from_numpy(arrays["mask"].astype(np.float32)).to(dev)[None, None]
    pf = torch.from_numpy(arrays["prior_fdg"].astype(np.float32)).to(dev)[None, None]
    pc = torch.from_numpy(arrays["prior_cft"].astype(np.float32)).to(dev)[None, None]
    opt_g = torch.optim.Adam(list(G.parameters()) + list(F.parameters()), lr=1e-4 if ck0 else 5e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D_fdg.parameters(), lr=1e-4, betas=(0.5, 0.999))
    lam = {"cycle": 5.0, "identity": 1.0, "restore": 5.0, "restore_cft": 2.0, "adv": 0.1}
    steps = int(args.steps if args.steps is not None else (2 if args.tiny else 60))
    limit = float(args.max_minutes) * 60 if args.max_minutes else float("inf")

    def l1(a, b, w):
        return ((a - b).abs() * w).sum() / w.sum().clamp_min(1.0)

    log(f"MetaAD ({size}): G and F {count_parameters(G)} parameters each; {len(split['train_nc'])} NC training "
        f"subjects {split['train_nc']}; {steps} steps on {args.device}, seed {args.seed}")
    hist: List[Dict[str, Any]] = []
    run: Dict[str, float] = {}
    t0 = time.perf_counter()
    done = 0
    base_lr = [g["lr"] for g in opt_g.param_groups]
    for step in range(steps):
        if time.perf_counter() - t0 > limit:
            log(f"  time limit after {step} steps")
            break
        s = 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
        for gr, b in zip(opt_g.param_groups, base_lr):
            gr["lr"] = b * (0.1 + 0.9 * s)
        i = int(rng.choice(split["train_nc"]))
        flip = bool(rng.random() < 0.5)
        x = deq(arrays["fdg"][i], "FDG")[None, None] * mask
        c = deq(arrays["cft"][i], "CFT")[None, None] * mask
        if flip:
            x, c = x.flip(-1), c.flip(-1)
        xc, region = corrupt(x, pf, mask, rng)
        # clean FDG cycle
        fake_c = G(torch.cat([x, pc], 1)) * mask
        rec_x = F(torch.cat([fake_c, pf], 1)) * mask
        l_cyc = l1(rec_x, x, mask)
        # corrupted FDG cycle -> clean FDG
        fake_cc = G(torch.cat([xc, pc], 1)) * mask
        rec_xc = F(torch.cat([fake_cc, pf], 1)) * mask
        l_res = l1(rec_xc, x, mask * (1.0 + 2.0 * region))
        l_res_c = l1(fake_cc, c, mask)
        loss = lam["cycle"] * l_cyc + lam["restore"] * l_res + lam["restore_cft"] * l_res_c
        if step % 2 == 0:  # the CFT direction and identity every other step (CPU budget)
            fake_x = F(torch.cat([c, pf], 1)) * mask
            rec_c = G(torch.cat([fake_x, pc], 1)) * mask
            l_cyc_c = l1(rec_c, c, mask)
            l_id = l1(F(torch.cat([x, pf], 1)) * mask, x, mask)
            loss = loss + lam["cycle"] * l_cyc_c + lam["identity"] * l_id
        else:
            l_cyc_c = l_id = torch.zeros(())
        l_adv = -D_fdg(rec_xc).mean()
        w_adv = lam["adv"] if step >= steps // 5 else 0.0
        loss = loss + w_adv * l_adv
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(G.parameters()) + list(F.parameters()), 5.0)
        opt_g.step()
        l_d = tf.relu(1.0 - D_fdg(x)).mean() + tf.relu(1.0 + D_fdg(rec_xc.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        l_d.backward()
        opt_d.step()
        for k, v in (("cycle", l_cyc), ("cycle_cft", l_cyc_c), ("identity", l_id), ("restore", l_res),
                     ("restore_cft", l_res_c), ("adv", l_adv), ("d", l_d)):
            run[k] = run.get(k, 0.0) + float(v.detach())
        done = step + 1
        every = max(1, steps // 6)
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
            "init": str(init) if ck0 is not None else "from scratch",
            "init_note": ("the FDG<->CFT CycleGAN checkpoint was trained on NC and PD simulated subjects "
                          "(paired/unpaired); MetaAD fine-tunes it on NC only") if ck0 is not None else "",
            "data_seed": meta.get("seed"), "train_nc_indices": [int(arrays["index"][i]) for i in split["train_nc"]],
            "calibration_indices": [int(arrays["index"][i]) for i in split["calibration"]],
            "losses": {"cycle_l1": "x5 (FDG and CFT cycles; CFT cycle every other step)", "identity": "x1",
                       "restore": "x5 corrupted FDG cycle vs clean FDG (x3 inside the corruption)",
                       "restore_cft": "x2 G(corrupted FDG) vs the subject's CFT",
                       "adversarial": "hinge x0.1 (PatchGAN, FDG) from 20 % of the steps"},
            "corruption": "per step one of: 1-3 cuboid patches (8-18 voxels a side) replaced by the healthy FDG "
                          "template (masking), or 1-3 Gaussian blobs (sigma 3-7 voxels) scaling uptake by +-8-25 %",
            "optimiser": f"Adam (beta1 0.5), lr {base_lr[0]:g} cosine to 10 %, batch 1, left-right flips",
        },
    }


def cycle_module(G, F, prior_fdg: np.ndarray, prior_cft: np.ndarray, mask: np.ndarray):
    import torch
    from torch import nn

    class _Cycle(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.G, self.F = G, F
            self.register_buffer("pf", torch.from_numpy(prior_fdg.astype(np.float32))[None, None])
            self.register_buffer("pc", torch.from_numpy(prior_cft.astype(np.float32))[None, None])
            self.register_buffer("m", torch.from_numpy(mask.astype(np.float32))[None, None])

        def forward(self, fdg):
            n = fdg.shape[0]
            x = fdg * self.m
            cft = self.G(torch.cat([x, self.pc.expand(n, -1, -1, -1, -1)], 1)) * self.m
            rec = self.F(torch.cat([cft, self.pf.expand(n, -1, -1, -1, -1)], 1)) * self.m
            return rec, cft

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
    entry.extra["stats_file"] = "metaad_stats.npz"
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

    write_manifest_entry(out, entry)
    clear_cache()
    write_card(out / "metaad.md", entry, cal)
    log(f"wrote {out / 'metaad.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train the FDG <-> CFT generators on simulated PET, export them to ONNX with manifest entries and model cards.

    python -m medsynth.pet.train --prepare .device/pet --subjects 60 --seed 0          # simulate, write arrays
    python -m medsynth.pet.train --data .device/pet --save OUT --device cuda --seed 0  # train -> OUT/pet_synthesis.pt
    python -m medsynth.pet.train --export OUT/pet_synthesis.pt --out Resources/Models  # ONNX, manifest, cards, metrics
    python -m medsynth.pet.train --out Resources/Models --seed 0 [--subjects N] [--steps N] [--size small] [--tiny]

Data: subjects of ``medsynth pet-simulate`` (the simulator of :mod:`medsynth.pet.simulate`), seed ``--seed``, indices
``0 .. subjects + val - 1`` (the same subjects as ``medsynth pet-simulate --subjects <subjects + val> --seed <seed>``);
the last ``--val`` of them are held out for validation, and the evaluation uses another seed (never trained on).
``--prepare`` writes ``pet_pairs.npz.bz2`` (uint8 arrays: sqrt-quantised, normalised, brain-masked MNI crops) and
``meta.json``; training from such a folder needs only numpy, torch and MONAI (no SimpleITK), so it runs on a GPU
machine without the rest of the engine's dependencies.

Training as in the paper (a CycleGAN with paired terms): G (FDG -> CFT) and F (CFT -> FDG), residual 3D U-Nets
(:mod:`medsynth.pet.nets`); losses: paired L1 where a subject's pair is used (both directions; the striatum weighted
x3), hinge adversarial with a 3D PatchGAN per tracer, cycle L1 (F(G(fdg)) = fdg, G(F(cft)) = cft). A fraction of the
training subjects (``--unpaired-fraction``) is used unpaired: half contribute only their FDG, half only their CFT.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

VERSION = "1.0.0"
DATA_FILE = "pet_pairs.npz.bz2"  # an uncompressed .npz, bz2-compressed (30 % smaller than zip)
META_FILE = "meta.json"
CHECKPOINT = "pet_synthesis.pt"
DATA_FORMAT = 1
CITATION = (
    "EJNMMI 2025: synthesis of 11C-CFT (dopamine transporter) PET from 18F-FDG PET for the diagnosis of Parkinson's "
    "disease with a residual U-Net generator trained with paired, adversarial and cycle-consistency losses"
)
Log = Callable[[str], None]

# quantisation of the stored arrays (see medsynth.pet.synthesis.QUANT_VMAX; repeated so the GPU side needs no SimpleITK)
_QUANT_VMAX = {"FDG": 4.0, "CFT": 9.0}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m medsynth.pet.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--prepare", metavar="DIR", help="only simulate the training subjects into DIR (arrays) and stop")
    p.add_argument("--data", metavar="DIR", help="train from a prepared folder (pet_pairs.npz.bz2) or a simulated cohort")
    p.add_argument("--save", metavar="DIR", help="write the torch checkpoint (and the training log) into DIR")
    p.add_argument("--export", metavar="CKPT", help="export a checkpoint to --out (ONNX, manifest, cards) and stop")
    p.add_argument("--out", help="model folder: export the trained generators here (manifest.json is updated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subjects", type=int, default=None, help="training subjects to simulate (default 60; --tiny 4)")
    p.add_argument("--val", type=int, default=None, help="validation subjects simulated after them (default 8; tiny 2)")
    p.add_argument("--pd-fraction", type=float, default=0.5)
    p.add_argument("--unpaired-fraction", type=float, default=0.2, help="training subjects used unpaired (default 0.2)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default 2000; small 300; tiny 4)")
    p.add_argument("--batch", type=int, default=None, help="volumes per domain and step (default 4 on cuda, else 1)")
    p.add_argument("--size", choices=("tiny", "small", "base"), default=None, help="network size (default base)")
    p.add_argument("--tiny", action="store_true", help="tiny data, net and run (tests, < 1 min)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--max-minutes", type=float, default=None, help="stop training (and save) after this long")
    p.add_argument("--eval-every", type=int, default=None, help="validate every N steps (default steps/5)")
    p.add_argument("--eval-cohort", help="evaluate on this simulated cohort at export (default: simulate one)")
    p.add_argument("--eval-subjects", type=int, default=40, help="held-out subjects simulated for the evaluation")
    p.add_argument("--eval-seed", type=int, default=1, help="seed of the simulated evaluation cohort (not --seed)")
    p.add_argument("--no-eval", action="store_true", help="export without the evaluation (no metrics)")
    return p.parse_args(argv)


def defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the size-dependent defaults."""
    if args.tiny:
        args.size = args.size or "tiny"
    args.size = args.size or "base"
    tiny = args.size == "tiny"
    if args.subjects is None:
        args.subjects = 4 if tiny else 60
    if args.val is None:
        args.val = 2 if tiny else 8
    if args.steps is None:
        args.steps = {"tiny": 4, "small": 300, "base": 2000}[args.size]
    if args.batch is None:
        args.batch = 4 if args.device == "cuda" else 1
    if args.eval_every is None:
        args.eval_every = max(1, args.steps // 5)
    return args


# --------------------------------------------------------------------------- data (simulation side: needs the engine)
def _quantise(x: np.ndarray, tracer: str) -> np.ndarray:
    v = _QUANT_VMAX[tracer]
    return np.round(np.sqrt(np.clip(x, 0.0, v) / v) * 255.0).astype(np.uint8)


def dequantise(q: np.ndarray, tracer: str) -> np.ndarray:
    return ((q.astype(np.float32) / 255.0) ** 2 * _QUANT_VMAX[tracer]).astype(np.float32)


def _subject_arrays(fdg: np.ndarray, cft: np.ndarray) -> Dict[str, Any]:
    from .synthesis import brain_mask, crop, normalise

    m = brain_mask()
    f, _ = normalise(fdg, "FDG")
    c, _ = normalise(cft, "CFT")
    clip = {"FDG": float((f[m] > _QUANT_VMAX["FDG"]).mean()), "CFT": float((c[m] > _QUANT_VMAX["CFT"]).mean())}
    return {
        "fdg": _quantise(crop(np.where(m, f, 0.0)), "FDG"),
        "cft": _quantise(crop(np.where(m, c, 0.0)), "CFT"),
        "clipped": clip,
    }


def _write_data(folder: Path, arrays: Dict[str, np.ndarray], meta: Dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    import bz2

    tmp = folder / (".partial." + DATA_FILE)
    with bz2.open(tmp, "wb", compresslevel=9) as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, folder / DATA_FILE)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder / DATA_FILE


def _common_arrays() -> Dict[str, np.ndarray]:
    from .atlas import load_atlas
    from .synthesis import brain_mask, crop, prior

    return {
        "mask": crop(brain_mask()).astype(np.uint8),
        "labels": crop(load_atlas().labels.array).astype(np.uint8),
        "prior_fdg": prior("FDG").astype(np.float16),
        "prior_cft": prior("CFT").astype(np.float16),
    }


def _meta(**kw: Any) -> Dict[str, Any]:
    from .synthesis import CROP, NORMALISATION

    meta = {
        "format": DATA_FORMAT,
        "what": "simulated FDG/CFT PET pairs (medsynth.pet.simulate), MNI 2 mm, cropped to the networks' box",
        "crop_kji": [list(c) for c in CROP],
        "normalisation": NORMALISATION,
        "mask": "atlas brain dilated by 2 voxels; voxels outside are 0",
        "storage": "uint8 q = round(255 sqrt(clip(x, 0, vmax) / vmax)); x = (q / 255)^2 vmax",
        "quant_vmax": _QUANT_VMAX,
    }
    meta.update(kw)
    return meta


def prepare(
    folder: Path, subjects: int, val: int, seed: int, pd_fraction: float = 0.5, log: Log = print
) -> Path:
    """Simulate ``subjects + val`` subjects (seed, indices 0..) and write them as arrays into ``folder``."""
    from .atlas import load_atlas
    from .simulate import cohort_groups, draw_params, simulate_subject, subject_rng

    n = int(subjects) + int(val)
    if int(subjects) < 2:
        raise SystemExit("--subjects must be at least 2")
    atlas = load_atlas()
    groups = cohort_groups(n, pd_fraction, seed)
    fdg, cft, stage, pp_true, clipped = [], [], [], [], []
    t0 = time.perf_counter()
    for i in range(n):
        rng = subject_rng(seed, i)
        params = draw_params(rng, groups[i], f"sub-{i + 1:03d}")
        params.seed = (seed, i)
        sub = simulate_subject(params, rng, atlas)
        a = _subject_arrays(sub.fdg.array, sub.cft.array)
        fdg.append(a["fdg"])
        cft.append(a["cft"])
        clipped.append(a["clipped"])
        stage.append(float(params.stage))
        pp_true.append(min(sub.expected_sbr["putamen_posterior_L"], sub.expected_sbr["putamen_posterior_R"]))
        if (i + 1) % 5 == 0 or i + 1 == n:
            log(f"  simulated {i + 1}/{n} ({time.perf_counter() - t0:.0f} s)")
    arrays = dict(
        fdg=np.stack(fdg),
        cft=np.stack(cft),
        group=np.array([g == "PD" for g in groups], np.uint8),
        stage=np.array(stage, np.float32),
        sbr_true_pp_min=np.array(pp_true, np.float32),
        index=np.arange(n, dtype=np.int32),
        **_common_arrays(),
    )
    meta = _meta(
        seed=int(seed),
        subjects=int(subjects),
        val=int(val),
        pd_fraction=float(pd_fraction),
        groups=list(groups),
        same_as=f"medsynth pet-simulate --subjects {n} --seed {seed} --pd-fraction {pd_fraction}",
        train_indices=[0, int(subjects) - 1],
        val_indices=[int(subjects), n - 1],
        max_clipped_fraction={t: max(c[t] for c in clipped) for t in ("FDG", "CFT")},
    )
    path = _write_data(Path(folder), arrays, meta)
    log(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {n} subjects) and {Path(folder) / META_FILE}")
    return path


def data_from_cohort(folder: Path, val: int, log: Log = print) -> Dict[str, Any]:
    """Arrays from a simulated cohort folder (``medsynth pet-simulate``): the last ``val`` rows are validation."""
    from ..io import read_volume
    from .simulate import read_cohort

    rows = read_cohort(folder)
    n = len(rows)
    if n - val < 2:
        raise SystemExit(f"{folder} holds {n} subjects: too few for {val} validation subjects")
    fdg, cft = [], []
    for i, r in enumerate(rows):
        a = _subject_arrays(read_volume(folder / r["fdg_file"]).array, read_volume(folder / r["cft_file"]).array)
        fdg.append(a["fdg"])
        cft.append(a["cft"])
    log(f"read {n} subjects from {folder}")
    seeds = {int(r["seed"]) for r in rows}
    arrays = dict(
        fdg=np.stack(fdg),
        cft=np.stack(cft),
        group=np.array([r["group"] == "PD" for r in rows], np.uint8),
        stage=np.array([float(r["stage"]) for r in rows], np.float32),
        sbr_true_pp_min=np.array(
            [min(float(r["sbr_true_putamen_posterior_L"]), float(r["sbr_true_putamen_posterior_R"])) for r in rows],
            np.float32,
        ),
        index=np.array([int(r["index"]) for r in rows], np.int32),
        **_common_arrays(),
    )
    meta = _meta(
        seed=seeds.pop() if len(seeds) == 1 else None,
        subjects=n - val,
        val=val,
        groups=[r["group"] for r in rows],
        source=str(folder),
        train_indices=[int(arrays["index"][0]), int(arrays["index"][n - val - 1])],
        val_indices=[int(arrays["index"][n - val]), int(arrays["index"][-1])],
    )
    return {"arrays": arrays, "meta": meta}


def load_data(folder: Path) -> Dict[str, Any]:
    """A prepared folder (numpy only)."""
    import bz2
    import io

    folder = Path(folder)
    with bz2.open(folder / DATA_FILE, "rb") as fh:
        buf = io.BytesIO(fh.read())
    with np.load(buf) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads((folder / META_FILE).read_text())
    if meta.get("format") != DATA_FORMAT:
        raise SystemExit(f"{folder / META_FILE}: data format {meta.get('format')}, expected {DATA_FORMAT}")
    return {"arrays": arrays, "meta": meta}


# --------------------------------------------------------------------------- training (numpy + torch + MONAI only)
def _split(meta: Dict[str, Any], n: int, unpaired_fraction: float, seed: int) -> Dict[str, List[int]]:
    n_val = int(meta["val"])
    train = list(range(n - n_val))
    val = list(range(n - n_val, n))
    rng = np.random.default_rng([seed, 7])
    order = [int(i) for i in rng.permutation(train)]
    n_unp = int(round(len(train) * float(unpaired_fraction)))
    n_unp -= n_unp % 2
    fdg_only = sorted(order[: n_unp // 2])
    cft_only = sorted(order[n_unp // 2 : n_unp])
    paired = sorted(order[n_unp:])
    return {"paired": paired, "fdg_only": fdg_only, "cft_only": cft_only, "val": val}


def _auc_lower_is_positive(neg: List[float], pos: List[float]) -> Optional[float]:
    if not neg or not pos:
        return None
    a = np.asarray(neg)[:, None]
    b = np.asarray(pos)[None, :]
    return float(((a > b).sum() + 0.5 * (a == b).sum()) / (a.size * b.size))


def train(data: Dict[str, Any], args: argparse.Namespace, log: Log = print) -> Dict[str, Any]:
    """Train G and F; returns the checkpoint dict (state dicts, configuration, log)."""
    import torch
    import torch.nn.functional as tf

    from .nets import SIZES, build, count_parameters

    arrays, meta = data["arrays"], data["meta"]
    dev = torch.device(args.device)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, int(args.threads)))
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    rng = np.random.default_rng(args.seed)
    n = int(arrays["fdg"].shape[0])
    split = _split(meta, n, args.unpaired_fraction, args.seed)
    pool_a = sorted(split["paired"] + split["fdg_only"])
    pool_b = sorted(split["paired"] + split["cft_only"])
    paired = set(split["paired"])

    vmax = meta.get("quant_vmax", _QUANT_VMAX)

    def deq(q: "torch.Tensor", tracer: str) -> "torch.Tensor":
        return (q.float() / 255.0) ** 2 * float(vmax[tracer])

    fdg_q = torch.from_numpy(arrays["fdg"]).to(dev)
    cft_q = torch.from_numpy(arrays["cft"]).to(dev)
    mask = torch.from_numpy(arrays["mask"].astype(np.float32)).to(dev)[None, None]
    labels = torch.from_numpy(arrays["labels"].astype(np.int64)).to(dev)
    striatum = ((labels >= 1) & (labels <= 6)).float()[None, None]
    striatum = (tf.max_pool3d(striatum, 3, 1, 1) > 0).float()
    weight = mask * (1.0 + 2.0 * striatum)
    prior_fdg = torch.from_numpy(arrays["prior_fdg"].astype(np.float32)).to(dev)[None, None]
    prior_cft = torch.from_numpy(arrays["prior_cft"].astype(np.float32)).to(dev)[None, None]

    G, F, D_cft, D_fdg = (m.to(dev) for m in build(args.size))
    opt_g = torch.optim.Adam(list(G.parameters()) + list(F.parameters()), lr=5e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(list(D_cft.parameters()) + list(D_fdg.parameters()), lr=2e-4, betas=(0.5, 0.999))
    lam = {"pair": 10.0, "cycle": 5.0, "adv": 0.1}
    adv_start, adv_ramp = 0.2, 0.1
    steps, batch = int(args.steps), int(args.batch)
    limit_s = float(args.max_minutes) * 60.0 if args.max_minutes else float("inf")
    use_amp = args.device == "cuda"
    log(
        f"FDG<->CFT CycleGAN ({args.size}): G and F {count_parameters(G)} parameters each, D {count_parameters(D_cft)}; "
        f"{len(split['paired'])} paired, {len(split['fdg_only'])} FDG-only, {len(split['cft_only'])} CFT-only, "
        f"{len(split['val'])} validation subjects; {steps} steps x batch {batch} on {args.device}, seed {args.seed}"
    )

    def augment(x: "torch.Tensor", flip: bool, shift: List[int]) -> "torch.Tensor":
        if flip:
            x = x.flip(-1)
        return torch.roll(x, shifts=shift, dims=(-3, -2, -1))

    def batch_of(idx: List[int]):
        f, c = [], []
        for i in idx:
            flip = bool(rng.random() < 0.5)
            shift = [int(s) for s in rng.integers(-2, 3, size=3)]
            f.append(augment(deq(fdg_q[i], "FDG"), flip, shift))
            c.append(augment(deq(cft_q[i], "CFT"), flip, shift))
        return torch.stack(f)[:, None] * mask, torch.stack(c)[:, None] * mask

    def wl1(a, b, w, sel):
        per = ((a - b).abs() * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1e-6)
        return (per * sel).sum() / sel.sum().clamp_min(1.0)

    def hinge_d(real, fake):
        return tf.relu(1.0 - real).mean() + tf.relu(1.0 + fake).mean()

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else torch.autocast("cpu", enabled=False)

    def validate() -> Dict[str, Any]:
        G.eval()
        l1s, pp_syn, pp_true = [], [], []
        lab = labels
        occ = (lab == 18) | (lab == 19)
        with torch.no_grad(), autocast():
            for i in split["val"]:
                f = deq(fdg_q[i], "FDG")[None, None] * mask
                c = deq(cft_q[i], "CFT")[None, None] * mask
                y = (G(torch.cat([f, prior_cft.expand_as(f)], 1)) * mask).float()
                l1s.append(float(wl1(y, c, mask, torch.ones(1, device=dev))))
                for img, out in ((y[0, 0], pp_syn), (c[0, 0], pp_true)):
                    ref = img[occ].mean()
                    out.append(min(float(img[lab == k].mean() / ref - 1.0) for k in (5, 6)))
        G.train()
        grp = [int(arrays["group"][i]) for i in split["val"]]
        res: Dict[str, Any] = {"val_l1_suvr": round(float(np.mean(l1s)), 4)}
        if len(set(grp)) == 2:
            neg = [v for v, g in zip(pp_syn, grp) if g == 0]
            pos = [v for v, g in zip(pp_syn, grp) if g == 1]
            res["val_auc_pp_synthetic"] = _auc_lower_is_positive(neg, pos)
        res["val_pp_sbr_mean_abs_error"] = round(float(np.mean(np.abs(np.array(pp_syn) - np.array(pp_true)))), 4)
        return res

    history: List[Dict[str, Any]] = []
    t0 = time.perf_counter()
    run = {k: 0.0 for k in ("pair", "cycle", "adv", "d")}
    nrun = 0
    done = 0
    last_save = t0
    for step in range(steps):
        elapsed = time.perf_counter() - t0
        if elapsed > limit_s:
            log(f"  time limit reached after {step} steps ({elapsed:.0f} s)")
            break
        frac = max(step / steps, elapsed / limit_s if math.isfinite(limit_s) else 0.0)
        warm = min(1.0, (step + 1) / 50.0)
        lr_scale = warm * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0))))
        for opt, base in ((opt_g, 5e-4), (opt_d, 2e-4)):
            for gr in opt.param_groups:
                gr["lr"] = base * lr_scale
        w_adv = lam["adv"] * min(1.0, max(0.0, (frac - adv_start) / adv_ramp))
        ia = [int(v) for v in rng.choice(pool_a, batch)]
        ib = [int(v) for v in rng.choice(pool_b, batch)]
        fa, ca = batch_of(ia)
        fb, cb = batch_of(ib)
        sel_a = torch.tensor([1.0 if i in paired else 0.0 for i in ia], device=dev)
        sel_b = torch.tensor([1.0 if i in paired else 0.0 for i in ib], device=dev)
        pc, pf = prior_cft.expand_as(fa), prior_fdg.expand_as(fa)
        with autocast():
            fake_cft = G(torch.cat([fa, pc], 1)) * mask
            rec_fdg = F(torch.cat([fake_cft, pf], 1)) * mask
            fake_fdg = F(torch.cat([cb, pf], 1)) * mask
            rec_cft = G(torch.cat([fake_fdg, pc], 1)) * mask
            l_pair = wl1(fake_cft.float(), ca, weight, sel_a) + wl1(fake_fdg.float(), fb, weight, sel_b)
            ones = torch.ones(batch, device=dev)
            l_cyc = wl1(rec_fdg.float(), fa, mask, ones) + wl1(rec_cft.float(), cb, mask, ones)
            loss = lam["pair"] * l_pair + lam["cycle"] * l_cyc
            l_adv = torch.zeros((), device=dev)
            if w_adv > 0:
                l_adv = -D_cft(fake_cft).float().mean() - D_fdg(fake_fdg).float().mean()
                loss = loss + w_adv * l_adv
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(G.parameters()) + list(F.parameters()), 5.0)
        opt_g.step()
        l_d = torch.zeros(())
        if frac >= adv_start - 0.05:
            with autocast():
                l_d = hinge_d(D_cft(cb).float(), D_cft(fake_cft.detach()).float()) + hinge_d(
                    D_fdg(fa).float(), D_fdg(fake_fdg.detach()).float()
                )
            opt_d.zero_grad(set_to_none=True)
            l_d.backward()
            opt_d.step()
        for k, v in (("pair", l_pair), ("cycle", l_cyc), ("adv", l_adv), ("d", l_d)):
            run[k] += float(v.detach())
        nrun += 1
        done = step + 1
        if done % args.eval_every == 0 or done == steps:
            rec = {"step": done, "seconds": round(time.perf_counter() - t0, 1)}
            rec.update({f"loss_{k}": round(v / nrun, 4) for k, v in run.items()})
            rec.update(validate())
            history.append(rec)
            log("  " + json.dumps(rec))
            run = {k: 0.0 for k in run}
            nrun = 0
        if args.save and time.perf_counter() - last_save > 90:
            _save(_checkpoint(G, F, args, meta, split, history, done, time.perf_counter() - t0, lam), Path(args.save))
            last_save = time.perf_counter()
    seconds = time.perf_counter() - t0
    if not history or history[-1]["step"] != done:
        rec = {"step": done, "seconds": round(seconds, 1)}
        rec.update(validate())
        history.append(rec)
        log("  " + json.dumps(rec))
    return _checkpoint(G, F, args, meta, split, history, done, seconds, lam)


def _checkpoint(G, F, args, meta, split, history, done, seconds, lam) -> Dict[str, Any]:
    import torch

    from .nets import SIZES, count_parameters

    dev_name = "cpu"
    if args.device == "cuda":
        dev_name = torch.cuda.get_device_name(0)
    else:
        dev_name = f"CPU ({platform.processor() or platform.machine()}), {args.threads} thread(s)"
    return {
        "format": 1,
        "size": args.size,
        "architecture": {k: list(v) if isinstance(v, tuple) else v for k, v in SIZES[args.size].items()},
        "G": {k: v.detach().cpu() for k, v in G.state_dict().items()},
        "F": {k: v.detach().cpu() for k, v in F.state_dict().items()},
        "training": {
            "seed": int(args.seed),
            "data_seed": meta.get("seed"),
            "subjects_train": int(meta["subjects"]),
            "subjects_val": int(meta["val"]),
            "train_indices": meta.get("train_indices"),
            "val_indices": meta.get("val_indices"),
            "split": split,
            "unpaired_fraction": float(args.unpaired_fraction),
            "steps_planned": int(args.steps),
            "steps_done": int(done),
            "batch": int(args.batch),
            "seconds": round(float(seconds), 1),
            "device": dev_name,
            "losses": {
                "paired_l1": f"x{lam['pair']:g}, weight 3 in the striatum (dilated 2 mm), 1 elsewhere in the mask",
                "cycle_l1": f"x{lam['cycle']:g}",
                "adversarial": f"hinge, x{lam['adv']:g}, ramped in from 20 % to 30 % of training",
            },
            "optimiser": "Adam (beta1 0.5), G/F lr 5e-4, D lr 2e-4, 50-step warm-up then cosine to 5 %",
            "augmentation": "left-right flip, shifts of up to 2 voxels (4 mm) per axis",
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "data_meta": {k: v for k, v in meta.items() if k not in ("groups",)},
        "history": history,
    }


def _save(ck: Dict[str, Any], folder: Path) -> Path:
    from ..export import save_checkpoint_file

    save_checkpoint_file(ck, folder / CHECKPOINT)  # tensors and plain types: loads with weights_only=True
    (folder / "train_log.json").write_text(
        json.dumps({"training": ck["training"], "history": ck["history"]}, indent=2) + "\n"
    )
    return folder / CHECKPOINT


# --------------------------------------------------------------------------- export (engine side)
DATA_TERMS = (
    "Trained only on simulated PET made by MedSynth's simulator (medsynth.pet.simulate: MNI ICBM152 2009a GM/WM maps, "
    "AAL regions, Colin27 head outline; uptake ratios from the literature listed in docs/pet.md, partly chosen). "
    "No real patient data. Not for clinical use."
)


def export(ckpt_path: Path, out: Path, args: argparse.Namespace, log: Log = print) -> Dict[str, Any]:
    """ONNX + manifest entries for both generators, the evaluation (unless --no-eval), the model cards."""
    import torch

    from ..export import export_onnx
    from ..runtime import add_user_model_dir, builtin_model_dir, clear_cache, write_manifest_entry
    from .nets import build_generator, count_parameters
    from .synthesis import CROP, CROP_SHAPE, NORMALISATION

    from ..export import load_checkpoint_file

    ck = load_checkpoint_file(ckpt_path)  # torch.load(weights_only=True)
    tr = ck["training"]
    out = Path(out)
    command = _training_command(ck)
    entries = {}
    for mid, key, (tin, tout) in (("fdg2cft", "G", ("FDG", "CFT")), ("cft2fdg", "F", ("CFT", "FDG"))):
        net = build_generator(ck["size"])
        net.load_state_dict(ck[key])
        net.eval()
        example = torch.rand(1, 2, *CROP_SHAPE)
        out_name = tout.lower()
        entry = export_onnx(
            net,
            (example,),
            out,
            mid,
            VERSION,
            ["image"],
            [out_name],
            dynamic_axes={"image": {0: "N"}, out_name: {0: "N"}},
            atol=2e-3,
            task=f"brain PET synthesis {tin} -> {tout} (residual 3D U-Net generator of a CycleGAN with paired L1), "
            "MNI 2 mm crop",
            spacing_mm=[2.0, 2.0, 2.0],
            normalization={
                "input": f"channel 0: the {tin} PET in MNI space (atlas grid), {NORMALISATION[tin]}, masked to the "
                f"atlas brain dilated by 4 mm, cropped to atlas voxels k/j/i {CROP}; channel 1: the prior, the "
                f"healthy {tout} template normalised the same way (medsynth.pet.synthesis.prior)",
                "output": f"{tout} {NORMALISATION[tout]}; multiply by the brain mask",
                "space": "MNI ICBM152 2 mm (91x109x91, RAS origin -90,-126,-72); native inputs are registered "
                "(medsynth.pet.sbr.to_mni) and the output resampled back",
            },
            training_command=command,
            data_terms=DATA_TERMS,
            card=f"{mid}.md",
        )
        entry.extra["parameters"] = count_parameters(net)
        entry.extra["architecture"] = {"size": ck["size"], **ck["architecture"],
                                       "generator": "prior + zero-initialised 1x1x1 conv of MONAI UNet(2 -> 8, residual units, instance norm, PReLU)"}
        entry.extra["training"] = {k: v for k, v in tr.items() if k != "split"}
        entry.extra["training"]["validation_history_last"] = ck["history"][-1] if ck["history"] else None
        entry.extra["held_out"] = (
            f"training used simulated subjects seed {tr.get('data_seed')} indices {tr.get('train_indices')} "
            f"(validation {tr.get('val_indices')}); evaluate on another seed"
        )
        entry.extra["citation"] = CITATION
        entry.extra["train_device"] = _device_words(tr["device"])
        entry.extra["train_seconds"] = tr["seconds"]
        entry.extra["data"] = "simulated PET only (medsynth pet-simulate); no real patient data"
        write_manifest_entry(out, entry)
        entries[mid] = entry
        log(f"exported {entry.path} ({entry.path.stat().st_size / 1e6:.1f} MB)")
    clear_cache()
    if Path(out).resolve() != builtin_model_dir().resolve():
        add_user_model_dir(out)
    metrics: Dict[str, Any] = {}
    if not args.no_eval:
        from .evaluate import evaluate_cohort, simulated_eval_cohort

        cohort = Path(args.eval_cohort) if args.eval_cohort else simulated_eval_cohort(
            args.eval_subjects, args.eval_seed, log
        )
        metrics = evaluate_cohort(cohort, log=log)
        for mid in entries:
            entries[mid].metrics = metrics["summary"][mid]
            entries[mid].extra["evaluation_command"] = metrics["command"]
            entries[mid].extra["evaluation_device"] = metrics["device"]
            entries[mid].extra["evaluation_seconds"] = metrics["seconds"]
            entries[mid].extra["evaluation_data"] = metrics["note"]
            write_manifest_entry(out, entries[mid])
    for mid, e in entries.items():
        write_card(out / f"{mid}.md", e, ck, metrics)
    return {"entries": entries, "metrics": metrics}


def _training_command(ck: Dict[str, Any]) -> str:
    tr = ck["training"]
    parts = [f"python -m medsynth.pet.train --prepare DIR --subjects {tr['subjects_train']} --val {tr['subjects_val']} "
             f"--seed {tr.get('data_seed')}",
             f"python -m medsynth.pet.train --data DIR --save CKPT_DIR --size {ck['size']} --seed {tr['seed']} "
             f"--steps {tr['steps_planned']} --batch {tr['batch']} --unpaired-fraction {tr['unpaired_fraction']}"
             + (" --device cuda" if "CPU" not in str(tr["device"]) else " --device cpu --threads 1"),
             "python -m medsynth.pet.train --export CKPT_DIR/pet_synthesis.pt --out Resources/Models"]
    return " && ".join(parts)


def _device_words(device: str) -> str:
    """The training device in words: ``"NVIDIA H200"`` -> ``"GPU: NVIDIA H200 (CUDA)"``."""
    d = str(device)
    return d if "CPU" in d.upper() else f"GPU: {d} (CUDA)"


def write_card(path: Path, entry: Any, ck: Dict[str, Any], metrics: Dict[str, Any]) -> Path:
    from .evaluate import card_metrics_section

    tr = ck["training"]
    tin, tout = ("FDG", "CFT") if entry.id == "fdg2cft" else ("CFT", "FDG")
    other = "cft2fdg" if entry.id == "fdg2cft" else "fdg2cft"
    lines = [
        f"# {entry.id} {entry.version}: brain PET {tin} -> {tout} synthesis",
        "",
        "**Trained only on simulated PET.** The training images come from MedSynth's own simulator "
        "(`medsynth pet-simulate`, `medsynth/pet/simulate.py`): FDG and 11C-CFT-like images built in MNI space from "
        "the ICBM152 2009a grey/white-matter maps and AAL regions, with approximate uptake ratios from the "
        "literature (Phelps 1979, Huang 1980, Eidelberg 1994, Ma 2007, Nandhagopal 2009, Kordower 2013, "
        "ENC-DAT/Varrone 2013; see docs/pet.md) and magnitudes partly chosen by us. No real PET was used. Numbers "
        "below are measured on simulated subjects and say nothing about patients. Not for clinical use.",
        "",
        "## Model",
        "",
        f"- Task: {entry.task}. The companion generator `{other}` was trained jointly (CycleGAN); both are shipped.",
        f"- Architecture: `prior + conv1x1(UNet([input, prior]))` (the 1x1 convolution starts at zero), MONAI UNet channels {ck['architecture']['channels']}, "
        f"strides {ck['architecture']['strides']}, {ck['architecture']['res_units']} residual unit(s) per level, "
        f"instance norm, PReLU; {entry.extra.get('parameters')} parameters; ONNX opset 17 "
        f"({entry.path.stat().st_size / 1e6:.1f} MB), checked against torch "
        f"(max difference {entry.extra.get('export_check', {}).get('max_abs_diff_vs_torch', float('nan')):.2g}).",
        "- Input: `image` [N, 2, 80, 96, 80]: the normalised input in MNI space (2 mm, cropped) and the prior "
        "(the healthy template of the output tracer). Output: the other tracer, same grid.",
        f"- Normalisation: FDG / mean over the atlas brain; CFT / mean over the occipital cortex (SUVR). "
        "Outside the brain mask (atlas brain dilated by 4 mm) the output is 0.",
        "- Inference (`medsynth fdg2cft IN OUT`, `medsynth.pet.synthesize`): ONNX Runtime only; a native-space "
        "input is registered affinely (SimpleITK, mutual information) to the template and the output resampled "
        "back onto the input's grid.",
        "",
        "## Training",
        "",
        f"- Data: {tr['subjects_train']} simulated subjects (seed {tr.get('data_seed')}, indices "
        f"{tr.get('train_indices')}), {len(tr['split']['paired'])} used as pairs, {len(tr['split']['fdg_only'])} "
        f"FDG-only and {len(tr['split']['cft_only'])} CFT-only (unpaired); {tr['subjects_val']} validation "
        f"subjects (indices {tr.get('val_indices')}); about half PD.",
        f"- Losses: paired L1 {tr['losses']['paired_l1']}; cycle L1 {tr['losses']['cycle_l1']}; adversarial "
        f"{tr['losses']['adversarial']} with a 3D PatchGAN per tracer.",
        f"- {tr['optimiser']}; {tr['augmentation']}.",
        f"- {tr['steps_done']} steps (of {tr['steps_planned']}) x batch {tr['batch']} per domain, seed {tr['seed']}, "
        f"{tr['seconds']:.0f} s on {_device_words(tr['device'])} (torch {tr['torch']}).",
        "- Command:",
        "",
        "```",
        entry.training_command.replace(" && ", "\n"),
        "```",
        "",
    ]
    lines += card_metrics_section(entry.id, metrics)
    lines += [
        "",
        "## Limits",
        "",
        "- The simulator's anatomy is one template with small random deformations; real scans vary far more "
        "(atrophy, positioning, scanners, reconstruction). Expect a domain gap on real data.",
        "- The generator works in MNI space on a fixed crop; inputs that do not register (other tracers, MR/CT, "
        "partial brains) are refused.",
        f"- Method after: {CITATION}.",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


# --------------------------------------------------------------------------- main
def main(argv: Optional[List[str]] = None) -> int:
    args = defaults(parse_args(argv))

    def log(msg: str) -> None:
        print(msg, flush=True)

    if args.prepare:
        prepare(Path(args.prepare), args.subjects, args.val, args.seed, args.pd_fraction, log)
        return 0
    if args.export:
        if not args.out:
            raise SystemExit("--export needs --out (the model folder)")
        export(Path(args.export), Path(args.out), args, log)
        return 0
    if not (args.out or args.save):
        raise SystemExit("give --out (export after training) and/or --save (checkpoint folder)")
    if args.data:
        d = Path(args.data)
        data = load_data(d) if (d / DATA_FILE).is_file() else data_from_cohort(d, args.val, log)
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="medsynth-pet-train-") as tmp:
            prepare(Path(tmp), args.subjects, args.val, args.seed, args.pd_fraction, log)
            data = load_data(Path(tmp))
    ck = train(data, args, log)
    save_dir = Path(args.save) if args.save else None
    if save_dir is not None:
        log(f"wrote {_save(ck, save_dir)}")
    if args.out:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="medsynth-pet-ckpt-") as tmp:
            path = _save(ck, Path(tmp)) if save_dir is None else save_dir / CHECKPOINT
            export(path, Path(args.out), args, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())

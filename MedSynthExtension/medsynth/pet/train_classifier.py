"""Train the PD classifier of :mod:`medsynth.pet.classify` (torch + MONAI): FDG + synthetic CFT against FDG alone.

    # 1. features of a training cohort and of a test cohort (simulated; synthetic CFT from the shipped fdg2cft)
    python -m medsynth.pet.train_classifier prepare --out F_TRAIN --subjects 240 --seed 7
    python -m medsynth.pet.train_classifier prepare --out F_TEST --subjects 160            # fresh seed, printed
    # 2. both arms, several seeds, the same budget; evaluated on the test features; the seed-0 models exported
    python -m medsynth.pet.train_classifier train --data F_TRAIN --test F_TEST --out DIR --seeds 0 1 2

Arms (:data:`medsynth.pet.classify.ARMS`): ``fdg_cft`` sees [FDG, synthetic CFT], ``fdg`` sees the FDG alone; the
network (MONAI ``Classifier``: four strided residual conv blocks 16-32-64-128, instance norm, PReLU, a linear
layer), the optimiser, the augmentation and the number of steps are the same for both. 20 % of the training cohort
(stratified) is held back for validation: it sets the operating threshold (the largest Youden index) and is never the
test cohort; no checkpoint or stopping point is chosen on anything. Training resumes from ``DIR/checkpoints`` (one
file per arm and seed, written after each epoch).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError

Log = Callable[[str], None]
VERSION = "1.0.0"
CHANNELS = (16, 32, 64, 128)
FEATURES_FILE = "features.npz"
DATA_TERMS = "simulated PET made by medsynth pet-simulate (no patient data); atlas sources as in docs/pet.md"
CITATION = ("FDG -> CFT synthesis and PD classification on FDG + synthetic CFT: EJNMMI 2025 work on 11C-CFT from "
            "18F-FDG for Parkinson's disease (the project's seed paper)")


# --------------------------------------------------------------------------- features
def prepare(out: Path, subjects: int, seed: Optional[int], log: Log = print) -> Path:
    """Simulate a cohort in memory (half PD) and write its features to ``out/features.npz``."""
    from .atlas import load_atlas
    from .classify import subject_features
    from .cohorts import fresh_seed
    from .simulate import cohort_groups, draw_params, simulate_subject, subject_rng

    if seed is None:
        seed = fresh_seed()
        log(f"fresh seed {seed} (--seed {seed} makes the same cohort again)")
    out = Path(out)
    if (out / FEATURES_FILE).exists():
        raise InputError(f"{out / FEATURES_FILE} exists; give a new folder")
    out.mkdir(parents=True, exist_ok=True)
    atlas = load_atlas()
    groups = cohort_groups(subjects, 0.5, seed)
    rows: Dict[str, List[Any]] = {k: [] for k in ("features", "label", "link", "stage", "fdg_pdrp", "sbr_synthetic",
                                                  "sbr_true", "index")}
    t0 = time.perf_counter()
    for i, g in enumerate(groups):
        rng = subject_rng(seed, i)
        p = draw_params(rng, g, f"sub-{i + 1:03d}")
        sub = simulate_subject(p, rng, atlas)
        f = subject_features(sub.fdg, sub.cft)
        rows["features"].append(f["features"].astype(np.float16))
        rows["label"].append(int(g == "PD"))
        rows["link"].append(p.link)
        rows["stage"].append(p.stage)
        rows["fdg_pdrp"].append(p.fdg_pdrp)
        rows["sbr_synthetic"].append(f["sbr_synthetic"])
        rows["sbr_true"].append(f["sbr_true"])
        rows["index"].append(i)
        if (i + 1) % 20 == 0 or i + 1 == subjects:
            log(f"prepared {i + 1}/{subjects} subjects ({time.perf_counter() - t0:.0f} s)")
    meta = {"seed": seed, "subjects": subjects, "simulator": _simulator_version(), "seconds": round(time.perf_counter() - t0, 1)}
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    arrays["link"] = np.asarray(rows["link"], dtype="U16")
    tmp = out / (".partial." + FEATURES_FILE)
    with open(tmp, "wb") as fh:
        np.savez(fh, meta_json=np.array(json.dumps(meta)), **arrays)
    tmp.replace(out / FEATURES_FILE)
    log(f"wrote {out / FEATURES_FILE}: {subjects} subjects, seed {seed}")
    return out / FEATURES_FILE


def _simulator_version() -> int:
    from .simulate import SIMULATOR_VERSION

    return SIMULATOR_VERSION


def load_features(folder: Path) -> Dict[str, Any]:
    path = Path(folder) / FEATURES_FILE
    if not path.is_file():
        raise InputError(f"no {FEATURES_FILE} in {folder}; make one with: python -m medsynth.pet.train_classifier prepare")
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    d["meta"] = json.loads(str(d.pop("meta_json")))
    return d


# --------------------------------------------------------------------------- training
def build_network(in_channels: int):
    from monai.networks.nets import Classifier

    from .classify import FEATURE_SHAPE

    return Classifier(in_shape=(in_channels, *FEATURE_SHAPE), classes=1, channels=CHANNELS, strides=(2, 2, 2, 2),
                      num_res_units=1)


def split_validation(labels: np.ndarray, seed: int, fraction: float = 0.2) -> Dict[str, List[int]]:
    """Stratified split of the training cohort: ``fraction`` of each class for validation (fixed by ``seed``)."""
    rng = np.random.default_rng([seed, 77])
    val: List[int] = []
    for c in (0, 1):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        val += idx[: max(1, int(round(fraction * len(idx))))].tolist()
    train = sorted(set(range(len(labels))) - set(val))
    return {"train": train, "val": sorted(val)}


def youden_threshold(neg: Sequence[float], pos: Sequence[float]) -> float:
    """The probability threshold with the largest sensitivity + specificity - 1 (midpoint between scores)."""
    s = np.unique(np.concatenate([neg, pos]))
    cands = np.concatenate([[0.0], (s[:-1] + s[1:]) / 2, [1.0]]) if len(s) > 1 else np.array([0.5])
    best, thr = -1.0, 0.5
    for t in cands:
        j = np.mean(np.asarray(pos) >= t) + np.mean(np.asarray(neg) < t) - 1
        if j > best:
            best, thr = j, float(t)
    return thr


def train_arm(data: Dict[str, Any], arm: str, seed: int, split: Dict[str, List[int]], epochs: int, ckpt_dir: Path,
              log: Log = print, batch: int = 8) -> Dict[str, Any]:
    """Train one arm with one seed (resuming from ``ckpt_dir``); returns the state dict and validation facts."""
    import torch

    from ..export import load_checkpoint_file, save_checkpoint_file
    from .classify import ARMS

    chans = list(ARMS[arm])
    x_all = data["features"]
    y_all = data["label"].astype(np.float32)
    torch.manual_seed(seed)
    net = build_network(len(chans))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    ckpt = Path(ckpt_dir) / f"{arm}_seed{seed}.pt"
    start, seconds = 0, 0.0
    if ckpt.is_file():
        ck = load_checkpoint_file(ckpt)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimiser"])
        start, seconds = int(ck["epoch"]), float(ck["seconds"])
        log(f"{arm} seed {seed}: resumed at epoch {start}")
    tr = np.asarray(split["train"])
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        torch.manual_seed(seed * 1000 + epoch)
        order = rng.permutation(tr)
        net.train()
        losses = []
        for b in range(0, len(order), batch):
            idx = order[b: b + batch]
            xb = x_all[idx][:, chans].astype(np.float32)
            flip = rng.uniform(size=len(idx)) < 0.5  # left-right: PD is as likely on either side
            xb[flip] = xb[flip][..., ::-1]
            xb *= rng.uniform(0.95, 1.05, size=(len(idx), len(chans), 1, 1, 1)).astype(np.float32)
            shift = rng.integers(-2, 3, size=3)
            xb = np.roll(xb, tuple(int(v) for v in shift), axis=(2, 3, 4))
            logit = net(torch.from_numpy(np.ascontiguousarray(xb))).reshape(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, torch.from_numpy(y_all[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        seconds += time.perf_counter() - t0
        save_checkpoint_file({"model": net.state_dict(), "optimiser": opt.state_dict(), "epoch": epoch + 1,
                              "seconds": seconds, "arm": arm, "seed": seed}, ckpt)
        if (epoch + 1) % 5 == 0 or epoch + 1 == epochs:
            log(f"{arm} seed {seed}: epoch {epoch + 1}/{epochs}, loss {np.mean(losses):.3f}, {seconds:.0f} s")
    net.eval()
    val = np.asarray(split["val"])
    pv = predict_torch(net, x_all[val][:, chans])
    yv = data["label"][val]
    thr = youden_threshold(pv[yv == 0], pv[yv == 1])
    from ..metaad.calibrate import auc  # higher = PD

    return {"net": net, "threshold": thr, "val_auc": auc(pv[yv == 0].tolist(), pv[yv == 1].tolist()),
            "seconds": seconds, "epochs": epochs}


def predict_torch(net, x: np.ndarray) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for b in range(0, len(x), 16):
            out.append(torch.sigmoid(net(torch.from_numpy(np.ascontiguousarray(x[b: b + 16], np.float32)))).reshape(-1).numpy())
    return np.concatenate(out) if out else np.zeros(0)


# --------------------------------------------------------------------------- export
def export(nets: Dict[str, Any], thresholds: Dict[str, float], out: Path, facts: Dict[str, Any], log: Log = print):
    import torch

    from ..export import export_onnx
    from ..runtime import write_manifest_entry
    from .classify import ARMS, FDG_ONLY_MODEL_ID, FEATURE_SHAPE, MODEL_ID
    from .synthesis import CROP

    entries = {}
    for arm, mid in (("fdg_cft", MODEL_ID), ("fdg", FDG_ONLY_MODEL_ID)):
        net = nets[arm]
        example = torch.rand(1, len(ARMS[arm]), *FEATURE_SHAPE)
        chans = "[FDG, synthetic CFT]" if arm == "fdg_cft" else "[FDG]"
        entry = export_onnx(
            net, (example,), out, mid, VERSION, ["features"], ["logit"],
            dynamic_axes={"features": {0: "N"}, "logit": {0: "N"}}, atol=1e-3,
            task=f"PD vs NC from brain PET, input {chans} (MONAI Classifier, 3D); output a logit (sigmoid: PD "
                 "probability)",
            spacing_mm=[4.0, 4.0, 4.0],
            normalization={"input": f"channels {chans} on the MNI crop {CROP} of the atlas grid, averaged to 4 mm "
                                    "(medsynth.pet.classify.features): FDG divided by its brain mean, synthetic CFT "
                                    "from the fdg2cft model in SUVR (occipital = 1), both masked to the brain",
                           "output": "logit; PD when sigmoid(logit) >= extra.threshold"},
            training_command=facts["command"], data_terms=DATA_TERMS, card=f"{MODEL_ID}.md",
        )
        entry.extra.update(threshold=round(thresholds[arm], 4), arm=arm, training=facts["training"],
                           citation=CITATION, data="simulated PET only (medsynth pet-simulate); no real patient data")
        write_manifest_entry(out, entry)
        entries[arm] = entry
        log(f"exported {entry.path}")
    return entries


def write_card(path: Path, facts: Dict[str, Any]) -> Path:
    t = facts["training"]
    ev = facts.get("evaluation")
    lines = [
        "# pd-classifier 1.0.0: PD vs NC from FDG PET with its synthetic CFT (and pd-classifier-fdg, FDG alone)",
        "",
        "**Trained and tested on simulated PET only** (`medsynth pet-simulate`, simulator version "
        f"{t['simulator']}; docs/pet.md). Nothing here was measured on patients. Not a diagnosis.",
        "",
        "## Model",
        "",
        "- The second stage of the EJNMMI FDG -> CFT work: a 3D CNN on [FDG, synthetic CFT]; the synthetic CFT comes "
        "from the shipped `fdg2cft` generator. `pd-classifier-fdg` is the same network on the FDG alone, trained "
        "with the same budget: the comparison the paper's claim needs.",
        f"- Network: MONAI `Classifier` (strided residual conv blocks {list(CHANNELS)}, instance norm, PReLU, "
        "linear head), 4 mm input 40 x 48 x 40 (`medsynth.pet.classify.features`).",
        f"- Operating threshold (sigmoid output): the largest Youden index on the validation subjects; "
        f"{json.dumps({k: round(v, 3) for k, v in facts['thresholds'].items()})}.",
        "",
        "## Training",
        "",
        f"- Cohort: {t['subjects']} simulated subjects (half PD), seed {t['data_seed']}; "
        f"{t['n_train']} trained, {t['n_val']} validation (stratified).",
        f"- {t['epochs']} epochs, batch 8, AdamW 1e-3, BCE; augmentation: left-right flip, intensity x0.95-1.05, "
        f"shifts of up to 2 voxels; seeds {t['seeds']} (the exported models: seed {t['seeds'][0]}); "
        f"{t['seconds']:.0f} s in all on {t['device']}.",
        f"- Command: `{facts['command']}`",
        "",
    ]
    if ev:
        lines += ["## Test (a separate simulated cohort)", "", evaluation_table(ev), ""]
    lines += [
        "## Limits",
        "",
        "- Simulated PET: the FDG pattern and the dopaminergic loss are tied only as the simulator ties them "
        "(docs/pet.md, LINK); on real scans the figures may be quite different.",
        "- The synthetic CFT is a function of the FDG: it cannot hold information the FDG lacks; any gain is a "
        "gain in how the information is presented to a small network trained on few subjects.",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def evaluation_table(ev: Dict[str, Any]) -> str:
    s = ev["seeds_summary"]
    rows = [f"Test cohort: {ev['n_nc']} NC + {ev['n_pd']} PD, seed {ev['test_seed']} (fresh, never used in "
            f"development); {ev['device']}.", "",
            "| method | AUC PD vs NC, mean +- SD over seeds | AUC of the exported model [95 % CI] |", "|---|---|---|"]
    names = {"fdg_cft": "CNN on [FDG, synthetic CFT]", "fdg": "CNN on FDG alone",
             "sbr_synthetic_cft": "posterior-putamen SBR of the synthetic CFT (no training)",
             "sbr_true_cft": "posterior-putamen SBR of the true simulated CFT (not available in practice)"}
    for k, name in names.items():
        ms = s.get(k)
        first = ev["per_seed"][0][k]
        ms_txt = f"{ms['mean']:.3f} +- {ms['sd']:.3f}" if ms else "-"
        rows.append(f"| {name} | {ms_txt} | {first['auc']:.3f} [{first['auc_ci95'][0]:.3f}, {first['auc_ci95'][1]:.3f}] |")
    d = s.get("difference")
    if d:
        rows += ["", f"AUC difference CNN [FDG, synthetic CFT] - CNN [FDG], mean over seeds {d['mean']:+.3f} "
                     f"(per seed: {', '.join(f'{v:+.3f}' for v in d['values'])}); exported models "
                     f"{ev['per_seed'][0]['auc_difference_fdg_cft_minus_fdg']['difference']:+.3f} [95 % CI "
                     f"{ev['per_seed'][0]['auc_difference_fdg_cft_minus_fdg']['ci95'][0]:+.3f}, "
                     f"{ev['per_seed'][0]['auc_difference_fdg_cft_minus_fdg']['ci95'][1]:+.3f}]."]
    return "\n".join(rows)


def _commands(data: Dict[str, Any], test: Optional[Dict[str, Any]], seeds: Sequence[int], epochs: int) -> str:
    """The commands that make the data and the models again."""
    m = "python -m medsynth.pet.train_classifier"
    parts = [f"{m} prepare --out TRAIN --subjects {len(data['label'])} --seed {data['meta']['seed']}"]
    if test is not None:
        parts.append(f"{m} prepare --out TEST --subjects {len(test['label'])} --seed {test['meta']['seed']}")
    parts.append(f"{m} train --data TRAIN{' --test TEST' if test is not None else ''} --out OUT --seeds "
                 f"{' '.join(map(str, seeds))} --epochs {epochs}")
    return " && ".join(parts)


def _device_words() -> str:
    return f"CPU ({platform.processor() or platform.machine()}), torch"


# --------------------------------------------------------------------------- command line
def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medsynth.pet.train_classifier", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("prepare", help="features of a simulated cohort")
    p.add_argument("--out", required=True)
    p.add_argument("--subjects", type=int, default=240)
    p.add_argument("--seed", type=int, help="default: a fresh seed (printed)")
    c = sub.add_parser("card", help="write the card again from DIR/pd_classifier_training.json")
    c.add_argument("--out", required=True)
    t = sub.add_parser("train", help="train both arms over seeds; test; export the first seed's models")
    t.add_argument("--data", required=True, help="training features (prepare)")
    t.add_argument("--test", help="test features (prepare, another seed)")
    t.add_argument("--out", required=True, help="model folder (ONNX, manifest, card; checkpoints/ for resuming)")
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    t.add_argument("--no-export", action="store_true")
    args = ap.parse_args(argv)
    if args.what == "prepare":
        prepare(Path(args.out), args.subjects, args.seed)
        return 0
    if args.what == "card":
        from .classify import MODEL_ID

        facts = json.loads((Path(args.out) / "pd_classifier_training.json").read_text())
        print(write_card(Path(args.out) / f"{MODEL_ID}.md", facts))
        return 0
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_features(Path(args.data))
    test = load_features(Path(args.test)) if args.test else None
    if test is not None and test["meta"]["seed"] == data["meta"]["seed"]:
        raise InputError("the test features come from the training cohort's seed; prepare another cohort")
    out = Path(args.out)
    split = split_validation(data["label"], 0)
    per_seed, nets, thresholds, total = [], {}, {}, 0.0
    for seed in args.seeds:
        probs, thr = {}, {}
        for arm in ("fdg_cft", "fdg"):
            r = train_arm(data, arm, seed, split, args.epochs, out / "checkpoints")
            total += r["seconds"]
            thr[arm] = r["threshold"]
            print(f"{arm} seed {seed}: validation AUC {r['val_auc']:.3f}, threshold {r['threshold']:.3f}")
            if seed == args.seeds[0]:
                nets[arm], thresholds[arm] = r["net"], r["threshold"]
            if test is not None:
                from .classify import ARMS

                probs[arm] = predict_torch(r["net"], test["features"][:, list(ARMS[arm])])
        if test is not None:
            from .classify_evaluate import score_arms

            res = score_arms(test, probs, thr)
            per_seed.append(res)
            print(f"seed {seed}: test AUC fdg_cft {res['fdg_cft']['auc']:.3f}, fdg {res['fdg']['auc']:.3f}, "
                  f"SBR synthetic {res['sbr_synthetic_cft']['auc']:.3f}, SBR true {res['sbr_true_cft']['auc']:.3f}")
    command = _commands(data, test, args.seeds, args.epochs)
    facts: Dict[str, Any] = {
        "command": command, "thresholds": thresholds,
        "training": {"subjects": int(len(data["label"])), "data_seed": data["meta"]["seed"],
                     "simulator": data["meta"].get("simulator"), "n_train": len(split["train"]),
                     "n_val": len(split["val"]), "epochs": args.epochs, "seeds": list(args.seeds),
                     "seconds": round(total, 1), "device": _device_words(), "torch": torch.__version__},
    }
    if test is not None:
        summary: Dict[str, Any] = {}
        for k in ("fdg_cft", "fdg", "sbr_synthetic_cft", "sbr_true_cft"):
            v = [r[k]["auc"] for r in per_seed]
            summary[k] = {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "values": v}
        diffs = [r["auc_difference_fdg_cft_minus_fdg"]["difference"] for r in per_seed]
        summary["difference"] = {"mean": float(np.mean(diffs)), "values": diffs}
        facts["evaluation"] = {"per_seed": per_seed, "seeds_summary": summary, "test_seed": test["meta"]["seed"],
                               "n_nc": per_seed[0]["n_nc"], "n_pd": per_seed[0]["n_pd"], "device": _device_words()}
        print(evaluation_table(facts["evaluation"]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "pd_classifier_training.json").write_text(json.dumps(facts, indent=2, default=float) + "\n")
    if not args.no_export:
        export(nets, thresholds, out, facts)
        from .classify import MODEL_ID

        write_card(out / f"{MODEL_ID}.md", facts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

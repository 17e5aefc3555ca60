"""``medsynth evaluate cells-augmentation``: does CellGAN make a cervical cell classifier better?

The downstream experiment of issue #15. One classifier network (MONAI ``ResNet``, 2D, basic blocks
[1, 1, 1, 1], widths 16-32-64-128, 3 input channels, 7 Herlev classes; about 0.31 M parameters) is trained
from scratch in five arms, with the same budget in every arm (the same number of optimizer steps and the
same batch size; AdamW, cosine learning rate), and tested on held-out real cells:

1. ``real``: the real training cells;
2. ``real+aug``: the same with standard augmentation (flips, quarter turns, small colour/brightness jitter);
3. ``real+cellgan``: half of every batch real cells, half CellGAN cells (class-balanced);
4. ``real+aug+cellgan``: arm 3 with the augmentation of arm 2 on the whole batch;
5. ``cellgan-pretrain+real``: the first half of the steps on CellGAN cells only (class-balanced), the second
   half fine-tuning on the real cells (a new optimizer, its own cosine schedule).

No selection on held-out data: every arm trains for the fixed number of steps and the last weights are
tested. Real cells are drawn uniformly (their natural class mix), with plain cross-entropy, in every arm.

Data. ``herlev`` (``../shared/data/cytology/herlev``) is split with the fixed group split of
:mod:`.data`: ``--real-train`` takes its training groups (the cells the shipped CellGAN was trained on)
and ``--real-test`` its held-out groups. Any other folder of class-named sub-folders works too; files with
Herlev-like names that fall in Herlev training groups are never tested on (CellGAN saw them), and a test
image identical to a training image is refused. CellGAN cells are generated fresh for each replicate
(seeded) with the shipped ONNX generator.

Replicates. Replicate ``k`` uses seed ``S + k`` for all five arms (paired: the same initial weights and the
same CellGAN cells in each arm); the seed is printed and stored with every run.

Reported on the test cells, per arm, mean and SD over the replicates: accuracy, balanced accuracy (mean
recall over the classes present in the test set), macro F1 (over the same classes) and per-class recall,
for the 7 Herlev classes and for the Bethesda grouping (predicted Herlev class mapped to its category).
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, MedSynthError
from .classes import BETHESDA_CLASSES, HERLEV_CLASSES, HERLEV_TO_BETHESDA, canonical_class
from .data import IMAGE_SUFFIXES, CellSet, centre_square, group_of, is_heldout, remove_padding, short_side_patch

ARMS: Tuple[str, ...] = ("real", "real+aug", "real+cellgan", "real+aug+cellgan", "cellgan-pretrain+real")
ARM_TEXT: Dict[str, str] = {
    "real": "real training cells",
    "real+aug": "real + standard augmentation (flips, quarter turns, colour/brightness jitter)",
    "real+cellgan": "real + CellGAN cells (class-balanced), half of every batch",
    "real+aug+cellgan": "real + augmentation + CellGAN cells (class-balanced)",
    "cellgan-pretrain+real": "pre-trained on class-balanced CellGAN cells (first half of the steps), fine-tuned on real",
}
MIN_PX = 16
DEFAULT_STEPS = 2000
DEFAULT_BATCH = 32
DEFAULT_SIZE = 64
DEFAULT_GAN_PER_CLASS = 200
GAN_FRACTION = 0.5
LR = 1e-3
WEIGHT_DECAY = 1e-4
TARGET_POINTS = 3.0
_B_TABLE = np.array([BETHESDA_CLASSES.index(HERLEV_TO_BETHESDA[h]) for h in HERLEV_CLASSES])


# --------------------------------------------------------------------------- reading (strict)
def read_cell(path: Path) -> np.ndarray:
    """A colour cell image as (H, W, 3) uint8. Grey images (one channel, or three equal channels), grey+alpha
    and images with transparent pixels are refused; an opaque alpha channel is dropped; images under
    ``MIN_PX`` on a side are refused."""
    try:
        import SimpleITK as sitk
    except ImportError:  # pragma: no cover - SimpleITK is a requirement
        raise InputError("reading cell images needs SimpleITK (pip install SimpleITK)") from None
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read {path}: {str(exc).strip().splitlines()[-1]}") from None
    comps = img.GetNumberOfComponentsPerPixel()
    arr = np.asarray(sitk.GetArrayFromImage(img))
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and comps == 1 and arr.shape[0] == 1:
        arr = arr[0]
    if comps in (1, 2) or arr.ndim == 2:
        raise InputError(f"{path} is a grey image ({comps} channel{'s' if comps > 1 else ''}); cells must be colour "
                         "(RGB) Pap-stained images")
    if arr.ndim != 3 or comps not in (3, 4):
        raise InputError(f"{path} is not a 2D RGB image ({comps} channels, array shape {arr.shape})")
    h, w = arr.shape[:2]
    if min(h, w) < MIN_PX:
        raise InputError(f"{path} is {w} x {h} px; cell images must be at least {MIN_PX} px on each side")
    if arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        arr = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if comps == 4:
        alpha = arr[..., 3]
        if alpha.min() < 255:
            raise InputError(f"{path} has transparent pixels (RGBA with alpha < 255); give opaque RGB cell images")
        arr = arr[..., :3]
    if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
        raise InputError(f"{path} is a grey image (its three channels are equal); cells must be colour Pap-stained "
                         "images")
    return np.ascontiguousarray(arr)


def scan_folder(root: Path) -> Tuple[Dict[str, Path], str]:
    """Class folders of ``root`` by canonical class name, and the naming (``herlev`` or ``bethesda``). Every
    sub-folder (hidden ones aside) must be a class, and every class folder must hold images."""
    if not root.is_dir():
        raise InputError(f"cell folder not found: {root}")
    found: Dict[str, Path] = {}
    unknown: List[str] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            c = canonical_class(sub.name)
        except InputError:
            unknown.append(sub.name)
            continue
        if c in found:
            raise InputError(f"{root}: folders {found[c].name} and {sub.name} are both class {c}")
        found[c] = sub
    if unknown:
        raise InputError(f"{root}: unknown class folder{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"class folders must be named after Herlev classes ({', '.join(HERLEV_CLASSES)}) or "
                         f"Bethesda categories ({', '.join(BETHESDA_CLASSES)})")
    if not found:
        raise InputError(f"{root} has no class sub-folders (expected Herlev class names such as "
                         f"{', '.join(HERLEV_CLASSES[:3])}, ...)")
    herlev = [c for c in found if c in HERLEV_CLASSES]
    beth = [c for c in found if c not in HERLEV_CLASSES]
    if herlev and beth:
        raise InputError(f"{root} mixes Herlev classes ({', '.join(herlev)}) and Bethesda categories ({', '.join(beth)})")
    for c, sub in found.items():
        if not any(f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES for f in sub.iterdir()):
            raise InputError(f"class folder {sub} has no images ({', '.join(IMAGE_SUFFIXES)})")
    return found, ("herlev" if herlev else "bethesda")


def load_cells(root: Path, side: str, size: int = DEFAULT_SIZE) -> Tuple[CellSet, str, Dict[str, Any]]:
    """The cells of one side (``train`` or ``test``) of a class folder. Labels index the Herlev classes (naming
    ``herlev``) or the Bethesda categories (``bethesda``). Herlev-named files of the other side's groups are
    left out. Returns the cells, the naming and facts (files per class, files left out, pixel digests)."""
    folders, naming = scan_folder(root)
    order = HERLEV_CLASSES if naming == "herlev" else BETHESDA_CLASSES
    patches, labels, names, groups, digests = [], [], [], [], []
    left_out = 0
    for ci, c in enumerate(order):
        if c not in folders:
            continue
        for f in sorted(p for p in folders[c].iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            g = group_of(f.name)
            if g is not None and is_heldout(g) != (side == "test"):
                left_out += 1
                continue
            img = read_cell(f)
            digests.append(hashlib.sha1(img.tobytes() + str(img.shape).encode()).hexdigest())
            patches.append(short_side_patch(remove_padding(img), size))
            labels.append(ci)
            names.append(f"{folders[c].name}/{f.name}")
            groups.append(g or f.stem)
    if not patches:
        other = "training" if side == "test" else "held-out"
        raise InputError(f"no {('test' if side == 'test' else 'training')} cells in {root}: all its Herlev-named images "
                         f"belong to the {other} groups of the fixed split")
    cells = CellSet(patches, np.asarray(labels, np.int64), names, groups, size)
    return cells, naming, {"left_out": left_out, "digests": digests}


# --------------------------------------------------------------------------- metrics
def metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> Dict[str, Any]:
    """Accuracy, balanced accuracy and macro F1 (over the classes present in ``y_true``), per-class recall."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    recall: Dict[str, Optional[float]] = {}
    f1s = []
    for i, c in enumerate(classes):
        sel = y_true == i
        if not sel.any():
            recall[c] = None
            continue
        tp = float(((y_pred == i) & sel).sum())
        r = tp / float(sel.sum())
        npred = float((y_pred == i).sum())
        p = tp / npred if npred else 0.0
        recall[c] = r
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    present = [v for v in recall.values() if v is not None]
    return {"accuracy": float((y_true == y_pred).mean()), "balanced_accuracy": float(np.mean(present)),
            "macro_f1": float(np.mean(f1s)), "recall": recall, "cells": int(len(y_true))}


def summarise(runs: List[Dict[str, Any]], grouping: str) -> Optional[Dict[str, Any]]:
    """Mean and SD (ddof=1; 0 for one replicate) of a grouping's metrics over runs."""
    ms = [r[grouping] for r in runs if r.get(grouping)]
    if not ms:
        return None

    def stat(vals: List[float]) -> Dict[str, float]:
        a = np.asarray(vals, np.float64)
        return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0}

    out: Dict[str, Any] = {k: stat([m[k] for m in ms]) for k in ("accuracy", "balanced_accuracy", "macro_f1")}
    out["recall"] = {c: (stat([m["recall"][c] for m in ms]) if ms[0]["recall"][c] is not None else None)
                     for c in ms[0]["recall"]}
    return out


# --------------------------------------------------------------------------- training
def _torch():
    try:
        import torch
        from monai.networks.nets import ResNet
    except ImportError:
        raise MedSynthError("evaluate cells-augmentation trains classifiers and needs torch and MONAI "
                            "(pip install torch monai)") from None
    return torch, ResNet


def build_classifier(n_classes: int = len(HERLEV_CLASSES)):
    torch, ResNet = _torch()
    return ResNet("basic", [1, 1, 1, 1], [16, 32, 64, 128], spatial_dims=2, n_input_channels=3, conv1_t_size=7,
                  conv1_t_stride=2, num_classes=n_classes)


def to_tensor(images: np.ndarray):
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float32 in [-1, 1]."""
    torch, _ = _torch()
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def augment_batch(x, gen):
    """Standard augmentation of a batch (N, 3, S, S) in [-1, 1]: random horizontal flip, quarter turn,
    brightness (+-10 %), contrast (+-10 %) and per-channel gain (+-5 %)."""
    torch, _ = _torch()
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    k = torch.randint(0, 4, (n,), generator=gen)
    x = torch.stack([torch.rot90(x[i], int(k[i]), dims=(1, 2)) for i in range(n)])
    u = (x + 1.0) * 0.5
    mean = u.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 1.0 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.2
    bright = 1.0 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.2
    gain = 1.0 + (torch.rand(n, 3, 1, 1, generator=gen) - 0.5) * 0.1
    u = ((u - mean) * contrast + mean) * bright * gain
    return u.clamp(0.0, 1.0) * 2.0 - 1.0


class _Counter:
    def __init__(self) -> None:
        self.steps = 0
        self.samples = 0


def _train_phase(net, sources, steps: int, batch: int, augment: bool, gen, counter: _Counter) -> None:
    """``steps`` AdamW steps; ``sources``: [(images tensor, labels tensor, cells per batch)]."""
    torch, _ = _torch()
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    net.train()
    for _ in range(steps):
        xs, ys = [], []
        for images, labels, n in sources:
            idx = torch.randint(0, images.shape[0], (n,), generator=gen)
            xs.append(images[idx])
            ys.append(labels[idx])
        x, y = torch.cat(xs), torch.cat(ys)
        assert x.shape[0] == batch
        if augment:
            x = augment_batch(x, gen)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        counter.steps += 1
        counter.samples += int(x.shape[0])


def train_arm(arm: str, real: Tuple[Any, Any], gan: Tuple[Any, Any], steps: int, batch: int, seed: int):
    """A classifier trained in ``arm``; returns (net, optimizer steps taken, samples seen)."""
    torch, _ = _torch()
    torch.manual_seed(seed)
    net = build_classifier()
    gen = torch.Generator().manual_seed(seed)
    counter = _Counter()
    n_gan = int(round(batch * GAN_FRACTION))
    if arm == "real":
        _train_phase(net, [(real[0], real[1], batch)], steps, batch, False, gen, counter)
    elif arm == "real+aug":
        _train_phase(net, [(real[0], real[1], batch)], steps, batch, True, gen, counter)
    elif arm in ("real+cellgan", "real+aug+cellgan"):
        _train_phase(net, [(real[0], real[1], batch - n_gan), (gan[0], gan[1], n_gan)], steps, batch,
                     arm == "real+aug+cellgan", gen, counter)
    elif arm == "cellgan-pretrain+real":
        first = steps // 2
        _train_phase(net, [(gan[0], gan[1], batch)], first, batch, False, gen, counter)
        _train_phase(net, [(real[0], real[1], batch)], steps - first, batch, False, gen, counter)
    else:
        raise InputError(f"unknown arm {arm!r}; arms: {', '.join(ARMS)}")
    return net, counter.steps, counter.samples


def predict(net, images) -> np.ndarray:
    torch, _ = _torch()
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, images.shape[0], 256):
            out.append(net(images[i : i + 256]).argmax(1).numpy())
    return np.concatenate(out)


def generate_gan_cells(generator, per_class: int, seed: int, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """``per_class`` CellGAN cells of every Herlev class (seeds ``seed * 100000 + class * 10000 + n``)."""
    from .data import resize, to_uint8

    imgs, labs = [], []
    for ci, c in enumerate(HERLEV_CLASSES):
        got = generator.generate(c, per_class, seed=seed * 100000 + ci * 10000, naming="herlev")
        for cell in got:
            im = cell.image
            if im.shape[0] != size:
                im = to_uint8(resize(im, size, size))
            imgs.append(im)
            labs.append(ci)
    return np.stack(imgs), np.asarray(labs, np.int64)


# --------------------------------------------------------------------------- the experiment
@dataclass(frozen=True)
class ArmData:
    """Everything one (seed, arm) run depends on besides the seed and the arm (pickled to Dask workers)."""

    train_patches: Tuple[np.ndarray, ...]
    train_labels: np.ndarray
    test_patches: Tuple[np.ndarray, ...]
    test_labels: np.ndarray
    test_naming: str
    steps: int
    batch: int
    gan_per_class: int
    model_id: str
    threads: int = 1


_GAN_CACHE: Dict[Tuple[Any, ...], Tuple[np.ndarray, np.ndarray]] = {}


def _gan_cells(model_id: str, per_class: int, seed: int, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """The CellGAN cells of a replicate (kept for the next arm of the same seed in this process)."""
    key = (model_id, per_class, seed, size)
    if key not in _GAN_CACHE:
        from .generate import get_generator

        _GAN_CACHE.clear()
        _GAN_CACHE[key] = generate_gan_cells(get_generator(model_id), per_class, seed, size)
    return _GAN_CACHE[key]


def run_arm(data: ArmData, task: Tuple[int, str]) -> Dict[str, Any]:
    """One arm of one replicate: train from scratch, test on the held-out cells. A pure function of
    (``data``, seed, arm) at a given number of torch threads."""
    torch, _ = _torch()
    seed, arm = task
    torch.set_num_threads(data.threads)
    a0 = time.time()
    train_x = np.stack([centre_square(p) for p in data.train_patches])
    size = train_x.shape[1]
    real = (to_tensor(train_x), torch.from_numpy(np.asarray(data.train_labels, np.int64)))
    gan = None
    if "cellgan" in arm:
        gi, gl = _gan_cells(data.model_id, data.gan_per_class, seed, size)
        gan = (to_tensor(gi), torch.from_numpy(gl))
    net, taken, samples = train_arm(arm, real, gan, data.steps, data.batch, seed)
    pred = predict(net, to_tensor(np.stack([centre_square(p) for p in data.test_patches])))
    y_test = np.asarray(data.test_labels, np.int64)
    run: Dict[str, Any] = {"seed": int(seed), "optimizer_steps": taken, "batch": data.batch, "samples_seen": samples,
                           "seconds": round(time.time() - a0, 1)}
    if data.test_naming == "herlev":
        run["herlev"] = metrics(y_test, pred, HERLEV_CLASSES)
        run["bethesda"] = metrics(_B_TABLE[y_test], _B_TABLE[pred], BETHESDA_CLASSES)
    else:
        run["herlev"] = None
        run["bethesda"] = metrics(y_test, _B_TABLE[pred], BETHESDA_CLASSES)
    return run


def run_experiment(
    train: CellSet,
    test: CellSet,
    test_naming: str,
    generator,
    seeds: Sequence[int],
    steps: int = DEFAULT_STEPS,
    batch: int = DEFAULT_BATCH,
    gan_per_class: int = DEFAULT_GAN_PER_CLASS,
    arms: Sequence[str] = ARMS,
    log: Optional[Callable[[str], None]] = None,
    workers=None,
    threads: int = 1,
) -> Dict[str, Any]:
    """All arms x replicates; see the module doc. ``train`` labels index the Herlev classes; ``test`` labels
    index the Herlev classes (``test_naming`` herlev) or the Bethesda categories (bethesda). ``workers``
    (:class:`medsynth.parallel.Workers`): where the (seed, arm) runs go; each uses ``threads`` torch threads, and
    the figures do not depend on where they ran."""
    from ..parallel import Workers, run_tasks

    t0 = time.time()
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise InputError(f"unknown arm {unknown[0]!r}; arms: {', '.join(ARMS)}")

    def say(msg: str) -> None:
        if log:
            log(f"[cells-augmentation {time.time() - t0:7.1f} s] {msg}")

    size = train.size
    data = ArmData(tuple(train.patches), np.asarray(train.labels), tuple(test.patches), np.asarray(test.labels),
                   test_naming, steps, batch, gan_per_class, getattr(generator, "model_id", "cellgan"), threads)
    tasks = [(int(seed), arm) for seed in seeds for arm in arms]
    say(f"{len(tasks)} runs ({len(seeds)} seeds x {len(arms)} arms) of {steps} steps x batch {batch}")

    def done(i: int, run: Dict[str, Any]) -> None:
        seed, arm = tasks[i]
        main = run["herlev"] or run["bethesda"]
        say(f"seed {seed}: arm {arm}: {run['seconds']:.0f} s, {run['optimizer_steps']} steps; balanced accuracy "
            f"{100 * main['balanced_accuracy']:.1f} %, accuracy {100 * main['accuracy']:.1f} %"
            + (f" (Bethesda balanced {100 * run['bethesda']['balanced_accuracy']:.1f} %)" if run["herlev"] else ""))

    from functools import partial

    runs = run_tasks(partial(run_arm, data), tasks, workers or Workers(), what="runs", on_result=done)
    results: Dict[str, Dict[str, Any]] = {a: {"description": ARM_TEXT[a], "runs": []} for a in arms}
    for (seed, arm), run in zip(tasks, runs):
        results[arm]["runs"].append(run)
    for arm in arms:
        results[arm]["herlev"] = summarise(results[arm]["runs"], "herlev")
        results[arm]["bethesda"] = summarise(results[arm]["runs"], "bethesda")
    grouping = "herlev" if test_naming == "herlev" else "bethesda"
    target: Dict[str, Any] = {"description": f"real+cellgan or real+aug+cellgan beats real by >= {TARGET_POINTS:g} "
                              f"points of mean balanced accuracy ({grouping} classes)", "grouping": grouping}
    if "real" in arms:
        base = results["real"][grouping]["balanced_accuracy"]["mean"]
        gains = {a: 100 * (results[a][grouping]["balanced_accuracy"]["mean"] - base) for a in arms if a != "real"}
        target["gain_points_over_real"] = gains
        gan_gains = [gains[a] for a in ("real+cellgan", "real+aug+cellgan") if a in gains]
        target["met"] = bool(gan_gains) and max(gan_gains) >= TARGET_POINTS
    return {
        "arms": results,
        "arm_order": list(arms),
        "seeds": [int(s) for s in seeds],
        "steps": steps,
        "batch": batch,
        "size": size,
        "gan_per_class": gan_per_class,
        "gan_fraction_of_batch": GAN_FRACTION,
        "pretrain_steps": steps // 2,
        "optimizer": f"AdamW lr {LR:g} weight decay {WEIGHT_DECAY:g}, cosine schedule per phase",
        "classifier": "MONAI ResNet 2D, basic blocks [1,1,1,1], widths 16-32-64-128, 7x7 stride-2 stem + max pool, "
                      f"{sum(p.numel() for p in build_classifier().parameters())} parameters",
        "selection": "none: fixed number of steps, last weights",
        "train_cells": len(train),
        "test_cells": len(test),
        "train_counts": {c: int((train.labels == i).sum()) for i, c in enumerate(HERLEV_CLASSES)},
        "test_naming": test_naming,
        "test_counts": {c: int((test.labels == i).sum())
                        for i, c in enumerate(HERLEV_CLASSES if test_naming == "herlev" else BETHESDA_CLASSES)},
        "target": target,
        "seconds": round(time.time() - t0, 1),
    }


# --------------------------------------------------------------------------- report
def _ms(s: Optional[Dict[str, float]]) -> str:
    if s is None:
        return "-"
    return f"{100 * s['mean']:.1f} ± {100 * s['sd']:.1f}"


def table(res: Dict[str, Any], grouping: str) -> str:
    """Markdown table of one grouping (``herlev`` or ``bethesda``): mean ± SD over the replicates, in %."""
    first = next(iter(res["arms"].values()))
    if first.get(grouping) is None:
        return ""
    classes = [c for c, v in first[grouping]["recall"].items() if v is not None]
    short = {"normal_superficial": "superficial", "normal_intermediate": "intermediate", "normal_columnar": "columnar",
             "light_dysplastic": "light", "moderate_dysplastic": "moderate", "severe_dysplastic": "severe",
             "carcinoma_in_situ": "CIS"}
    head = ["arm", "accuracy", "balanced acc.", "macro F1"] + [f"recall {short.get(c, c)}" for c in classes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm in res["arm_order"]:
        s = res["arms"][arm][grouping]
        row = [arm, _ms(s["accuracy"]), _ms(s["balanced_accuracy"]), _ms(s["macro_f1"])]
        row += [_ms(s["recall"][c]) for c in classes]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line
def _folder(spec: str) -> Path:
    from .data import default_herlev_dir

    return default_herlev_dir() if str(spec).strip().lower() == "herlev" else Path(spec)


def run(args) -> int:
    from ..outputs import JSON, OutputPlan

    train_dir, test_dir = _folder(args.real_train), _folder(args.real_test)
    plan = OutputPlan(inputs=[train_dir, test_dir])
    plan.file(args.json, "--json", JSON)
    with plan:
        return _run(args, train_dir, test_dir)


def _run(args, train_dir: Path, test_dir: Path) -> int:
    t0 = time.time()
    torch, _ = _torch()
    torch.set_num_threads(args.threads)
    log = None if args.quiet else (lambda msg: (sys.stderr.write(msg + "\n"), sys.stderr.flush()))
    train, train_naming, train_facts = load_cells(train_dir, "train", args.size)
    if train_naming != "herlev":
        raise InputError(f"--real-train {train_dir}: the classifier learns the 7 Herlev classes; its class folders "
                         f"must be Herlev classes, not Bethesda categories")
    missing = [c for i, c in enumerate(HERLEV_CLASSES) if not (train.labels == i).any()]
    if missing:
        raise InputError(f"--real-train {train_dir} has no training cells of {', '.join(missing)}; every Herlev class "
                         "is needed")
    test, test_naming, test_facts = load_cells(test_dir, "test", args.size)
    shared = set(train_facts["digests"]) & set(test_facts["digests"])
    if shared:
        example = test.names[test_facts["digests"].index(sorted(shared)[0])]
        raise InputError(f"{len(shared)} test image(s) are also training images (e.g. {example}); the test cells must "
                         "be held out")
    from ..runtime import list_models
    from .generate import get_generator

    if "cellgan" not in list_models():
        raise InputError("the cellgan model is not installed (Resources/Models); see docs/cyto.md")
    generator = get_generator("cellgan")
    seeds = [args.seed + k for k in range(args.seeds)]
    if log:
        log(f"[cells-augmentation] {len(train)} training cells ({train_dir}), {len(test)} test cells ({test_dir}); "
            f"seeds {', '.join(map(str, seeds))}; {args.steps} steps x batch {args.batch} per arm; "
            f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    from ..parallel import WORKER_PARAMS, Workers
    from ..params import from_namespace

    workers = Workers.from_values(from_namespace(WORKER_PARAMS, args))
    res = run_experiment(train, test, test_naming, generator, seeds, args.steps, args.batch, args.gan_per_class,
                         log=log, workers=workers, threads=args.threads)
    import platform

    res["command"] = "medsynth evaluate cells-augmentation " + " ".join(
        f"{k} {v}" for k, v in (("--real-train", args.real_train), ("--real-test", args.real_test),
                                ("--seeds", args.seeds), ("--seed", args.seed), ("--steps", args.steps),
                                ("--batch", args.batch), ("--gan-per-class", args.gan_per_class),
                                ("--size", args.size), ("--threads", args.threads)))
    if not workers.in_process:
        res["command"] += f" --workers {workers.n}" + (f" --scheduler {workers.scheduler}" if workers.scheduler else "")
    res["workers"] = workers.describe()
    res["device"] = f"CPU ({platform.processor() or platform.machine()}), torch {torch.__version__}, " \
                    f"{torch.get_num_threads()} thread(s)"
    res["cellgan"] = {"model": generator.model_id, "version": generator.version, "provider": generator.provider}
    res["train_left_out"] = train_facts["left_out"]
    res["test_left_out"] = test_facts["left_out"]
    res["total_seconds"] = round(time.time() - t0, 1)
    print(f"Cells: {len(train)} training, {len(test)} test; {args.steps} optimizer steps x batch {args.batch} in every "
          f"arm; seeds {', '.join(map(str, seeds))}; {res['device']}; {res['total_seconds']:.0f} s.")
    print("Mean ± SD over the seeds, in %.")
    for grouping, title in (("herlev", "Herlev classes (7)"), ("bethesda", "Bethesda grouping (4)")):
        t = table(res, grouping)
        if t:
            print(f"\n{title}:\n{t}")
    tg = res["target"]
    if "gain_points_over_real" in tg:
        gains = ", ".join(f"{a} {v:+.1f}" for a, v in tg["gain_points_over_real"].items())
        print(f"\nBalanced accuracy over 'real' ({tg['grouping']}), points: {gains}. Target ({TARGET_POINTS:g} points "
              f"by a CellGAN arm): {'met' if tg['met'] else 'not met'}.")
    if args.json:
        from ..io import write_json

        write_json(res, args.json)
        print(f"wrote {args.json}")
    return 0


def register(sub) -> None:
    from ..params import bounded_int

    p = sub.add_parser(
        "cells-augmentation",
        help="does CellGAN make a cervical cell classifier better? 5 training arms, held-out real cells",
        description="Trains the same CNN (MONAI ResNet, 2D) with the same step budget in 5 arms: real cells; real + "
        "standard augmentation; real + class-balanced CellGAN cells; real + augmentation + CellGAN; CellGAN "
        "pre-training then fine-tuning on real. Reports accuracy, balanced accuracy, macro F1 and per-class recall "
        "on held-out real cells (mean and SD over the seeds), for the 7 Herlev classes and the Bethesda grouping. "
        "'herlev' = ../shared/data/cytology/herlev with the fixed group split (--real-train: training groups, "
        "--real-test: held-out groups). Needs torch and MONAI.",
    )
    p.add_argument("--real-train", required=True, help="'herlev' or a folder of Herlev-class sub-folders of cell images")
    p.add_argument("--real-test", required=True, help="'herlev' or a folder of class sub-folders (Herlev classes or "
                   "Bethesda categories) of held-out cell images")
    p.add_argument("--seeds", type=bounded_int(1, 20), default=3, help="replicates [1..20] (default 3)")
    p.add_argument("--seed", type=bounded_int(0, 9999), default=0, help="seed of the first replicate (default 0)")
    p.add_argument("--steps", type=bounded_int(1, 100000), default=DEFAULT_STEPS,
                   help=f"optimizer steps per arm [1..100000] (default {DEFAULT_STEPS})")
    p.add_argument("--batch", type=bounded_int(2, 512), default=DEFAULT_BATCH,
                   help=f"batch size [2..512] (default {DEFAULT_BATCH})")
    p.add_argument("--gan-per-class", type=bounded_int(1, 10000), default=DEFAULT_GAN_PER_CLASS,
                   help=f"CellGAN cells per Herlev class and seed [1..10000] (default {DEFAULT_GAN_PER_CLASS})")
    p.add_argument("--size", type=bounded_int(32, 128), default=DEFAULT_SIZE, help="cell patch size in px (default 64)")
    p.add_argument("--threads", type=bounded_int(1, 64), default=1,
                   help="torch CPU threads of each training run (default 1)")
    from ..parallel import WORKER_PARAMS
    from ..params import add_arguments

    add_arguments(p, WORKER_PARAMS)
    p.add_argument("--json", default=None, help="also write the figures as JSON (.json)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


__all__ = ["ARMS", "load_cells", "metrics", "read_cell", "register", "run", "run_experiment", "table"]

"""``medsynth evaluate cells``: how recognisable and how real generated cells are, against baselines, in one run.

FID's Inception weights cannot be had here, so the feature space is a cell classifier trained in the
same run on the real training cells (numpy only, seeded):

* features: colour and optical-density statistics and histograms (whole patch and centre disc), dark-
  pixel fractions at several levels (nucleus size, the N/C ratio's proxy), gradient statistics, and a
  fixed random two-layer convolutional network (seeded filters, ReLU, global mean pooling) at 32 px;
* classifier: standardised features -> 64 hidden units (ReLU) -> classes, class-balanced cross-entropy,
  Adam with weight decay, 15 epochs over the 8 rotations/flips of every training cell (more epochs or
  more random-network features fit the training cells better and the held-out cells worse). Its hidden
  layer is the feature space.

Reported per source (real test cells = the sanity line; CellGAN; the plain conditional generator
``cellgan-baseline`` when shipped; plain augmentation of the training cells): accuracy of the classifier
on the cells of each class (how often a generated cell is recognised as its class) and overall; the
Frechet distance between Gaussian fits of real test and generated features; precision and recall of
Kynkaenniemi et al. (2019): k-NN (k=3) balls around the real (resp. generated) features, sets of equal
size (generated subsampled, mean of 10 draws). Generated cells follow the class mix of the real test set.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from .classes import BETHESDA_CLASSES, HERLEV_CLASSES, HERLEV_TO_BETHESDA, canonical_class, check_naming, classes_of
from .data import CellSet, centre_square

HIDDEN = 64
K_NN = 3


# --------------------------------------------------------------------------- features
def _random_filters(seed: int = 1234) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((5 * 5 * 3, 32)).astype(np.float32)
    w1 -= w1.mean(axis=0, keepdims=True)
    w1 /= np.linalg.norm(w1, axis=0, keepdims=True)
    w2 = rng.standard_normal((3 * 3 * 32, 64)).astype(np.float32)
    w2 /= np.linalg.norm(w2, axis=0, keepdims=True)
    return w1, w2


def _im2col(x: np.ndarray, k: int) -> np.ndarray:
    """(N, H, W, C) -> (N, H-k+1, W-k+1, k*k*C) valid patches."""
    n, h, w, c = x.shape
    s = x.strides
    view = np.lib.stride_tricks.as_strided(x, (n, h - k + 1, w - k + 1, k, k, c), (s[0], s[1], s[2], s[1], s[2], s[3]))
    return view.reshape(n, h - k + 1, w - k + 1, k * k * c)


def cell_features(images: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, D) float32 features (see the module doc)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"expected (N, S, S, 3) RGB cells, got shape {images.shape}")
    w1, w2 = _random_filters()
    out = []
    for b in range(0, len(images), batch):
        x = images[b : b + batch].astype(np.float32)
        n, s = x.shape[0], x.shape[1]
        if s != 64:
            from .data import resize

            x = np.stack([resize(im, 64, 64) for im in x])
            s = 64
        feats = []
        grey = x.mean(axis=-1)
        od = -np.log((x + 1.0) / 256.0)
        yy, xx = np.mgrid[0:s, 0:s]
        centre = np.hypot(yy - (s - 1) / 2, xx - (s - 1) / 2) <= 0.3 * s
        for arr in (x / 255.0, od):
            flat = arr.reshape(n, -1, 3)
            feats += [flat.mean(1), flat.std(1), np.percentile(flat, [5, 25, 50, 75, 95], axis=1).transpose(1, 0, 2).reshape(n, -1)]
            feats.append(arr[:, centre].mean(1))
        # grey histograms (whole, centre) and dark fractions relative to each cell's own median
        g = grey / 255.0
        hist = np.stack([np.histogram(gi, bins=12, range=(0, 1))[0] for gi in g]) / float(s * s)
        hist_c = np.stack([np.histogram(gi[centre], bins=12, range=(0, 1))[0] for gi in g]) / float(centre.sum())
        med = np.median(g.reshape(n, -1), axis=1)[:, None, None]
        dark = np.stack([(g < med * f).mean(axis=(1, 2)) for f in (0.5, 0.6, 0.7, 0.8, 0.9)], axis=1)
        dark_c = np.stack([(g[:, centre] < med[:, 0] * f).mean(axis=1) for f in (0.6, 0.8)], axis=1)
        gy, gx = np.gradient(g, axis=(1, 2))
        mag = np.hypot(gx, gy).reshape(n, -1)
        feats += [hist, hist_c, dark, dark_c, np.percentile(mag, [50, 90, 99], axis=1).T, mag.mean(1, keepdims=True)]
        # random conv net at 32 px
        small = x.reshape(n, 32, 2, 32, 2, 3).mean(axis=(2, 4)) / 127.5 - 1.0
        h1 = np.maximum(_im2col(np.ascontiguousarray(small), 5) @ w1, 0.0)  # (n, 28, 28, 32)
        h1p = h1.reshape(n, 14, 2, 14, 2, 32).max(axis=(2, 4))
        h2 = np.maximum(_im2col(np.ascontiguousarray(h1p), 3) @ w2, 0.0)  # (n, 12, 12, 64)
        feats.append(h2.mean(axis=(1, 2)))
        out.append(np.concatenate([f.reshape(n, -1) for f in feats], axis=1).astype(np.float32))
    return np.concatenate(out)


def dihedral(images: np.ndarray) -> np.ndarray:
    """The 8 rotations/flips of each image, (8N, S, S, 3), grouped by transform."""
    outs = []
    for flip in (False, True):
        a = images[:, :, ::-1] if flip else images
        for k in range(4):
            outs.append(np.rot90(a, k, axes=(1, 2)))
    return np.ascontiguousarray(np.concatenate(outs))


# --------------------------------------------------------------------------- classifier
class CellClassifier:
    """Standardised features -> ReLU hidden layer -> softmax (numpy, Adam, class-balanced)."""

    def __init__(self, n_classes: int, hidden: int = HIDDEN, seed: int = 0) -> None:
        self.n_classes, self.hidden, self.seed = n_classes, hidden, seed

    def fit(self, feats: np.ndarray, labels: np.ndarray, epochs: int = 15, lr: float = 3e-3,
            weight_decay: float = 3e-2, batch: int = 256) -> "CellClassifier":
        rng = np.random.default_rng(self.seed)
        x = np.asarray(feats, np.float64)
        y = np.asarray(labels, np.int64)
        self.mean = x.mean(0)
        self.std = x.std(0) + 1e-6
        x = (x - self.mean) / self.std
        d, k, h = x.shape[1], self.n_classes, self.hidden
        counts = np.bincount(y, minlength=k).astype(np.float64)
        cw = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max(1, (counts > 0).sum()), 0.0)
        params = {
            "w1": rng.standard_normal((d, h)) * np.sqrt(2.0 / d),
            "b1": np.zeros(h),
            "w2": rng.standard_normal((h, k)) * np.sqrt(1.0 / h),
            "b2": np.zeros(k),
        }
        m = {n: np.zeros_like(v) for n, v in params.items()}
        v2 = {n: np.zeros_like(v) for n, v in params.items()}
        t = 0
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for s in range(0, len(x), batch):
                idx = order[s : s + batch]
                xb, yb = x[idx], y[idx]
                z1 = xb @ params["w1"] + params["b1"]
                a1 = np.maximum(z1, 0)
                # dropout on the hidden layer while training
                keep = (rng.random(a1.shape) > 0.2) / 0.8
                a1d = a1 * keep
                logits = a1d @ params["w2"] + params["b2"]
                logits -= logits.max(1, keepdims=True)
                p = np.exp(logits)
                p /= p.sum(1, keepdims=True)
                wts = cw[yb] / cw[yb].sum()
                g = p.copy()
                g[np.arange(len(yb)), yb] -= 1.0
                g *= wts[:, None]
                grads = {"w2": a1d.T @ g, "b2": g.sum(0)}
                da = (g @ params["w2"].T) * keep * (z1 > 0)
                grads["w1"] = xb.T @ da
                grads["b1"] = da.sum(0)
                t += 1
                for n in params:
                    gr = grads[n] + (weight_decay * params[n] if n.startswith("w") else 0.0)
                    m[n] = 0.9 * m[n] + 0.1 * gr
                    v2[n] = 0.999 * v2[n] + 0.001 * gr * gr
                    params[n] -= lr * (m[n] / (1 - 0.9**t)) / (np.sqrt(v2[n] / (1 - 0.999**t)) + 1e-8)
        self.params = params
        return self

    def embed(self, feats: np.ndarray) -> np.ndarray:
        x = (np.asarray(feats, np.float64) - self.mean) / self.std
        return np.maximum(x @ self.params["w1"] + self.params["b1"], 0)

    def predict(self, feats: np.ndarray) -> np.ndarray:
        return np.argmax(self.embed(feats) @ self.params["w2"] + self.params["b2"], axis=1)


# --------------------------------------------------------------------------- distances
def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussian fits of two feature sets (rows are samples)."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    import warnings

    with warnings.catch_warnings():  # a collapsed generator gives a singular covariance: handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)  # (no disp=: deprecated in SciPy 1.17, gone in 1.18)
    if not np.all(np.isfinite(covmean)):
        eps = 1e-6 * np.eye(len(s1))
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0))
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def _coverage(points: np.ndarray, manifold: np.ndarray, radii: np.ndarray) -> float:
    d = np.sqrt(np.maximum(((points[:, None, :] - manifold[None, :, :]) ** 2).sum(-1), 0))
    return float((d <= radii[None, :]).any(axis=1).mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = K_NN, draws: int = 10, seed: int = 0) -> Tuple[float, float]:
    """Improved precision/recall (k-NN manifolds), generated set subsampled to the real set's size."""
    rng = np.random.default_rng(seed)
    real = np.asarray(real, np.float64)
    fake = np.asarray(fake, np.float64)
    n = min(len(real), len(fake))
    r_radii = _knn_radii(real[:n] if len(real) > n else real, k)
    ps, rs = [], []
    for _ in range(draws if len(fake) > n or len(real) > n else 1):
        ri = rng.choice(len(real), n, replace=False)
        fi = rng.choice(len(fake), n, replace=False)
        rr, ff = real[ri], fake[fi]
        ps.append(_coverage(ff, rr, _knn_radii(rr, k)))
        rs.append(_coverage(rr, ff, _knn_radii(ff, k)))
    del r_radii
    return float(np.mean(ps)), float(np.mean(rs))


# --------------------------------------------------------------------------- generated sources
def augment_cells(cells: CellSet, wanted: Dict[int, int], seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Plain augmentation baseline: random windows, flips, quarter turns and colour jitter of training cells."""
    rng = np.random.default_rng(seed)
    imgs, labs = [], []
    for c, n in sorted(wanted.items()):
        pool = np.flatnonzero(cells.labels == c)
        if len(pool) == 0:
            raise InputError(f"no training cells of class index {c} to augment")
        for _ in range(n):
            p = cells.patches[int(rng.choice(pool))]
            h, w = p.shape[:2]
            s = cells.size
            r0, c0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            q = np.rot90(p[r0 : r0 + s, c0 : c0 + s], int(rng.integers(0, 4))).astype(np.float32)
            if rng.random() < 0.5:
                q = q[:, ::-1]
            gain = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
            mean = q.mean(axis=(0, 1), keepdims=True)
            q = (q - mean) * rng.uniform(0.85, 1.15) + mean * gain
            imgs.append(np.clip(q + 0.5, 0, 255).astype(np.uint8))
            labs.append(c)
    return np.stack(imgs), np.asarray(labs)


def wanted_counts(test_labels: np.ndarray, n_classes: int, count: int) -> Dict[int, int]:
    """Generated cells per class: ``count`` per class on average, in the class mix of the real test set."""
    freq = np.bincount(test_labels, minlength=n_classes).astype(np.float64)
    present = freq > 0
    total = count * int(present.sum())
    out = {}
    for c in range(n_classes):
        if present[c]:
            out[c] = max(1, int(round(total * freq[c] / freq.sum())))
    return out


def _to_naming(labels: np.ndarray, source_classes: Sequence[str], naming: str) -> np.ndarray:
    names = classes_of(naming)
    table = []
    for c in source_classes:
        if c in names:
            table.append(names.index(c))
        elif naming == "bethesda" and c in HERLEV_TO_BETHESDA:
            table.append(names.index(HERLEV_TO_BETHESDA[c]))
        else:
            raise InputError(f"class {c} cannot be written in the {naming} naming (use --naming bethesda)")
    return np.asarray(table)[np.asarray(labels, np.int64)]


# --------------------------------------------------------------------------- the evaluation
def evaluate_sets(
    train: CellSet,
    test: CellSet,
    source_classes: Sequence[str],
    generators: Sequence[Any],
    naming: str = "bethesda",
    count: int = 100,
    seed: int = 0,
    augment: bool = True,
    log: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """The whole evaluation. ``source_classes``: the class names the labels of ``train``/``test`` index
    (Herlev classes or Bethesda categories); ``generators``: :class:`~medsynth.cyto.generate.CellGenerator`
    objects (or anything with ``model_id`` and ``generate(class, count, seed, naming)``)."""
    naming = check_naming(naming)
    names = classes_of(naming)
    t0 = time.time()

    def say(msg: str) -> None:
        if log:
            log(f"[evaluate {time.time() - t0:5.1f} s] {msg}")

    if len(train) < 2 * len(names) or len(test) < len(names):
        raise InputError(f"too few cells: {len(train)} training and {len(test)} test cells for {len(names)} classes")
    y_train = _to_naming(train.labels, source_classes, naming)
    y_test = _to_naming(test.labels, source_classes, naming)
    train_sq, test_sq = train.squares(), test.squares()
    say(f"features of {len(train_sq)} x 8 training and {len(test_sq)} test cells")
    f_train = cell_features(dihedral(train_sq))
    f_test = cell_features(test_sq)
    clf = CellClassifier(len(names), seed=seed).fit(f_train, np.tile(y_train, 8))
    say("classifier trained")
    e_train = clf.embed(cell_features(train_sq))
    e_test = clf.embed(f_test)
    rows: List[Dict[str, Any]] = []

    def row(source: str, feats: np.ndarray, labels: np.ndarray, with_distances: bool, **extra) -> Dict[str, Any]:
        pred = clf.predict(feats)
        per = {}
        for i, c in enumerate(names):
            sel = labels == i
            per[c] = float((pred[sel] == i).mean()) if sel.any() else None
        r = {"source": source, "cells": int(len(labels)), "accuracy": float((pred == labels).mean()),
             "balanced_accuracy": float(np.mean([v for v in per.values() if v is not None])), "per_class": per}
        if with_distances:
            emb = clf.embed(feats)
            r["frechet_distance"] = frechet_distance(e_test, emb)
            r["precision"], r["recall"] = precision_recall(e_test, emb, seed=seed)
        r.update(extra)
        return r

    rows.append(row("real test cells", f_test, y_test, False, note="sanity line: classifier on held-out real cells"))
    ref = row("real training cells", cell_features(train_sq), y_train, True, note="reference: real vs real")
    rows.append(ref)
    wanted = wanted_counts(test.labels, len(source_classes), count)
    for gen in generators:
        say(f"generating {sum(wanted.values())} cells with {gen.model_id}")
        imgs, labs = [], []
        for c, n in sorted(wanted.items()):
            got = gen.generate(source_classes[c], n, seed=seed + 100000 * c, naming="herlev")
            imgs += [x.image for x in got]
            labs += [c] * len(got)
        imgs = np.stack(imgs)
        if imgs.shape[1] != 64:
            from .data import resize, to_uint8

            imgs = np.stack([to_uint8(resize(im, 64, 64)) for im in imgs])
        rows.append(row(gen.model_id, cell_features(imgs), _to_naming(np.asarray(labs), source_classes, naming), True,
                        provider=getattr(gen, "provider", "")))
    if augment:
        say("plain augmentation of training cells")
        imgs, labs = augment_cells(train, wanted, seed)
        rows.append(row("augmentation", cell_features(imgs), _to_naming(labs, source_classes, naming), True,
                        note="training cells: windows, flips, quarter turns, colour jitter"))
    say("done")
    return {
        "naming": naming,
        "classes": list(names),
        "count_per_class": count,
        "train_cells": len(train),
        "test_cells": len(test),
        "seed": seed,
        "seconds": time.time() - t0,
        "rows": rows,
        "feature_space": f"hidden layer ({HIDDEN} units) of a classifier trained here on the real training cells",
    }


def evaluate_entries(train: CellSet, test: CellSet, entries, count: int = 100, seed: int = 0,
                     naming: str = "bethesda", log=None) -> Dict[str, Any]:
    """Evaluation of freshly exported models (manifest entries not yet in a manifest) on Herlev sets."""
    from ..runtime import load_entry
    from .generate import CellGenerator

    gens = []
    for e in entries:
        g = CellGenerator.__new__(CellGenerator)
        g.model = load_entry(e)
        g.model_id, g.version = e.id, e.version
        g.classes = tuple(e.extra.get("classes", HERLEV_CLASSES))
        g.z_dim = int(e.extra["z_dim"])
        g.patch_px = int(e.extra.get("patch_px", 64))
        g.weights = {k: float(v) for k, v in e.extra.get("class_counts", {}).items()}
        gens.append(g)
    res = evaluate_sets(train, test, list(HERLEV_CLASSES), gens, naming, count, seed, log=log)
    res["command"] = f"medsynth evaluate cells --real-train HERLEV --real-test HERLEV --count {count} --naming {naming}"
    return res


# --------------------------------------------------------------------------- report
def _fmt(v, pct: bool = True) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.0f} %" if pct else f"{v:.2f}"


def table(result: Dict[str, Any]) -> str:
    """A markdown table of :func:`evaluate_sets`' rows."""
    names = result["classes"]
    head = ["source", "cells", "accuracy", "balanced"] + [f"acc {c}" for c in names] + ["FD", "precision", "recall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        cells = [r["source"], str(r["cells"]), _fmt(r["accuracy"]), _fmt(r["balanced_accuracy"])]
        cells += [_fmt(r["per_class"].get(c)) for c in names]
        cells += [_fmt(r.get("frechet_distance"), False), _fmt(r.get("precision"), False), _fmt(r.get("recall"), False)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line
def _load_real(spec: str, split: str, no_split: bool):
    from .data import default_herlev_dir, load_folder

    path = Path(spec) if spec.lower() != "herlev" else default_herlev_dir()
    return load_folder(path, 64, "all" if no_split else split)


def run(args) -> int:
    from ..outputs import JSON, OutputPlan

    naming = check_naming(args.naming)
    if args.count <= 0:
        raise InputError(f"--count must be at least 1, got {args.count}")
    from .data import default_herlev_dir

    plan = OutputPlan(inputs=[default_herlev_dir() if str(f).lower() == "herlev" else f
                              for f in (args.real_train, args.real_test)])
    plan.file(args.json, "--json", JSON)
    with plan:
        return _run(args, naming)


def _run(args, naming: str) -> int:
    from .generate import get_generator
    from ..runtime import list_models

    train, train_classes = _load_real(args.real_train, "train", args.no_split)
    test, test_classes = _load_real(args.real_test, "test", args.no_split)
    if train_classes != test_classes:
        raise InputError(f"training and test folders name different classes: {train_classes} vs {test_classes}")
    if set(train.names) & set(test.names) and Path(args.real_train).resolve() == Path(args.real_test).resolve() and args.no_split:
        raise InputError("--no-split with the same folder for training and test would test on training cells")
    known = list_models()
    model_ids = [m.strip() for m in args.models.split(",") if m.strip()]
    missing = [m for m in model_ids if m not in known]
    if "cellgan" in missing:
        raise InputError("the cellgan model is not installed (Resources/Models); see docs/cyto.md")
    gens = [get_generator(m) for m in model_ids if m in known]
    sys_log = (lambda msg: __import__("sys").stderr.write(msg + "\n")) if not args.quiet else None
    res = evaluate_sets(train, test, train_classes, gens, naming, args.count, args.seed, augment=not args.no_augment,
                        log=sys_log)
    res["command"] = "medsynth evaluate cells " + " ".join(
        f"{k} {v}" for k, v in (("--real-train", args.real_train), ("--real-test", args.real_test),
                                ("--count", args.count), ("--naming", naming), ("--seed", args.seed))
    )
    res["skipped_models"] = missing
    res["device"] = "CPU" if all(g.provider == "CPUExecutionProvider" for g in gens) else "GPU"
    print(f"Cells: {res['train_cells']} training, {res['test_cells']} test ({naming} naming); "
          f"{args.count} generated cells per class on average; feature space: {res['feature_space']}.")
    if missing:
        print(f"(not installed, skipped: {', '.join(missing)})")
    print(table(res))
    if args.json:
        from ..io import write_json

        write_json(res, args.json)
        print(f"wrote {args.json}")
    return 0


def register(sub) -> None:
    from ..params import bounded_int
    p = sub.add_parser(
        "cells",
        help="generated cervical cells vs real ones: classifier accuracy, Frechet distance, precision/recall",
        description="Trains a cell classifier on real training cells and reports its accuracy on real test cells "
        "and on generated cells of each class, and the Frechet distance and k-NN precision/recall between real "
        "test and generated cells in its feature space, for CellGAN, the plain conditional baseline and plain "
        "augmentation. A Herlev folder (7 class sub-folders; 'herlev' = ../shared/data/cytology/herlev) is split "
        "with the fixed held-out split: --real-train takes its training part, --real-test its held-out part.",
    )
    p.add_argument("--real-train", required=True, help="folder of class sub-folders of real training cells")
    p.add_argument("--real-test", required=True, help="folder of class sub-folders of real test cells")
    p.add_argument("--count", type=bounded_int(1, 10000), default=100,
                   help="generated cells per class on average [1..10000] (default 100)")
    p.add_argument("--naming", default="bethesda", choices=("herlev", "bethesda"), help="classes of the classifier")
    p.add_argument("--seed", type=bounded_int(0, 999999), default=0)
    p.add_argument("--models", default="cellgan,cellgan-baseline", help="generator models (comma separated)")
    p.add_argument("--no-augment", action="store_true", help="leave out the plain-augmentation baseline")
    p.add_argument("--no-split", action="store_true", help="use every image of the folders (no Herlev split)")
    p.add_argument("--json", default=None, help="also write the figures as JSON (.json)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


__all__ = ["CellClassifier", "cell_features", "evaluate_sets", "frechet_distance", "precision_recall", "register", "table"]

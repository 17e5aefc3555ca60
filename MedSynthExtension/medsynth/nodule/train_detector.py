"""Train the radiograph nodule detector: MONAI's RetinaNet (2D) on host radiographs with synthetic nodules.

Network: a MONAI ResNet-10 backbone (basic blocks, widths 32-256), MONAI's FeaturePyramidNetwork over its
strides 8, 16 and 32, MONAI's RetinaNet classification and regression heads, three square anchors per place
(8, 12, 16 px at stride 8, doubled per level: 8-64 px, i.e. 8-64 mm on the 1 mm canvas), ATSS matching and hard
negative sampling from :class:`monai.apps.detection.networks.retinanet_detector.RetinaNetDetector`.

Data: the training hosts' canvases (:mod:`.cxr_data`); a pool of samples with 0-3 random nodules inserted by the
project's own radiograph insertion is drawn from them (a fresh pool every ``pool_every`` steps); each step takes
random 256 px crops with contrast / brightness / noise changes and left-right / up-down mirroring.  The boxes come from the inserted masks.

Resumable: ``OUT/checkpoint.pt`` (weights, optimizer, step) is written every ``save_every`` steps and at the end;
a later run with the same ``--out`` continues from it (same seed: the same batches), so CPU runs and short GPU runs
add up.  ``--init CKPT`` starts from other weights (fine-tuning).  The end: ``OUT/detector.onnx`` (network, anchors
and box decoding for the fixed canvas; scores and boxes out) and ``OUT/operating_point.json``: the score threshold
at 0.5 false positives per image on the validation hosts (patients apart from training and from any test).

    python -m medsynth.nodule.train_detector --images ../shared/data/cxr/figure1/images ../shared/data/cxr/nih \\
        --out output/nodule_det/base --steps 1500 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .cxr_data import CANVAS, Canvas, detector_input, host_canvas, split_by_patient, synthetic_sample

CROP = 256
ANCHOR_BASE = ((8, 8), (12, 12), (16, 16))
FEATURE_SCALES = (1, 2, 4)
TARGET_FP_PER_IMAGE = 0.5


def build_detector(widths: Sequence[int] = (32, 64, 128, 256), fpn_channels: int = 64):
    """A MONAI RetinaNetDetector for one class (nodule) on 2D single-channel images."""
    import torch
    from monai.apps.detection.networks import retinanet_detector as rd
    from monai.apps.detection.networks.retinanet_network import RetinaNet
    from monai.apps.detection.utils.anchor_utils import AnchorGeneratorWithAnchorShape
    from monai.networks.blocks.feature_pyramid_network import FeaturePyramidNetwork
    from monai.networks.nets import resnet

    class Extractor(torch.nn.Module):
        """ResNet body -> FPN maps at strides 8, 16, 32 (MONAI parts; the body's own head is not used)."""

        def __init__(self) -> None:
            super().__init__()
            self.body = resnet.ResNet(block="basic", layers=[1, 1, 1, 1], block_inplanes=list(widths), spatial_dims=2,
                                      n_input_channels=2, conv1_t_size=7, conv1_t_stride=2, num_classes=1)
            self.body.fc = None
            self.fpn = FeaturePyramidNetwork(spatial_dims=2, in_channels_list=list(widths[1:]), out_channels=fpn_channels)
            self.out_channels = fpn_channels

        def forward(self, x):
            b = self.body
            x = b.maxpool(b.act(b.bn1(b.conv1(x))))
            c1 = b.layer1(x)
            c2 = b.layer2(c1)
            c3 = b.layer3(c2)
            c4 = b.layer4(c3)
            from collections import OrderedDict

            return list(self.fpn(OrderedDict([("0", c2), ("1", c3), ("2", c4)])).values())

    anchors = AnchorGeneratorWithAnchorShape(feature_map_scales=FEATURE_SCALES, base_anchor_shapes=ANCHOR_BASE)
    net = RetinaNet(spatial_dims=2, num_classes=1, num_anchors=len(ANCHOR_BASE), feature_extractor=Extractor(),
                    size_divisible=32)
    if not isinstance(rd.Matcher, type):
        # torchvision is not installed (its PyPI wheel does not load beside this torch build): MONAI keeps a
        # placeholder that raises on isinstance() in the loss; with the ATSS matcher used here no torchvision
        # matcher is ever made, so a class nothing is an instance of stands in for it
        rd.Matcher = type("NoTorchvisionMatcher", (), {})
    det = rd.RetinaNetDetector(net, anchors)
    det.set_target_keys(box_key="box", label_key="label")
    det.set_atss_matcher(num_candidates=4, center_in_gt=False)
    det.set_hard_negative_sampler(batch_size_per_image=64, positive_fraction=0.3, pool_size=20, min_neg=16)
    det.set_box_selector_parameters(score_thresh=0.02, topk_candidates_per_level=1000, nms_thresh=0.2,
                                    detections_per_img=50)
    return det


# --------------------------------------------------------------------------- data
def host_split(images: Sequence[Path], seed: int = 0, test_fraction: float = 0.3, val_fraction: float = 0.2
               ) -> Dict[str, List[Path]]:
    """train / val / test lists of radiographs, apart by patient (see :func:`.cxr_data.split_by_patient`)."""
    from .batch import list_hosts

    files: List[Path] = []
    for item in images:
        p = Path(item)
        files.extend(list_hosts(p) if p.is_dir() else [p])
    from ..errors import InputError
    from .cxr_data import patient_key

    if len({patient_key(p) for p in files}) < 3:
        raise InputError(f"{len(files)} host image(s) of fewer than 3 patients: training needs patients for "
                         "training, validation and test")
    rest, test = split_by_patient(files, test_fraction, seed)
    train, val = split_by_patient(rest, val_fraction, seed + 1)
    return {"train": train, "val": val, "test": test}


#: training nodules' log gain is scaled by a factor in this range: the real metastases of RG1_UNCR show 1-2x the
#: local contrast of synthetic solid nodules of their size (docs/nodule.md)
TRAIN_GAIN = (1.0, 2.0)


def curriculum_gain(step: int, steps: int) -> Tuple[float, float]:
    """Gain range of the pool at ``step``: from 3-4x (conspicuous nodules: a network from scratch learns what a
    nodule looks like; at 1-2x it stayed at the prior for 800 steps) down to :data:`TRAIN_GAIN` at 60 % of the run."""
    f = min(1.0, step / max(1.0, 0.6 * steps))
    lo = 3.0 + f * (TRAIN_GAIN[0] - 3.0)
    hi = 4.0 + f * (TRAIN_GAIN[1] - 4.0)
    return (round(lo, 3), round(hi, 3))


def make_pool(canvases: Sequence[Canvas], n: int, seed: int, specs: Optional[Sequence[Sequence[Any]]] = None,
              model=None, gain_range: Tuple[float, float] = TRAIN_GAIN) -> List[Tuple[np.ndarray, np.ndarray]]:
    """``n`` samples (float16 detector input [2, C, C], boxes [m, 4] in (j0, i0, j1, i1), covered shape);
    ``specs``: given nodules per sample."""
    rng = np.random.default_rng(seed)
    pool = []
    for s in range(n):
        c = canvases[int(rng.integers(len(canvases)))] if specs is None else canvases[s % len(canvases)]
        img, nods = synthetic_sample(c, rng, specs=None if specs is None else specs[s], model=model,
                                     gain_range=gain_range)
        boxes = np.array([nd.box_ji for nd in nods], np.float32).reshape(-1, 4)
        pool.append((detector_input(img, c.shape, c.pixel_mm).astype(np.float16), boxes, c.shape))
    return pool


def crop_batch(pool, rng: np.random.Generator, batch: int, crop: int = CROP, augment: bool = True):
    """Random crops (torch tensors [B, 1, crop, crop]) and MONAI targets (boxes fully or mostly inside)."""
    import torch

    imgs, targets = [], []
    for _ in range(batch):
        img, boxes, (h, w) = pool[int(rng.integers(len(pool)))]
        if len(boxes) and rng.random() < 0.7:  # mostly crops around a nodule
            b = boxes[int(rng.integers(len(boxes)))]
            cj, ci = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            j0 = int(np.clip(cj - rng.uniform(0.15, 0.85) * crop, 0, max(0, CANVAS - crop)))
            i0 = int(np.clip(ci - rng.uniform(0.15, 0.85) * crop, 0, max(0, CANVAS - crop)))
        else:
            j0 = int(rng.integers(0, max(1, min(h, CANVAS) - crop // 2)))
            i0 = int(rng.integers(0, max(1, min(w, CANVAS) - crop // 2)))
            j0, i0 = min(j0, CANVAS - crop), min(i0, CANVAS - crop)
        patch = img[:, j0 : j0 + crop, i0 : i0 + crop].astype(np.float32)
        if augment:
            patch[0] = patch[0] * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1)
            patch[0] = patch[0] + rng.normal(0, rng.uniform(0, 0.01), patch[0].shape).astype(np.float32)
        kept = []
        for b in boxes:
            nb = np.array([b[0] - j0, b[1] - i0, b[2] - j0, b[3] - i0], np.float32)
            cl = np.clip(nb, 0, crop)
            area = (nb[2] - nb[0]) * (nb[3] - nb[1])
            if area > 0 and (cl[2] - cl[0]) * (cl[3] - cl[1]) >= 0.6 * area:
                kept.append(cl)
        if augment:  # mirror images: more kinds of background (34 hosts are few) for the same nodules
            if rng.random() < 0.5:
                patch = patch[:, :, ::-1]
                kept = [np.array([b[0], crop - b[3], b[2], crop - b[1]], np.float32) for b in kept]
            if rng.random() < 0.5:
                patch = patch[:, ::-1, :]
                kept = [np.array([crop - b[2], b[1], crop - b[0], b[3]], np.float32) for b in kept]
        bx = torch.tensor(np.array(kept, np.float32).reshape(-1, 4))
        imgs.append(torch.from_numpy(np.ascontiguousarray(patch)))
        targets.append({"box": bx, "label": torch.zeros(len(bx), dtype=torch.long)})
    return torch.stack(imgs), targets


# --------------------------------------------------------------------------- export
def export_onnx(det, path: Path) -> None:
    """The network, the canvas's anchors and the box decoding as one ONNX graph: image [1, 2, C, C] ->
    scores [A] (sigmoid), boxes [A, 4] (j0, i0, j1, i1 on the canvas)."""
    import torch

    det.eval()
    with torch.no_grad():
        probe = torch.zeros(1, 2, CANVAS, CANVAS)
        heads = det.network(probe)
        det.generate_anchors(probe, heads)
        anchors = det.anchors[0].detach().clone()

    class Exported(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = det.network
            self.register_buffer("anchors", anchors)

        def forward(self, image):
            heads = self.network(image)
            cls = det._reshape_maps(heads[det.cls_key])[0, :, 0]
            reg = det._reshape_maps(heads[det.box_reg_key])[0]
            return torch.sigmoid(cls), det.box_coder.decode_single(reg, self.anchors)

    tmp = path.with_name(path.name + ".part")
    torch.onnx.export(Exported().eval(), (torch.zeros(1, 2, CANVAS, CANVAS),), str(tmp), dynamo=False,
                      opset_version=17, input_names=["image"], output_names=["scores", "boxes"])
    os.replace(tmp, path)


# --------------------------------------------------------------------------- training
def _checkpoint(out: Path) -> Path:
    return out / "checkpoint.pt"


def train(images: Sequence[Path], out: Path, steps: int, seed: int = 0, batch: int = 8, lr: float = 1e-3,
          init: Optional[Path] = None, extra_pool: Optional[list] = None, pool_size: int = 400, pool_every: int = 400,
          save_every: int = 100, split_seed: int = 0, log=print, model=None, curriculum: bool = True
          ) -> Dict[str, Any]:
    """Train (or continue) the detector in ``out``; returns facts (steps done, seconds, losses, split)."""
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split = host_split(images, split_seed)
    canvases = [host_canvas(p) for p in split["train"]]
    det = build_detector()
    opt = torch.optim.AdamW(det.network.parameters(), lr=lr, weight_decay=1e-4)
    start = 0
    ck = _checkpoint(out)
    if ck.is_file():
        state = torch.load(ck, map_location="cpu", weights_only=True)
        det.network.load_state_dict(state["network"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
        log(f"resumed from {ck} at step {start}")
    elif init is not None:
        state = torch.load(Path(init), map_location="cpu", weights_only=True)
        det.network.load_state_dict(state["network"])
        log(f"initialised from {init}")
    det.train()
    t0 = time.time()
    pool, pool_id = None, None
    losses: List[float] = []
    for step in range(start, steps):
        if pool_id != step // pool_every:
            pool_id = step // pool_every
            gain = curriculum_gain(step, steps) if curriculum else TRAIN_GAIN
            pool = make_pool(canvases, pool_size, seed * 100_003 + pool_id, model=model, gain_range=gain)
            log(f"step {step}: new pool of {pool_size} samples, nodule gain {gain[0]:g}-{gain[1]:g}")
            if extra_pool:
                pool = pool + list(extra_pool)
        rng = np.random.default_rng([seed, step])
        torch.manual_seed(seed * 1_000_003 + step)  # the detector's own draws (hard-negative sampling): a resumed or
        x, targets = crop_batch(pool, rng, batch)  # parallel run takes the same steps as one run from the start
        warm = min(1.0, (step + 1) / 50.0)
        for g in opt.param_groups:
            g["lr"] = lr * warm
        loss_d = det(x, targets)
        loss = loss_d[det.cls_key] + loss_d[det.box_reg_key]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
        if (step + 1) % 25 == 0:
            log(f"step {step + 1}/{steps} loss {np.mean(losses[-25:]):.4f} "
                f"({(time.time() - t0) / (step + 1 - start):.2f} s/step)")
        if (step + 1) % save_every == 0 or step + 1 == steps:
            tmp = ck.with_name(ck.name + ".part")
            torch.save({"network": det.network.state_dict(), "optimizer": opt.state_dict(), "step": step + 1}, tmp)
            os.replace(tmp, ck)
    export_onnx(det, out / "detector.onnx")
    facts = {"steps": steps, "resumed_at": start, "seconds": round(time.time() - t0, 1),
             "final_loss": float(np.mean(losses[-50:])) if losses else None,
             "split_seed": split_seed, "split": {k: [str(p) for p in v] for k, v in split.items()},
             "device": "cpu", "seed": seed}
    return facts


def calibrate(detector_path: Path, val: Sequence[Path], seed: int, samples_per_host: int = 4,
              target_fp: float = TARGET_FP_PER_IMAGE) -> Dict[str, Any]:
    """The score threshold with at most ``target_fp`` false positives per image on the validation hosts (their
    unmodified images and images with synthetic nodules; detections that do not hit an inserted nodule count)."""
    from .cxr_detector import CanvasDetector, hits

    d = CanvasDetector(detector_path, threshold=0.0)
    canvases = [host_canvas(p) for p in val]
    rng = np.random.default_rng(seed)
    fp_scores: List[float] = []
    n_images = 0
    for c in canvases:
        imgs = [(c.image, [])] + [(im, [n.box_ji for n in nods]) for im, nods in
                                  (synthetic_sample(c, rng) for _ in range(samples_per_host))]
        for im, boxes in imgs:
            dets = d.detect_array(im, c.shape, pixel_mm=c.pixel_mm)
            used = hits(dets, boxes)
            fp_scores.extend(s for (b, s), u in zip(dets, used) if not u)
            n_images += 1
    fp_scores.sort(reverse=True)
    allowed = int(np.floor(target_fp * n_images))
    thr = fp_scores[allowed] + 1e-6 if len(fp_scores) > allowed else 0.05
    return {"score_threshold": float(max(thr, 0.05)), "target_fp_per_image": target_fp, "val_images": n_images,
            "val_hosts": [str(p) for p in val], "seed": seed}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medsynth.nodule.train_detector", description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", nargs="+", required=True, help="host radiograph folders or files")
    ap.add_argument("--out", required=True, help="training folder (checkpoint.pt, detector.onnx, facts.json)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split-seed", type=int, default=0, help="patient split (train / val / test)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--init", default=None, help="start from this checkpoint.pt (fine-tuning)")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    facts = train(a.images, out, a.steps, a.seed, a.batch, a.lr, Path(a.init) if a.init else None,
                  split_seed=a.split_seed)
    facts["operating_point"] = calibrate(out / "detector.onnx", [Path(p) for p in facts["split"]["val"]], a.seed + 7)
    facts["command"] = "python -m medsynth.nodule.train_detector " + " ".join(sys.argv[1:] if argv is None else argv)
    from ..io import write_json

    write_json(facts, out / "facts.json")
    print(json.dumps({k: v for k, v in facts.items() if k != "split"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

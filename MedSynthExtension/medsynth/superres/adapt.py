""""Adapt to this volume": a short self-supervised fine-tune of SA-INR on the input's own in-plane detail.

Optional, and only where torch and MONAI are installed (they are not needed for plain inference). For scans unlike
the training templates: the input is fine in-plane and thick along one axis, so thick/fine pairs can be cut from the
input itself by degrading it *in-plane* (the same slice-profile model, thickness = spacing, at the input's own
anisotropy) and SA-INR learns to restore them; the adapted weights then reconstruct the real thick axis. Nothing but
the input is read, so this is fair on a held-out volume. The adapted model lives in memory (ONNX Runtime sessions
from a temporary export) and is never written into the model folder.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputError
from ..progress import CancelToken, ProgressCallback, Reporter
from ..volume import Volume

#: default fine-tuning steps (x 4 patches; 35-45 s on two idle CPU cores, docs/superres.md)
ADAPT_STEPS = 200
ADAPT_LR = 3e-4


def adapt_model(
    volume: Volume,
    axis: str = "auto",
    model=None,
    steps: int = ADAPT_STEPS,
    seed: int = 0,
    learning_rate: float = ADAPT_LR,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    log=None,
):
    """A copy of ``model`` (default: the shipped SA-INR) fine-tuned on ``volume``'s in-plane detail.

    Returns a :class:`~medsynth.superres.sainr.SAINRModel` to pass to :func:`~medsynth.superres.core.superres`
    (``model=``). ``volume`` is not modified. Raises :class:`~medsynth.InputError` when torch or MONAI is missing,
    for inputs super-resolution refuses, or when the input has too few slices to cut training pairs from.
    """
    try:
        import monai  # noqa: F401
        import torch
    except ImportError:
        raise InputError(
            "'adapt to this volume' fine-tunes the network and needs torch and MONAI (pip install torch monai); "
            "plain SA-INR inference does not"
        ) from None
    from ..runtime import load_entry
    from .data import PairSampler, normalization_scale
    from .geometry import check_volume, choose_axis
    from .model import SAINR
    from .sainr import SAINRModel, load_sainr
    from .train import accumulate_l1, export, load_weights

    steps = int(steps)
    if steps < 1:
        raise InputError(f"adapt steps must be at least 1, got {steps}")
    check_volume(volume)
    name = choose_axis(volume, axis)
    a = "ijk".index(name)
    sp = volume.spacing
    in_plane = float(np.mean([sp[b] for b in range(3) if b != a]))
    aniso = float(np.clip(sp[a] / in_plane, 2.0, 6.0))
    arr = np.moveaxis(np.asarray(volume.array, np.float32), 2 - a, 0)  # the thick axis first: [D, A, B]
    arr = np.clip(arr * np.float32(1.0 / normalization_scale(volume.array)), 0.0, None)
    patch, slices = 32, 6
    need = int(np.ceil((slices - 1) * aniso)) + 2 * (int(np.ceil(aniso)) + 1) + 1
    if max(arr.shape[1], arr.shape[2]) < need or arr.shape[0] < 8:
        raise InputError(
            f"'{volume.name}' is too small to adapt to ({' x '.join(map(str, volume.shape_ijk))} voxels): "
            f"at least {need} voxels in-plane and 8 slices are needed"
        )
    base = model if model is not None else load_sainr()
    arch = dict(base.entry.extra.get("architecture", {}))
    reporter = Reporter(progress, cancel)
    torch.manual_seed(seed)
    net = SAINR(**{k: int(v) for k, v in arch.items()})
    load_weights(net, Path(base.entry.path))
    rng = np.random.default_rng(seed)
    sampler = PairSampler({"input": arr}, rng, patch, slices, synthetic_fraction=0.0, axes=(1, 2),
                          factors=(aniso, aniso))
    opt = torch.optim.AdamW(net.parameters(), lr=float(learning_rate), weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 2), eta_min=learning_rate * 0.05)
    t0 = time.perf_counter()
    net.train()
    for step in range(steps):
        reporter.step(0.95 * step / steps, f"adapting SA-INR to '{volume.name}' ({step}/{steps})")
        opt.zero_grad()
        loss_sum = accumulate_l1(net, sampler, 4)  # the sampler's scale is the input's anisotropy
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if log and (step + 1) % max(1, steps // 5) == 0:
            log(f"  adapt step {step + 1}/{steps}: L1 {loss_sum:.4f} ({time.perf_counter() - t0:.0f} s)")
    net.eval()
    reporter.step(0.96, "exporting the adapted model")
    with tempfile.TemporaryDirectory(prefix="medsynth-adapt-") as tmp:
        cfg = {"batch": 4}
        enc, dec = export(net, Path(tmp), "sainr-adapted", f"adapt_model(steps={steps}, seed={seed})", cfg,
                          time.perf_counter() - t0, steps)
        enc.extra["adapted_from"] = {"id": base.entry.id, "sha256": base.entry.sha256, "volume": volume.name}
        adapted = SAINRModel(load_entry(enc), load_entry(dec))
    reporter.step(1.0, "adapted")
    return adapted


__all__ = ["ADAPT_STEPS", "adapt_model"]

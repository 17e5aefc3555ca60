"""Networks of the FDG <-> CFT synthesis (torch and MONAI; needed for training and export only, never inference).

* :class:`Generator` - a 3D residual U-Net (``monai.networks.nets.UNet`` with residual units, instance norm, PReLU)
  on two channels: the normalised input PET and the *prior* (the healthy template of the output tracer on the same
  MNI crop). It predicts a correction of the prior: ``output = prior + unet([input, prior])``. In MNI space the prior
  carries the anatomy, so the network spends its capacity on what differs between subjects. The U-Net ends in 8
  channels and a 1x1x1 convolution initialised to zero, so training starts from the prior.
* :class:`PatchDiscriminator` - a small 3D PatchGAN (4 strided convolutions, instance norm, leaky ReLU; a score per
  patch of about 30 mm) for the hinge adversarial loss.

Only numpy, torch and MONAI are imported, so this module works on the GPU training machine.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch
from torch import nn

#: network sizes; "base" is the GPU model, "small" the CPU fallback, "metaad" MetaAD's 4 mm cycle, "tiny" for tests
SIZES: Dict[str, Dict[str, object]] = {
    "tiny": {"channels": (4, 8, 16), "strides": (2, 2), "res_units": 1, "disc_channels": 4},
    "small": {"channels": (8, 16, 32, 64), "strides": (2, 2, 2), "res_units": 1, "disc_channels": 8},
    "base": {"channels": (16, 32, 64, 128), "strides": (2, 2, 2), "res_units": 2, "disc_channels": 16},
    # MetaAD's healthy cycle, on the 4 mm crop (40 x 48 x 40): trained from scratch on CPU
    "metaad": {"channels": (16, 32, 64), "strides": (2, 2), "res_units": 1, "disc_channels": 8},
}


class Generator(nn.Module):
    """``prior + head(UNet([x, prior]))`` on ``[N, 2, D, H, W]`` (channel 0: normalised input, channel 1: prior)."""

    FEATURES = 8

    def __init__(self, channels: Sequence[int], strides: Sequence[int], res_units: int) -> None:
        super().__init__()
        from monai.networks.nets import UNet

        self.unet = UNet(
            spatial_dims=3,
            in_channels=2,
            out_channels=self.FEATURES,
            channels=tuple(int(c) for c in channels),
            strides=tuple(int(s) for s in strides),
            num_res_units=int(res_units),
            norm="instance",
            act="prelu",
        )
        self.head = nn.Conv3d(self.FEATURES, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 1:2] + self.head(self.unet(x))


class PatchDiscriminator(nn.Module):
    """3D PatchGAN: ``[N, 1, D, H, W]`` -> ``[N, 1, D/8, H/8, W/8]`` scores (no sigmoid: hinge loss)."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        c = int(channels)
        layers = [nn.Conv3d(1, c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for cin, cout in ((c, 2 * c), (2 * c, 4 * c)):
            layers += [nn.Conv3d(cin, cout, 4, 2, 1), nn.InstanceNorm3d(cout, affine=True), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv3d(4 * c, 1, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build(size: str) -> Tuple[Generator, Generator, PatchDiscriminator, PatchDiscriminator]:
    """(G: FDG -> CFT, F: CFT -> FDG, D_cft, D_fdg) of the given size."""
    cfg = SIZES[size]
    gen = dict(channels=cfg["channels"], strides=cfg["strides"], res_units=cfg["res_units"])
    return (
        Generator(**gen),
        Generator(**gen),
        PatchDiscriminator(int(cfg["disc_channels"])),
        PatchDiscriminator(int(cfg["disc_channels"])),
    )


def build_generator(size: str) -> Generator:
    cfg = SIZES[size]
    return Generator(cfg["channels"], cfg["strides"], cfg["res_units"])


def count_parameters(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


__all__ = ["Generator", "PatchDiscriminator", "SIZES", "build", "build_generator", "count_parameters"]

"""The structure-guided MR -> CT generator and its discriminator (torch + MONAI; training and export only).

Generator: a shared encoder (three MONAI residual units, strides 1, 2, 2) and two decoders of the same shape,
one for the CT and one for edges (the structure of the CT). At every decoder scale the edge decoder's features
gate the CT decoder's features through a learned attention map, ``f_ct <- f_ct * (1 + sigmoid(conv1x1(f_edge)))``
(three scales: 1/4, 1/2 and full resolution). No normalisation layers: every output voxel depends only on its
neighbourhood, so tiled inference equals whole-volume inference (see :mod:`medsynth.mrct.synthesis`).

Outputs: ``ct`` (HU / 1000) and ``edges`` (gradient magnitude of the CT in HU/1000 per voxel, the structure map).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from monai.networks.blocks import Convolution, ResidualUnit, UpSample
from torch import nn

ACT = ("leakyrelu", {"negative_slope": 0.1})
DOWNSAMPLING = 4  # product of the encoder strides: input sizes are padded to a multiple of it


def _res(cin: int, cout: int, stride: int) -> nn.Module:
    return ResidualUnit(3, cin, cout, strides=stride, kernel_size=3, subunits=2, act=ACT, norm=None)


def _conv(cin: int, cout: int, k: int = 3, act=ACT) -> nn.Module:
    return Convolution(3, cin, cout, kernel_size=k, act=act, norm=None, conv_only=act is None)


class Decoder(nn.Module):
    def __init__(self, ch: Sequence[int]) -> None:
        super().__init__()
        c0, c1, c2 = ch
        self.mid = _conv(c2, c2)
        self.up1 = UpSample(3, c2, c1, scale_factor=2, mode="deconv")
        self.dec1 = _conv(2 * c1, c1)
        self.up0 = UpSample(3, c1, c0, scale_factor=2, mode="deconv")
        self.dec0 = _conv(2 * c0, c0)


class Gate(nn.Module):
    """Attention from the edge decoder's features onto the CT decoder's: ``f * (1 + sigmoid(W e))``."""

    def __init__(self, c_edge: int, c_ct: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(c_edge, c_ct, kernel_size=1)

    def forward(self, f: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return f * (1.0 + torch.sigmoid(self.proj(e)))


class StructureGuidedGenerator(nn.Module):
    def __init__(self, channels: Sequence[int] = (12, 24, 48)) -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.channels = tuple(int(c) for c in channels)
        self.enc0 = _res(1, c0, 1)
        self.enc1 = _res(c0, c1, 2)
        self.enc2 = _res(c1, c2, 2)
        self.ct = Decoder(channels)
        self.edge = Decoder(channels)
        self.gate2 = Gate(c2, c2)
        self.gate1 = Gate(c1, c1)
        self.gate0 = Gate(c0, c0)
        self.ct_head = nn.Conv3d(c0, 1, kernel_size=1)
        self.edge_head = nn.Conv3d(c0, 1, kernel_size=1)

    def forward(self, mr: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        s0 = self.enc0(mr)
        s1 = self.enc1(s0)
        s2 = self.enc2(s1)
        e2 = self.edge.mid(s2)
        c2 = self.gate2(self.ct.mid(s2), e2)
        e1 = self.edge.dec1(torch.cat([self.edge.up1(e2), s1], 1))
        c1 = self.gate1(self.ct.dec1(torch.cat([self.ct.up1(c2), s1], 1)), e1)
        e0 = self.edge.dec0(torch.cat([self.edge.up0(e1), s0], 1))
        c0 = self.gate0(self.ct.dec0(torch.cat([self.ct.up0(c1), s0], 1)), e0)
        return self.ct_head(c0), self.edge_head(e0)


class PatchDiscriminator(nn.Module):
    """A small conditional 3D PatchGAN on (MR, CT) patches."""

    def __init__(self, ch: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv3d(2, ch, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv3d(ch, 2 * ch, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv3d(2 * ch, 1, 3, padding=1),
        )

    def forward(self, mr: torch.Tensor, ct: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([mr, ct], 1))


def edge_map(ct: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude (central differences, replicate padding) of ``(N, 1, D, H, W)``."""
    p = nn.functional.pad(ct, (1, 1, 1, 1, 1, 1), mode="replicate")
    gz = (p[:, :, 2:, 1:-1, 1:-1] - p[:, :, :-2, 1:-1, 1:-1]) * 0.5
    gy = (p[:, :, 1:-1, 2:, 1:-1] - p[:, :, 1:-1, :-2, 1:-1]) * 0.5
    gx = (p[:, :, 1:-1, 1:-1, 2:] - p[:, :, 1:-1, 1:-1, :-2]) * 0.5
    return torch.sqrt(gz * gz + gy * gy + gx * gx + 1e-8)


__all__ = ["DOWNSAMPLING", "PatchDiscriminator", "StructureGuidedGenerator", "edge_map"]

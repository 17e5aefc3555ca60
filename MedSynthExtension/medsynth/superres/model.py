"""SA-INR network (torch; imported by training and export only, never by inference).

Spatial Attention-based Implicit Neural Representation, after Wang et al., Medical
Image Analysis 2024, in a small form that trains on two CPU cores and exports to
ONNX (opset 17):

* a 3D encoder over the thick-slice volume built from (2+1)D residual blocks (MONAI
  ``Convolution`` blocks: in-plane 3x3, through-plane 3, in-plane 3x3, with a skip),
  no normalisation layers, so tiles compute exactly what the whole volume would; the
  through-plane anisotropy (slice spacing / in-plane spacing) enters as a constant
  second input channel;
* each output slice position ``pos`` is a continuous input slice index, so any
  non-integer factor works.  A query there attends over the features of the four
  nearest input slices at the same in-plane location (their 3D receptive field covers
  the local neighbourhood): weights are a softmax of query-key similarity, with
  learned relative-position codes added to queries, keys and values;
* an MLP decoder (1x1 convolutions) maps the attended feature, the query and the
  neighbouring input intensities to a correction added to the linear interpolation
  between the two nearest input slices.

Inputs: ``lr`` [1, 1, D, H, W] (normalised, the refined axis first), ``pos`` [Q] float
(input slice index of each output slice, 0 .. D-1), ``scale`` [1] float (input slice
spacing / in-plane spacing).  Output: [1, 1, Q, H, W].  Internally the slices are the
batch dimension (``[D, C, H, W]``) so in-plane work runs as fast 2D convolutions.
"""

from __future__ import annotations

import math
from typing import List

import torch
from monai.networks.blocks import Convolution
from torch import nn

ACT = ("leakyrelu", {"negative_slope": 0.1})
NEIGHBOURS = (-1, 0, 1, 2)


def _conv(cin: int, cout: int, kernel, act: bool = True) -> Convolution:
    return Convolution(2, cin, cout, kernel_size=kernel, act=ACT if act else None, norm=None, conv_only=not act)


class ThroughPlane(nn.Module):
    """A convolution of width 3 across slices: [D, C, H, W] -> [D, C, H, W]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv(channels, channels, (3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, c, h, w = x.shape
        y = x.permute(1, 0, 2, 3).reshape(1, c, d, -1)  # [1, C, D, H*W]
        y = self.conv(y)
        return y.reshape(c, d, h, w).permute(1, 0, 2, 3)


class Block(nn.Module):
    """(2+1)D residual block: in-plane 3x3, through-plane 3, in-plane 3x3, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.xy1 = _conv(channels, channels, 3)
        self.z = ThroughPlane(channels)
        self.xy2 = _conv(channels, channels, 3, act=False)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.xy2(self.z(self.xy1(x))))


class PosEncoding(nn.Module):
    """Small MLP from (relative position, log scale) with a few Fourier features to ``dim``."""

    def __init__(self, dim: int, freqs: int = 3) -> None:
        super().__init__()
        self.freqs = freqs
        self.mlp = nn.Sequential(nn.Linear(2 + 2 * freqs, dim), nn.LeakyReLU(0.1), nn.Linear(dim, dim))

    def forward(self, rel: torch.Tensor, logscale: torch.Tensor) -> torch.Tensor:
        # rel [Q], logscale [1] -> [Q, dim, 1, 1]
        r = rel.unsqueeze(1)
        feats: List[torch.Tensor] = [r, logscale.reshape(1, 1) * torch.ones_like(r)]
        for f in range(self.freqs):
            w = math.pi * (2.0**f) / 2.0
            feats.append(torch.sin(w * r))
            feats.append(torch.cos(w * r))
        return self.mlp(torch.cat(feats, dim=1)).unsqueeze(2).unsqueeze(3)


class SAINR(nn.Module):
    def __init__(self, channels: int = 32, blocks: int = 3, att_dim: int = 16, heads: int = 2, hidden: int = 32) -> None:
        super().__init__()
        self.config = {"channels": channels, "blocks": blocks, "att_dim": att_dim, "heads": heads, "hidden": hidden}
        self.att_dim, self.heads = att_dim, heads
        self.head = _conv(2, channels, 3)
        self.head_z = ThroughPlane(channels)
        self.blocks = nn.Sequential(*[Block(channels) for _ in range(blocks)])
        # query / key / value projections are linear per voxel, so they run at input resolution, before gathering
        self.qkv = _conv(channels, 3 * att_dim, 1, act=False)
        self.pos_q = PosEncoding(att_dim)
        self.pos_k = PosEncoding(att_dim)
        self.pos_v = PosEncoding(att_dim)
        self.decoder = nn.Sequential(
            _conv(2 * att_dim + len(NEIGHBOURS) + 1, hidden, 1),
            _conv(hidden, hidden, 1),
            _conv(hidden, 1, 1, act=False),
        )

    def receptive_field(self) -> dict:
        """Encoder reach (input voxels each side) along the axis and in-plane, for tiling margins."""
        n = self.config["blocks"]
        return {"axis": 1 + n, "in_plane": 1 + 2 * n}

    def forward(self, lr: torch.Tensor, pos: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        x = lr[0].permute(1, 0, 2, 3)  # [D, 1, H, W]
        logscale = torch.log(torch.clamp(scale, min=1.0))
        x = torch.cat([x, (logscale.reshape(1, 1, 1, 1) - 1.2) * torch.ones_like(x)], dim=1)
        feat = self.blocks(self.head_z(self.head(x)))
        qkv = self.qkv(feat)  # [D, 3a, H, W]
        a = self.att_dim
        qf, kf, vf = qkv[:, :a], qkv[:, a : 2 * a], qkv[:, 2 * a :]
        dmax = torch.ones_like(x[:, 0, 0, 0]).sum() - 1.0  # D - 1, traced as a tensor
        i0 = torch.minimum(torch.clamp(torch.floor(pos), min=0.0), dmax - 1.0)
        frac = (pos - i0).reshape(-1, 1, 1, 1)
        i0l = i0.long()
        i1l = (i0 + 1.0).long()
        q0 = torch.index_select(qf, 0, i0l)
        q = q0 + frac * (torch.index_select(qf, 0, i1l) - q0) + self.pos_q(pos - i0, logscale)  # [Q, a, H, W]
        lx = x[:, 0:1]
        l0 = torch.index_select(lx, 0, i0l)
        base = l0 + frac * (torch.index_select(lx, 0, i1l) - l0)  # [Q, 1, H, W]
        h = self.heads
        d = a // h
        qh = q.reshape(q.shape[0], h, d, q.shape[2], q.shape[3])
        logits = []
        values = []
        lvals = []
        for o in NEIGHBOURS:
            idx = torch.minimum(torch.clamp(i0 + float(o), min=0.0), dmax)
            il = idx.long()
            rel = pos - idx
            k = torch.index_select(kf, 0, il) + self.pos_k(rel, logscale)
            v = torch.index_select(vf, 0, il) + self.pos_v(rel, logscale)
            kh = k.reshape(q.shape[0], h, d, q.shape[2], q.shape[3])
            logits.append((qh * kh).sum(dim=2, keepdim=True) / math.sqrt(d))  # [Q, h, 1, H, W]
            values.append(v.reshape(q.shape[0], h, d, q.shape[2], q.shape[3]))
            lvals.append(torch.index_select(lx, 0, il) - base)
        w = torch.softmax(torch.cat(logits, dim=2), dim=2)  # [Q, h, K, H, W]
        z = values[0] * w[:, :, 0:1]
        for n in range(1, len(values)):
            z = z + values[n] * w[:, :, n : n + 1]
        z = z.reshape(q.shape)
        dec_in = torch.cat([z, q] + lvals + [frac * torch.ones_like(base)], dim=1)
        out = base + self.decoder(dec_in)  # [Q, 1, H, W]
        return out.permute(1, 0, 2, 3).unsqueeze(0)


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


__all__ = ["SAINR", "count_parameters", "NEIGHBOURS"]

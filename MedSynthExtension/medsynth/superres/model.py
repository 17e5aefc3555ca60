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
  neighbouring input intensities to a correction added to the cubic (Catmull-Rom)
  interpolation of the four nearest input slices.

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
from torch.nn import functional as F

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
    """Small MLP from (relative slice position, in-plane offset, log scale) with Fourier features to ``dim``."""

    def __init__(self, dim: int, freqs: int = 3) -> None:
        super().__init__()
        self.freqs = freqs
        self.mlp = nn.Sequential(nn.Linear(4 + 2 * freqs, dim), nn.LeakyReLU(0.1), nn.Linear(dim, dim))

    def forward(self, rel: torch.Tensor, logscale: torch.Tensor, dy: float = 0.0, dx: float = 0.0) -> torch.Tensor:
        # rel [Q], logscale [1] -> [Q, dim, 1, 1]
        r = rel.unsqueeze(1)
        one = torch.ones_like(r)
        feats: List[torch.Tensor] = [r, logscale.reshape(1, 1) * one, one * float(dy), one * float(dx)]
        for f in range(self.freqs):
            w = math.pi * (2.0**f) / 2.0
            feats.append(torch.sin(w * r))
            feats.append(torch.cos(w * r))
        return self.mlp(torch.cat(feats, dim=1)).unsqueeze(2).unsqueeze(3)


def _shift(xp: torch.Tensor, r: int, dy: int, dx: int) -> torch.Tensor:
    """The window of a tensor padded by ``r`` on H and W, moved by (dy, dx); constant (negative) slice ends
    keep H and W dynamic in ONNX."""
    ys, xs = r + dy, r + dx
    ye, xe = ys - 2 * r, xs - 2 * r
    return xp[:, :, ys : (ye if ye < 0 else None), xs : (xe if xe < 0 else None)]


class SAINREncoder(nn.Module):
    """Thick slices -> per-slice query/key/value features ``[D, 3 * att_dim, H, W]``.

    Depends on the input volume and its anisotropy only (not on the output spacing), so a
    live preview computes it once per region and then only re-runs the decoder.
    """

    def __init__(self, channels: int = 32, blocks: int = 3, att_dim: int = 16) -> None:
        super().__init__()
        self.head = _conv(2, channels, 3)
        self.head_z = ThroughPlane(channels)
        self.blocks = nn.Sequential(*[Block(channels) for _ in range(blocks)])
        # query / key / value projections are linear per voxel, so they run at input resolution, before gathering
        self.qkv = _conv(channels, 3 * att_dim, 1, act=False)

    def forward(self, lr: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        x = lr[0].permute(1, 0, 2, 3)  # [D, 1, H, W]
        logscale = torch.log(torch.clamp(scale, min=1.0))
        x = torch.cat([x, (logscale.reshape(1, 1, 1, 1) - 1.2) * torch.ones_like(x)], dim=1)
        return self.qkv(self.blocks(self.head_z(self.head(x))))


class SAINRDecoder(nn.Module):
    """Features + thick slices + output slice positions -> output slices ``[1, 1, Q, H, W]``.

    Local-aware spatial attention: each query attends over keys in a (2r+1) x (2r+1) in-plane
    window on the two nearest input slices plus the centre of the next ones out; it reads
    both features and input intensities there, so it can move content in-plane (a learned
    morphing between slices), not only blend it.
    """

    def __init__(self, att_dim: int = 16, heads: int = 2, hidden: int = 32, window: int = 1) -> None:
        super().__init__()
        self.att_dim, self.heads, self.window = att_dim, heads, window
        self.pos_q = PosEncoding(att_dim)
        self.pos_k = PosEncoding(att_dim)
        self.pos_v = PosEncoding(att_dim)
        self.keys = [(o, dy, dx) for o in (0, 1) for dy in range(-window, window + 1) for dx in range(-window, window + 1)]
        self.keys += [(-1, 0, 0), (2, 0, 0)]
        self.decoder = nn.Sequential(
            _conv(2 * att_dim + heads + len(NEIGHBOURS) + 1, hidden, 1),
            _conv(hidden, hidden, 1),
            _conv(hidden, 1, 1, act=False),
        )
        last = self.decoder[-1].conv
        nn.init.zeros_(last.weight)  # start as the cubic interpolation
        nn.init.zeros_(last.bias)

    def forward(self, feat: torch.Tensor, lr: torch.Tensor, pos: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        logscale = torch.log(torch.clamp(scale, min=1.0))
        a, h, r = self.att_dim, self.heads, self.window
        d = a // h
        qf, kf, vf = feat[:, :a], feat[:, a : 2 * a], feat[:, 2 * a :]
        lx = lr[0].permute(1, 0, 2, 3)  # [D, 1, H, W]
        dmax = torch.ones_like(lx[:, 0, 0, 0]).sum() - 1.0  # D - 1, traced as a tensor
        i0 = torch.minimum(torch.clamp(torch.floor(pos), min=0.0), dmax - 1.0)
        frac = (pos - i0).reshape(-1, 1, 1, 1)
        i0l = i0.long()
        i1l = (i0 + 1.0).long()
        q0 = torch.index_select(qf, 0, i0l)
        q = q0 + frac * (torch.index_select(qf, 0, i1l) - q0) + self.pos_q(pos - i0, logscale)  # [Q, a, H, W]
        n, hh, ww = q.shape[0], q.shape[2], q.shape[3]
        qh = q.reshape(n, h, d, hh, ww)
        gathered = {}
        neighbours = []
        for o in NEIGHBOURS:
            idx = torch.minimum(torch.clamp(i0 + float(o), min=0.0), dmax)
            il = idx.long()
            lo = torch.index_select(lx, 0, il)
            kv = torch.cat([torch.index_select(kf, 0, il), torch.index_select(vf, 0, il), lo], 1)
            if o in (0, 1) and r > 0:
                kv = F.pad(kv, (r, r, r, r), mode="replicate")
            gathered[o] = (kv, pos - idx)
            neighbours.append(lo)
        # cubic convolution (Catmull-Rom) of the four neighbours: the estimate the network corrects
        t = frac
        t2 = t * t
        t3 = t2 * t
        cubic = (-0.5 * t3 + t2 - 0.5 * t, 1.5 * t3 - 2.5 * t2 + 1.0, -1.5 * t3 + 2.0 * t2 + 0.5 * t, 0.5 * t3 - 0.5 * t2)
        base = cubic[0] * neighbours[0]
        for m in range(1, 4):
            base = base + cubic[m] * neighbours[m]  # [Q, 1, H, W]
        lvals = [x - base for x in neighbours]
        logits = []
        values = []
        intens = []
        for o, dy, dx in self.keys:
            kv, rel = gathered[o]
            if o in (0, 1) and r > 0:
                kv = _shift(kv, r, dy, dx)
            k = kv[:, :a] + self.pos_k(rel, logscale, dy, dx)
            v = kv[:, a : 2 * a] + self.pos_v(rel, logscale, dy, dx)
            logits.append((qh * k.reshape(n, h, d, hh, ww)).sum(dim=2, keepdim=True) / math.sqrt(d))  # [Q, h, 1, H, W]
            values.append(v.reshape(n, h, d, hh, ww))
            intens.append(kv[:, 2 * a :].unsqueeze(1))  # [Q, 1, 1, H, W]
        w = torch.softmax(torch.cat(logits, dim=2), dim=2)  # [Q, h, K, H, W]
        z = values[0] * w[:, :, 0:1]
        y = intens[0] * w[:, :, 0:1]
        for m in range(1, len(values)):
            z = z + values[m] * w[:, :, m : m + 1]
            y = y + intens[m] * w[:, :, m : m + 1]
        z = z.reshape(q.shape)
        y = y.reshape(n, h, hh, ww) - base  # attended input intensity per head, relative to the linear estimate
        dec_in = torch.cat([z, q, y] + lvals + [frac * torch.ones_like(base)], dim=1)
        out = base + self.decoder(dec_in)  # [Q, 1, H, W]
        return out.permute(1, 0, 2, 3).unsqueeze(0)


class SAINR(nn.Module):
    """Encoder + decoder in one module (training); exported as two ONNX graphs."""

    def __init__(
        self, channels: int = 32, blocks: int = 3, att_dim: int = 16, heads: int = 2, hidden: int = 32, window: int = 1
    ) -> None:
        super().__init__()
        self.config = {
            "channels": channels, "blocks": blocks, "att_dim": att_dim, "heads": heads, "hidden": hidden, "window": window
        }
        self.encoder = SAINREncoder(channels, blocks, att_dim)
        self.decoder = SAINRDecoder(att_dim, heads, hidden, window)

    def receptive_field(self) -> dict:
        """Reach (input voxels each side) for tiling margins: encoder along the axis and in-plane,
        decoder in-plane (its attention window)."""
        n = self.config["blocks"]
        return {"axis": 1 + n, "in_plane": 1 + 2 * n, "decoder_in_plane": int(self.config["window"])}

    def forward(self, lr: torch.Tensor, pos: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(lr, scale), lr, pos, scale)


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


__all__ = ["NEIGHBOURS", "SAINR", "SAINRDecoder", "SAINREncoder", "count_parameters"]

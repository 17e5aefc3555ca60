"""CellGAN and its plain baseline (torch + MONAI; training and export only, never needed for inference).

CellGAN (Shen et al., "CellGAN: Conditional cervical cell synthesis for augmenting cytopathological image
classification", MICCAI 2023) as built here, at 64 px:

* Generator: noise ``z`` and the class embedding go through a **mapping network** (MLP) to a style ``w``;
  a 4x4 start (linear from ``w``) grows by nearest upsampling + two 3x3 MONAI ``Convolution`` blocks per
  scale, each followed by **adaptive instance normalisation** whose scale and bias come from ``w`` (every
  scale: 4, 8, 16, 32, 64). **Skip-layer global-context (SGC) blocks** carry the global context of a
  low-resolution feature map (8 -> 32, 16 -> 64): attention pooling over all positions (a 1x1 convolution
  and a softmax), a bottleneck transform (1x1, LayerNorm, LeakyReLU, 1x1) and a sigmoid gate on every
  channel of the high-resolution map (GCNet's context block used as FastGAN's skip-layer excitation).
* Discriminator: residual down blocks (MONAI ``Convolution``, LeakyReLU, no normalisation) 64 -> 4; a
  **projection head** (Miyato & Koyama 2018): ``linear(h) + <embed(y), h>`` on the pooled features; two
  **self-supervised reconstruction heads** (FastGAN): small decoders that rebuild the whole real image
  (at 32 px) from the 8x8 features and one random quadrant from the matching crop of the 16x16 features;
  trained with L1 on real images only.

The baseline is a plain class-conditional generator without these parts: the class embedding is
concatenated to ``z`` at the input (no mapping network), batch normalisation without class conditioning,
no SGC; its discriminator keeps the projection head but has no reconstruction heads. Both are trained by
the same loop (hinge loss, R1, DiffAugment, generator EMA), so the comparison isolates CellGAN's parts.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import nn

ARCHS = ("cellgan", "baseline")
LRELU = ("leakyrelu", {"negative_slope": 0.2})


def conv(cin: int, cout: int, k: int = 3, stride: int = 1, act=None, norm=None) -> nn.Module:
    """A 2D MONAI ``Convolution`` block (conv [+ norm] [+ act])."""
    return Convolution(
        spatial_dims=2,
        in_channels=cin,
        out_channels=cout,
        strides=stride,
        kernel_size=k,
        act=act,
        norm=norm,
        conv_only=act is None and norm is None,
    )


# --------------------------------------------------------------------------- generator parts
class AdaIN(nn.Module):
    """Instance normalisation with per-channel scale and bias computed from the style ``w``."""

    def __init__(self, channels: int, w_dim: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.style = nn.Linear(w_dim, 2 * channels)
        nn.init.zeros_(self.style.weight)
        with torch.no_grad():
            self.style.bias[:channels] = 1.0
            self.style.bias[channels:] = 0.0

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.style(w).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return gamma * self.norm(x) + beta


class GlobalContextGate(nn.Module):
    """Skip-layer global context: pooled context of a low-resolution map gates a high-resolution map."""

    def __init__(self, c_low: int, c_high: int, ratio: int = 4) -> None:
        super().__init__()
        mid = max(8, c_low // ratio)
        self.attend = conv(c_low, 1, k=1)
        self.transform = nn.Sequential(
            nn.Conv2d(c_low, mid, 1), nn.LayerNorm([mid, 1, 1]), nn.LeakyReLU(0.2), nn.Conv2d(mid, c_high, 1)
        )

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        n, c = low.shape[:2]
        attn = torch.softmax(self.attend(low).reshape(n, 1, -1), dim=-1)  # (N, 1, HW)
        context = torch.bmm(low.reshape(n, c, -1), attn.transpose(1, 2)).reshape(n, c, 1, 1)
        return high * torch.sigmoid(self.transform(context))


class StyleBlock(nn.Module):
    """[upsample x2] -> (conv3x3 -> AdaIN -> LeakyReLU) x 2."""

    def __init__(self, cin: int, cout: int, w_dim: int, up: bool = True) -> None:
        super().__init__()
        self.up = up
        self.conv1, self.conv2 = conv(cin, cout), conv(cout, cout)
        self.norm1, self.norm2 = AdaIN(cout, w_dim), AdaIN(cout, w_dim)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = F.leaky_relu(self.norm1(self.conv1(x), w), 0.2)
        return F.leaky_relu(self.norm2(self.conv2(x), w), 0.2)


def _widths(size: int, widths: Sequence[int]) -> Dict[int, int]:
    res = [4 * 2**i for i in range(len(widths))]
    if res[-1] != size:
        raise ValueError(f"{len(widths)} widths give {res[-1]} px, not {size}")
    return dict(zip(res, widths))


class CellGANGenerator(nn.Module):
    """(z, class index) -> RGB in [-1, 1], (N, 3, size, size)."""

    def __init__(self, n_classes: int = 7, z_dim: int = 64, w_dim: int = 128, size: int = 64,
                 widths: Sequence[int] = (128, 128, 96, 64, 32), mapping_layers: int = 4) -> None:
        super().__init__()
        self.n_classes, self.z_dim, self.size = n_classes, z_dim, size
        self.ch = _widths(size, widths)
        self.embed = nn.Embedding(n_classes, z_dim)
        layers = []
        d = 2 * z_dim
        for _ in range(mapping_layers):
            layers += [nn.Linear(d, w_dim), nn.LeakyReLU(0.2)]
            d = w_dim
        self.mapping = nn.Sequential(*layers)
        self.start = nn.Linear(w_dim, self.ch[4] * 16)
        self.blocks = nn.ModuleDict()
        prev = self.ch[4]
        for r, c in self.ch.items():
            self.blocks[str(r)] = StyleBlock(prev, c, w_dim, up=r > 4)
            prev = c
        self.sgc = nn.ModuleDict()
        for lo in self.ch:
            hi = lo * 4
            if lo >= 8 and hi in self.ch:
                self.sgc[f"{lo}_{hi}"] = GlobalContextGate(self.ch[lo], self.ch[hi])
        self.to_rgb = conv(self.ch[size], 3, k=1)

    def style(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # pixel norm
        e = self.embed(y)
        e = e * torch.rsqrt(e.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        return self.mapping(torch.cat([z, e], dim=1))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = self.style(z, y)
        x = self.start(w).reshape(z.shape[0], self.ch[4], 4, 4)
        feats = {}
        for r in self.ch:
            x = self.blocks[str(r)](x, w)
            lo = r // 4
            if f"{lo}_{r}" in self.sgc:
                x = self.sgc[f"{lo}_{r}"](feats[lo], x)
            feats[r] = x
        return torch.tanh(self.to_rgb(x))


class BaselineGenerator(nn.Module):
    """Plain conditional generator: [z, embed(y)] -> linear 4x4 -> (upsample, conv-BN-LReLU x 2) per scale."""

    def __init__(self, n_classes: int = 7, z_dim: int = 64, size: int = 64,
                 widths: Sequence[int] = (128, 128, 96, 64, 32)) -> None:
        super().__init__()
        self.n_classes, self.z_dim, self.size = n_classes, z_dim, size
        self.ch = _widths(size, widths)
        self.embed = nn.Embedding(n_classes, z_dim)
        self.start = nn.Sequential(nn.Linear(2 * z_dim, self.ch[4] * 16))
        self.start_norm = nn.BatchNorm2d(self.ch[4])
        blocks = []
        prev = self.ch[4]
        for r, c in self.ch.items():
            if r > 4:
                blocks.append(nn.Upsample(scale_factor=2.0, mode="nearest"))
            blocks += [conv(prev, c, act=LRELU, norm="BATCH"), conv(c, c, act=LRELU, norm="BATCH")]
            prev = c
        self.body = nn.Sequential(*blocks)
        self.to_rgb = conv(prev, 3, k=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.start(torch.cat([z, self.embed(y)], dim=1)).reshape(z.shape[0], self.ch[4], 4, 4)
        x = F.leaky_relu(self.start_norm(x), 0.2)
        return torch.tanh(self.to_rgb(self.body(x)))


# --------------------------------------------------------------------------- discriminator
class DownBlock(nn.Module):
    """Residual down block: (conv3x3 stride 2, LReLU, conv3x3, LReLU) + (avgpool, conv1x1)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.main = nn.Sequential(conv(cin, cout, stride=2, act=LRELU), conv(cout, cout, act=LRELU))
        self.skip = conv(cin, cout, k=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.skip(F.avg_pool2d(x, 2))) * 0.7071


class SimpleDecoder(nn.Module):
    """8x8 features -> 32x32 RGB (the self-supervised reconstruction head)."""

    def __init__(self, cin: int, widths: Sequence[int] = (64, 32)) -> None:
        super().__init__()
        layers = []
        prev = cin
        for c in widths:
            layers += [nn.Upsample(scale_factor=2.0, mode="nearest"), conv(prev, c, act=LRELU)]
            prev = c
        layers += [conv(prev, 3, k=3)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(x))


class ProjectionDiscriminator(nn.Module):
    """Real/fake logit with class projection; with ``recon_heads`` also the self-supervised reconstructions."""

    def __init__(self, n_classes: int = 7, size: int = 64, widths: Sequence[int] = (32, 64, 128, 192, 256),
                 recon_heads: bool = True) -> None:
        super().__init__()
        if size != 64:
            raise ValueError("the discriminator is built for 64 px")
        c = list(widths)
        self.from_rgb = conv(3, c[0], act=LRELU)
        self.d32, self.d16, self.d8, self.d4 = (DownBlock(c[i], c[i + 1]) for i in range(4))
        self.linear = nn.Linear(c[4], 1)
        self.embed = nn.Embedding(n_classes, c[4])
        nn.init.normal_(self.embed.weight, std=0.02)
        self.recon_heads = recon_heads
        if recon_heads:
            self.dec_big = SimpleDecoder(c[3])
            self.dec_part = SimpleDecoder(c[2])

    def forward(self, x: torch.Tensor, y: torch.Tensor, part: int = -1):
        h64 = self.from_rgb(x)
        h16 = self.d16(self.d32(h64))
        h8 = self.d8(h16)
        h4 = self.d4(h8)
        h = F.leaky_relu(h4, 0.2).sum(dim=(2, 3))
        logit = self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)
        if part < 0 or not self.recon_heads:
            return logit, None, None
        r, c = divmod(int(part), 2)
        crop = h16[:, :, r * 8 : r * 8 + 8, c * 8 : c * 8 + 8]
        return logit, self.dec_big(h8), self.dec_part(crop)


G_WIDTHS = (4, 4, 3, 2, 1)
D_WIDTHS = (1, 2, 4, 6, 8)


def build_generator(arch: str, n_classes: int = 7, size: int = 64, z_dim: int = 64, width: int = 24) -> nn.Module:
    widths = tuple(width * m for m in G_WIDTHS)
    if arch == "cellgan":
        return CellGANGenerator(n_classes, z_dim, w_dim=max(64, 4 * width), size=size, widths=widths)
    if arch == "baseline":
        return BaselineGenerator(n_classes, z_dim, size=size, widths=widths)
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def build(arch: str, n_classes: int = 7, size: int = 64, z_dim: int = 64, width: int = 24,
          d_width: int = 32) -> Tuple[nn.Module, nn.Module]:
    """(generator, discriminator) of ``arch`` (cellgan or baseline); ``width``/``d_width`` scale the channels."""
    g = build_generator(arch, n_classes, size, z_dim, width)
    d = ProjectionDiscriminator(n_classes, size, tuple(d_width * m for m in D_WIDTHS), recon_heads=arch == "cellgan")
    return g, d


def real_targets(x: torch.Tensor, part: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """What the reconstruction heads rebuild from a real 64 px batch: the whole image and one quadrant, at 32 px."""
    whole = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    r, c = divmod(int(part), 2)
    quad = x[:, :, r * 32 : r * 32 + 32, c * 32 : c * 32 + 32]
    return whole, quad


# --------------------------------------------------------------------------- DiffAugment (Zhao et al. 2020)
def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout") -> torch.Tensor:
    """Differentiable augmentation applied the same way to real and generated batches before D."""
    for p in policy.split(","):
        p = p.strip()
        if p == "color":
            x = x + (torch.rand(x.size(0), 1, 1, 1, device=x.device) - 0.5)
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * (torch.rand(x.size(0), 1, 1, 1, device=x.device) * 2) + mean
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (torch.rand(x.size(0), 1, 1, 1, device=x.device) + 0.5) + mean
        elif p == "translation":
            x = _translate(x, 0.125)
        elif p == "cutout":
            x = _cutout(x, 0.25)
        elif p:
            raise ValueError(f"unknown DiffAugment policy {p!r}")
    return x


def _translate(x: torch.Tensor, ratio: float) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    ty = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    gb, gx, gy = torch.meshgrid(
        torch.arange(n, device=x.device), torch.arange(h, device=x.device), torch.arange(w, device=x.device),
        indexing="ij",
    )
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return padded.permute(0, 2, 3, 1).contiguous()[gb, gx, gy].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, ratio: float) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    oy = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    gb, gx, gy = torch.meshgrid(
        torch.arange(n, device=x.device), torch.arange(ch, device=x.device), torch.arange(cw, device=x.device),
        indexing="ij",
    )
    gx = torch.clamp(gx + ox - ch // 2, 0, h - 1)
    gy = torch.clamp(gy + oy - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)


class ExportWrapper(nn.Module):
    """What is exported: (noise (N, z), class_index (N,) int64) -> image (N, size, size, 3) in 0..1."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.g = generator

    def forward(self, noise: torch.Tensor, class_index: torch.Tensor) -> torch.Tensor:
        x = self.g(noise, class_index)
        return ((x.permute(0, 2, 3, 1) + 1.0) * 0.5).clamp(0.0, 1.0)


def count_parameters(m: nn.Module) -> int:
    return int(sum(p.numel() for p in m.parameters()))

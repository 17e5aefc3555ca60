"""The nodule shape VAE (torch + MONAI; training and export only, never needed for inference).

A small conditional 3D variational autoencoder on ``GRID``^3 signed-distance fields built from MONAI
``Convolution`` blocks.  The decoder's latent code is ``[a, z]``: ``a`` = the shape's attribute values
(z-scored roundness, lobulation and spiculation measures; given during training, predicted by an encoder head
otherwise) and ``z`` = the remaining shape code (Gaussian posterior, KL to N(0, I)).  Because ``a`` is handed to
the decoder, the KL pressure keeps ``z`` from duplicating it and the decoder learns to render each attribute
from its own coordinate: moving that coordinate moves the measured attribute.  To keep CPU training within minutes the full-resolution layers are
replaced by a voxel shuffle: the encoder folds 2x2x2 voxel blocks into 8 channels (space to
depth) before its first convolution and the decoder unfolds 8 channels into 2x2x2 blocks after
its last one (depth to space), so every convolution runs at 16^3 or below.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from monai.networks.blocks import Convolution
from torch import nn


def space_to_depth(x: torch.Tensor, r: int = 2) -> torch.Tensor:
    n, c, d, h, w = x.shape
    x = x.reshape(n, c, d // r, r, h // r, r, w // r, r)
    x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(n, c * r**3, d // r, h // r, w // r)


def depth_to_space(x: torch.Tensor, r: int = 2) -> torch.Tensor:
    n, c, d, h, w = x.shape
    co = c // r**3
    x = x.reshape(n, co, r, r, r, d, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(n, co, d * r, h * r, w * r)


def _block(cin: int, cout: int, stride: int = 1, transposed: bool = False, last: bool = False) -> nn.Module:
    return Convolution(
        spatial_dims=3,
        in_channels=cin,
        out_channels=cout,
        strides=stride,
        kernel_size=3,
        act="PRELU",
        norm="BATCH",
        is_transposed=transposed,
        conv_only=last,
    )


class NoduleShapeVAE(nn.Module):
    """Encoder: field (N,1,G,G,G) -> (mu, logvar, a_hat); decoder: [a, z] (N, n_attr + latent) -> field in [-1, 1]."""

    def __init__(self, latent: int = 16, grid: int = 32, channels: Sequence[int] = (16, 32, 64), n_attr: int = 3) -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.latent = latent
        self.n_attr = n_attr
        self.grid = grid
        self.bottom = grid // 8
        self.c2 = c2
        # encoder: (8, G/2) -> (c1, G/4) -> (c2, G/8)
        self.enc = nn.Sequential(_block(8, c1, 2), _block(c1, c2, 2))
        flat = c2 * self.bottom**3
        self.mu = nn.Linear(flat, latent)
        self.logvar = nn.Linear(flat, latent)
        self.attr = nn.Linear(flat, n_attr)
        self.dec_in = nn.Linear(n_attr + latent, flat)
        # decoder: (c2, G/8) -> (c1, G/4) -> (c0, G/2) -> (8, G/2) -> depth to space -> (1, G)
        self.dec = nn.Sequential(
            _block(c2, c1, 2, transposed=True), _block(c1, c0, 2, transposed=True), _block(c0, 8, last=True)
        )

    def encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.enc(space_to_depth(x)).flatten(1)
        return self.mu(h), self.logvar(h), self.attr(h)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """``code`` = [a, z] (N, n_attr + latent)."""
        h = torch.relu(self.dec_in(code)).reshape(code.shape[0], self.c2, self.bottom, self.bottom, self.bottom)
        return torch.tanh(depth_to_space(self.dec(h)))

    def forward(self, x: torch.Tensor, a: Optional[torch.Tensor] = None):
        mu, logvar, a_hat = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        a_in = a if a is not None else a_hat
        return self.decode(torch.cat([a_in, z], dim=1)), mu, logvar, a_hat


class DecoderOnly(nn.Module):
    """Export wrapper: code [a, z] (N, n_attr + L) -> field (N, 1, G, G, G)."""

    def __init__(self, vae: NoduleShapeVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(code)


class EncoderOnly(nn.Module):
    """Export wrapper: field (N, 1, G, G, G) -> code mean [a_hat, mu] (N, n_attr + L)."""

    def __init__(self, vae: NoduleShapeVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, _, a_hat = self.vae.encode(x)
        return torch.cat([a_hat, mu], dim=1)

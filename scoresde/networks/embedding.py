"""Embeddings of a continuous time ``t in [0, T]`` for conditioning a network."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalEmbedding(nn.Module):
    """Transformer-style features ``[sin(scale t ω_k), cos(scale t ω_k)]``, ``ω_k = 10^{-4k/(half-1)}``.

    ``scale = 1000`` maps ``t in [0, 1]`` onto DDPM's integer step range, so the frequencies
    resolve the whole interval.
    """

    def __init__(self, dim: int, scale: float = 1000.0):
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"dim must be an even integer >= 4; got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half) / (half - 1))
        self.register_buffer("freqs", freqs, persistent=False)
        self.scale = float(scale)

    def forward(self, t: Tensor) -> Tensor:
        """``(batch,) -> (batch, dim)``."""
        arg = self.scale * t.to(self.freqs.dtype)[:, None] * self.freqs
        return torch.cat([arg.sin(), arg.cos()], dim=1)


class TimeEmbedding(nn.Module):
    """Sinusoidal features followed by a two-layer SiLU MLP: ``t -> (batch, out_dim)``."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.features = SinusoidalEmbedding(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(self.features(t))

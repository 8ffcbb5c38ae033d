"""A residual MLP ``(x, t) -> R^d`` for vector data ``x`` of shape ``(batch, d)``."""

from __future__ import annotations

from torch import Tensor, nn

from scoresde.networks.embedding import TimeEmbedding
from scoresde.shapes import batch_vector


class ResidualMLPBlock(nn.Module):
    """``h + W_2 SiLU(W_1 SiLU(LN(h)) + E τ)``: a pre-norm residual block conditioned on ``τ``."""

    def __init__(self, width: int, embed_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.temb = nn.Linear(embed_dim, width)
        self.fc2 = nn.Linear(width, width)
        self.act = nn.SiLU()

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        z = self.fc1(self.act(self.norm(h))) + self.temb(temb)
        return h + self.fc2(self.act(z))


class MLP(nn.Module):
    """Residual MLP with a sinusoidal time embedding.

    Args:
        dim: data dimension ``d``.
        width: hidden width.
        depth: number of residual blocks.
        embed_dim: size of the time embedding.
    """

    def __init__(self, dim: int, width: int = 128, depth: int = 3, embed_dim: int = 64):
        super().__init__()
        for name, value in (("dim", dim), ("width", width), ("depth", depth)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1; got {value}")
        self.dim = dim
        self.time = TimeEmbedding(embed_dim, embed_dim)
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(ResidualMLPBlock(width, embed_dim) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, dim))

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """``(batch, d), (batch,) -> (batch, d)``."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (batch, {self.dim}); got {tuple(x.shape)}")
        temb = self.time(batch_vector(t, x))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, temb)
        return self.out(h)

"""A small DDPM-style U-Net for images ``(batch, c, h, w)``, conditioned on continuous ``t`` and,
optionally, on a class label.

Residual blocks (GroupNorm, SiLU, 3x3 convolutions, an additive time embedding), self-attention
at chosen resolutions, stride-2 convolutions down and nearest-neighbour upsampling back, skip
connections concatenated on the way up (Ho et al., 2020, Appendix B, scaled down for the CPU).
With ``num_classes = K > 0`` a learned embedding of the label ``y in {0, ..., K}`` is added to the
time embedding; ``y = K`` is the null label ``∅`` ("no class"), which classifier-free guidance
trains by label dropout.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from scoresde.networks.embedding import TimeEmbedding
from scoresde.shapes import batch_labels, batch_vector


def check_levels(image_size: int, levels: int, num_res_blocks: int) -> None:
    """``ValueError`` unless there is a level and a block per level, and ``image_size`` halves
    ``levels - 1`` times (shared by the U-Net and the classifier built from its down half)."""
    if levels < 1 or num_res_blocks < 1:
        raise ValueError("channel_mult must be non-empty and num_res_blocks >= 1")
    if image_size % 2 ** (levels - 1):
        raise ValueError(
            f"image_size ({image_size}) must be divisible by 2^(len(channel_mult) - 1) "
            f"= {2 ** (levels - 1)}"
        )


def check_image(net: nn.Module, x: Tensor) -> None:
    """``ValueError`` unless ``x`` is a batch of ``net``'s ``(in_channels, image_size, image_size)``."""
    expected = (net.in_channels, net.image_size, net.image_size)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(f"x must have shape (batch, *{expected}); got {tuple(x.shape)}")


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    if channels % groups:
        raise ValueError(f"channels ({channels}) must be divisible by groups ({groups})")
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    """``skip(h) + conv(SiLU(GN(conv(SiLU(GN(h))) + E τ))))``."""

    def __init__(self, cin: int, cout: int, embed_dim: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(embed_dim, cout)
        self.norm2, self.conv2 = _norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        z = self.conv1(F.silu(self.norm1(h)))
        z = z + rearrange(self.temb(temb), "b c -> b c 1 1")
        z = self.conv2(F.silu(self.norm2(z)))
        return self.skip(h) + z


class Attention(nn.Module):
    """Multi-head self-attention over the ``h w`` positions, with a residual connection."""

    def __init__(self, channels: int, groups: int, heads: int = 1):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.heads = heads

    def forward(self, h: Tensor) -> Tensor:
        height = h.shape[2]
        q, k, v = rearrange(
            self.qkv(self.norm(h)), "b (three n c) x y -> three b n (x y) c", three=3, n=self.heads
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return h + self.proj(rearrange(out, "b n (x y) c -> b (n c) x y", x=height))


class UNet(nn.Module):
    """U-Net ``(x, t) -> tensor like x``.

    Args:
        in_channels: image channels.
        image_size: side of the (square) image; must be divisible by ``2^(len(channel_mult)-1)``.
        channels: base width; level ``i`` has ``channels * channel_mult[i]`` channels.
        channel_mult: width multipliers, one per resolution level.
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attn_resolutions: resolutions (image sides) at which to add self-attention.
        groups: GroupNorm groups.
        num_classes: ``K``, the number of classes the network can be conditioned on (0: none);
            labels ``0..K-1`` name a class and ``K`` is the null label.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 8,
        channels: int = 32,
        channel_mult: Sequence[int] = (1, 2),
        num_res_blocks: int = 1,
        attn_resolutions: Sequence[int] = (4,),
        groups: int = 8,
        num_classes: int = 0,
    ):
        super().__init__()
        levels = len(channel_mult)
        check_levels(image_size, levels, num_res_blocks)
        if not (isinstance(num_classes, int) and num_classes >= 0):
            raise ValueError(f"num_classes must be an integer >= 0; got {num_classes!r}")
        self.in_channels, self.image_size, self.num_classes = in_channels, image_size, num_classes
        embed = 4 * channels
        self.time = TimeEmbedding(channels, embed)
        self.label = nn.Embedding(num_classes + 1, embed) if num_classes else None
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        widths = [channels * m for m in channel_mult]
        self.down, skips, c, res = nn.ModuleList(), [channels], channels, image_size
        for i, w in enumerate(widths):
            for _ in range(num_res_blocks):
                self.down.append(self._stage(c, w, embed, groups, res in attn_resolutions))
                c = w
                skips.append(c)
            if i < levels - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(c, c, embed, groups), Attention(c, groups),
                                  ResBlock(c, c, embed, groups)])
        self.up = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            for _ in range(num_res_blocks + 1):
                self.up.append(self._stage(c + skips.pop(), w, embed, groups, res in attn_resolutions))
                c = w
            if i > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
                res *= 2
        self.out = nn.Sequential(_norm(c, groups), nn.SiLU(), nn.Conv2d(c, in_channels, 3, padding=1))

    @staticmethod
    def _stage(cin: int, cout: int, embed: int, groups: int, attend: bool) -> nn.ModuleList:
        block = nn.ModuleList([ResBlock(cin, cout, embed, groups)])
        if attend:
            block.append(Attention(cout, groups))
        return block

    def forward(self, x: Tensor, t: float | Tensor, y: Tensor | None = None) -> Tensor:
        """``(batch, c, s, s), (batch,)[, labels (batch,)] -> (batch, c, s, s)``; a conditional
        network without ``y`` sees the null label."""
        check_image(self, x)
        temb = self.time(batch_vector(t, x))
        if self.label is not None:
            temb = temb + self.label(batch_labels(y, x.shape[0], self.num_classes, x.device, null=True))
        elif y is not None:
            raise ValueError("y given, but this network is unconditional (num_classes = 0)")
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = self._run_stage(layer, h, temb)
            hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, temb)), temb)
        for layer in self.up:
            if isinstance(layer, nn.ModuleList):
                h = self._run_stage(layer, torch.cat([h, hs.pop()], dim=1), temb)
            else:
                h = layer(h)
        return self.out(h)

    @staticmethod
    def _run_stage(layer: nn.Module, h: Tensor, temb: Tensor) -> Tensor:
        if not isinstance(layer, nn.ModuleList):
            return layer(h)
        h = layer[0](h, temb)
        return layer[1](h) if len(layer) > 1 else h

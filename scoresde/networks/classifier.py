"""A noise-conditional image classifier ``(x_t, t) -> logits``, for classifier guidance.

It is the downsampling half of :class:`~scoresde.networks.unet.UNet` (the same residual blocks
with the same additive time embedding, optional self-attention, stride-2 convolutions) and its
middle residual block, followed by GroupNorm, SiLU, a global average over the pixels and a
linear layer to ``K`` logits (the encoder of Dhariwal & Nichol, 2021, scaled down for the CPU).
Trained on ``x_t ~ p_0t(x_t | x_0)`` (:func:`scoresde.losses.classifier_loss`), its softmax
estimates ``p_t(y | x_t)``, whose gradient in ``x`` guides an unconditional score toward ``y``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from scoresde.networks.embedding import TimeEmbedding
from scoresde.networks.unet import Attention, ResBlock, check_image, check_levels
from scoresde.shapes import batch_labels, batch_vector


class NoiseClassifier(nn.Module):
    """``(x, t) -> logits (batch, K)``: ``logits = W mean_{pixels} SiLU(GN(E(x, τ(t)))) + b``.

    Args:
        in_channels: image channels.
        image_size: side of the (square) image; must be divisible by ``2^(len(channel_mult)-1)``.
        channels: base width; level ``i`` has ``channels * channel_mult[i]`` channels.
        channel_mult: width multipliers, one per resolution level.
        num_res_blocks: residual blocks per level.
        attn_resolutions: resolutions (image sides) at which to add self-attention.
        groups: GroupNorm groups.
        num_classes: ``K``, the number of classes (at least 2).
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 8,
        channels: int = 32,
        channel_mult: Sequence[int] = (1, 2),
        num_res_blocks: int = 1,
        attn_resolutions: Sequence[int] = (),
        groups: int = 8,
        num_classes: int = 10,
    ):
        super().__init__()
        levels = len(channel_mult)
        check_levels(image_size, levels, num_res_blocks)
        if not (isinstance(num_classes, int) and num_classes >= 2):
            raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}")
        self.in_channels, self.image_size, self.num_classes = in_channels, image_size, num_classes
        embed = 4 * channels
        self.time = TimeEmbedding(channels, embed)
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.blocks, c, res = nn.ModuleList(), channels, image_size
        for i, w in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                self.blocks.append(ResBlock(c, channels * w, embed, groups))
                c = channels * w
                if res in attn_resolutions:
                    self.blocks.append(Attention(c, groups))
            if i < levels - 1:
                self.blocks.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                res //= 2
        self.blocks.append(ResBlock(c, c, embed, groups))
        self.head = nn.Sequential(nn.GroupNorm(groups, c), nn.SiLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(c, num_classes))

    def logits(self, x: Tensor, t: float | Tensor) -> Tensor:
        """``(batch, c, s, s), (batch,) -> (batch, K)``: the unnormalised ``log p_t(y | x)``."""
        check_image(self, x)
        temb = self.time(batch_vector(t, x))
        h = self.conv_in(x)
        for block in self.blocks:
            h = block(h, temb) if isinstance(block, ResBlock) else block(h)
        return self.head(h)

    def forward(self, x: Tensor, t: float | Tensor, y: Tensor | None = None) -> Tensor:
        """The logits ``(batch, K)``; given labels ``y``, ``log p_t(y | x) = log_softmax(logits)[y]``
        of shape ``(batch,)``. A class-conditional score model is ``s(x, t | y)`` with ``y``, so
        the :class:`~scoresde.Trainer`, which binds each labelled batch's ``y`` to the model,
        trains the classifier on its log-likelihood (:func:`scoresde.losses.classifier_loss`)."""
        logits = self.logits(x, t)
        if y is None:
            return logits
        labels = batch_labels(y, x.shape[0], self.num_classes, x.device)
        return logits.log_softmax(1).gather(1, labels.unsqueeze(1)).squeeze(1)

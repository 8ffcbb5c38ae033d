"""Controlled degradations of real images, to show what the image metrics respond to.

Both take images as :func:`~scoresde.metrics.classifier.model_images` does (``uint8`` levels or
floats in ``[-1, 1]``) and return float images in ``[-1, 1]``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from einops import repeat
from torch import Tensor

from scoresde.metrics.classifier import model_images


def gaussian_blur(images: Tensor | np.ndarray, sigma: float) -> Tensor:
    """Each channel convolved with ``exp(-(u² + v²) / (2 σ²))`` (normalised, radius ``ceil(3σ)``,
    reflected borders); ``sigma = 0`` returns the images unchanged."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0; got {sigma}")
    x = model_images(images)
    radius = min(math.ceil(3 * sigma), x.shape[-1] - 1)
    if radius == 0:
        return x
    u = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-(u**2) / (2 * sigma**2))
    k2 = torch.outer(k, k) / k.sum() ** 2
    weight = repeat(k2.float(), "h w -> c 1 h w", c=x.shape[1])
    padded = torch.nn.functional.pad(x, (radius,) * 4, mode="reflect")
    return torch.nn.functional.conv2d(padded, weight, groups=x.shape[1]).clamp(-1, 1)


def add_noise(images: Tensor | np.ndarray, std: float, generator: torch.Generator | None = None) -> Tensor:
    """``clamp(x + std ε, -1, 1)`` with ``ε ~ N(0, I)`` (``x`` in the model's range)."""
    if std < 0:
        raise ValueError(f"std must be >= 0; got {std}")
    x = model_images(images)
    return (x + std * torch.randn(x.shape, generator=generator)).clamp(-1, 1)

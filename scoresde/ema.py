"""The exponential moving average of a model's weights, with a warmed-up decay.

After optimiser step ``k``: ``θ_ema <- d_k θ_ema + (1 - d_k) θ`` with
``d_k = min(d, (1 + k) / (10 + k))``, so that a short run does not keep the initial weights in
the average. Only parameters that require gradients are averaged; buffers keep their copy.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def check_decay(decay: float) -> None:
    """``ValueError`` unless ``0 <= decay < 1``."""
    if not 0 <= decay < 1:
        raise ValueError(f"ema_decay must lie in [0, 1); got {decay}")


class EMA:
    """The average of ``model``'s weights in :attr:`module`, a frozen copy of ``model``."""

    def __init__(self, model: nn.Module, decay: float):
        check_decay(decay)
        self.decay = decay
        self.module = copy.deepcopy(model).requires_grad_(False)
        pairs = [(p, e) for p, e in zip(model.parameters(), self.module.parameters(), strict=True)
                 if p.requires_grad]
        self._params, self._averaged = [p for p, _ in pairs], [e for _, e in pairs]

    def decay_at(self, step: int) -> float:
        """``d_k = min(d, (1 + k) / (10 + k))``."""
        return min(self.decay, (1 + step) / (10 + step))

    def update(self, step: int) -> None:
        """``θ_ema <- θ_ema + (1 - d_k)(θ - θ_ema)`` after optimiser step ``k = step``."""
        with torch.no_grad():
            torch._foreach_lerp_(self._averaged, self._params, 1 - self.decay_at(step))

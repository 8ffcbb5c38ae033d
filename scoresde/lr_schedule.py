"""The learning rate of optimiser step ``k``: linear warm-up, then constant or cosine decay.

``lr_k = lr · min(1, (k + 1) / warmup) · decay_k`` (no warm-up factor when ``warmup = 0``), with
``decay_k = 1`` for ``"constant"`` and, for ``"cosine"`` over ``K = decay_steps`` steps,
``decay_k = r + (1 - r)(1 + cos(π min(k, K) / K)) / 2`` (``r = min_ratio``: the share of ``lr``
left at the end).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class LRSchedule:
    """``lr_k`` of the module docstring; the arguments are checked when it is made."""

    lr: float
    warmup: int = 0
    kind: str = "constant"
    decay_steps: int = 0
    min_ratio: float = 0.0

    def __post_init__(self):
        if self.kind not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}; got {self.kind!r}")
        if self.kind == "cosine" and self.decay_steps < 1:
            raise ValueError(f"lr_decay_steps must be >= 1 with lr_schedule 'cosine'; got {self.decay_steps}")
        if not 0 <= self.min_ratio <= 1:
            raise ValueError(f"lr_min_ratio must lie in [0, 1]; got {self.min_ratio}")

    def __call__(self, step: int) -> float:
        lr = self.lr * min(1.0, (step + 1) / self.warmup) if self.warmup > 0 else self.lr
        if self.kind == "cosine":
            frac = min(step, self.decay_steps) / self.decay_steps
            lr *= self.min_ratio + (1 - self.min_ratio) * (1 + math.cos(math.pi * frac)) / 2
        return lr

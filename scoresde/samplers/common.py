"""Pieces every sampler shares: Gaussian noise, the per-step report, Tweedie's denoiser."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from scoresde.shapes import append_dims, batch_time

ScoreFn = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[dict], None]
Generator = torch.Generator | None


class CountingScore:
    """Wrap ``score_fn`` and count its calls in ``nfe``: each call is one score evaluation."""

    def __init__(self, score_fn: ScoreFn):
        self.score_fn = score_fn
        self.nfe = 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        return self.score_fn(x, t)


def noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise of the shape, dtype and device of ``x``, drawn from ``generator``."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def coef(values: Tensor, x: Tensor) -> Tensor:
    """A per-sample coefficient ``(batch,)`` shaped ``(batch, 1, ..., 1)`` to broadcast with ``x``."""
    return append_dims(values, x.ndim)


def check_finite(sampler: str, i: int, t: Tensor, x: Tensor) -> None:
    """Raise ``FloatingPointError`` naming the sampler, step ``i`` and ``t`` if ``x`` is not finite."""
    if not bool(torch.isfinite(x).all()):
        raise FloatingPointError(
            f"sampler {sampler!r} produced a non-finite sample at step {i}, t = {float(t):.6g}"
        )


def report(sampler: str, i: int, t: Tensor, x: Tensor, callback: Callback | None) -> None:
    """End of step ``i`` at time ``t``: :func:`check_finite`, then hand ``{"i", "t", "x"}`` to
    ``callback``."""
    check_finite(sampler, i, t, x)
    if callback is not None:
        callback({"i": i, "t": t, "x": x})


def tweedie(score_fn: ScoreFn, sde, x: Tensor, t: float | Tensor) -> Tensor:
    """Tweedie's denoiser ``E[x_0 | x_t] = (x_t + std(t)^2 s(x_t, t)) / m(t)``."""
    t = batch_time(t, x, sde.T)
    std, m = coef(sde.std(t), x), coef(sde.mean_coef(t), x)
    return (x + std**2 * score_fn(x, t)) / m

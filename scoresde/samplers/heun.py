"""Heun's second-order method on the probability-flow ODE: Algorithm 2 of Karras et al. (2022)
without churn, for any affine SDE.

In the scaled variables ``y = x / m(t)`` and ``σ̃ = std(t) / m(t)`` the probability-flow ODE is
EDM's ``dy/dσ̃ = (y - D(y)) / σ̃ = -std(t) s(x, t)``, ``D`` Tweedie's denoiser; for VE, ``y = x``
and ``σ̃ = σ(t)``. Pair it with the EDM grid ``grids.karras``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoresde.samplers.common import Callback, ScoreFn, check_finite, coef, report
from scoresde.shapes import batch_time


def heun(
    score_fn: ScoreFn,
    sde,
    x: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """For each step ``t -> t'`` of ``ts``: ``d = -std(t) s(x, t)``,
    Euler ``y' = x / m + (σ̃' - σ̃) d``, ``x' = m' y'``; then ``d' = -std(t') s(x', t')`` and
    ``x' = m' (x / m + (σ̃' - σ̃)(d + d') / 2)``. Two score evaluations per step; ``generator`` is
    unused (the method is deterministic) and kept for the shared signature."""
    for i in range(len(ts) - 1):
        t, t_next = batch_time(ts[i], x, sde.T), batch_time(ts[i + 1], x, sde.T)
        m, m_next = coef(sde.mean_coef(t), x), coef(sde.mean_coef(t_next), x)
        std, std_next = coef(sde.std(t), x), coef(sde.std(t_next), x)
        dsigma = std_next / m_next - std / m
        d = -std * score_fn(x, t)
        x_euler = m_next * (x / m + dsigma * d)
        check_finite("heun", i, ts[i + 1], x_euler)
        d_next = -std_next * score_fn(x_euler, t_next)
        x = m_next * (x / m + dsigma * 0.5 * (d + d_next))
        report("heun", i, ts[i + 1], x, callback)
    return x

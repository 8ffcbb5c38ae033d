"""Heun's second-order method on the probability-flow ODE: Algorithm 2 of Karras et al. (2022)
without churn, for any affine SDE.

In the scaled variables ``y = x / m(t)`` and ``σ̃ = std(t) / m(t)`` the probability-flow ODE is
EDM's ``dy/dσ̃ = (y - D(y)) / σ̃ = -std(t) s(x, t)``, ``D`` Tweedie's denoiser; for VE, ``y = x``
and ``σ̃ = σ(t)``. Pair it with the EDM grid ``grids.karras``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoresde.samplers.common import Callback, Grid, Reporter, ScoreFn


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
    grid = Grid(sde, ts, x)
    report = Reporter("heun", grid.steps - 1, callback)
    for i in range(grid.steps):
        y, m_next, dsigma = x / grid.m[i], grid.m[i + 1], grid.sigma(i + 1) - grid.sigma(i)
        d = -grid.std[i] * score_fn(x, grid.time(i))
        x_euler = m_next * (y + dsigma * d)
        report.watch(i, ts[i + 1], x_euler)
        d_next = -grid.std[i + 1] * score_fn(x_euler, grid.time(i + 1))
        x = m_next * (y + dsigma * 0.5 * (d + d_next))
        report(i, ts[i + 1], x)
    return x

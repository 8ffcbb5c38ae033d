"""DDIM (Song, Meng & Ermon 2021) for any affine SDE, written with ``m(t)`` and ``std(t)``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scoresde.samplers.common import Callback, Generator, Grid, Reporter, ScoreFn, noise_like


def ddim_step(
    score_fn: ScoreFn, grid: Grid, i: int, x: Tensor, eta: float, generator: Generator = None
) -> Tensor:
    """One DDIM step from ``t = t_i`` down to ``t' = t_{i+1}``.

    ``x̂_0 = (x + σ^2 s) / m`` (Tweedie), ``ε̂ = -σ s``, ``r = m / m'``,
    ``c^2 = η^2 σ'^2 (1 - r^2 σ'^2 / σ^2)`` and ``x' = m' x̂_0 + sqrt(σ'^2 - c^2) ε̂ + c z``, with
    ``m = m(t)``, ``σ = std(t)``, primes at ``t'``. For VP this is DDIM's ``σ_t(η)``; ``c^2`` is
    ``η^2`` times the variance of ``q(x_{t'} | x_t, x_0)``, so ``η = 1`` is ancestral sampling
    with the posterior variance (for VE: the SMLD ancestral step) and ``η = 0`` the deterministic
    DDIM, an Euler step of the probability-flow ODE in ``(x / m, σ / m)``.
    """
    m, std, m_next, std_next = grid.m[i], grid.std[i], grid.m[i + 1], grid.std[i + 1]
    score = score_fn(x, grid.time(i))
    x0 = grid.denoised(i, x, score)
    c2 = max(0.0, eta**2 * std_next**2 * (1 - (m / m_next) ** 2 * std_next**2 / std**2))
    x_next = m_next * x0 - math.sqrt(std_next**2 - c2) * std * score
    return x_next + math.sqrt(c2) * noise_like(x, generator) if eta > 0 else x_next


def ddim(
    score_fn: ScoreFn,
    sde,
    x: Tensor,
    ts: Tensor,
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """DDIM over the decreasing grid ``ts`` (see :func:`ddim_step`); ``eta = 0`` is deterministic,
    ``eta > 0`` stochastic. One score evaluation per step."""
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0; got {eta!r}")
    grid = Grid(sde, ts, x)
    report = Reporter("ddim", grid.steps - 1, callback)
    for i in range(grid.steps):
        x = ddim_step(score_fn, grid, i, x, eta, generator)
        report(i, ts[i + 1], x)
    return x

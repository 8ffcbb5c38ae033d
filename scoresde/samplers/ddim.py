"""DDIM (Song, Meng & Ermon 2021) for any affine SDE, written with ``m(t)`` and ``std(t)``."""

from __future__ import annotations

import torch
from torch import Tensor

from scoresde.samplers.common import Callback, Generator, ScoreFn, coef, noise_like, report
from scoresde.shapes import batch_time


def ddim_step(
    score_fn: ScoreFn, sde, x: Tensor, t: Tensor, t_next: Tensor, eta: float, generator: Generator = None
) -> Tensor:
    """One DDIM step from ``t`` down to ``t' = t_next``.

    ``x̂_0 = (x + σ^2 s) / m`` (Tweedie), ``ε̂ = -σ s``, ``r = m / m'``,
    ``c^2 = η^2 σ'^2 (1 - r^2 σ'^2 / σ^2)`` and ``x' = m' x̂_0 + sqrt(σ'^2 - c^2) ε̂ + c z``, with
    ``m = m(t)``, ``σ = std(t)``, primes at ``t'``. For VP this is DDIM's ``σ_t(η)``; ``c^2`` is
    ``η^2`` times the variance of ``q(x_{t'} | x_t, x_0)``, so ``η = 1`` is ancestral sampling
    with the posterior variance (for VE: the SMLD ancestral step) and ``η = 0`` the deterministic
    DDIM, an Euler step of the probability-flow ODE in ``(x / m, σ / m)``.
    """
    t = batch_time(t, x, sde.T)
    t_next = batch_time(t_next, x, sde.T)
    m, std = coef(sde.mean_coef(t), x), coef(sde.std(t), x)
    m_next, std_next = coef(sde.mean_coef(t_next), x), coef(sde.std(t_next), x)
    score = score_fn(x, t)
    x0 = (x + std**2 * score) / m
    eps_hat = -std * score
    c2 = (eta**2 * std_next**2 * (1 - (m / m_next) ** 2 * std_next**2 / std**2)).clamp(min=0)
    x_next = m_next * x0 + (std_next**2 - c2).sqrt() * eps_hat
    return x_next + c2.sqrt() * noise_like(x, generator) if eta > 0 else x_next


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
    for i in range(len(ts) - 1):
        x = ddim_step(score_fn, sde, x, ts[i], ts[i + 1], eta, generator)
        report("ddim", i, ts[i + 1], x, callback)
    return x

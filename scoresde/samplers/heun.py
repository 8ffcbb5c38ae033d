"""Heun's second-order method on the probability-flow ODE with EDM's optional churn: Algorithm 2
of Karras et al. (2022), for any affine SDE.

In the scaled variables ``y = x / m(t)`` and ``σ̃ = std(t) / m(t)`` the probability-flow ODE is
EDM's ``dy/dσ̃ = (y - D(y)) / σ̃ = -std(t) s(x, t)``, ``D`` Tweedie's denoiser; for VE, ``y = x``
and ``σ̃ = σ(t)``. Pair it with the EDM grid ``grids.karras``. With ``s_churn > 0`` each step
first raises the noise level ``σ̃_i -> σ̂ = (1 + γ) σ̃_i`` by adding fresh noise of variance
``σ̂² - σ̃_i²`` (a step of the forward process in ``y``), then integrates the ODE from ``σ̂``: the
added noise corrects errors of earlier steps, as the stochastic samplers do, at two score
evaluations per step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scoresde.samplers.common import Callback, Grid, Reporter, ScoreFn, noise_like


def heun(
    score_fn: ScoreFn,
    sde,
    x: Tensor,
    ts: Tensor,
    *,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """For each step ``t -> t'`` of ``ts`` (``N`` steps):

    churn: ``γ = min(s_churn / N, √2 - 1)`` if ``s_tmin <= σ̃ <= s_tmax``, else 0;
    ``σ̂ = min((1 + γ) σ̃, σ̃(T))``, ``ŷ = x / m + s_noise √(σ̂² - σ̃²) z``, ``t̂ = σ̃⁻¹(σ̂)``;

    Heun from ``t̂``: ``d = -std(t̂) s(m(t̂) ŷ, t̂)``, Euler ``x' = m' (ŷ + (σ̃' - σ̂) d)``, then
    ``d' = -std(t') s(x', t')`` and ``x' = m' (ŷ + (σ̃' - σ̂)(d + d') / 2)``.

    Two score evaluations per step. ``s_churn = 0`` (the default) is the deterministic Algorithm 1
    and draws nothing from ``generator``; the noise level never rises above ``σ̃(T)``, where the
    network was trained.
    """
    for name, value in (("s_churn", s_churn), ("s_noise", s_noise)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be finite and >= 0; got {value}")
    grid = Grid(sde, ts, x)
    gamma = min(s_churn / grid.steps, math.sqrt(2) - 1)
    report = Reporter("heun", grid.steps - 1, callback)
    for i in range(grid.steps):
        y, m_next = x / grid.m[i], grid.m[i + 1]
        t_hat, sigma_hat, std_hat = grid.time(i), grid.sigma(i), grid.std[i]
        if gamma > 0 and s_tmin <= sigma_hat <= s_tmax:
            sigma_hat = min((1 + gamma) * grid.sigma(i), grid.sigma(0))
            y = y + s_noise * math.sqrt(sigma_hat**2 - grid.sigma(i) ** 2) * noise_like(x, generator)
            t64 = sde.time_of_ratio(sigma_hat)
            std_hat, t_hat = float(sde.std(t64)), torch.full_like(t_hat, float(t64))
            x = y * (std_hat / sigma_hat)
        d = -std_hat * score_fn(x, t_hat)
        dsigma = grid.sigma(i + 1) - sigma_hat
        x_euler = m_next * (y + dsigma * d)
        report.watch(i, ts[i + 1], x_euler)
        d_next = -grid.std[i + 1] * score_fn(x_euler, grid.time(i + 1))
        x = m_next * (y + dsigma * 0.5 * (d + d_next))
        report(i, ts[i + 1], x)
    return x

"""Reverse-SDE solvers: Euler–Maruyama, the reverse-diffusion predictor, ancestral sampling.

Each ``*_step(score_fn, grid, i, x, generator)`` moves ``x`` from ``t_i`` down to ``t_{i+1}``
of a :class:`~scoresde.samplers.common.Grid`; each sampler loops one step over a decreasing grid
``ts`` (see ``grids``).
The steps double as predictors of the predictor–corrector sampler.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scoresde.samplers.common import Callback, Generator, Grid, ScoreFn, noise_like, report
from scoresde.sde import VESDE, VPSDE


def em_step(score_fn: ScoreFn, grid: Grid, i: int, x: Tensor, generator: Generator = None) -> Tensor:
    """Euler–Maruyama on the reverse SDE from ``t = t_i`` to ``t_{i+1}``, ``Δt = t_{i+1} - t < 0``:
    ``x' = x + [f(x, t) - g(t)^2 s(x, t)] Δt + g(t) sqrt(-Δt) z`` with ``f = drift_coef(t) x``."""
    dt = grid.t[i + 1] - grid.t[i]
    drift = grid.drift_coef[i] * x - grid.g2[i] * score_fn(x, grid.time(i))
    return x + drift * dt + math.sqrt(-grid.g2[i] * dt) * noise_like(x, generator)


def reverse_diffusion_step(
    score_fn: ScoreFn, grid: Grid, i: int, x: Tensor, generator: Generator = None
) -> Tensor:
    """Reverse of the forward step ``x_t = x_{t'} + f + G z`` (``sde.discretize``, ``f`` linear in
    ``x``): ``x_{t'} = x_t - f + G^2 s(x_t, t) + G z``, from ``t = t_i`` to ``t' = t_{i+1}``."""
    f, G = grid.chain_f[i], grid.chain_g[i]
    x_next = torch.add((1 - f) * x, score_fn(x, grid.time(i)), alpha=G**2)
    return x_next + G * noise_like(x, generator)


def ancestral_step(score_fn: ScoreFn, grid: Grid, i: int, x: Tensor, generator: Generator = None) -> Tensor:
    """One step of the exact discrete chain's ancestral sampler, from ``t = t_i`` down to
    ``t' = t_{i+1}``.

    VP (DDPM, Ho et al. 2020): ``β = 1 - m(t)^2 / m(t')^2``,
    ``x' = (x + β s(x, t)) / sqrt(1 - β) + sqrt(β) z``.
    VE (SMLD): ``σ = σ(t)``, ``σ' = σ(t')``,
    ``x' = x + (σ^2 - σ'^2) s(x, t) + sqrt(σ'^2 (σ^2 - σ'^2) / σ^2) z``.
    Raises ``ValueError`` for other SDEs, which have no exact discrete chain.
    """
    score = score_fn(x, grid.time(i))
    if isinstance(grid.sde, VPSDE):
        beta = 1 - (grid.m[i] / grid.m[i + 1]) ** 2
        mean = torch.add(x, score, alpha=beta) / math.sqrt(1 - beta)
        return mean + math.sqrt(beta) * noise_like(x, generator)
    if isinstance(grid.sde, VESDE):
        var, var_next = grid.std[i] ** 2, grid.std[i + 1] ** 2
        mean = torch.add(x, score, alpha=var - var_next)
        return mean + math.sqrt(var_next * (var - var_next) / var) * noise_like(x, generator)
    raise ValueError(
        f"ancestral sampling follows an exact discrete forward chain (DDPM for VPSDE, SMLD for "
        f"VESDE); {type(grid.sde).__name__} has no such chain. Use 'reverse_diffusion', 'em' or 'ddim'."
    )


def _loop(name: str, step, score_fn, sde, x, ts, generator, callback) -> Tensor:
    grid = Grid(sde, ts, x)
    for i in range(grid.steps):
        x = step(score_fn, grid, i, x, generator)
        report(name, i, ts[i + 1], x, callback)
    return x


def euler_maruyama(
    score_fn: ScoreFn,
    sde,
    x: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Euler–Maruyama on the reverse SDE over the decreasing grid ``ts`` (see :func:`em_step`);
    one score evaluation per step."""
    return _loop("em", em_step, score_fn, sde, x, ts, generator, callback)


def reverse_diffusion(
    score_fn: ScoreFn,
    sde,
    x: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """The reverse-diffusion sampler (Song et al. 2021, Eq. 46) over ``ts``
    (see :func:`reverse_diffusion_step`); one score evaluation per step."""
    return _loop("reverse_diffusion", reverse_diffusion_step, score_fn, sde, x, ts, generator, callback)


def ancestral(
    score_fn: ScoreFn,
    sde,
    x: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Ancestral sampling, DDPM for VP and SMLD for VE (see :func:`ancestral_step`); raises
    ``ValueError`` for sub-VP, which has no exact discrete chain. One score evaluation per step."""
    return _loop("ancestral", ancestral_step, score_fn, sde, x, ts, generator, callback)

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

from scoresde.samplers.common import Callback, Generator, Grid, Reporter, ScoreFn, noise_like


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
    ``t' = t_{i+1}``: ``x' = a x + b s(x, t) + c z`` with ``(a, b, c) = grid.ancestral[i]``, the
    SDE's ``ancestral_coefs`` (VP: DDPM's, Ho et al. 2020; VE: SMLD's). Raises ``ValueError``
    for other SDEs, which have no exact discrete chain.
    """
    a, b, c = grid.ancestral[i]
    return torch.add(a * x, score_fn(x, grid.time(i)), alpha=b) + c * noise_like(x, generator)


def _loop(name: str, step, score_fn, sde, x, ts, generator, callback) -> Tensor:
    grid = Grid(sde, ts, x)
    report = Reporter(name, grid.steps - 1, callback)
    for i in range(grid.steps):
        x = step(score_fn, grid, i, x, generator)
        report(i, ts[i + 1], x)
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

"""Reverse-SDE solvers: Euler–Maruyama, the reverse-diffusion predictor, ancestral sampling.

Each ``*_step(score_fn, sde, x, t, t_next, generator)`` moves ``x`` from ``t`` down to
``t_next < t``; each sampler loops one step over a decreasing grid ``ts`` (see ``grids``).
The steps double as predictors of the predictor–corrector sampler.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoresde.samplers.common import Callback, Generator, ScoreFn, coef, noise_like, report
from scoresde.sde import VESDE, VPSDE
from scoresde.shapes import batch_time


def em_step(
    score_fn: ScoreFn, sde, x: Tensor, t: Tensor, t_next: Tensor, generator: Generator = None
) -> Tensor:
    """Euler–Maruyama on the reverse SDE, ``Δt = t_next - t < 0``:
    ``x' = x + [f(x, t) - g(t)^2 s(x, t)] Δt + g(t) sqrt(-Δt) z``."""
    t = batch_time(t, x, sde.T)
    dt = t_next - t
    rev = sde.reverse(score_fn)
    g = coef(rev.diffusion(t), x)
    return x + rev.drift(x, t) * coef(dt, x) + g * coef((-dt).sqrt(), x) * noise_like(x, generator)


def reverse_diffusion_step(
    score_fn: ScoreFn, sde, x: Tensor, t: Tensor, t_next: Tensor, generator: Generator = None
) -> Tensor:
    """Reverse of the forward step ``x_t = x_{t'} + f + G z`` (``(f, G) = sde.discretize``):
    ``x_{t'} = x_t - f + G^2 s(x_t, t) + G z``, with ``t' = t_next``."""
    t = batch_time(t, x, sde.T)
    rev_f, rev_g = sde.reverse(score_fn).discretize(x, t, t - t_next)
    return x + rev_f + rev_g * noise_like(x, generator)


def ancestral_step(
    score_fn: ScoreFn, sde, x: Tensor, t: Tensor, t_next: Tensor, generator: Generator = None
) -> Tensor:
    """One step of the exact discrete chain's ancestral sampler, from ``t`` down to ``t' = t_next``.

    VP (DDPM, Ho et al. 2020): ``β = 1 - m(t)^2 / m(t')^2``,
    ``x' = (x + β s(x, t)) / sqrt(1 - β) + sqrt(β) z``.
    VE (SMLD): ``σ = σ(t)``, ``σ' = σ(t')``,
    ``x' = x + (σ^2 - σ'^2) s(x, t) + sqrt(σ'^2 (σ^2 - σ'^2) / σ^2) z``.
    """
    t = batch_time(t, x, sde.T)
    t_next = batch_time(t_next, x, sde.T)
    if isinstance(sde, VPSDE):
        beta = coef(1 - (sde.mean_coef(t) / sde.mean_coef(t_next)) ** 2, x)
        mean = (x + beta * score_fn(x, t)) / (1 - beta).sqrt()
        return mean + beta.sqrt() * noise_like(x, generator)
    if isinstance(sde, VESDE):
        var, var_next = coef(sde.std(t) ** 2, x), coef(sde.std(t_next) ** 2, x)
        mean = x + (var - var_next) * score_fn(x, t)
        return mean + (var_next * (var - var_next) / var).sqrt() * noise_like(x, generator)
    raise ValueError(
        f"ancestral sampling follows an exact discrete forward chain (DDPM for VPSDE, SMLD for "
        f"VESDE); {type(sde).__name__} has no such chain. Use 'reverse_diffusion', 'em' or 'ddim'."
    )


def _loop(name: str, step, score_fn, sde, x, ts, generator, callback) -> Tensor:
    for i in range(len(ts) - 1):
        x = step(score_fn, sde, x, ts[i], ts[i + 1], generator)
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

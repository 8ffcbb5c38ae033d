"""Langevin dynamics: annealed Langevin sampling (NCSN) and the Langevin correctors of PC.

One Langevin step at time ``t`` with step ``α`` targets ``p_t``:
``x <- x + (α / 2) s(x, t) + sqrt(α) z``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scoresde.samplers.common import Callback, Generator, Grid, Reporter, ScoreFn, noise_like
from scoresde.shapes import append_dims, flatten_batch

STEP_RATIO = 0.5


def langevin_step(score: Tensor, x: Tensor, alpha: float, generator: Generator = None) -> Tensor:
    """``x + (α / 2) s + sqrt(α) z`` for a scalar step ``α``."""
    return torch.add(x, score, alpha=0.5 * alpha) + math.sqrt(alpha) * noise_like(x, generator)


def annealed_langevin(
    score_fn: ScoreFn,
    sde,
    x: Tensor,
    ts: Tensor,
    *,
    n_steps_each: int = 5,
    step_lr: float | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) over the noise levels ``ts``.

    With ``σ_i = std(t_i)`` (``ts`` from ``grids.geometric_std``: the NCSN geometric levels) and
    ``σ_L = std(ts[-1])``, level ``i`` takes ``K = n_steps_each`` steps of size
    ``α_i = ε σ_i^2 / σ_L^2``, ``x <- x + (α_i / 2) s(x, t_i) + sqrt(α_i) z``, ``ε = step_lr``.
    What matters is ``ε / σ_L^2``, the step relative to each level's variance, so the default
    is ``ε = STEP_RATIO σ_L^2 = 0.5 σ_L^2`` (``5e-5`` for VE with ``σ_L = 0.01``; NCSN's
    ``ε = 2e-5``, ``K = 100``, ``L = 10`` is biased on the test mixture). ``K`` score
    evaluations per level; the callback runs once per level. ``ss.sample`` uses 800 levels: with
    200 the largest mode weight of the test mixture is 0.015-0.018 low, and a larger or smaller
    step, the improved NCSN's step rule (Song & Ermon 2020) or one step per level do not help at
    the same cost (``benchmarks/ald_bias.py``).
    """
    if isinstance(n_steps_each, bool) or not isinstance(n_steps_each, int) or n_steps_each < 1:
        raise ValueError(f"n_steps_each must be an integer >= 1; got {n_steps_each!r}")
    grid = Grid(sde, ts, x)
    sigma_last = grid.std[-1]
    step_lr = STEP_RATIO * sigma_last**2 if step_lr is None else step_lr
    if not step_lr > 0:
        raise ValueError(f"step_lr must be > 0; got {step_lr!r}")
    report = Reporter("ald", len(ts) - 1, callback)
    for i, t in enumerate(ts):
        alpha = step_lr * (grid.std[i] / sigma_last) ** 2
        for _ in range(n_steps_each):
            x = langevin_step(score_fn(x, grid.time(i)), x, alpha, generator)
            report.watch(i, t, x)
        report(i, t, x)
    return x


def _alpha(grid: Grid, i: int) -> float:
    """Song et al.'s ``α_i``: ``1 - β_i = m(t_i)^2 / m(t_{i+1})^2`` (``1`` for VE)."""
    return (grid.m[i] / grid.m[i + 1]) ** 2


def langevin_corrector(
    score_fn: ScoreFn,
    grid: Grid,
    i: int,
    x: Tensor,
    *,
    snr: float,
    norms: str = "batch",
    generator: torch.Generator | None = None,
) -> Tensor:
    """One Langevin step at ``t = t_i`` with a size set by the signal-to-noise ratio ``r = snr``:
    ``ε = 2 α (r ||z|| / ||s||)^2``, ``x <- x + ε s + sqrt(2 ε) z``, ``α`` as in Song et al.
    (Algorithm 5). ``norms="batch"`` (default) uses the batch means of the norms, as the paper's
    code does: one step size for all samples, so each step is plain Langevin dynamics.
    ``norms="sample"`` takes the norms over each sample (samples stay independent of each other),
    but then ``ε`` depends on the position through ``||s||`` and on the noise it scales, which
    changes the stationary law: on the 2-D test mixture (n = 3,000, 250 steps, snr 0.16 VP) it
    gave χ² 152 and max |z| 256 against χ² 0.2, max |z| 1.6 with batch norms
    (``benchmarks/samplers_toy.py``); at d = 16 it still inflates variances (max |z| 13 at the
    default snr).
    """
    if norms not in ("sample", "batch"):
        raise ValueError(f"norms must be 'sample' or 'batch'; got {norms!r}")
    score = score_fn(x, grid.time(i))
    z = noise_like(x, generator)
    z_norm, s_norm = flatten_batch(z).norm(dim=1), flatten_batch(score).norm(dim=1)
    if norms == "batch":
        z_norm, s_norm = z_norm.mean(), s_norm.mean()
    step = append_dims(2 * _alpha(grid, i) * (snr * z_norm / s_norm) ** 2, x.ndim)
    return x + step * score + (2 * step).sqrt() * z


def ald_corrector(
    score_fn: ScoreFn,
    grid: Grid,
    i: int,
    x: Tensor,
    *,
    snr: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One annealed-Langevin step at ``t = t_i`` with ``ε = 2 α (r std(t))^2``, ``r = snr``:
    ``x <- x + ε s + sqrt(2 ε) z`` (Song et al.'s ``AnnealedLangevinDynamics`` corrector)."""
    step = 2 * _alpha(grid, i) * (snr * grid.std[i]) ** 2
    return langevin_step(score_fn(x, grid.time(i)), x, 2 * step, generator)

"""Inpainting by sequential Monte Carlo (SMCDiff; Trippe et al. 2022, Algorithm 1).

Each of the ``batch`` problems runs ``P`` particles. The known entries follow one forward
trajectory ``x_k,t`` of the known values (a Markov chain of the forward SDE, drawn backwards in
time through its bridge ``q(x_k,s | x_k,t, x_k,0)``); the unknown entries move by the reverse
kernel ``p(x_s | x_t) = q(x_s | x_t, x̂_0(x_t))`` (DDIM with ``η = 1``: the forward posterior with
Tweedie's ``x̂_0``), whose mean and variance on ``t -> s`` are

    μ(x_t) = m_s x̂_0 + sqrt(std_s^2 - c^2) (x_t - m_t x̂_0) / std_t,
    c^2 = std_s^2 (1 - (m_t / m_s)^2 std_s^2 / std_t^2).

Particle ``j`` is weighted by the kernel's density of the known trajectory's next value,
``w_j *= N(x_k,s; μ_k(x_t^j), c^2 I)``, and the particles are resampled (multinomially) when the
effective sample size ``(Σ w)^2 / Σ w^2`` falls below ``ess_threshold · P``. Because the forward
noise of the known entries is independent of the unknown ones, ``q(x_u,0 | x_k,0:T) =
q(x_u,0 | x_k,0)``: with the exact score the weighted particles target the exact conditional
``p(x_u | x_k)`` as ``P`` and the number of steps grow (replacement is the case ``P = 1``, minus the
consistent trajectory). One particle per problem is returned, drawn by its final weight. The
weights may also carry a look-ahead twist (:func:`log_twist`, on by default), which leaves the
target unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scoresde.samplers.common import CountingScore, Grid, ScoreFn, noise_like, tweedie
from scoresde.shapes import flatten_batch


def kernel(grid: Grid, i: int, x: Tensor, x0: Tensor) -> tuple[Tensor, float]:
    """Mean and std ``(μ, c)`` of ``q(x_{t_{i+1}} | x_{t_i} = x, x_0 = x0)``, the forward
    posterior (see the module docstring)."""
    m, std, m_next, std_next = grid.m[i], grid.std[i], grid.m[i + 1], grid.std[i + 1]
    c2 = max(0.0, std_next**2 * (1 - (m / m_next) ** 2 * std_next**2 / std**2))
    return m_next * x0 + math.sqrt(std_next**2 - c2) / std * (x - m * x0), math.sqrt(c2)


def inpaint_smc(score_fn: ScoreFn, sde, known: Tensor, mask: Tensor, ts: Tensor, particles: int,
                generator: torch.Generator | None, denoise: bool, ess_threshold: float = 0.5,
                twist: bool = True) -> tuple[Tensor, int, Tensor]:
    """SMCDiff over the grid ``ts`` with ``particles`` per problem; ``(x, nfe, ess)``, ``ess`` the
    mean effective sample size at each step (before resampling). ``nfe`` counts calls of
    ``score_fn``, each on ``batch · particles`` states. With ``twist``, see :func:`log_twist`."""
    batch, P = known.shape[0], particles
    counted = CountingScore(score_fn)
    k_known, k_mask = known.repeat_interleave(P, 0), mask.repeat_interleave(P, 0)
    x = sde.prior_sample(k_known.shape, generator=generator, device=known.device, dtype=known.dtype)
    grid = Grid(sde, ts, x)
    track = grid.m[0] * known + grid.std[0] * noise_like(known, generator)
    x = torch.where(k_mask, track.repeat_interleave(P, 0), x)
    log_w = torch.zeros(batch, P, dtype=known.dtype, device=known.device)
    log_psi_prev = torch.zeros(batch * P, dtype=known.dtype, device=known.device)
    ess = []
    for i in range(grid.steps):
        x0 = grid.denoised(i, x, counted(x, grid.time(i)))
        log_psi = log_twist(x0, k_known, k_mask, grid.sigma(i)) if twist else log_psi_prev
        log_w = log_w + (log_psi - log_psi_prev).reshape(batch, P)
        ess.append(_ess(log_w).mean())
        (x, x0, log_psi), log_w = _resample((x, x0, log_psi), log_w, ess_threshold, generator)
        mean, c = kernel(grid, i, x, x0)
        track_mean, _ = kernel(grid, i, track, known)
        track = track_mean + c * noise_like(known, generator)
        k_track = track.repeat_interleave(P, 0)
        log_w = log_w + _log_density(k_track, mean, c, k_mask).reshape(batch, P)
        x = torch.where(k_mask, k_track, mean + c * noise_like(x, generator))
        log_psi_prev = log_psi
    x = _pick(x, log_w - log_psi_prev.reshape(batch, P), generator)
    if denoise:
        x = tweedie(counted, sde, x, ts[-1])
    return torch.where(mask, known, x), counted.nfe, torch.stack(ess)


def log_twist(x0: Tensor, known: Tensor, mask: Tensor, ratio: float) -> Tensor:
    """``log ψ_t = log N(x_known; x̂_0(x_t), σ̃_t^2 I)`` on the known entries, up to a constant:
    a look-ahead guess of how well a particle explains the known values (``σ̃ = std / m``, about
    the spread of ``x_0`` given ``x_t`` at small noise, flatter at large). The particles carry
    ``ψ_t`` in their weights from step to step and shed the last one at the end, so the target is
    unchanged; resampling on it moves particles into the right modes before they commit."""
    return _log_density(known, x0, ratio, mask)


def _log_density(value: Tensor, mean: Tensor, c: float, mask: Tensor) -> Tensor:
    """``log N(value; mean, c^2)`` summed over the known entries, up to a constant; per state."""
    r = torch.where(mask, value - mean, torch.zeros((), dtype=value.dtype, device=value.device))
    return -0.5 * flatten_batch(r**2).sum(1) / c**2


def _ess(log_w: Tensor) -> Tensor:
    """``(Σ w)^2 / Σ w^2`` per problem, from log-weights ``(batch, P)``."""
    return (2 * log_w.logsumexp(1) - (2 * log_w).logsumexp(1)).exp()


def _resample(states: tuple[Tensor, ...], log_w: Tensor, threshold: float,
              generator: torch.Generator | None) -> tuple[tuple[Tensor, ...], Tensor]:
    """Multinomial resampling of the problems whose ESS is below ``threshold · P`` (``states``
    laid out ``(batch · P, ...)`` problem-major); their weights reset to equal."""
    batch, P = log_w.shape
    low = _ess(log_w) < threshold * P
    if not bool(low.any()):
        return states, log_w
    drawn = torch.multinomial(log_w.softmax(1), P, replacement=True, generator=generator)
    keep = torch.arange(P, device=log_w.device).expand(batch, P)
    idx = torch.where(low.unsqueeze(1), drawn, keep)
    rows = (idx + P * torch.arange(batch, device=log_w.device).unsqueeze(1)).flatten()
    return tuple(s[rows] for s in states), torch.where(low.unsqueeze(1), torch.zeros_like(log_w), log_w)


def _pick(x: Tensor, log_w: Tensor, generator: torch.Generator | None) -> Tensor:
    """One particle per problem, drawn with probability proportional to its weight."""
    batch, P = log_w.shape
    j = torch.multinomial(log_w.softmax(1), 1, generator=generator).squeeze(1)
    return x[j + P * torch.arange(batch, device=x.device)]

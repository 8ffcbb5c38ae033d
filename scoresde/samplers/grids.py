"""Time grids for the samplers, each a plain function ``grid(sde, steps, eps) -> ts``.

Every grid runs backwards in time, from ``T`` down to ``eps``, as a 1-D float64 tensor; a sampler
and its grid are chosen independently. ``ts[0] = T`` and ``ts[-1] = eps`` exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from scoresde.sde import solve_time


def check_grid_args(sde, steps: int, eps: float) -> None:
    """Raise ``ValueError`` unless ``steps`` is an integer ``>= 1`` and ``0 < eps < T``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    sde.check_eps(eps)


def uniform(sde, steps: int, eps: float) -> Tensor:
    """``t_i = T + (i / steps) (eps - T)`` for ``i = 0..steps``: ``steps + 1`` points."""
    check_grid_args(sde, steps, eps)
    ts = torch.linspace(sde.T, eps, steps + 1, dtype=torch.float64)
    ts[-1] = eps
    return ts


def karras(sde, steps: int, eps: float, rho: float = 7.0) -> Tensor:
    """EDM grid (Karras et al. 2022, Eq. 5) on the noise-to-signal ratio ``σ̃(t) = std(t) / m(t)``.

    ``σ̃_i = (σ̃_max^{1/ρ} + (i / steps)(σ̃_min^{1/ρ} - σ̃_max^{1/ρ}))^ρ`` with ``σ̃_max = σ̃(T)``,
    ``σ̃_min = σ̃(eps)``, ``i = 0..steps``, mapped back to times by ``t_i = σ̃^{-1}(σ̃_i)``.
    ``ρ = 7`` is the paper's default; for VE ``σ̃ = σ(t)``.
    """
    check_grid_args(sde, steps, eps)
    if rho <= 0:
        raise ValueError(f"rho must be > 0; got {rho!r}")
    lo, hi = _ends(sde.ratio, sde, eps)
    ramp = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    levels = (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    return _at_ratios(sde, levels, eps)


def geometric_std(sde, steps: int, eps: float) -> Tensor:
    """NCSN noise levels: ``std(t_i)`` geometric from ``std(T)`` down to ``std(eps)``.

    ``log std(t_i) = log std(T) + (i / (L - 1)) (log std(eps) - log std(T))``, ``i = 0..L-1``,
    ``L = steps`` levels (one level, ``L = 1``, is ``t = eps``). For VE, where
    ``std = σ_min (σ_max/σ_min)^t``, these are SMLD's geometric ``σ_i`` and uniform in ``t``.
    """
    check_grid_args(sde, steps, eps)
    if steps == 1:
        return torch.tensor([eps], dtype=torch.float64)
    lo, hi = _ends(sde.std, sde, eps)
    levels = torch.logspace(hi.log10().item(), lo.log10().item(), steps, dtype=torch.float64)
    return _invert(sde.std, levels, sde, eps)


def logsnr(sde, steps: int, eps: float) -> Tensor:
    """Times uniform in the half log-SNR ``λ(t) = log(m(t) / std(t))``, from ``λ(T)`` to ``λ(eps)``:
    ``σ̃ = std / m = e^{-λ}`` geometric from ``σ̃(T)`` down to ``σ̃(eps)``, ``steps + 1`` points.
    The default grid of the DPM-Solver++ and UniPC samplers, which step in ``λ``.
    """
    check_grid_args(sde, steps, eps)
    lo, hi = _ends(sde.ratio, sde, eps)
    levels = torch.logspace(hi.log10().item(), lo.log10().item(), steps + 1, dtype=torch.float64)
    return _at_ratios(sde, levels, eps)


def _ends(fn: Callable[[Tensor], Tensor], sde, eps: float) -> tuple[Tensor, Tensor]:
    t = torch.tensor([eps, sde.T], dtype=torch.float64)
    lo, hi = fn(t)
    return lo, hi


def _at_ratios(sde, levels: Tensor, eps: float) -> Tensor:
    """The times of the noise-to-signal ratios ``levels`` (``sde.time_of_ratio``, in closed form for
    VP, sub-VP and VE), kept in ``[eps, T]`` with the ends exact."""
    ts = sde.time_of_ratio(levels).clamp(eps, sde.T)
    ts[0], ts[-1] = sde.T, eps
    return ts


def _invert(fn: Callable[[Tensor], Tensor], levels: Tensor, sde, eps: float) -> Tensor:
    """Solve ``fn(t_i) = levels_i`` on ``[eps, T]`` (``fn`` increasing in ``t``), ends exact."""
    ts = solve_time(fn, levels, eps, sde.T)
    ts[0], ts[-1] = sde.T, eps
    return ts

"""``sampler="fast"``: the few-step solver, grid and ``eps`` measured best for each SDE.

The choices come from ``benchmarks/fast_samplers.py`` (exact oracle score on the 2-D toy mixture,
n = 3,000, several seeds): the smallest NFE at which every seed reaches the noise level of the
mixture statistics (χ² of the soft counts < 13.8 and every |z| < 3) and stays there for all larger
budgets tried. ``steps`` counts solver steps; with the final Tweedie denoise NFE = ``steps + 1``.

The data-prediction solvers (DPM-Solver++, UniPC) see the SDE only through the half log-SNR
``λ = -log σ̃``, ``σ̃ = std / m``: on two SDEs whose grids hold the same ``λ`` values they take the
same steps. So what is chosen is the end point ``σ̃(eps)`` and the number of steps, and all three
choices stop at ``σ̃ ≈ 0.11`` (``eps`` = 0.03 VP, 0.1 sub-VP, 0.28 VE), where the Tweedie step
then returns the posterior mean ``E[x_0 | x_eps]``.

Measured (4 seeds, NFE <= 30 tried): VP DPM-Solver++(3M), log-SNR grid, ``eps = 0.03``: 15 NFE
(UniPC-3 16, 2M 17; at ``eps = 1e-3`` 22). Sub-VP at ``eps = 0.1``: 3M 15 (the VP steps; at
``eps = 0.03``, σ̃ = 0.012, 22). VE at ``eps = 0.28``: UniPC-3 13, 3M and 2M 15 (at ``eps = 0.1``,
σ̃ = 0.023, UniPC-3 17). Nothing reached it at <= 10 NFE.

The price of stopping at ``σ̃ ≈ 0.11``: Tweedie's posterior mean shrinks a Gaussian component of
standard deviation ``s`` to ``s^2 / sqrt(s^2 + σ̃^2)`` (6 % for the mixture's narrowest, ``s = 0.3``,
within the noise at n = 3,000). Data with finer structure than ``σ̃`` (image pixels scaled to
``[-1, 1]``: one grey level of 255 is 0.008) loses it; pass a smaller ``eps`` there, e.g.
``eps=1e-3`` with a few more steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scoresde.sde import VESDE, VPSDE, SubVPSDE


@dataclass(frozen=True)
class FastChoice:
    """A sampler name with its grid, default steps, ``eps`` and knobs."""

    sampler: str
    grid: str
    steps: int
    eps: float
    options: dict = field(default_factory=dict)


FAST = {
    VPSDE: FastChoice("dpm++3m", "logsnr", 14, 3e-2),  # NFE 15
    SubVPSDE: FastChoice("dpm++3m", "logsnr", 14, 0.1),  # NFE 15
    VESDE: FastChoice("unipc", "logsnr", 12, 0.28, {"order": 3}),  # NFE 13
}


def fast_choice(sde) -> FastChoice:
    """The :class:`FastChoice` for ``sde``'s class; ``ValueError`` for an SDE not measured."""
    if type(sde) not in FAST:
        raise ValueError(f"sampler 'fast' has no measured choice for {type(sde).__name__}")
    return FAST[type(sde)]

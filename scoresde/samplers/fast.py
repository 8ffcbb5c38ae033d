"""``sampler="fast"``: the few-step solver, grid and ``eps`` measured best for each SDE.

The choices come from ``benchmarks/fast_samplers.py`` (exact oracle score on the 2-D toy mixture,
n = 3,000, several seeds): the smallest NFE at which every seed reaches the noise level of the
mixture statistics (χ² of the soft counts < 13.8 and every |z| < 3) and stays there for all larger
budgets tried. ``steps`` counts solver steps; with the final Tweedie denoise NFE = ``steps + 1``.

Measured (4 seeds, NFE <= 25 tried; ``eps`` in t): VP DPM-Solver++(3M), log-SNR grid,
``eps = 0.03``: 15 NFE (UniPC-3 16, 2M 17; at ``eps = 1e-3`` 22). Sub-VP: only ``eps = 0.03``
reached it within 25, UniPC-3 at 21 (3M 22). VE: UniPC-3 at 17 with ``eps = 0.1`` (σ = 0.023);
``eps = 0.2`` (σ = 0.055) reached it at 15 but the Tweedie step there shrinks the narrowest
component's variance by 3 % (~0.7 z at n = 3,000), so 0.1 is kept. Nothing reached it at <= 10 NFE.
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
    SubVPSDE: FastChoice("unipc", "logsnr", 20, 3e-2, {"order": 3}),  # NFE 21
    VESDE: FastChoice("unipc", "logsnr", 16, 0.1, {"order": 3}),  # NFE 17
}


def fast_choice(sde) -> FastChoice:
    """The :class:`FastChoice` for ``sde``'s class; ``ValueError`` for an SDE not measured."""
    if type(sde) not in FAST:
        raise ValueError(f"sampler 'fast' has no measured choice for {type(sde).__name__}")
    return FAST[type(sde)]

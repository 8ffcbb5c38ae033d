"""``sampler="fast"``: the few-step solver, grid and ``eps`` measured best for each SDE.

Each choice is its SDE class's ``fast_sampler`` (a :class:`~scoresde.sde.FastChoice`, so a new
SDE brings its own); this module says how they were measured and looks them up.

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

from scoresde.sde import VESDE, VPSDE, FastChoice, SubVPSDE

__all__ = ["FAST", "FastChoice", "fast_choice"]


def fast_choice(sde) -> FastChoice:
    """``sde.fast_sampler``, the :class:`~scoresde.sde.FastChoice` measured for its class (the
    choice lives with the SDE, so a new SDE brings its own); ``ValueError`` if there is none."""
    choice = getattr(sde, "fast_sampler", None)
    if choice is None:
        raise ValueError(f"sampler 'fast' has no measured choice for {type(sde).__name__}")
    return choice


FAST = {cls: fast_choice(cls) for cls in (VPSDE, SubVPSDE, VESDE)}
"""The built-in SDEs' choices, read from their classes: VP and sub-VP 15 NFE, VE 13."""

"""NFE budgets: how many solver steps a sampler may take for a given number of score evaluations."""

from __future__ import annotations

OWN_STEPS = ("ode", "fast")
"""Samplers that choose their own step count when none is given (adaptive ``ode``; ``fast``'s
measured count)."""

NFE_PER_STEP = {"heun": 2, "pc": 2, "ald": 2, "ode_rk4": 4}
"""Score evaluations per step: Heun's two stages, PC's predictor and one corrector step, ALD's
two Langevin steps per level, RK4's four stages; every other sampler spends one."""


def steps_for(sampler: str, nfe: int) -> tuple[int, dict]:
    """Solver steps (and knobs) spending about ``nfe`` score evaluations, the final Tweedie
    denoising step included: ``steps = max(1, (nfe - 1) // NFE_PER_STEP[sampler])``.

    ``ode_rk4`` names the probability-flow ODE with the fixed-step RK4 method."""
    options = {"n_steps_each": 2} if sampler == "ald" else {}
    if sampler == "ode_rk4":
        options = {"method": "rk4"}
    return max(1, (nfe - 1) // NFE_PER_STEP.get(sampler, 1)), options


def default_steps(sampler: str, steps: int | None, configured: int) -> int | None:
    """The step count to run: ``steps`` if given, ``None`` (the sampler's own choice) for
    :data:`OWN_STEPS`, else the ``configured`` count."""
    if steps is not None:
        return steps
    return None if sampler in OWN_STEPS else configured

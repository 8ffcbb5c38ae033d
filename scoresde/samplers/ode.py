"""The probability-flow ODE ``dx/dt = f(x, t) - g(t)^2 s(x, t) / 2`` through ``torchdiffeq``.

Integrating it from ``T`` down to ``eps`` samples (:func:`probability_flow`, :func:`decode`);
from ``eps`` up to ``T`` it maps data to latents (:func:`encode`). Both directions use the
same :func:`integrate`, so ``decode(encode(x)) ≈ x`` up to the solver tolerance.

Adaptive solvers step past the last output time and interpolate back, which would evaluate
the score outside ``[eps, T]`` (where the VP std is NaN for ``t < 0``). ``integrate`` passes
the end point as torchdiffeq's ``step_t`` option, so the last accepted step lands on it. Their
automatic first step probes ``t_0 + h`` with ``h ∝ |x| / |dx/dt|``, which leaves the interval
when the drift is nearly zero (the VP drift at ``T`` when ``p_T ≈ N(0, I)``); ``integrate`` sets
the first step to ``FIRST_STEP`` of the span instead (the solver grows it tenfold per step).
"""

from __future__ import annotations

import torch
import torchdiffeq
from torch import Tensor

from scoresde.samplers.common import Callback, CountingScore, Reporter, ScoreFn
from scoresde.samplers.grids import check_grid_args

ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
FIRST_STEP = 1e-2
FIXED_METHODS = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams")


def check_method(method: str) -> None:
    """Raise ``ValueError`` listing the valid torchdiffeq methods unless ``method`` is one."""
    if method not in ADAPTIVE_METHODS + FIXED_METHODS:
        raise ValueError(
            f"unknown ODE method {method!r}; valid: adaptive {list(ADAPTIVE_METHODS)}, "
            f"fixed-grid {list(FIXED_METHODS)}"
        )


def integrate(
    score_fn: ScoreFn,
    sde,
    x: Tensor,
    ts: Tensor,
    *,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Tensor:
    """Solve the probability-flow ODE from ``ts[0]`` through the monotone times ``ts``.

    Returns the states at every ``ts``, shape ``(len(ts), *x.shape)``. Fixed-grid methods step
    exactly on ``ts``; adaptive methods choose their own steps (``rtol``, ``atol``) and land on
    ``ts[-1]``. Raises ``FloatingPointError`` if the drift turns non-finite.
    """
    check_method(method)
    rev = sde.reverse(score_fn, probability_flow=True)
    calls = 0

    def drift(t: Tensor, y: Tensor) -> Tensor:
        nonlocal calls
        dy = rev.drift(y, t)
        if not bool(torch.isfinite(dy).all()):
            raise FloatingPointError(
                f"sampler 'ode' hit a non-finite drift at evaluation {calls}, t = {float(t):.6g}"
            )
        calls += 1
        return dy

    options = None
    if method in ADAPTIVE_METHODS:
        options = {"step_t": ts[-1:], "first_step": FIRST_STEP * float((ts[-1] - ts[0]).abs())}
    return torchdiffeq.odeint(drift, x, ts, method=method, rtol=rtol, atol=atol, options=options)


def probability_flow(
    score_fn: ScoreFn,
    sde,
    x: Tensor,
    ts: Tensor,
    *,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Sample by solving the probability-flow ODE from ``ts[0] = T`` down to ``ts[-1]``.

    ``ts = [T, eps]`` suits adaptive methods (``dopri5`` by default); a fixed-grid method steps on
    ``ts``. The callback sees the solution at each ``ts[1:]``; ``generator`` is unused (the map is
    deterministic) and kept for the shared signature.
    """
    path = integrate(score_fn, sde, x, ts, method=method, rtol=rtol, atol=atol)
    report = Reporter("ode", len(ts) - 2, callback)
    for i in range(1, len(ts)):
        report(i - 1, ts[i], path[i])
    return path[-1]


def _ode_times(sde, x: Tensor, eps: float | None, steps: int | None, method: str) -> Tensor:
    check_method(method)
    eps = sde.training_eps if eps is None else eps
    if steps is None:
        if method in FIXED_METHODS:
            raise ValueError(f"method {method!r} is fixed-grid: pass steps (an integer >= 1)")
        steps = 1
    check_grid_args(sde, steps, eps)
    ts = torch.linspace(eps, sde.T, steps + 1, dtype=torch.float64)
    ts[0], ts[-1] = eps, sde.T
    return ts.to(device=x.device, dtype=x.dtype)


def encode(
    score_fn: ScoreFn,
    sde,
    x: Tensor,
    *,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float | None = None,
    steps: int | None = None,
) -> tuple[Tensor, int]:
    """Map data ``x`` (at time ``eps``) to its latent ``z = x(T)`` along the probability-flow ODE.

    Adaptive methods integrate ``[eps, T]`` in one call (``steps=None``); fixed-grid methods need
    ``steps`` uniform steps; ``eps`` defaults to ``sde.training_eps``, where the likelihood starts.
    Returns ``(z, nfe)``, ``nfe`` the number of score evaluations.
    """
    counted = CountingScore(score_fn)
    z = integrate(counted, sde, x, _ode_times(sde, x, eps, steps, method), method=method,
                  rtol=rtol, atol=atol)[-1]
    return z, counted.nfe


def decode(
    score_fn: ScoreFn,
    sde,
    z: Tensor,
    *,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float | None = None,
    steps: int | None = None,
) -> tuple[Tensor, int]:
    """Inverse of :func:`encode`: integrate from ``z`` at ``T`` down to ``eps``; ``(x, nfe)``."""
    counted = CountingScore(score_fn)
    ts = _ode_times(sde, z, eps, steps, method).flip(0)
    x = integrate(counted, sde, z, ts, method=method, rtol=rtol, atol=atol)[-1]
    return x, counted.nfe

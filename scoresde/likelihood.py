"""Exact log-likelihood through the probability-flow ODE, and bits per dimension through it.

Instantaneous change of variables along ``dx/dt = f̃(x, t) = f(x, t) - g(t)^2 s(x, t) / 2``:

    log p_eps(x) = log p_T(x_T) + ∫_eps^T ∇·f̃(x_t, t) dt,

integrated from the data at ``t = eps`` to the latent ``x_T`` as one augmented ODE for
``[x, ∫ ∇·f̃]`` with ``torchdiffeq.odeint``. The divergence is exact (one vector–Jacobian
product per dimension) or the Hutchinson–Skilling estimate ``E_v[vᵀ (∂f̃/∂x) v]``, with the
drift and its VJP taken from one forward pass of the score and the probe ``v`` fixed along the
trajectory.

Time variable. Writing ``x = m(t) y`` and ``σ̄(t) = std(t) / m(t)``, every affine SDE here has
``g^2 = m^2 dσ̄^2/dt``, so the ODE in the scaled state is ``dy/dσ̄ = -std(t) s(m y, t)``
(DDIM's ODE: nearly linear in ``σ̄`` for an ε-predicting network) and, in ``ρ = log σ̄``
(minus half the log-SNR), ``dy/dρ = -std^2 s / m``. Then

    log p_eps(x) = log p_T(x_T) + D log(m(T) / m(eps)) + ∫ ∇_y·(dy/dτ) dτ.

The same path is followed whatever the time variable; only the solver's steps differ.
``time_variable="t"`` (the paper's integration in ``t``) is the default: measured on the 2-D
oracle and on the benchmark's network it needed the fewest steps for VP (see
``benchmarks/likelihood.py``); ``"sigma"`` needed fewer for VE on the oracle.

Bits per dimension of discrete data put this likelihood (or the ELBO) into the dequantisation
arithmetic of :mod:`scoresde.dequantize`, where the loop over batches and draws lives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torchdiffeq import odeint

from scoresde.dequantize import BitsPerDim, dequantized_bits_per_dim
from scoresde.elbo import elbo_nll
from scoresde.score_contract import CheckedScore
from scoresde.sde import SDE, ScoreFn
from scoresde.shapes import flatten_batch, require_finite

TRACES = ("hutchinson", "exact")
NOISES = ("rademacher", "gaussian")
TIME_VARIABLES = ("t", "sigma", "log_sigma")
NORMS = ("mixed", "state", "logp")
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
FIXED_METHODS = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams")
METHODS = ADAPTIVE_METHODS + FIXED_METHODS
MAX_EXACT_DIM = 256
"""``trace="exact"`` costs one backward pass per dimension; above this it is refused by default."""


@dataclass
class LikelihoodResult:
    """``logp = prior_logp + delta_logp`` (nats per sample), the latent ``z = x_T``, NFE."""

    logp: Tensor
    z: Tensor
    prior_logp: Tensor
    delta_logp: Tensor
    nfe: int


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


class _Clock:
    """The solver's time ``τ`` and its map to the SDE's ``t``, for the scaled state ``y = x/m``.

    ``ρ(t) = log σ̄(t) = log(std/m)`` increases with ``dρ/dt = g^2 / (2 std^2)``. Its inverse is a
    table of ``t`` on a uniform ``ρ`` grid (``sde.time_of_ratio``; linear interpolation is good to
    ~1e-7 relative), refined by one Newton step (then ~1e-14).
    """

    _GRID = 4097
    _NEWTON = 1

    def __init__(self, sde: SDE, eps: float, variable: str, like: Tensor):
        self.sde, self.eps, self.variable = sde, eps, variable
        rho0, rho1 = self._rho(torch.tensor([eps, sde.T], dtype=torch.float64)).tolist()
        if not rho0 < rho1:
            raise ValueError(f"std/mean_coef of {sde!r} must increase on [eps, T]")
        targets = torch.linspace(rho0, rho1, self._GRID, dtype=torch.float64)
        self.rho0, self.rho1 = rho0, rho1
        table = sde.time_of_ratio(targets.exp()).clamp(eps, sde.T)
        self.table = table.to(dtype=like.dtype, device=like.device)
        ends = torch.tensor([rho0, rho1], dtype=torch.float64)
        tau = ends.exp() if variable == "sigma" else ends
        self.tau0, self.tau1 = tau[0].item(), tau[1].item()

    def _rho(self, t: Tensor) -> Tensor:
        return torch.log(self.sde.ratio(t))

    def t_of(self, tau: Tensor) -> Tensor:
        """``t(τ)``, kept in ``[eps, T]`` (guards the solver's first-step probe and rounding)."""
        rho = tau.log() if self.variable == "sigma" else tau
        pos = ((rho - self.rho0) / (self.rho1 - self.rho0) * (self._GRID - 1)).clamp(0, self._GRID - 1)
        i = pos.floor().clamp(max=self._GRID - 2)
        t = torch.lerp(self.table[i.long()], self.table[i.long() + 1], pos - i)
        for _ in range(self._NEWTON):
            slope = self.sde.diffusion(t) ** 2 / (2 * self.sde.std(t) ** 2)
            t = (t - (self._rho(t) - rho) / slope).clamp(self.eps, self.sde.T)
        return t

    def velocity_factor(self, t: Tensor) -> Tensor:
        """``c(t)`` in ``dy/dτ = c(t) s(m y, t)``: ``-std`` for ``σ̄``, ``-std^2/m`` for ``ρ``."""
        std = self.sde.std(t)
        return -std if self.variable == "sigma" else -(std**2) / self.sde.mean_coef(t)


class _AugmentedODE(torch.nn.Module):
    """Right-hand side of ``d[y, ℓ]/dτ = [F(y, τ), ∇_y·F(y, τ)]``; counts score evaluations.

    In ``t``, ``F = f̃ = f(y, t) - g(t)^2 s(y, t) / 2`` (``f = sde.drift_coef(t) y``), with
    ``t`` a shared 0-d tensor so the per-call coefficients cost no batch-sized work.
    """

    def __init__(self, score_fn: ScoreFn, sde: SDE, clock: _Clock | None, eps: float,
                 divergence: Callable[[Tensor, Tensor], Tensor]):
        super().__init__()
        self.score_fn, self.sde, self.clock, self.eps = score_fn, sde, clock, eps
        self.divergence = divergence
        self.nfe = 0

    def velocity(self, y: Tensor, tau: Tensor) -> tuple[Tensor, Tensor]:
        if self.clock is None:
            t = tau.clamp(self.eps, self.sde.T)
            s = self.score_fn(y, t.expand(y.shape[0]))
            return self.sde.drift_coef(t) * y - 0.5 * self.sde.diffusion(t) ** 2 * s, t
        t = self.clock.t_of(tau)
        m = self.sde.mean_coef(t)
        v = self.clock.velocity_factor(t) * self.score_fn(m * y, t.expand(y.shape[0]))
        return v, t

    def forward(self, tau: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        y = state[0].detach()
        with torch.enable_grad():
            y.requires_grad_(True)
            v, t = self.velocity(y, tau)
            self.nfe += 1
            if not bool(torch.isfinite(v).all()):
                raise FloatingPointError(f"non-finite probability-flow drift at t = {t.max().item():.6g}")
            div = self.divergence(v, y)
        return v.detach(), div.detach()


def _hutchinson(probes: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """``(1/K) Σ_k v_kᵀ (∂F/∂y) v_k``: one VJP per probe through the same forward pass."""

    def divergence(v: Tensor, y: Tensor) -> Tensor:
        total = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
        for k, probe in enumerate(probes):
            (vjp,) = torch.autograd.grad(v, y, probe, retain_graph=k < len(probes) - 1)
            total = total + flatten_batch(vjp * probe).sum(1)
        return total / len(probes)

    return divergence


def _exact_divergence(v: Tensor, y: Tensor) -> Tensor:
    """``Σ_i ∂F_i/∂y_i``: one VJP per dimension with a unit vector (samples are independent)."""
    flat_v = flatten_batch(v)
    dim = flat_v.shape[1]
    total = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
    for i in range(dim):
        (row,) = torch.autograd.grad(flat_v[:, i].sum(), y, retain_graph=i < dim - 1)
        total = total + flatten_batch(row)[:, i]
    return total


def _error_norm(kind: str) -> Callable[[tuple[Tensor, Tensor]], Tensor] | None:
    """The adaptive solver's norm of the scaled error ``e / (atol + rtol |state|)`` of ``(x, ℓ)``:
    ``"mixed"`` ``max(RMS(e_x), RMS(e_ℓ))`` (torchdiffeq's default, ``None`` here); ``"state"`` the
    RMS over every entry of the state, as scipy's ``solve_ivp`` on the flat state ``[x, ℓ]`` of the
    paper's code (the accumulator is one entry of ``D + 1`` per sample); ``"logp"`` ``RMS(e_ℓ)``,
    the error of the log-density alone."""
    if kind == "state":
        return lambda state: ((state[0].square().sum() + state[1].square().sum())
                              / (state[0].numel() + state[1].numel())).sqrt()
    if kind == "logp":
        return lambda state: state[1].square().mean().sqrt()
    return None


def _probes(x: Tensor, noise: str, n_probes: int, generator: torch.Generator | None) -> Tensor:
    shape = (n_probes, *x.shape)
    if noise == "gaussian":
        return torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)
    bits = torch.randint(0, 2, shape, generator=generator, device=x.device)
    return (2 * bits - 1).to(x.dtype)


def log_likelihood(
    score_fn: ScoreFn,
    sde: SDE,
    x: Tensor,
    trace: str = "hutchinson",
    noise: str = "rademacher",
    n_probes: int = 1,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float | None = None,
    generator: torch.Generator | None = None,
    prior_logp: Callable[[Tensor], Tensor] | None = None,
    *,
    time_variable: str = "t",
    norm: str = "mixed",
    options: dict | None = None,
    max_exact_dim: int | None = MAX_EXACT_DIM,
) -> LikelihoodResult:
    """``log p_eps(x) = log p_T(x_T) + ∫_eps^T ∇·f̃(x_t, t) dt`` per sample, in nats.

    Args:
        score_fn: ``s(x, t) ≈ ∇ log p_t(x)``; must be differentiable in ``x`` and act on each
            sample independently (no batch statistics).
        sde: the forward SDE whose probability-flow ODE is integrated.
        x: ``(batch, ...)`` data; the ODE runs on its device and in its dtype.
        trace: ``"hutchinson"`` (unbiased estimate, one VJP per probe and evaluation) or
            ``"exact"`` (one VJP per dimension; refused above ``max_exact_dim`` dimensions unless
            ``max_exact_dim=None``).
        noise, n_probes: Hutchinson probe distribution (``"rademacher"`` or ``"gaussian"``) and
            the number of probes averaged; the probes are drawn once with ``generator``.
        method, rtol, atol, options: passed to ``torchdiffeq.odeint``. Adaptive methods get
            ``options["step_t"] = [end]`` so that their last step lands on ``T`` (no overshoot
            past ``T``); fixed-step methods need ``options={"step_size": ...}``.
        eps: the ODE starts at ``t = eps`` (default ``sde.training_eps``, ``1e-5``), so the result
            is ``log p_eps``, the density of the data blurred by ``std(eps)`` (compare with
            ``GaussianMixture.log_prob_t(x, eps)``).
        prior_logp: terminal log-density ``log p_T`` (default ``sde.prior_logp``); the prior is
            only approximately ``p_T``, so tests pass the exact one.
        time_variable: the solver's clock: ``"t"`` (the paper's), ``"sigma"`` (``σ̄ = std/m``)
            or ``"log_sigma"`` (``ρ = log(std/m)``), the last two with the scaled state ``x/m``.
        norm: how an adaptive method measures the error of the state ``(x, ℓ)`` against
            ``atol + rtol |state|`` (``"mixed"``, ``"state"`` or ``"logp"``; see
            :func:`_error_norm` and ``benchmarks/likelihood_speed.py`` for what each costs).

    Returns:
        ``LikelihoodResult`` with ``logp``, ``z = x_T``, ``prior_logp``, ``delta_logp``, ``nfe``.
    """
    _check_choice("trace", trace, TRACES)
    _check_choice("noise", noise, NOISES)
    _check_choice("method", method, METHODS)
    _check_choice("time_variable", time_variable, TIME_VARIABLES)
    _check_choice("norm", norm, NORMS)
    if x.ndim < 2 or not x.is_floating_point():
        raise ValueError(f"x must be a floating tensor of shape (batch, ...); got {x.dtype} {tuple(x.shape)}")
    require_finite(x, "x")
    eps = sde.training_eps if eps is None else eps
    sde.check_eps(eps)
    if not isinstance(n_probes, int) or n_probes < 1:
        raise ValueError(f"n_probes must be a positive integer; got {n_probes!r}")
    dim = flatten_batch(x).shape[1]
    if trace == "exact" and max_exact_dim is not None and dim > max_exact_dim:
        raise ValueError(
            f"trace='exact' needs one backward pass per dimension: x has {dim} > max_exact_dim = "
            f"{max_exact_dim}; use trace='hutchinson' or pass max_exact_dim=None to force it"
        )
    divergence = _exact_divergence if trace == "exact" else _hutchinson(
        _probes(x, noise, n_probes, generator)
    )
    clock = None if time_variable == "t" else _Clock(sde, eps, time_variable, x)
    tau0, tau1 = (eps, sde.T) if clock is None else (clock.tau0, clock.tau1)
    ode = _AugmentedODE(CheckedScore(score_fn, need_grad=True), sde, clock, eps, divergence)
    options = dict(options or {})
    if method in FIXED_METHODS and "step_size" not in options and "grid_points" not in options:
        raise ValueError(f"method {method!r} is fixed-step: pass options={{'step_size': ...}} (in the "
                         f"solver's clock); without it torchdiffeq takes one step over [eps, T]")
    if method in ADAPTIVE_METHODS:
        options.setdefault("step_t", torch.tensor([tau1], dtype=x.dtype, device=x.device))
        error_norm = _error_norm(norm)
        if error_norm is not None:
            options.setdefault("norm", error_norm)
    ends = torch.tensor([tau0, tau1], dtype=x.dtype, device=x.device)
    m0, m1 = sde.mean_coef(torch.tensor([eps, sde.T], dtype=x.dtype, device=x.device))
    y0 = x if clock is None else x / m0
    state0 = (y0, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device))
    ys, integral = odeint(ode, state0, ends, rtol=rtol, atol=atol, method=method, options=options)
    z = ys[-1] if clock is None else ys[-1] * m1
    delta = integral[-1] + (0.0 if clock is None else dim * torch.log(m1 / m0))
    prior = (sde.prior_logp if prior_logp is None else prior_logp)(z)
    return LikelihoodResult(logp=prior + delta, z=z, prior_logp=prior, delta_logp=delta, nfe=ode.nfe)


def _ode_nll(score_fn: ScoreFn, sde: SDE, y: Tensor, generator: torch.Generator | None,
             **ode_kw) -> tuple[Tensor, int]:
    """``-log p_y(y)`` in nats per sample from the probability-flow ODE, and its NFE."""
    res = log_likelihood(score_fn, sde, y, generator=generator, **ode_kw)
    return -res.logp, res.nfe


ESTIMATORS: dict[str, Callable[..., tuple[Tensor, int]]] = {"ode": _ode_nll, "elbo": elbo_nll}
"""``name -> f(score_fn, sde, y, generator, **kw) -> (nll nats per sample, nfe)``."""


def bits_per_dim(
    score_fn: ScoreFn,
    sde: SDE,
    data: Tensor,
    *,
    num_levels: int = 256,
    data_range: tuple[float, float] = (-1.0, 1.0),
    n_dequant: int = 1,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    estimator: str = "ode",
    dtype: torch.dtype | None = None,
    progress: bool = False,
    **ode_kw,
) -> BitsPerDim:
    """Bits/dim of integer data ``{0, …, L-1}^D`` under the model, via uniform dequantisation.

    Each sample is dequantised ``n_dequant`` times, ``y = (hi - lo)(x + U)/L + lo``, and
    ``bpd = (-log p_y(y) - D ln(hi - lo)) / (D ln 2) + log2(L)`` (see ``scoresde.dequantize``)
    is averaged over the draws: an upper bound, in expectation, on the discrete model's bits/dim.
    ``-log p_y`` comes from ``estimator`` (``"ode"``: :func:`log_likelihood`; ``"elbo"``: the
    variational bound :func:`scoresde.elbo`; ``ode_kw`` passed on) through
    :func:`scoresde.dequantize.dequantized_bits_per_dim`. Data stay on their device; ``dtype``
    defaults to torch's default float dtype.
    """
    _check_choice("estimator", estimator, tuple(ESTIMATORS))
    nll_fn = ESTIMATORS[estimator]
    return dequantized_bits_per_dim(
        lambda y, gen: nll_fn(score_fn, sde, y, gen, **ode_kw), data, num_levels=num_levels,
        data_range=data_range, n_dequant=n_dequant, generator=generator, batch_size=batch_size,
        dtype=dtype, progress=progress,
    )

"""Forward SDEs ``dx = f(x, t) dt + g(t) dw`` on ``t in [0, T]``, ``T = 1``.

All three SDEs here are affine, so the perturbation kernel is Gaussian,
``p_0t(x_t | x_0) = N(mean_coef(t) x_0, std(t)^2 I)``. Each class is a page of formulas that
can be read against the table in the design notes (Song et al., 2021, "Score-Based Generative
Modeling through Stochastic Differential Equations", Appendix B).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from scoresde.shapes import append_dims, batch_time, flatten_batch

ScoreFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class FastChoice:
    """What ``sampler="fast"`` runs for an SDE (``SDE.fast_sampler``, measured in
    ``samplers.fast``): a sampler name with its grid, default steps, ``eps`` and knobs."""

    sampler: str
    grid: str
    steps: int
    eps: float
    options: dict = field(default_factory=dict)


class SDE(abc.ABC):
    """An affine forward SDE with a Gaussian perturbation kernel; time runs over ``[0, T]``.

    A subclass gives the formulas (``beta``, ``diffusion``, ``mean_coef``, ``std``, ``prior_std``;
    optionally a closed-form ``_time_of_ratio`` and an exact ``discretize``) and, where it differs
    from the defaults below, what the rest of the library reads from the SDE instead of testing
    its class, so a new SDE is one class in one file:

    * ``sampling_eps``: where the samplers stop by default (``samplers.default_eps``):
      ``1e-3`` (VP, sub-VP), ``1e-5`` for VE.
    * ``training_eps``: the smallest ``t`` of the DSM losses, the continuous ELBO, the ODE
      likelihood and ``encode`` / ``decode``: ``1e-5``.
    * ``corrector_snr``: the predictor–corrector's default Langevin signal-to-noise ratio
      (Song et al. 2021): ``0.16`` (VP, sub-VP), ``0.075`` for VE.
    * ``fast_sampler``: the :class:`FastChoice` of ``sampler="fast"`` measured for this SDE
      (``samplers.fast``); ``None``, the default, if none was measured.
    * ``discrete_chain``: the exact discrete chain that :meth:`discretize` follows, ``"ddpm"``
      (VP), ``"smld"`` (VE) or ``None``; DDPM's and SMLD's losses and the discrete ELBO need it.
    * :meth:`ancestral_coefs`: the ancestral sampler's step along that chain (raises without one).
    """

    T: float = 1.0
    sampling_eps: float = 1e-3
    training_eps: float = 1e-5
    corrector_snr: float = 0.16
    fast_sampler: FastChoice | None = None
    discrete_chain: str | None = None

    @abc.abstractmethod
    def beta(self, t: Tensor) -> Tensor:
        """``β(t)`` in the linear drift ``f(x, t) = -β(t) x / 2`` (zero for VE), shape ``(batch,)``."""

    @abc.abstractmethod
    def diffusion(self, t: float | Tensor) -> Tensor:
        """``g(t)``, shape ``(batch,)``."""

    @abc.abstractmethod
    def mean_coef(self, t: float | Tensor) -> Tensor:
        """``m(t)`` in ``E[x_t | x_0] = m(t) x_0``."""

    @abc.abstractmethod
    def std(self, t: float | Tensor) -> Tensor:
        """``s(t)`` in ``Cov[x_t | x_0] = s(t)^2 I``."""

    @property
    @abc.abstractmethod
    def prior_std(self) -> float:
        """Standard deviation of the isotropic Gaussian prior ``N(0, prior_std^2 I)``."""

    def drift_coef(self, t: Tensor) -> Tensor:
        """``-β(t) / 2``, the coefficient of the linear drift ``f(x, t) = -β(t) x / 2``."""
        return -0.5 * self.beta(t)

    def drift(self, x: Tensor, t: float | Tensor) -> Tensor:
        """``f(x, t) = -β(t) x / 2`` (:meth:`drift_coef` times ``x``) for VP and sub-VP, zero for VE."""
        t = batch_time(t, x, self.T)
        return append_dims(self.drift_coef(t), x.ndim) * x

    def marginal(self, x0: Tensor, t: float | Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std of ``p_0t(x_t | x_0)``: ``(m(t) x_0, s(t))``.

        The std is shaped ``(batch, 1, ..., 1)`` so that ``mean + std * z`` samples ``x_t``.
        """
        t = batch_time(t, x0, self.T)
        return append_dims(self.mean_coef(t), x0.ndim) * x0, append_dims(self.std(t), x0.ndim)

    def denoise(self, x: Tensor, t: float | Tensor, score: Tensor) -> Tensor:
        """Tweedie's ``E[x_0 | x_t] = (x_t + s(t)^2 score) / m(t)`` (:func:`posterior_mean` at ``t``)."""
        t = batch_time(t, x, self.T)
        return posterior_mean(x, score, append_dims(self.mean_coef(t), x.ndim),
                              append_dims(self.std(t), x.ndim))

    def check_eps(self, eps: float) -> None:
        """Raise ``ValueError`` unless the start time ``eps`` lies in ``(0, T)``."""
        if not 0 < eps < self.T:
            raise ValueError(f"eps must lie in (0, T) = (0, {self.T}); got {eps!r}")

    def prior_sample(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Draw ``x_T ~ N(0, prior_std^2 I)`` of the given shape."""
        if device is None and generator is not None:
            device = generator.device
        z = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        return self.prior_std * z

    def prior_logp(self, z: Tensor) -> Tensor:
        """``log N(z; 0, prior_std^2 I)`` per sample, summed over all non-batch dimensions."""
        flat = flatten_batch(z)
        dim = flat.shape[1]
        var = self.prior_std**2
        return -0.5 * dim * math.log(2 * math.pi * var) - flat.pow(2).sum(1) / (2 * var)

    def discretize(self, x: Tensor, t: float | Tensor, dt: float | Tensor) -> tuple[Tensor, Tensor]:
        """One forward step ``x_t = x_{t-dt} + f + G z`` as ``(f, G)``, evaluated at ``x``.

        Euler–Maruyama by default: ``f = f(x, t) dt``, ``G = g(t) sqrt(dt)``; SDEs with an exact
        discrete chain (DDPM for VP, SMLD for VE) override it. ``G`` is ``(batch, 1, ..., 1)``.
        """
        t = batch_time(t, x, self.T)
        dt = torch.as_tensor(dt, dtype=x.dtype, device=x.device).expand_as(t)
        f = self.drift(x, t) * append_dims(dt, x.ndim)
        return f, append_dims(self.diffusion(t) * dt.sqrt(), x.ndim)

    def ancestral_coefs(self, t: Tensor, t_next: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(a, b, c)`` of the ancestral step ``x' = a x + b s(x, t) + c z`` from ``t`` down to
        ``t_next`` of the exact discrete chain (elementwise). Raises ``ValueError`` here: an SDE
        without such a chain has no ancestral sampler."""
        raise ValueError(
            f"ancestral sampling follows an exact discrete forward chain (DDPM for VPSDE, SMLD for "
            f"VESDE); {type(self).__name__} has no such chain. Use 'reverse_diffusion', 'em' or 'ddim'."
        )

    def ratio(self, t: float | Tensor) -> Tensor:
        """The noise-to-signal ratio ``σ̃(t) = std(t) / m(t)`` (EDM's ``σ``; ``e^{-λ}`` with ``λ`` the
        half log-SNR), increasing in ``t``."""
        return self.std(t) / self.mean_coef(t)

    def time_of_ratio(self, ratio: float | Tensor) -> Tensor:
        """The ``t`` with ``σ̃(t) = ratio`` (float64), the inverse of :meth:`ratio`. Raises
        ``ValueError`` unless every ratio is finite and ``> 0``; a ratio beyond ``σ̃(T)`` gives a
        time beyond ``T`` where the inverse is in closed form (VP, sub-VP, VE), ``T`` otherwise."""
        ratio = torch.as_tensor(ratio, dtype=torch.float64)
        if not bool((torch.isfinite(ratio) & (ratio > 0)).all()):
            raise ValueError("ratio must be finite and > 0 everywhere")
        return self._time_of_ratio(ratio)

    def _time_of_ratio(self, ratio: Tensor) -> Tensor:
        """Bisection on ``[0, T]``; the SDEs below override it with a closed form."""
        return solve_time(self.ratio, ratio, 0.0, self.T)

    def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> ReverseSDE:
        """The reverse-time SDE (or, with ``probability_flow``, the probability-flow ODE)."""
        return ReverseSDE(self, score_fn, probability_flow)


class ReverseSDE:
    """``dx = [f(x, t) - c g(t)^2 ∇ log p_t(x)] dt + g_rev(t) dw̄``, run backwards in time.

    ``c = 1`` and ``g_rev = g`` for the reverse SDE (Anderson, 1982); ``c = 1/2`` and
    ``g_rev = 0`` for the probability-flow ODE, which has the same marginals ``p_t``.
    """

    def __init__(self, sde: SDE, score_fn: ScoreFn, probability_flow: bool = False):
        self.sde = sde
        self.score_fn = score_fn
        self.probability_flow = probability_flow
        self._c = 0.5 if probability_flow else 1.0

    def drift(self, x: Tensor, t: float | Tensor) -> Tensor:
        """``f(x, t) - c g(t)^2 s(x, t)``."""
        t = batch_time(t, x, self.sde.T)
        g2 = append_dims(self.sde.diffusion(t) ** 2, x.ndim)
        return self.sde.drift(x, t) - self._c * g2 * self.score_fn(x, t)

    def diffusion(self, t: float | Tensor) -> Tensor:
        """``g(t)`` for the reverse SDE, a zero tensor of the same shape for the ODE."""
        g = self.sde.diffusion(t)
        return torch.zeros_like(g) if self.probability_flow else g


class _LinearBetaSDE(SDE):
    """What VP and sub-VP share: the linear schedule ``β(t) = β_min + t (β_max - β_min)``, its
    integral ``B(t)``, the mean ``m(t) = exp(-B(t) / 2)`` and the prior ``N(0, I)``."""

    prior_std = 1.0

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        finite_parameters(beta_min=beta_min, beta_max=beta_max)
        if beta_min < 0:
            raise ValueError(f"beta_min must be >= 0; got {beta_min}")
        if beta_min >= beta_max:
            raise ValueError(f"beta_min must be < beta_max; got {beta_min} >= {beta_max}")
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta_min={self.beta_min}, beta_max={self.beta_max})"

    def beta(self, t: float | Tensor) -> Tensor:
        """``β(t) = β_min + t (β_max - β_min)``."""
        return self.beta_min + torch.as_tensor(t) * (self.beta_max - self.beta_min)

    def integral(self, t: float | Tensor) -> Tensor:
        """``B(t) = ∫_0^t β = β_min t + t^2 (β_max - β_min) / 2``."""
        t = torch.as_tensor(t)
        return self.beta_min * t + 0.5 * t**2 * (self.beta_max - self.beta_min)

    def time_of_integral(self, B: Tensor) -> Tensor:
        """The root ``t >= 0`` of ``B(t) = B``: ``t = 2B / (β_min + sqrt(β_min^2 + 2 (β_max - β_min) B))``."""
        return 2 * B / (self.beta_min + (self.beta_min**2 + 2 * (self.beta_max - self.beta_min) * B).sqrt())

    def mean_coef(self, t: float | Tensor) -> Tensor:
        """``m(t) = exp(-B(t) / 2)``."""
        return torch.exp(-0.5 * self.integral(t))


class VPSDE(_LinearBetaSDE):
    """Variance-preserving SDE ``dx = -β(t) x / 2 dt + sqrt(β(t)) dw``; DDPM in continuous time.

    ``m(t) = exp(-B(t)/2)``, ``s(t) = sqrt(1 - exp(-B(t)))``, prior ``N(0, I)``; its exact discrete
    chain is DDPM's.
    """

    discrete_chain = "ddpm"
    fast_sampler = FastChoice("dpm++3m", "logsnr", 14, 3e-2)  # NFE 15

    def diffusion(self, t: float | Tensor) -> Tensor:
        """``g(t) = sqrt(β(t))``."""
        return self.beta(t).sqrt()

    def std(self, t: float | Tensor) -> Tensor:
        """``s(t) = sqrt(1 - exp(-B(t)))``."""
        return (-torch.expm1(-self.integral(t))).sqrt()

    def _time_of_ratio(self, ratio: Tensor) -> Tensor:
        """``σ̃^2 = s^2 / m^2 = e^B - 1``, so ``B = log(1 + σ̃^2)``."""
        return self.time_of_integral(torch.log1p(ratio**2))

    def discretize(self, x: Tensor, t: float | Tensor, dt: float | Tensor) -> tuple[Tensor, Tensor]:
        """The exact DDPM step from ``t - dt`` to ``t``: ``x_t = sqrt(1 - β_i) x + sqrt(β_i) z``.

        ``1 - β_i = m(t)^2 / m(t - dt)^2 = exp(-(B(t) - B(t - dt)))``, so ``f = (sqrt(1 - β_i) - 1) x``
        and ``G = sqrt(β_i)``; on the grid ``t_i = (i + 1) / N`` this is DDPM's chain to O(1/N).
        """
        t = batch_time(t, x, self.T)
        dt = torch.as_tensor(dt, dtype=x.dtype, device=x.device).expand_as(t)
        log_alpha = -(self.integral(t) - self.integral(t - dt))
        f = append_dims(torch.expm1(0.5 * log_alpha), x.ndim) * x
        return f, append_dims((-torch.expm1(log_alpha)).sqrt(), x.ndim)

    def ancestral_coefs(self, t: Tensor, t_next: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """DDPM's ancestral step (Ho et al. 2020) with ``β = 1 - m(t)^2 / m(t')^2
        = 1 - exp(B(t') - B(t))``: ``x' = (x + β s(x, t)) / sqrt(1 - β) + sqrt(β) z``."""
        beta = -torch.expm1(self.integral(t_next) - self.integral(t))
        root = (1 - beta).sqrt()
        return 1 / root, beta / root, beta.sqrt()

    def ddpm_betas(self, n_steps: int, dtype: torch.dtype = torch.float64) -> Tensor:
        """DDPM's discrete betas ``β_i = β_min/N + i/(N-1) (β_max - β_min)/N``, ``i = 0..N-1``."""
        if n_steps < 2:
            raise ValueError(f"n_steps must be >= 2; got {n_steps}")
        i = torch.arange(n_steps, dtype=dtype)
        return (self.beta_min + i / (n_steps - 1) * (self.beta_max - self.beta_min)) / n_steps

    def alphas_cumprod(self, n_steps: int, dtype: torch.dtype = torch.float64) -> Tensor:
        """``ᾱ_i = ∏_{j <= i} (1 - β_j)``; it approximates ``m(t_i)^2`` at ``t_i = (i + 1)/N``."""
        return torch.cumprod(1 - self.ddpm_betas(n_steps, dtype), 0)


class SubVPSDE(_LinearBetaSDE):
    """Sub-VP SDE ``dx = -β(t) x / 2 dt + sqrt(β(t) (1 - exp(-2 B(t)))) dw``.

    ``m(t) = exp(-B(t)/2)``, ``s(t) = 1 - exp(-B(t))`` (below the VP std), prior ``N(0, I)``; no
    exact discrete chain (so no ancestral sampler).
    """

    fast_sampler = FastChoice("dpm++3m", "logsnr", 14, 0.1)  # NFE 15

    def diffusion(self, t: float | Tensor) -> Tensor:
        """``g(t) = sqrt(β(t) (1 - exp(-2 B(t))))``."""
        return (self.beta(t) * -torch.expm1(-2 * self.integral(t))).sqrt()

    def std(self, t: float | Tensor) -> Tensor:
        """``s(t) = 1 - exp(-B(t))``."""
        return -torch.expm1(-self.integral(t))

    def _time_of_ratio(self, ratio: Tensor) -> Tensor:
        """``σ̃ = (1 - e^{-B}) e^{B/2} = 2 sinh(B / 2)``, so ``B = 2 asinh(σ̃ / 2)``."""
        return self.time_of_integral(2 * torch.asinh(ratio / 2))


class VESDE(SDE):
    """Variance-exploding SDE ``dx = σ(t) sqrt(2 ln(σ_max/σ_min)) dw``; SMLD in continuous time.

    ``σ(t) = σ_min (σ_max/σ_min)^t``, ``m(t) = 1``, ``s(t) = σ(t)``, prior ``N(0, σ_max^2 I)``.
    Choose ``σ_max`` about the largest pairwise distance in the data. Its exact discrete chain is
    SMLD's; samplers stop at ``1e-5`` and the corrector's snr is ``0.075``.
    """

    sampling_eps = 1e-5
    corrector_snr = 0.075
    discrete_chain = "smld"
    fast_sampler = FastChoice("unipc", "logsnr", 12, 0.28, {"order": 3})  # NFE 13

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        finite_parameters(sigma_min=sigma_min, sigma_max=sigma_max)
        if sigma_min <= 0:
            raise ValueError(f"sigma_min must be > 0; got {sigma_min}")
        if sigma_min >= sigma_max:
            raise ValueError(f"sigma_min must be < sigma_max; got {sigma_min} >= {sigma_max}")
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min}, sigma_max={self.sigma_max})"

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def beta(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def sigma(self, t: float | Tensor) -> Tensor:
        """``σ(t) = σ_min (σ_max / σ_min)^t``."""
        return self.sigma_min * torch.exp(torch.as_tensor(t) * self._log_ratio)

    def diffusion(self, t: float | Tensor) -> Tensor:
        """``g(t) = σ(t) sqrt(2 ln(σ_max / σ_min))``."""
        return self.sigma(t) * math.sqrt(2 * self._log_ratio)

    def mean_coef(self, t: float | Tensor) -> Tensor:
        """``m(t) = 1``."""
        return torch.ones_like(torch.as_tensor(t))

    def std(self, t: float | Tensor) -> Tensor:
        """``s(t) = σ(t)``."""
        return self.sigma(t)

    def _time_of_ratio(self, ratio: Tensor) -> Tensor:
        """``σ̃ = σ(t)``, so ``t = log(σ̃ / σ_min) / log(σ_max / σ_min)``."""
        return torch.log(ratio / self.sigma_min) / self._log_ratio

    def discretize(self, x: Tensor, t: float | Tensor, dt: float | Tensor) -> tuple[Tensor, Tensor]:
        """The exact SMLD step from ``t - dt`` to ``t``: ``f = 0``, ``G = sqrt(σ(t)^2 - σ(t-dt)^2)``."""
        t = batch_time(t, x, self.T)
        dt = torch.as_tensor(dt, dtype=x.dtype, device=x.device).expand_as(t)
        G = (self.sigma(t) ** 2 - self.sigma(t - dt) ** 2).sqrt()
        return torch.zeros_like(x), append_dims(G, x.ndim)

    def ancestral_coefs(self, t: Tensor, t_next: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """SMLD's ancestral step with ``σ = σ(t)``, ``σ' = σ(t')``:
        ``x' = x + (σ^2 - σ'^2) s(x, t) + sqrt(σ'^2 (σ^2 - σ'^2) / σ^2) z``."""
        var, var_next = self.sigma(t) ** 2, self.sigma(t_next) ** 2
        return torch.ones_like(var), var - var_next, (var_next * (var - var_next) / var).sqrt()

    def smld_sigmas(self, n_levels: int, dtype: torch.dtype = torch.float64) -> Tensor:
        """SMLD's geometric noise levels ``σ_i = σ(i / (N - 1))``, from σ_min up to σ_max."""
        if n_levels < 2:
            raise ValueError(f"n_levels must be >= 2; got {n_levels}")
        return torch.exp(
            torch.linspace(math.log(self.sigma_min), math.log(self.sigma_max), n_levels, dtype=dtype)
        )


def posterior_mean(x: Tensor, score: Tensor, m: float | Tensor, std: float | Tensor) -> Tensor:
    """Tweedie's formula ``E[x_0 | x_t] = (x_t + std^2 ∇ log p_t(x_t)) / m`` for ``p_0t = N(m x_0,
    std^2 I)``; ``m`` and ``std`` are floats or tensors that broadcast against ``x``."""
    return (x + std**2 * score) / m


def finite_parameters(**values: float) -> None:
    """Raise ``ValueError`` naming the first parameter that is NaN or infinite (comparisons with
    NaN are all false, so range checks alone let it through)."""
    for name, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite; got {value}")


def solve_time(fn: Callable[[Tensor], Tensor], levels: Tensor, lo: float, hi: float,
               iters: int = 80) -> Tensor:
    """The times ``t`` in ``[lo, hi]`` with ``fn(t) = levels`` (elementwise, float64) for ``fn``
    increasing in ``t``, by ``iters`` bisection steps (80 halve the interval to below 1e-16 of
    its length). Raises ``ValueError`` unless ``lo < hi``."""
    if not lo < hi:
        raise ValueError(f"solve_time needs lo < hi; got [{lo}, {hi}]")
    below = torch.full_like(levels, lo, dtype=torch.float64)
    above = torch.full_like(levels, hi, dtype=torch.float64)
    for _ in range(iters):
        mid = 0.5 * (below + above)
        over = fn(mid) > levels
        above, below = torch.where(over, mid, above), torch.where(over, below, mid)
    return 0.5 * (below + above)

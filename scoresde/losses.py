"""Denoising score-matching losses: the continuous DSM objective and its discrete special cases.

Continuous (Song et al., 2021, eq. 7), with ``x_t = m(t) x_0 + s(t) ε``:

    L(θ) = E_{t ~ U[eps, T]} E_{x_0} E_ε [ λ(t) || s_θ(x_t, t) + ε / s(t) ||² ]

``λ = s(t)^2`` ("sigma2") is DDPM's ε-loss ``||ε̂ - ε||²``; ``λ = g(t)^2`` ("likelihood") makes the
loss bound the negative log-likelihood (Song et al., 2021b); ``λ = 1`` ("none") is plain DSM.

EDM's training (Karras et al., 2022) in the same terms: with ``σ̃ = s/m`` and ``x_t / m = x_0 + σ̃ ε``,
``||s_θ + ε/s||² = m² ||D - x_0||² / s⁴``, so EDM's ``λ_EDM(σ̃) ||D - x_0||²`` with
``λ_EDM = (σ̃² + σ_d²) / (σ̃ σ_d)²`` is the DSM loss with ``λ = s² (1 + σ̃² / σ_d²)`` ("edm"). Its
noise levels are log-normal, ``ln σ̃ ~ N(P_mean, P_std²)`` (``time_dist="lognormal"``), truncated to
the SDE's ``[σ̃(eps), σ̃(T)]`` and mapped to ``t`` by ``sde.time_of_ratio``. With the ``edm``
parameterisation ``λ_EDM c_out² = 1``: the network regresses a unit-variance target everywhere.
Every loss sums the squared error over the data dimensions and averages over the batch, so each
is an unbiased Monte-Carlo estimate of its expectation.

The discrete losses draw an integer level instead of ``t``: DDPM's ``||√(1-ᾱ_i) s_θ + ε||²`` with
``x_i = √ᾱ_i x_0 + √(1-ᾱ_i) ε`` (``i`` uniform over ``N`` steps, network time ``t_i = (i+1)/N``);
SMLD/NCSN's ``σ_i² ||s_θ + ε/σ_i||²`` with ``x = x_0 + σ_i ε`` (``t_i = i/(L-1)``, so ``σ(t_i) = σ_i``).

A noise-conditional classifier for classifier guidance is trained on the same forward-diffused
data: the cross-entropy ``E_t E_{x_0, y} E_ε [-log p_φ(y | x_t, t)]`` (:func:`classifier_loss`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from scoresde.sde import SDE, VESDE, VPSDE
from scoresde.shapes import append_dims, flatten_batch

ScoreFn = Callable[[Tensor, Tensor], Tensor]
WEIGHTINGS = ("sigma2", "likelihood", "none", "edm")
TIME_DISTS = ("uniform", "lognormal")
LOSS_KINDS = ("dsm", "ddpm", "smld")


def weighting(sde: SDE, name: str, t: Tensor, sigma_data: float = 0.5) -> Tensor:
    """``λ(t)``: ``s(t)^2`` for ``"sigma2"``, ``g(t)^2`` for ``"likelihood"``, ``1`` for ``"none"``,
    ``s(t)^2 (1 + σ̃(t)^2 / σ_d^2)`` for ``"edm"`` (EDM's weighting, see the module docstring)."""
    if name == "sigma2":
        return sde.std(t) ** 2
    if name == "likelihood":
        return sde.diffusion(t) ** 2
    if name == "none":
        return torch.ones_like(t)
    if name == "edm":
        return sde.std(t) ** 2 * (1 + sde.ratio(t) ** 2 / sigma_data**2)
    raise ValueError(f"weighting must be one of {WEIGHTINGS}; got {name!r}")


def lognormal_time(
    sde: SDE,
    n: int,
    *,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    eps: float | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``t = sde.time_of_ratio(σ̃)`` with ``ln σ̃ ~ N(p_mean, p_std²)`` truncated to ``[σ̃(eps), σ̃(T)]``.

    Sampled exactly by the inverse CDF: ``ln σ̃ = p_mean + p_std Φ⁻¹(u)``, ``u ~ U[Φ(a), Φ(b)]``,
    ``a, b`` the standardised log-ratios at ``eps`` and ``T``; ``eps`` defaults to
    ``sde.training_eps``.
    """
    eps = _start(sde, eps)
    if not p_std > 0:
        raise ValueError(f"p_std must be > 0; got {p_std}")
    ends = torch.tensor([eps, sde.T], dtype=torch.float64)
    lo, hi = torch.special.ndtr((sde.ratio(ends).log() - p_mean) / p_std).tolist()
    u = lo + (hi - lo) * torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    ratio = torch.exp(p_mean + p_std * torch.special.ndtri(u))
    return sde.time_of_ratio(ratio).clamp(eps, sde.T).to(device=device, dtype=dtype)


def importance_time(
    sde: SDE,
    n: int,
    *,
    eps: float | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    cells: int = 2048,
) -> tuple[Tensor, Tensor]:
    """Draw ``t`` with density ``q(t) ∝ g(t)^2 / s(t)^2`` on ``[eps, T]`` and its weight.

    ``q`` is piecewise constant on a geometric grid of ``cells`` cells (the ratio is evaluated at
    each cell's geometric midpoint), sampled exactly; the weight ``w = 1 / ((T - eps) q(t))`` is
    the density ratio to ``U[eps, T]``, so ``E_q[w h(t)] = E_U[h(t)]`` for any ``h``: unbiased.
    With the likelihood weighting ``λ w ≈ const · s(t)^2`` and the per-sample loss behaves like the
    ε-loss instead of blowing up as ``1 / s(t)^2`` near ``eps`` (default ``sde.training_eps``).
    """
    eps = _start(sde, eps)
    edges = torch.logspace(
        torch.log10(torch.tensor(eps)), torch.log10(torch.tensor(sde.T)), cells + 1,
        dtype=torch.float64,
    )
    mid = (edges[:-1] * edges[1:]).sqrt()
    width = edges.diff()
    mass = sde.diffusion(mid) ** 2 / sde.std(mid) ** 2 * width
    prob = mass / mass.sum()
    cdf = prob.cumsum(0).to(device)
    u = torch.rand(2, n, generator=generator, device=device, dtype=torch.float64)
    j = torch.searchsorted(cdf, u[0] * cdf[-1]).clamp(max=cells - 1)
    edges, width, prob = edges.to(device), width.to(device), prob.to(device)
    t = edges[j] + u[1] * width[j]
    w = width[j] / (prob[j] * (sde.T - eps))
    return t.to(dtype).clamp(eps, sde.T), w.to(dtype)


def dsm_loss(
    score_fn: ScoreFn,
    sde: SDE,
    x0: Tensor,
    *,
    weighting_name: str = "sigma2",
    importance: bool = False,
    time_dist: str = "uniform",
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_data: float = 0.5,
    eps: float | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> Tensor:
    """``λ(t) ||s_θ(x_t, t) + ε / s(t)||²`` with ``t ~ U[eps, T]`` (or importance-sampled, or
    log-normal in ``σ̃`` with ``time_dist="lognormal"``, see :func:`lognormal_time`).

    Computed as ``(λ / s²) ||s(t) s_θ + ε||²``, which is exact and avoids ``1/s`` overflow.
    ``importance=True`` (only with ``weighting_name="likelihood"``) draws ``t`` from
    :func:`importance_time` and multiplies by its weight: same expectation, lower variance.
    ``eps`` defaults to ``sde.training_eps``.
    """
    eps = _start(sde, eps)
    n = x0.shape[0]
    if time_dist not in TIME_DISTS:
        raise ValueError(f"time_dist must be one of {TIME_DISTS}; got {time_dist!r}")
    if importance:
        if weighting_name != "likelihood" or time_dist != "uniform":
            raise ValueError("importance=True needs weighting_name='likelihood' and time_dist='uniform'")
        t, w = importance_time(sde, n, eps=eps, generator=generator, device=x0.device,
                               dtype=x0.dtype)
    elif time_dist == "lognormal":
        t = lognormal_time(sde, n, p_mean=p_mean, p_std=p_std, eps=eps, generator=generator,
                           device=x0.device, dtype=x0.dtype)
        w = torch.ones_like(t)
    else:
        t = eps + (sde.T - eps) * torch.rand(n, generator=generator, device=x0.device,
                                              dtype=x0.dtype)
        w = torch.ones_like(t)
    lam = weighting(sde, weighting_name, t, sigma_data) * w
    z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    mean, std = sde.marginal(x0, t)
    err = _sq_norm(std * score_fn(mean + std * z, t) + z)
    return _reduce(lam / sde.std(t) ** 2 * err, reduction)


def ddpm_loss(
    score_fn: ScoreFn,
    sde: VPSDE,
    x0: Tensor,
    *,
    n_steps: int = 1000,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> Tensor:
    """DDPM's ε-loss ``||√(1-ᾱ_i) s_θ(x_i, t_i) + ε||² = ||ε̂ - ε||²`` at a uniform step ``i``.

    ``ᾱ`` from ``sde.alphas_cumprod(n_steps)``; ``t_i = (i + 1) / N`` is the network's time.
    """
    _check_chain("ddpm_loss", sde, "ddpm")
    i = torch.randint(n_steps, (x0.shape[0],), generator=generator, device=x0.device)
    abar = sde.alphas_cumprod(n_steps).to(device=x0.device, dtype=x0.dtype)[i]
    std = append_dims((1 - abar).sqrt(), x0.ndim)
    z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x = append_dims(abar.sqrt(), x0.ndim) * x0 + std * z
    t = (i + 1).to(x0.dtype) / n_steps
    return _reduce(_sq_norm(std * score_fn(x, t) + z), reduction)


def smld_loss(
    score_fn: ScoreFn,
    sde: VESDE,
    x0: Tensor,
    *,
    n_levels: int = 1000,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> Tensor:
    """NCSN's ``σ_i² ||s_θ(x_0 + σ_i ε, t_i) + ε / σ_i||²`` at a uniform level ``i``.

    ``σ_i`` from ``sde.smld_sigmas(n_levels)``; ``t_i = i / (L - 1)`` so ``σ(t_i) = σ_i``.
    (NCSN writes a factor 1/2 in front; it is left out here, as in the continuous loss.)
    """
    _check_chain("smld_loss", sde, "smld")
    i = torch.randint(n_levels, (x0.shape[0],), generator=generator, device=x0.device)
    sigma = append_dims(sde.smld_sigmas(n_levels).to(device=x0.device, dtype=x0.dtype)[i], x0.ndim)
    z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    t = i.to(x0.dtype) / (n_levels - 1)
    return _reduce(_sq_norm(sigma * score_fn(x0 + sigma * z, t) + z), reduction)


def classifier_loss(
    log_prob_y: ScoreFn,
    sde: SDE,
    x0: Tensor,
    *,
    eps: float | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> Tensor:
    """The cross-entropy of a noise-conditional classifier at forward-diffused data:

        L(φ) = E_{t ~ U[eps, T]} E_{(x_0, y)} E_ε [ -log p_φ(y | x_t, t) ],   x_t = m(t) x_0 + s(t) ε.

    ``log_prob_y(x_t, t)`` returns ``log p_φ(y | x_t, t)``, shape ``(batch,)``, for each row's own
    label: a :class:`~scoresde.networks.NoiseClassifier` called as ``classifier(x, t, y)`` with the
    batch's labels bound, as the :class:`~scoresde.Trainer` binds them. ``t`` then ``ε`` are drawn
    from ``generator`` as in :func:`dsm_loss`; ``eps`` defaults to ``sde.training_eps``.
    """
    eps = _start(sde, eps)
    t = eps + (sde.T - eps) * torch.rand(x0.shape[0], generator=generator, device=x0.device,
                                          dtype=x0.dtype)
    z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    mean, std = sde.marginal(x0, t)
    log_p = log_prob_y(mean + std * z, t)
    if log_p.shape != (x0.shape[0],):
        raise ValueError(f"log_prob_y must return one log-probability per sample, shape "
                         f"({x0.shape[0]},); got {tuple(log_p.shape)} (are the labels bound?)")
    return _reduce(-log_p, reduction)


@dataclass
class ClassifierLoss:
    """:func:`classifier_loss` for ``sde`` as ``loss(log_prob_y, x0, generator) -> scalar``."""

    sde: SDE
    eps: float | None = None

    def __call__(
        self, log_prob_y: ScoreFn, x0: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        return classifier_loss(log_prob_y, self.sde, x0, eps=self.eps, generator=generator)


@dataclass
class Loss:
    """A configured loss ``loss(score_fn, x0, generator) -> scalar``; see :func:`make_loss`."""

    kind: str
    sde: SDE
    weighting_name: str = "sigma2"
    importance: bool = False
    eps: float | None = None
    n_steps: int = 1000
    time_dist: str = "uniform"
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_data: float = 0.5

    def __post_init__(self):
        if self.kind not in LOSS_KINDS:
            raise ValueError(f"loss kind must be one of {LOSS_KINDS}; got {self.kind!r}")
        if self.weighting_name not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}; got {self.weighting_name!r}")
        if self.time_dist not in TIME_DISTS:
            raise ValueError(f"time_dist must be one of {TIME_DISTS}; got {self.time_dist!r}")
        if self.kind != "dsm":
            _check_chain(f"loss kind {self.kind!r}", self.sde, self.kind)

    def __call__(
        self, score_fn: ScoreFn, x0: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        if self.kind == "ddpm":
            return ddpm_loss(score_fn, self.sde, x0, n_steps=self.n_steps, generator=generator)
        if self.kind == "smld":
            return smld_loss(score_fn, self.sde, x0, n_levels=self.n_steps, generator=generator)
        return dsm_loss(score_fn, self.sde, x0, weighting_name=self.weighting_name,
                        importance=self.importance, time_dist=self.time_dist, p_mean=self.p_mean,
                        p_std=self.p_std, sigma_data=self.sigma_data, eps=self.eps,
                        generator=generator)


def make_loss(kind: str, sde: SDE, **options) -> Loss:
    """Build a :class:`Loss`: ``kind`` in ``("dsm", "ddpm", "smld")``, options as its fields."""
    return Loss(kind, sde, **options)


def _sq_norm(x: Tensor) -> Tensor:
    return flatten_batch(x).pow(2).sum(1)


def _start(sde: SDE, eps: float | None) -> float:
    """``eps``, by default ``sde.training_eps``, checked to lie in ``(0, T)``."""
    eps = sde.training_eps if eps is None else eps
    sde.check_eps(eps)
    return eps


_CHAIN_SDES = {"ddpm": "VPSDE", "smld": "VESDE"}
"""The SDE whose exact discrete chain (``sde.discrete_chain``) each discrete loss is written on."""


def _check_chain(what: str, sde: SDE, chain: str) -> None:
    """Raise ``ValueError`` unless ``sde.discrete_chain == chain`` (DDPM's and SMLD's losses need it)."""
    if sde.discrete_chain != chain:
        raise ValueError(f"{what} needs a {_CHAIN_SDES[chain]}; got {type(sde).__name__}")


def _reduce(per_sample: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'mean' or 'none'; got {reduction!r}")

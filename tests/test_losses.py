"""Each loss is an unbiased Monte-Carlo estimate of its definition.

Truths are computed independently of the estimators:

* for a linear score ``s(x) = -a x`` the expectation over ``x_0`` and ``ε`` is closed-form,
  ``E||-a x_t + ε/s||² = a² (m² E||x_0||² + d s²) - 2 a d + d / s²``, and the integral over ``t``
  is a fine trapezoid quadrature in ``log t`` (DSM) or an exact sum over the levels (DDPM, SMLD);
* for the exact oracle score, ``E||s(x_t) + ε/s||² = d / s² - E_{p_t}||∇ log p_t||²`` (the DSM
  identity), with ``x_t`` drawn directly from the oracle's ``p_t`` instead of through ``ε``.

Tolerances: ``Z = 5`` standard errors, the estimator's from its per-sample values and the
truth's Monte-Carlo part from its own samples; a correct estimator fails with probability
~6e-7 per check under the normal approximation. Weightings whose per-sample values have heavy
tails near ``t = 0`` (``"none"``, uniform ``"likelihood"``) are checked with ``eps = 0.05``
where the normal approximation holds at n = 20,000; the identity does not depend on ``eps``.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TOY_SDES as SDES

import scoresde as ss
from scoresde.losses import (
    ddpm_loss,
    dsm_loss,
    importance_time,
    make_loss,
    smld_loss,
    weighting,
)

Z = 5.0
N = 20_000
GM = ss.toy_mixture()
A = 0.7


def _second_moment(gm: ss.GaussianMixture) -> float:
    """``E||x_0||² = Σ_k w_k (||μ_k||² + tr Σ_k)``."""
    tr = torch.diagonal(gm.covariances(), dim1=1, dim2=2).sum(1)
    return float((gm.weights * (gm.means.pow(2).sum(1) + tr)).sum())


def _linear_expect(m, s, d: int = 2) -> torch.Tensor:
    """``E||-a x_t + ε/s||²`` for ``x_t = m x_0 + s ε``."""
    return A**2 * (m**2 * _second_moment(GM) + d * s**2) - 2 * A * d + d / s**2


def _quad(fn, sde, eps: float, nodes: int = 20_001) -> float:
    """``(1 / (T - eps)) ∫_eps^T fn(t) dt`` by the trapezoid rule in ``u = log t``."""
    u = torch.linspace(math.log(eps), math.log(sde.T), nodes, dtype=torch.float64)
    t = u.exp()
    return float(torch.trapezoid(fn(t) * t, u)) / (sde.T - eps)


def _data(seed: int = 0) -> torch.Tensor:
    return GM.sample(N, generator=torch.Generator().manual_seed(seed))


def _linear(x, t):
    return -A * x


def _check(values: torch.Tensor, truth: float, truth_sem: float = 0.0) -> None:
    mean, sem = values.mean().item(), values.std().item() / math.sqrt(len(values))
    assert abs(mean - truth) < Z * math.hypot(sem, truth_sem), (mean, truth, sem, truth_sem)


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize(
    "weight,importance,eps",
    [("sigma2", False, 1e-5), ("likelihood", True, 1e-5), ("likelihood", False, 0.05),
     ("none", False, 0.05)],
)
def test_dsm_unbiased_linear_score(sde_name, weight, importance, eps):
    sde = SDES[sde_name]
    values = dsm_loss(_linear, sde, _data(), weighting_name=weight, importance=importance,
                      eps=eps, generator=torch.Generator().manual_seed(1), reduction="none")
    truth = _quad(
        lambda t: weighting(sde, weight, t) * _linear_expect(sde.mean_coef(t), sde.std(t)),
        sde, eps)
    _check(values, truth)


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("weight,importance", [("sigma2", False), ("likelihood", True)])
def test_dsm_at_exact_score_matches_identity(sde_name, weight, importance):
    """Loss at the oracle score = ``∫ λ (d/s² - E_{p_t}||s_t||²)``, the minimum of the DSM loss."""
    sde, eps = SDES[sde_name], 1e-5
    values = dsm_loss(GM.score_fn(sde), sde, _data(), weighting_name=weight,
                      importance=importance, eps=eps, generator=torch.Generator().manual_seed(2),
                      reduction="none")
    const = _quad(lambda t: weighting(sde, weight, t) * 2 / sde.std(t) ** 2, sde, eps)
    # Monte-Carlo part: ∫ λ E||s_t||² on 200 log-spaced nodes, 500 draws from p_t at each node
    # (x_t = m x_0 + std z with fresh x_0, z), all nodes in one batch.
    nodes, per = 200, 500
    u = torch.linspace(math.log(eps), 0.0, nodes, dtype=torch.float64)
    t = u.exp().repeat_interleave(per)
    gen = torch.Generator().manual_seed(3)
    mean, std = sde.marginal(GM.sample(nodes * per, generator=gen), t)
    x = mean + std * torch.randn(mean.shape, generator=gen, dtype=torch.float64)
    sq = (GM.score(x, t, sde).pow(2).sum(1) * weighting(sde, weight, t) * t).reshape(nodes, per)
    w = torch.full((nodes,), float(u[1] - u[0]), dtype=torch.float64)
    w[[0, -1]] /= 2
    mc = float((w * sq.mean(1)).sum()) / (sde.T - eps)
    mc_sem = float((w**2 * sq.var(1) / per).sum().sqrt()) / (sde.T - eps)
    _check(values, const - mc, mc_sem)


@pytest.mark.parametrize("sde_name", list(SDES))
def test_perturbed_score_has_higher_loss(sde_name):
    """With common noise, ``L(s + δ) - L(s) = λ (||δ||² + 2 δ·(s + ε/std))``, mean ``||δ||² E λ``."""
    sde, delta = SDES[sde_name], torch.tensor([0.3, -0.2], dtype=torch.float64)
    exact = GM.score_fn(sde)

    def loss(fn):
        return dsm_loss(fn, sde, _data(), generator=torch.Generator().manual_seed(4),
                        reduction="none")

    diff = loss(lambda x, t: exact(x, t) + delta) - loss(exact)
    assert diff.mean() > 0
    _check(diff, float(delta.pow(2).sum()) * _quad(lambda t: sde.std(t) ** 2, sde, 1e-5))


def test_ddpm_loss_unbiased_linear_score():
    sde, steps = SDES["vp"], 100
    values = ddpm_loss(_linear, sde, _data(), n_steps=steps,
                       generator=torch.Generator().manual_seed(5), reduction="none")
    abar = sde.alphas_cumprod(steps)
    std = (1 - abar).sqrt()
    _check(values, float((std**2 * _linear_expect(abar.sqrt(), std)).mean()))


def test_smld_loss_unbiased_linear_score():
    sde, levels = SDES["ve"], 50
    values = smld_loss(_linear, sde, _data(), n_levels=levels,
                       generator=torch.Generator().manual_seed(6), reduction="none")
    sigma = sde.smld_sigmas(levels)
    _check(values, float((sigma**2 * _linear_expect(torch.ones_like(sigma), sigma)).mean()))


def test_importance_sampling_same_mean_lower_variance():
    """Uniform and importance-sampled likelihood losses agree; IS has far smaller variance."""
    sde, exact = SDES["vp"], GM.score_fn(SDES["vp"])

    def values(importance, eps, seed):
        return dsm_loss(exact, sde, _data(), weighting_name="likelihood", importance=importance,
                        eps=eps, generator=torch.Generator().manual_seed(seed), reduction="none")

    uni, imp = values(False, 0.05, 7), values(True, 0.05, 8)
    sem = math.hypot(uni.std().item(), imp.std().item()) / math.sqrt(N)
    assert abs(uni.mean().item() - imp.mean().item()) < Z * sem
    assert values(True, 1e-5, 9).var() < values(False, 1e-5, 9).var() / 10


def test_importance_weights_integrate_uniform():
    """``E_q[w] = 1`` and ``E_q[w t] = (T + eps)/2``: the weights are the density ratio to U[eps, T]."""
    t, w = importance_time(SDES["subvp"], 50_000, eps=1e-5,
                           generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    assert float(t.min()) >= 1e-5 and float(t.max()) <= 1.0
    _check(w, 1.0)
    _check(w * t, (1 + 1e-5) / 2)


def test_make_loss_dispatch_and_errors():
    x0 = _data()[:64]
    gen = torch.Generator().manual_seed(0)
    assert make_loss("ddpm", SDES["vp"])(_linear, x0, gen).ndim == 0
    assert make_loss("smld", SDES["ve"])(_linear, x0, gen).ndim == 0
    with pytest.raises(ValueError, match="weighting"):
        make_loss("dsm", SDES["vp"], weighting_name="bogus")
    with pytest.raises(ValueError, match="kind"):
        make_loss("nope", SDES["vp"])
    with pytest.raises(ValueError, match="importance"):
        dsm_loss(_linear, SDES["vp"], x0, importance=True)
    with pytest.raises(ValueError, match="VPSDE"):
        ddpm_loss(_linear, SDES["ve"], x0)
    with pytest.raises(ValueError, match="VESDE"):
        smld_loss(_linear, SDES["vp"], x0)
    with pytest.raises(ValueError, match="eps"):
        dsm_loss(_linear, SDES["vp"], x0, eps=0.0)
    with pytest.raises(ValueError, match="reduction"):
        dsm_loss(_linear, SDES["vp"], x0, reduction="sum")


def test_discrete_loss_on_the_wrong_sde_is_refused_when_built():
    """``ddpm`` needs the VP chain and ``smld`` the VE levels: refused at construction, not at
    the first training step."""
    with pytest.raises(ValueError, match="'ddpm' needs a VPSDE; got VESDE"):
        make_loss("ddpm", ss.VESDE())
    with pytest.raises(ValueError, match="'smld' needs a VESDE; got SubVPSDE"):
        make_loss("smld", ss.SubVPSDE())

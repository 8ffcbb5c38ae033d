"""The variational bound against closed forms (single Gaussian) and the exact mixture NLL.

Derivation of the single-Gaussian values (per axis d, data ``N(μ, σ^2)``, axes independent).
Discrete: the exact score at ``t_n`` is ``s(x) = -(x - a μ) / v`` with ``a = m(t_n)``,
``v = a^2 σ^2 + std(t_n)^2``, so the model mean ``μ_θ = (x_n + β_n s) / sqrt(α_n) = A x_n + b``
is linear. With ``x_n = sqrt(ᾱ_n) x_0 + sqrt(1 - ᾱ_n) ε`` and ``μ̃ = c_0 x_0 + c_1 x_n``,
``μ̃ - μ_θ = (c_0 + (c_1 - A) sqrt(ᾱ_n)) x_0 - b + (c_1 - A) sqrt(1 - ᾱ_n) ε``, whose mean square
is closed-form; so is every term. The model itself is a linear-Gaussian chain, so its marginal
``p_θ(x_0)`` (the density the bound bounds) follows by a backward recursion of mean and variance.
Continuous: ``s + ε/std = -a (x_0 - μ) / v + ε a^2 σ^2 / (std v)``, so the DSM integrand is
``g^2 / 2 [a^2 (x_0 - μ)^2 / v^2 + a^4 σ^4 / (std^2 v^2)]`` (``a = m(t)``), integrated by
quadrature in ``log t``; the Tweedie decoder has ``x_0 - mean = (std^2/v)(x_0 - μ)
- (std/a)(1 - std^2/v) ε``.

Tolerances. Each estimate carries a per-sample Monte-Carlo standard error ``se``; a batch mean
of ``B`` independent estimates has standard error ``sqrt(mean(se^2) / B)``, and differences are
required within 4 of those (two-sided Gaussian tail 6e-5, with fixed seeds).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize

import scoresde as ss
from scoresde.elbo import ddpm_denoising_kl

Z_MAX = 4.0
MU = torch.tensor([0.5, -0.3], dtype=torch.float64)
SIGMA = torch.tensor([0.5, 0.8], dtype=torch.float64)


def _gaussian() -> ss.GaussianMixture:
    return ss.GaussianMixture(MU.unsqueeze(0), SIGMA.unsqueeze(0))


def _z(diff: torch.Tensor, se: torch.Tensor) -> float:
    """``mean(diff)`` in units of its Monte-Carlo standard error ``sqrt(mean(se^2) / B)``."""
    return float(diff.mean() / (se.pow(2).mean() / diff.shape[0]).sqrt())


def _assert_calibrated(err: torch.Tensor, se: torch.Tensor) -> None:
    """The reported standard errors match the spread of the actual errors.

    ``std(err) / rms(se)`` should be 1; a sample std of ``B`` draws with kurtosis ``κ`` has
    relative standard error ``sqrt((κ - 1) / (4 B))``. The successive-difference estimate of the
    all-steps sum is slightly conservative (it also picks up changes of the terms' mean and
    variance between steps; measured ratios 0.91-1.0), hence a further 0.1 allowed below 1.
    """
    centred = err - err.mean()
    kurtosis = float(centred.pow(4).mean() / centred.pow(2).mean() ** 2)
    rel_se = math.sqrt((kurtosis - 1) / (4 * err.shape[0]))
    ratio = float(err.std() / se.pow(2).mean().sqrt())
    assert 1 - Z_MAX * rel_se - 0.1 < ratio < 1 + Z_MAX * rel_se, ratio


def _matched_times(sde: ss.VPSDE, abar: np.ndarray) -> np.ndarray:
    """``t_n`` with ``m(t_n)^2 = ᾱ_n`` by root finding (independent of the library's formula)."""

    def solve(ab: float) -> float:
        def f(t: float) -> float:
            return float(sde.mean_coef(torch.tensor(t, dtype=torch.float64))) ** 2 - ab

        return sde.T if f(sde.T) > 0 else optimize.brentq(f, 0.0, sde.T, xtol=1e-14)

    return np.array([solve(a) for a in abar])


def _chain_coefficients(sde: ss.VPSDE, steps: int, variance: str) -> dict[str, np.ndarray]:
    """Per step: ``β, α, ᾱ``, ``μ_θ = A x_n + b`` (exact Gaussian score), ``μ̃ = c0 x_0 + c1 x_n``,
    ``β̃`` and the reverse variance ``var_p``."""
    mu, sig2 = MU.numpy(), SIGMA.numpy() ** 2
    beta = sde.ddpm_betas(steps).numpy()
    alpha, abar = 1 - beta, np.cumprod(1 - beta)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    t = torch.tensor(_matched_times(sde, abar))
    a, sd = sde.mean_coef(t).numpy()[:, None], sde.std(t).numpy()[:, None]
    v = a**2 * sig2 + sd**2
    beta_t = beta * (1 - abar_prev) / (1 - abar)
    return {
        "beta": beta, "alpha": alpha, "abar": abar, "beta_t": beta_t,
        "A": (1 - beta[:, None] / v) / np.sqrt(alpha)[:, None],
        "b": beta[:, None] * a * mu / v / np.sqrt(alpha)[:, None],
        "c0": np.sqrt(abar_prev) * beta / (1 - abar),
        "c1": np.sqrt(alpha) * (1 - abar_prev) / (1 - abar),
        "var_p": beta if variance == "beta" else beta_t,
    }


def discrete_analytic(sde: ss.VPSDE, x0: torch.Tensor, steps: int, variance: str):
    """Closed-form ``(prior, diffusion, reconstruction, model_nll)`` per sample, see module doc."""
    x0, mu = x0.numpy(), MU.numpy()
    co = _chain_coefficients(sde, steps, variance)
    beta, abar, beta_t, A, b = (co[k] for k in ("beta", "abar", "beta_t", "A", "b"))
    c0, c1, var_p = co["c0"], co["c1"], co["var_p"]
    k = c0[:, None] + (c1[:, None] - A) * np.sqrt(abar)[:, None]
    noise_sq = (c1[:, None] - A) ** 2 * (1 - abar)[:, None]
    msq = (k[:, None] * x0 - b[:, None]) ** 2 + noise_sq[:, None]
    r = (beta_t[1:] / var_p[1:])[:, None, None]
    kl = 0.5 * (r - 1 - np.log(r)) + msq[1:] / (2 * var_p[1:, None, None])
    rec_msq = ((1 - A[0] * np.sqrt(abar[0])) * x0 - b[0]) ** 2 + A[0] ** 2 * (1 - abar[0])
    rec = 0.5 * np.log(2 * np.pi * beta[0]) + rec_msq / (2 * beta[0])
    prior = 0.5 * (abar[-1] * x0**2 + (1 - abar[-1]) - 1 - np.log(1 - abar[-1]))
    mean, var = np.zeros_like(mu), np.ones_like(mu)
    for n in range(steps - 1, -1, -1):
        sigma2 = beta[0] if n == 0 else var_p[n]
        mean, var = A[n] * mean + b[n], A[n] ** 2 * var + sigma2
    model_nll = 0.5 * np.log(2 * np.pi * var) + (x0 - mean) ** 2 / (2 * var)
    return tuple(torch.from_numpy(q.sum(-1)) for q in (prior, kl.sum(0), rec, model_nll))


def continuous_analytic(sde, x0: torch.Tensor, eps: float):
    """Closed-form ``(prior, diffusion, reconstruction)`` per sample, see module doc."""
    x0, mu, sig2 = x0.numpy(), MU.numpy(), SIGMA.numpy() ** 2

    def coefs(t: float) -> tuple[float, float, float, np.ndarray]:
        tt = torch.tensor(t, dtype=torch.float64)
        a, sd, g = (float(f(tt)) for f in (sde.mean_coef, sde.std, sde.diffusion))
        return a, sd, g, a**2 * sig2 + sd**2

    def integrand(log_t: float, d: int, part: int) -> float:
        a, sd, g, v = coefs(math.exp(log_t))
        val = a**2 / v[d] ** 2 if part == 0 else a**4 * sig2[d] ** 2 / (sd**2 * v[d] ** 2)
        return 0.5 * g**2 * val * math.exp(log_t)

    quad = [
        [integrate.quad(integrand, math.log(eps), 0.0, args=(d, p), limit=200)[0] for p in (0, 1)]
        for d in range(2)
    ]
    lin, const = np.array([q[0] for q in quad]), np.array([q[1] for q in quad])
    diffusion = lin * (x0 - mu) ** 2 + const
    a, sd, _, v = coefs(eps)
    dec_var = (sd / a) ** 2
    msq = (sd**2 / v) ** 2 * (x0 - mu) ** 2 + dec_var * (1 - sd**2 / v) ** 2
    rec = 0.5 * np.log(2 * np.pi * dec_var) + msq / (2 * dec_var)
    aT, sT, _, _ = coefs(sde.T)
    p2 = sde.prior_std**2
    prior = 0.5 * ((aT**2 * x0**2 + sT**2) / p2 - 1 - np.log(sT**2 / p2))
    return tuple(torch.from_numpy(q.sum(-1)) for q in (prior, diffusion, rec))


@pytest.fixture(scope="module")
def gaussian_data():
    gm = _gaussian()
    return gm, gm.sample(400, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_discrete_bound_equals_closed_form_on_a_gaussian(gaussian_data, variance):
    """Every term matches its closed form within MC error; the bound >= the model NLL pointwise."""
    gm, x = gaussian_data
    sde, steps = ss.VPSDE(), 400
    res = ss.elbo(gm.score_fn(sde), sde, x, steps=steps, variance=variance,
                  generator=torch.Generator().manual_seed(1))
    prior, diffusion, rec, model_nll = discrete_analytic(sde, x, steps, variance)
    torch.testing.assert_close(res.prior, prior, rtol=1e-9, atol=1e-12)
    assert abs(_z(res.diffusion - diffusion, res.diffusion_se)) < Z_MAX
    assert abs(_z(res.reconstruction - rec, res.reconstruction_se)) < Z_MAX
    _assert_calibrated(res.nll_bound - (prior + diffusion + rec), res.nll_bound_se)
    bound = prior + diffusion + rec
    assert bool((bound >= model_nll - 1e-9).all())
    _assert_calibrated(res.nll_bound - bound, res.nll_bound_se)


@pytest.mark.parametrize(
    ("sde", "importance"),
    [(ss.VPSDE(), True), (ss.VPSDE(), False), (ss.SubVPSDE(), True), (ss.VESDE(0.01, 5.0), True)],
)
def test_continuous_bound_equals_closed_form_on_a_gaussian(gaussian_data, sde, importance):
    """The g^2-weighted DSM bound's terms match their quadrature / closed forms within MC error."""
    gm, x = gaussian_data
    eps = 1e-4
    res = ss.elbo(gm.score_fn(sde), sde, x, kind="continuous", eps=eps, importance=importance,
                  generator=torch.Generator().manual_seed(2))
    prior, diffusion, rec = continuous_analytic(sde, x, eps)
    torch.testing.assert_close(res.prior, prior, rtol=1e-9, atol=1e-12)
    assert abs(_z(res.diffusion - diffusion, res.diffusion_se)) < Z_MAX
    assert abs(_z(res.reconstruction - rec, res.reconstruction_se)) < Z_MAX
    _assert_calibrated(res.nll_bound - (prior + diffusion + rec), res.nll_bound_se)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_denoising_kl_given_x_n_is_the_closed_form(variance):
    """Same draws of ``x_n`` (same seed): the library's KL equals the closed form to rounding.

    This pins the model mean ``(x_n + β_n s(x_n, t_n)) / sqrt(α_n)`` and the time ``t_n`` with
    ``m(t_n)^2 = ᾱ_n`` (root-found here), for which the exact score of the Gaussian is exact.
    """
    gm, sde, steps = _gaussian(), ss.VPSDE(), 100
    gen = torch.Generator().manual_seed(8)
    x0 = gm.sample(64, generator=gen)
    n = torch.randint(2, steps + 1, (64,), generator=gen)
    lib = ddpm_denoising_kl(gm.score_fn(sde), sde, x0, n, steps=steps, variance=variance,
                            generator=torch.Generator().manual_seed(9))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(9), dtype=x0.dtype)
    co = {k: torch.from_numpy(np.asarray(v))[n - 1] for k, v in
          _chain_coefficients(sde, steps, variance).items()}
    xn = co["abar"].sqrt()[:, None] * x0 + (1 - co["abar"]).sqrt()[:, None] * noise
    diff = co["c0"][:, None] * x0 + (co["c1"][:, None] - co["A"]) * xn - co["b"]
    r = co["beta_t"] / co["var_p"]
    closed = (r - 1 - r.log()) + diff.pow(2).sum(1) / (2 * co["var_p"])
    torch.testing.assert_close(lib, closed, rtol=1e-9, atol=1e-10)


def test_discrete_bound_converges_to_the_continuous_bound():
    """Closed forms: with ``eps = t_1`` the discrete bound tends to the continuous one as O(1/N).

    Quadrupling ``N`` should divide the largest pointwise difference by about 4; 0.35 leaves room
    for the higher-order terms.
    """
    gm, sde = _gaussian(), ss.VPSDE()
    x = gm.sample(50, generator=torch.Generator().manual_seed(3))
    diffs = []
    for steps in (100, 400, 1600):
        discrete = sum(discrete_analytic(sde, x, steps, "beta")[:3])
        t1 = float(_matched_times(sde, sde.alphas_cumprod(steps).numpy()[:1])[0])
        diffs.append(float((discrete - sum(continuous_analytic(sde, x, t1))).abs().max()))
    assert diffs[1] < 0.35 * diffs[0] and diffs[2] < 0.35 * diffs[1], diffs


@pytest.fixture(scope="module")
def mixture_data():
    gm = ss.toy_mixture()
    return gm, gm.sample(250, generator=torch.Generator().manual_seed(4))


def test_bounds_on_a_mixture_are_above_the_exact_nll_and_agree(mixture_data):
    """Mixture, exact score: ``E[bound] >= E[-log p_0]`` and the two kinds agree within MC error.

    The bound is on ``-log p_θ(x_0)``, the model "prior -> reverse process -> decoder"; over
    ``x ~ p_0``, ``E[-log p_θ] >= E[-log p_0]`` (Gibbs), so the mean gap is >= 0 up to the
    standard error of a batch mean (MC noise and the spread over ``x`` together). Continuous with
    ``eps = t_1`` and discrete with ``N = 1000`` differ by O(1/N) (previous test), far below it.
    """
    gm, x = mixture_data
    sde, steps = ss.VPSDE(), 1000
    score = gm.score_fn(sde)
    gen = torch.Generator().manual_seed(5)
    t1 = float(_matched_times(sde, sde.alphas_cumprod(steps).numpy()[:1])[0])
    disc = ss.elbo(score, sde, x, steps=steps, generator=gen)
    cont = ss.elbo(score, sde, x, kind="continuous", eps=t1, n_t=256, generator=gen)
    nll = -gm.log_prob(x)
    for res in (disc, cont):
        gap = res.nll_bound - nll
        assert float(gap.mean()) > -Z_MAX * float(gap.std()) / math.sqrt(len(gap))
    both = torch.hypot(disc.nll_bound_se, cont.nll_bound_se)
    assert abs(_z(disc.nll_bound - cont.nll_bound, both)) < Z_MAX


def test_sampled_steps_are_unbiased_for_the_all_steps_sum(mixture_data):
    """``n_t`` uniformly drawn steps times ``N - 1`` estimates the same sum as all steps."""
    gm, x = mixture_data
    sde, steps = ss.VPSDE(), 200
    gen = torch.Generator().manual_seed(6)
    full = ss.elbo(gm.score_fn(sde), sde, x, steps=steps, generator=gen)
    sampled = ss.elbo(gm.score_fn(sde), sde, x, steps=steps, n_t=16, generator=gen)
    assert sampled.nfe == 16 + 16 and full.nfe == steps - 1 + 16
    both = torch.hypot(full.diffusion_se, sampled.diffusion_se)
    assert abs(_z(full.diffusion - sampled.diffusion, both)) < Z_MAX


def _log_normal(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return (-0.5 * (x - mean) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)).sum(-1)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_denoising_kl_matches_brute_force_monte_carlo(variance):
    """``L_{n-1}`` in closed form vs ``E[log q(x_{n-1}|x_n,x_0) - log p(x_{n-1}|x_n)]`` sampled.

    The brute force builds ``q(x_{n-1} | x_n, x_0)`` by Bayes from the two forward Gaussians,
    the model mean from DDPM's ε form ``(x_n - β_n ε̂ / sqrt(1 - ᾱ_n)) / sqrt(α_n)`` with
    ``ε̂ = -sqrt(1 - ᾱ_n) s`` at the root-found time, on the (non-Gaussian) toy mixture.
    Both sides use the same draws of ``x_n`` (common random numbers), so their paired
    difference has only the noise of ``x_{n-1}``: ``M`` draws per ``x_0``, tolerance 4 SEs.
    The prior KL is checked the same way against ``E[log q(x_N|x_0) - log N(x_N; 0, I)]``.
    """
    gm, sde, steps, M = ss.toy_mixture(), ss.VPSDE(), 50, 10000
    score = gm.score_fn(sde)
    gen = torch.Generator().manual_seed(7)
    x0 = gm.sample(3, generator=gen).repeat_interleave(M, 0)
    beta = sde.ddpm_betas(steps)
    abar = torch.cumprod(1 - beta, 0)
    times = _matched_times(sde, abar.numpy())
    for n in (2, 10, steps):
        i = n - 1
        lib = ddpm_denoising_kl(score, sde, x0, torch.full((len(x0),), n), steps=steps,
                                variance=variance, generator=torch.Generator().manual_seed(n))
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(n))
        xn = abar[i].sqrt() * x0 + (1 - abar[i]).sqrt() * noise
        prec = 1 / (1 - abar[i - 1]) + (1 - beta[i]) / beta[i]
        post_mean = (abar[i - 1].sqrt() * x0 / (1 - abar[i - 1]) + (1 - beta[i]).sqrt() * xn / beta[i]) / prec
        x_prev = post_mean + prec.rsqrt() * torch.randn(x0.shape, generator=gen)
        eps_hat = -(1 - abar[i]).sqrt() * score(xn, torch.tensor(times[i]))
        mean = (xn - beta[i] / (1 - abar[i]).sqrt() * eps_hat) / (1 - beta[i]).sqrt()
        var = beta[i] if variance == "beta" else 1 / prec
        brute = _log_normal(x_prev, post_mean, 1 / prec) - _log_normal(x_prev, mean, var)
        for diff in (lib - brute).reshape(3, M):
            assert abs(float(diff.mean())) < Z_MAX * float(diff.std()) / math.sqrt(M)
    res = ss.elbo(score, sde, x0[::M], steps=steps)
    xN = abar[-1].sqrt() * x0 + (1 - abar[-1]).sqrt() * torch.randn(x0.shape, generator=gen)
    brute = _log_normal(xN, abar[-1].sqrt() * x0, 1 - abar[-1]) - _log_normal(xN, 0 * xN, 1 + 0 * xN)
    for a, b in zip(res.prior, brute.reshape(3, M), strict=True):
        assert abs(float(a - b.mean())) < Z_MAX * float(b.std()) / math.sqrt(M)

"""Formula pins: tests that fail when one coefficient of a published update changes.

An order test cannot tell DPM-Solver++(3M) from 2M here (on the probability-flow ODE of a
Gaussian both converge at an observed order of about 2 over 10-80 steps: the lower-order warm-up
steps dominate), so the third-order term could be dropped or its sign flipped unseen. These tests
pin the update itself: its error against the exact solution at fixed step counts, and every step
against an independent evaluation of the published formula.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import scoresde as ss
from scoresde.samplers.multistep import dpmpp_3m

# -- the probability-flow ODE of Gaussian data in EDM's coordinates ----------------------------
#
# With x̃ = x / m(t) and σ̃ = std(t) / m(t) = e^{-λ}, data x_0 ~ N(μ, s² I) give
# x̃ = x_0 + σ̃ ε, the denoiser D(x̃, σ̃) = μ + s² / (s² + σ̃²) (x̃ - μ), and the probability-flow
# ODE dx̃/dσ̃ = (x̃ - D) / σ̃ = σ̃ (x̃ - μ) / (s² + σ̃²), solved by
# x̃(σ̃) - μ = (x̃(σ̃_0) - μ) sqrt((s² + σ̃²) / (s² + σ̃_0²)).

GAUSS_MEAN, GAUSS_STD = 1.0, 0.5
VP_EPS = 1e-3


def vp_time_of_ratio(sde: ss.VPSDE, ratio: float) -> float:
    """The VP time with ``σ̃(t) = ratio``: ``B(t) = log(1 + σ̃²)``, ``B(t) = β_0 t + (β_1 - β_0) t² / 2``."""
    b = math.log1p(ratio**2)
    delta = sde.beta_max - sde.beta_min
    return (math.sqrt(sde.beta_min**2 + 2 * delta * b) - sde.beta_min) / delta


def ve_time_of_ratio(sde: ss.VESDE, ratio: float) -> float:
    """The VE time with ``σ(t) = σ_min (σ_max / σ_min)^t = ratio``."""
    return math.log(ratio / sde.sigma_min) / math.log(sde.sigma_max / sde.sigma_min)


SDES = {
    "vp": (ss.VPSDE(), vp_time_of_ratio, lambda ratio: 1 / math.sqrt(1 + ratio**2)),
    "ve": (ss.VESDE(0.01, 50.0), ve_time_of_ratio, lambda ratio: 1.0),
}
"""Each SDE with its closed-form ``t(σ̃)`` and ``m(σ̃)`` (VP: ``m² = 1 / (1 + σ̃²)``; VE: ``m = 1``)."""


def vp_ratio(sde: ss.VPSDE, t: float) -> float:
    """``σ̃(t) = sqrt(e^{B(t)} - 1)`` for VP."""
    return math.sqrt(math.expm1(sde.beta_min * t + (sde.beta_max - sde.beta_min) * t**2 / 2))


def relative_error_3m(steps: int) -> float:
    """DPM-Solver++(3M) on the VP probability-flow ODE of ``N(1, 0.5²)`` over ``steps`` steps
    uniform in ``λ`` from ``σ̃(1)`` to ``σ̃(1e-3)``, started ``x̃ - μ = 1`` off the mean: the
    signed relative error ``c / c_exact - 1`` of the final deviation ``x̃_N - μ = c``. The
    solver is affine in ``x`` with ``μ`` fixed, so this one number is its whole error."""
    sde = ss.VPSDE()
    hi, lo = vp_ratio(sde, 1.0), vp_ratio(sde, VP_EPS)
    ratios = [hi * (lo / hi) ** (i / steps) for i in range(steps + 1)]
    ts = torch.tensor([vp_time_of_ratio(sde, r) for r in ratios], dtype=torch.float64)
    ts[0], ts[-1] = 1.0, VP_EPS
    m_first, m_last = (1 / math.sqrt(1 + r**2) for r in (hi, lo))
    gm = ss.GaussianMixture([[GAUSS_MEAN]], [GAUSS_STD], [1.0])
    x = torch.tensor([[m_first * (GAUSS_MEAN + 1.0)]], dtype=torch.float64)
    out = dpmpp_3m(gm.score_fn(sde), sde, x, ts, lower_order_final=False)
    c_exact = math.sqrt((GAUSS_STD**2 + ratios[-1] ** 2) / (GAUSS_STD**2 + ratios[0] ** 2))
    return (float(out) / m_last - GAUSS_MEAN) / c_exact - 1


PINNED_3M = {10: 6.382017209638e-02, 20: 7.519858318868e-03, 40: 1.403684303691e-03}
"""``relative_error_3m(steps)`` as measured by running it at commit ee002c2, whose 3M update
agrees step by step with the independent evaluation of the published one below."""
PIN_RTOL = 1e-6


@pytest.mark.parametrize("steps", list(PINNED_3M))
def test_dpmpp_3m_error_against_the_exact_solution_is_pinned(steps):
    """The error of 3M against the closed-form solution, pinned at 10, 20 and 40 steps.

    The computation is deterministic float64 (no sampling), so the tolerance only has to absorb
    rounding: moving the mean from 1 to 0 or -3.7 changes these numbers by < 2e-10 relative, and
    ``PIN_RTOL = 1e-6`` leaves more than three orders of margin. A change of the update moves them by
    percent: with the third-order term ``φ_3 D2`` dropped they are 7.24e-2 / 1.22e-2 / 2.63e-3
    (+13 %, +62 %, +87 %), with its sign flipped 7.96e-2 / 1.68e-2 / 3.85e-3, without the
    ``r_0 / (r_0 + r_1)`` correction of ``D1`` 8.43e-2 / 2.08e-2 / 5.00e-3, and 2M gives
    3.27e-2 / 1.30e-2 / 3.51e-3. Observed order 20 -> 40: log2(7.52 / 1.40) = 2.4.
    """
    assert relative_error_3m(steps) == pytest.approx(PINNED_3M[steps], rel=PIN_RTOL)


# -- an independent evaluation of the published update ----------------------------------------

MIX_MEANS = np.array([[-1.5, 0.5, 1.0], [2.0, -1.0, 0.0]])
MIX_STDS = np.array([0.4, 0.8])
MIX_WEIGHTS = np.array([0.6, 0.4])


def mixture_denoiser(x: np.ndarray, ratio: float) -> np.ndarray:
    """``E[x_0 | x̃]`` for ``x_0 ~ Σ_k w_k N(μ_k, s_k² I)`` and ``x̃ = x_0 + σ̃ ε`` (rows of ``x``):
    ``Σ_k γ_k (μ_k + s_k² / (s_k² + σ̃²) (x̃ - μ_k))``, ``γ_k`` the posterior weights."""
    var = MIX_STDS**2 + ratio**2  # (K,)
    diff = x[:, None, :] - MIX_MEANS[None]  # (n, K, d)
    log_w = np.log(MIX_WEIGHTS) - 0.5 * x.shape[1] * np.log(var) - 0.5 * (diff**2).sum(-1) / var
    gamma = np.exp(log_w - log_w.max(1, keepdims=True))
    gamma /= gamma.sum(1, keepdims=True)
    posterior = MIX_MEANS[None] + (MIX_STDS**2 / var)[None, :, None] * diff
    return (gamma[:, :, None] * posterior).sum(1)


def reference_3m(x: np.ndarray, ratios: list[float]) -> list[np.ndarray]:
    """DPM-Solver++(3M) with data prediction in ``x̃``, ``σ̃`` (Lu et al.'s reference code; the
    same third-order step as k-diffusion's ``sample_dpmpp_3m_sde`` at ``eta = 0``), over the levels
    ``ratios``: ``x̃`` after each step. With ``h = λ_t - λ_s`` and ``D`` the denoiser:

        step 1:  x̃ <- e^{-h} x̃ + (1 - e^{-h}) D_s
        step 2:  x̃ <- e^{-h} x̃ + (1 - e^{-h}) (D_s + D1_0 / 2),        D1_0 = (D_s - D_{s-1}) / r_0
        then:    x̃ <- e^{-h} x̃ + (1 - e^{-h}) D_s + φ_2 D1 - φ_3 D2,
                 D1 = D1_0 + r_0 / (r_0 + r_1) (D1_0 - D1_1),  D2 = (D1_0 - D1_1) / (r_0 + r_1),
                 φ_2 = (e^{-h} - 1) / h + 1,  φ_3 = φ_2 / h - 1/2,

    ``r_j = h_{-j-1} / h``. (k-diffusion's second step is the "taylor" form ``φ_2 D1_0`` instead
    of ``(1 - e^{-h}) D1_0 / 2``, equal to first order in ``h``.)"""
    lam = [-math.log(r) for r in ratios]
    out, ds, hs = [], [], []
    for i in range(len(ratios) - 1):
        ds = [mixture_denoiser(x, ratios[i]), *ds][:3]
        hs = [lam[i + 1] - lam[i], *hs][:3]
        h = hs[0]
        x = math.exp(-h) * x - math.expm1(-h) * ds[0]
        if len(ds) == 2:
            x = x - math.expm1(-h) * (ds[0] - ds[1]) / (hs[1] / h) / 2
        elif len(ds) == 3:
            r0, r1 = hs[1] / h, hs[2] / h
            d1_0, d1_1 = (ds[0] - ds[1]) / r0, (ds[1] - ds[2]) / r1
            phi_2 = math.expm1(-h) / h + 1
            phi_3 = phi_2 / h - 0.5
            x = x + phi_2 * (d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)) - phi_3 * (d1_0 - d1_1) / (r0 + r1)
        out.append(x)
    return out


# Unequal steps in λ, so r_0 ≠ r_1 ≠ 1 (a uniform grid hides a swap of h_{-1} and h_{-2}).
LAMBDA_STEP_WEIGHTS = [1.0, 2.0, 1.0, 3.0, 1.5, 1.0, 2.5, 1.0, 2.0]


@pytest.mark.parametrize("sde_name", list(SDES))
def test_dpmpp_3m_matches_an_independent_evaluation_step_by_step(sde_name):
    """scoresde's 3M and :func:`reference_3m` on the same irregular ``λ`` grid, from the same
    prior points, on a two-component 3-D mixture (nonlinear denoiser): ``x`` after every step
    agrees to 1e-9 relative (float64; measured ≤ 1e-13 on VP and VE). Dropping or flipping the third-order
    term, or swapping ``r_0`` and ``r_1``, changes the first third-order step by far more."""
    sde, time_of_ratio, mean_of_ratio = SDES[sde_name]
    eps = VP_EPS if sde_name == "vp" else 1e-5
    t_ends = torch.tensor([sde.T, eps], dtype=torch.float64)
    hi, lo = (math.log(float(r)) for r in sde.ratio(t_ends))
    cum = np.cumsum([0.0, *LAMBDA_STEP_WEIGHTS]) / sum(LAMBDA_STEP_WEIGHTS)
    ratios = [math.exp(hi + u * (lo - hi)) for u in cum]
    ts = torch.tensor([time_of_ratio(sde, r) for r in ratios], dtype=torch.float64)
    ts[0], ts[-1] = sde.T, eps
    gm = ss.GaussianMixture(torch.tensor(MIX_MEANS), torch.tensor(MIX_STDS), torch.tensor(MIX_WEIGHTS))
    x0 = sde.prior_sample((6, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    seen = []
    dpmpp_3m(gm.score_fn(sde), sde, x0, ts, lower_order_final=False,
             callback=lambda info: seen.append(info["x"].clone()))
    m = [mean_of_ratio(r) for r in ratios]
    expected = reference_3m(x0.numpy() / m[0], ratios)
    assert len(seen) == len(expected) == len(LAMBDA_STEP_WEIGHTS)
    for i, (got, want) in enumerate(zip(seen, expected, strict=True)):
        torch.testing.assert_close(got, torch.from_numpy(m[i + 1] * want), rtol=1e-9, atol=1e-9,
                                   msg=lambda text, i=i: f"step {i}: {text}")


# -- the predictor-corrector sampler's Langevin step size --------------------------------------


def song_alpha(sde, t_now: float, t_next: float) -> float:
    """Song et al.'s ``α_i = 1 - β_i``, in continuous time ``m(t_i)² / m(t_{i+1})²``: for VP
    ``e^{-(B(t_i) - B(t_{i+1}))}``, for VE 1."""
    if isinstance(sde, ss.VESDE):
        return 1.0

    def big_b(t):
        return sde.beta_min * t + (sde.beta_max - sde.beta_min) * t**2 / 2

    return math.exp(big_b(t_next) - big_b(t_now))


@pytest.mark.parametrize("norms", ["batch", "sample"])
@pytest.mark.parametrize("sde_name", list(SDES))
def test_langevin_corrector_step_is_the_papers(sde_name, norms):
    """One corrector step against Song et al. (2021), Algorithms 4 (VE) and 5 (VP):
    ``ε = 2 α (r ||z|| / ||s||)²``, ``x <- x + ε s + sqrt(2 ε) z``, the norms over each sample,
    then (``norms="batch"``, the paper's code) their batch means. ``z`` is redrawn from the same
    seed, so the step is reproduced exactly (rtol 1e-12, float64); doubling ``ε`` moves ``x`` by
    ``ε s + (2 - sqrt 2) sqrt(ε) z``, of the order of ``r ||z|| = 0.16 sqrt(d)``."""
    from scoresde.samplers.common import Grid
    from scoresde.samplers.langevin import langevin_corrector

    sde = SDES[sde_name][0]
    ts = torch.tensor([0.6, 0.55, 0.1], dtype=torch.float64)
    gm = ss.GaussianMixture(torch.tensor(MIX_MEANS), torch.tensor(MIX_STDS), torch.tensor(MIX_WEIGHTS))
    score_fn = gm.score_fn(sde)
    x = gm.at(0.6, sde).sample(8, generator=torch.Generator().manual_seed(3))
    snr, i = 0.16, 0
    out = langevin_corrector(score_fn, Grid(sde, ts, x), i, x, snr=snr, norms=norms,
                             generator=torch.Generator().manual_seed(4))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=x.dtype)
    s = score_fn(x, torch.full((8,), 0.6, dtype=torch.float64))
    z_norm, s_norm = z.norm(dim=1), s.norm(dim=1)
    if norms == "batch":
        z_norm, s_norm = z_norm.mean(), s_norm.mean()
    step = (2 * song_alpha(sde, 0.6, 0.55) * (snr * z_norm / s_norm) ** 2).reshape(-1, 1)
    torch.testing.assert_close(out, x + step * s + (2 * step).sqrt() * z, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sde_name", list(SDES))
def test_ald_corrector_step_is_the_papers(sde_name):
    """The annealed-Langevin corrector of Song et al.'s code: ``ε = 2 α (r std(t_i))²``,
    ``x <- x + ε s + sqrt(2 ε) z`` (rtol 1e-12; ``z`` redrawn from the same seed)."""
    from scoresde.samplers.common import Grid
    from scoresde.samplers.langevin import ald_corrector

    sde = SDES[sde_name][0]
    ts = torch.tensor([0.6, 0.55, 0.1], dtype=torch.float64)
    gm = ss.GaussianMixture(torch.tensor(MIX_MEANS), torch.tensor(MIX_STDS), torch.tensor(MIX_WEIGHTS))
    x = gm.at(0.6, sde).sample(8, generator=torch.Generator().manual_seed(3))
    snr = 0.075
    out = ald_corrector(gm.score_fn(sde), Grid(sde, ts, x), 0, x, snr=snr,
                        generator=torch.Generator().manual_seed(4))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=x.dtype)
    s = gm.score_fn(sde)(x, torch.full((8,), 0.6, dtype=torch.float64))
    std = float(sde.std(torch.tensor(0.6, dtype=torch.float64)))
    step = 2 * song_alpha(sde, 0.6, 0.55) * (snr * std) ** 2
    torch.testing.assert_close(out, x + step * s + math.sqrt(2 * step) * z, rtol=1e-12, atol=1e-12)


# -- pins for what the mutation pass (docs/testing.md) found unguarded --------------------------


def test_ddpm_betas_are_ho_et_al_linear_schedule():
    """DDPM's betas (Ho et al. 2020): ``N = 1000`` values linear from ``1e-4`` to ``0.02``,
    ``β_i = β_min / N + i / (N - 1) (β_max - β_min) / N``; and ``ᾱ`` their cumulative product."""
    vp = ss.VPSDE()
    expected = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(vp.ddpm_betas(1000).numpy(), expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(vp.alphas_cumprod(1000).numpy(), np.cumprod(1 - expected), rtol=1e-12)


def test_default_discretize_is_euler_maruyama():
    """``SDE.discretize`` without an exact chain (sub-VP here; the reverse-diffusion predictor
    steps on it): ``f = f(x, t) Δt = -β(t) x Δt / 2`` and ``G = g(t) sqrt(Δt)``,
    ``g(t)² = β(t) (1 - e^{-2 B(t)})``."""
    sde = ss.SubVPSDE()
    x = torch.tensor([[1.5, -2.0], [0.3, 4.0]], dtype=torch.float64)
    t, dt = torch.tensor([0.4, 0.7], dtype=torch.float64), 0.01
    f, big_g = sde.discretize(x, t, dt)
    beta = 0.1 + t * 19.9
    big_b = 0.1 * t + 0.5 * t**2 * 19.9
    torch.testing.assert_close(f, -0.5 * beta[:, None] * x * dt, rtol=1e-12, atol=0)
    g2 = beta * -torch.expm1(-2 * big_b)
    torch.testing.assert_close(big_g.flatten(), (g2 * dt).sqrt(), rtol=1e-12, atol=0)


def test_stochastic_ddim_noise_is_ddims_sigma():
    """DDIM with ``η`` (Song, Meng & Ermon 2021, Eq. 16) on VP, with ``ᾱ = m²``:
    ``σ_η² = η² (1 - ᾱ') / (1 - ᾱ) (1 - ᾱ / ᾱ')``, ``x' = sqrt(ᾱ') x̂_0 + sqrt(1 - ᾱ' - σ_η²) ε̂
    + σ_η z``; ``z`` redrawn from the same seed (rtol 1e-12)."""
    from scoresde.samplers.common import Grid
    from scoresde.samplers.ddim import ddim_step

    sde, eta = ss.VPSDE(), 0.7
    ts = torch.tensor([0.5, 0.3, 0.1], dtype=torch.float64)
    gm = ss.GaussianMixture(torch.tensor(MIX_MEANS), torch.tensor(MIX_STDS), torch.tensor(MIX_WEIGHTS))
    score_fn = gm.score_fn(sde)
    x = gm.at(0.5, sde).sample(8, generator=torch.Generator().manual_seed(5))
    out = ddim_step(score_fn, Grid(sde, ts, x), 0, x, eta, torch.Generator().manual_seed(6))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(6), dtype=x.dtype)
    abar, abar_next = (math.exp(-(0.1 * t + 0.5 * t**2 * 19.9)) for t in (0.5, 0.3))
    eps_hat = -math.sqrt(1 - abar) * score_fn(x, torch.full((8,), 0.5, dtype=torch.float64))
    x0_hat = (x - math.sqrt(1 - abar) * eps_hat) / math.sqrt(abar)
    var = eta**2 * (1 - abar_next) / (1 - abar) * (1 - abar / abar_next)
    expected = math.sqrt(abar_next) * x0_hat + math.sqrt(1 - abar_next - var) * eps_hat + math.sqrt(var) * z
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_lower_order_final_applies_below_15_steps():
    """``lower_order_final`` lowers the last steps' order on grids of fewer than 15 steps (the rule
    of diffusers' DPM-Solver++ schedulers, documented in ``multistep``), not on 15 or more."""
    from scoresde.samplers.multistep import step_order

    assert [step_order(3, i, 14, True) for i in (12, 13)] == [2, 1]
    assert [step_order(3, i, 15, True) for i in (13, 14)] == [3, 3]


def test_rademacher_probes_are_plus_minus_one():
    """Hutchinson's estimate ``E[vᵀ A v] = tr A`` needs ``E[v vᵀ] = I``: Rademacher probes take
    the values ±1 only, with both signs present (a 0/1 probe has ``E[v vᵀ] = (I + 11ᵀ) / 4``)."""
    from scoresde.likelihood import _probes

    v = _probes(torch.zeros(64, 3, dtype=torch.float64), "rademacher", 2, torch.Generator().manual_seed(0))
    assert v.shape == (2, 64, 3) and set(v.unique().tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("variable", ["sigma", "log_sigma"])
@pytest.mark.parametrize("sde_name", list(SDES))
def test_likelihood_clock_inverts_log_ratio(sde_name, variable):
    """The likelihood's clock maps the solver's ``τ`` (``σ̄`` or ``ρ = log σ̄``) back to ``t``: a
    table plus one Newton step on ``ρ(t) = log(std / m)`` with ``dρ/dt = g² / (2 std²)``, to
    1e-10 in ``ρ`` (measured ≤ 5e-12; the table alone is good to ~1e-7, and a Newton step with a
    wrong slope leaves a fraction of that)."""
    from scoresde.likelihood import _Clock

    sde = SDES[sde_name][0]
    clock = _Clock(sde, 1e-5, variable, torch.zeros(1, dtype=torch.float64))
    taus = torch.linspace(clock.tau0, clock.tau1, 203, dtype=torch.float64)[1:-1]
    rho = taus.log() if variable == "sigma" else taus
    got = torch.log(sde.ratio(clock.t_of(taus)))
    assert float((got - rho).abs().max()) < 1e-10


def test_successive_difference_se_is_unbiased_for_iid_steps():
    """The all-steps discrete bound's standard error (von Neumann's successive differences with
    the end steps' halves): for ``N`` independent unit-variance terms ``E[se²] = N`` exactly.
    ``N = 4``, 200,000 columns: the mean of ``se²`` has sd ``< 0.02`` (without the end terms
    its expectation is ``N - 1 = 3``)."""
    from scoresde.elbo import _successive_difference_se

    terms = torch.randn(4, 200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float(_successive_difference_se(terms).pow(2).mean()) == pytest.approx(4.0, abs=0.1)


@pytest.mark.parametrize("importance", [False, True])
def test_continuous_bound_closed_form_at_a_late_start(importance):
    """The continuous bound from ``eps = 0.3`` (where ``T - eps = 0.7`` and ``m(eps) = 0.63``, so
    the time weight ``(T - eps) / ((T - eps) p(t))`` and the decoder's ``std / m`` both matter)
    against ``test_elbo``'s closed forms, within its ``Z_MAX`` standard errors."""
    from test_elbo import Z_MAX, _gaussian, _z, continuous_analytic

    gm, sde, eps = _gaussian(), ss.VPSDE(), 0.3
    x = gm.sample(400, generator=torch.Generator().manual_seed(0))
    res = ss.elbo(gm.score_fn(sde), sde, x, kind="continuous", eps=eps, importance=importance,
                  generator=torch.Generator().manual_seed(2))
    _, diffusion, rec = continuous_analytic(sde, x, eps)
    assert abs(_z(res.diffusion - diffusion, res.diffusion_se)) < Z_MAX
    assert abs(_z(res.reconstruction - rec, res.reconstruction_se)) < Z_MAX


def test_sampled_discrete_bound_matches_the_full_sum():
    """The discrete bound with ``n_t`` sampled steps is ``(N - 1)`` times their mean, unbiased for
    the full sum over steps ``2..N``: on a 4-step chain (``β_max = 2``, so every ``β_n < 1``)
    with the exact Gaussian score, 400 sampled steps per point against the full sum, batch
    means within 5 standard errors (``N`` in place of ``N - 1`` is 33 % off)."""
    gm, sde = ss.GaussianMixture([[0.5, -1.0]], [0.7], [1.0]), ss.VPSDE(0.1, 2.0)
    x = gm.sample(200, generator=torch.Generator().manual_seed(0))
    full = ss.elbo(gm.score_fn(sde), sde, x, steps=4, generator=torch.Generator().manual_seed(1))
    part = ss.elbo(gm.score_fn(sde), sde, x, steps=4, n_t=400, generator=torch.Generator().manual_seed(2))
    diff = part.diffusion - full.diffusion
    assert abs(float(diff.mean())) < 5 * float(diff.std()) / len(diff) ** 0.5


def test_loss_weightings_are_their_closed_forms():
    """``λ(t)`` on VP: ``"sigma2"`` ``1 - e^{-B}``, ``"likelihood"`` ``g² = β(t)``, ``"edm"``
    ``std² (1 + σ̃² / σ_d²)`` with ``σ̃² = e^B - 1``, ``"none"`` 1."""
    from scoresde.losses import weighting

    sde, t = ss.VPSDE(), torch.tensor([1e-3, 0.2, 0.9], dtype=torch.float64)
    beta, big_b = 0.1 + 19.9 * t, 0.1 * t + 0.5 * 19.9 * t**2
    var = -torch.expm1(-big_b)
    expected = {"sigma2": var, "likelihood": beta, "none": torch.ones_like(t),
                "edm": var * (1 + torch.expm1(big_b) / 0.5**2)}
    for name, value in expected.items():
        torch.testing.assert_close(weighting(sde, name, t), value, rtol=1e-12, atol=0, msg=name)


def _recorded_times(loss, sde, n: int, seed: int) -> torch.Tensor:
    seen = []

    def score_fn(x, t):
        seen.append(t)
        return torch.zeros_like(x)

    loss(score_fn, sde, torch.zeros(n, 2, dtype=torch.float64), generator=torch.Generator().manual_seed(seed))
    return seen[0]


def test_discrete_losses_read_the_network_at_the_chains_times():
    """DDPM's loss at step ``i`` (uniform in ``0..N-1``) calls the network at ``t_i = (i + 1) / N``,
    SMLD's at level ``i`` at ``t_i = i / (L - 1)`` (so that ``σ(t_i) = σ_i``); ``i`` redrawn from
    the same seed."""
    from scoresde.losses import ddpm_loss, smld_loss

    i = torch.randint(1000, (64,), generator=torch.Generator().manual_seed(3))
    ddpm_t = _recorded_times(ddpm_loss, ss.VPSDE(), 64, 3)
    torch.testing.assert_close(ddpm_t, (i + 1).double() / 1000, rtol=1e-12, atol=0)
    smld_t = _recorded_times(smld_loss, ss.VESDE(0.01, 50.0), 64, 3)
    torch.testing.assert_close(smld_t, i.double() / 999, rtol=1e-12, atol=0)


def test_lognormal_time_has_edms_log_ratio_distribution():
    """EDM's noise levels: ``ln σ̃(t) ~ N(-1.2, 1.2²)`` (truncated to the VP range
    ``[ln σ̃(1e-5), ln σ̃(1)] = [-6.9, 5.0]``, 4.75 sd below and 5.2 above: negligible). With
    ``n = 20,000`` the sample mean and sd have standard errors ``1.2 / sqrt(n)`` and
    ``1.2 / sqrt(2 n)``; both within 5 of them."""
    from scoresde.losses import lognormal_time

    sde, n = ss.VPSDE(), 20_000
    t = lognormal_time(sde, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    log_ratio = torch.log(sde.ratio(t))
    assert abs(float(log_ratio.mean()) + 1.2) < 5 * 1.2 / math.sqrt(n)
    assert abs(float(log_ratio.std()) - 1.2) < 5 * 1.2 / math.sqrt(2 * n)

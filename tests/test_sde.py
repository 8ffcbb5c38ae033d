"""The forward SDEs: marginals, exact discrete chains, reverse drifts, Fokker–Planck, bad input."""

import itertools
import math

import pytest
import torch

import scoresde as ss

SDES = {
    "vp": lambda: ss.VPSDE(),
    "subvp": lambda: ss.SubVPSDE(),
    "ve": lambda: ss.VESDE(sigma_min=0.01, sigma_max=5.0),
}


@pytest.fixture(params=sorted(SDES))
def sde(request):
    return SDES[request.param]()


@pytest.mark.parametrize("t_end", [0.3, 1.0])
def test_marginal_matches_euler_maruyama_simulation(sde, t_end):
    """Simulate ``dx = f dt + g dw`` by Euler–Maruyama (1,000 steps, n = 10,000 paths, float64).

    Tolerances: the sample mean has standard error ``std/sqrt(n)`` and the sample variance
    ``var sqrt(2/(n-1))``; we allow 4.5 standard errors (two-sided p ≈ 7e-6 per check) plus the
    Euler–Maruyama weak error, O(dt) relative, bounded by ``20 dt`` times the value.
    """
    gen = torch.Generator().manual_seed(1)
    n, steps = 10_000, 1_000
    x0 = torch.tensor([1.5, -0.5], dtype=torch.float64).expand(n, 2)
    x, dt = x0.clone(), t_end / steps
    for i in range(steps):
        t = torch.full((n,), i * dt, dtype=torch.float64)
        z = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        x = x + sde.drift(x, t) * dt + ss.shapes.append_dims(sde.diffusion(t), 2) * math.sqrt(dt) * z
    mean, std = sde.marginal(x0, torch.full((n,), t_end, dtype=torch.float64))
    mean, var = mean[0], float(std[0, 0]) ** 2
    em_bias = 20 * dt
    mean_tol = 4.5 * math.sqrt(var / n) + em_bias * mean.abs()
    assert torch.all((x.mean(0) - mean).abs() <= mean_tol)
    var_tol = 4.5 * var * math.sqrt(2 / (n - 1)) + em_bias * var
    assert torch.all((x.var(0) - var).abs() <= var_tol)


@pytest.mark.parametrize("name", ["vp", "ve"])
def test_exact_discrete_chain_composes_to_marginal(name):
    """The overridden ``discretize`` (DDPM for VP, SMLD for VE) is exact on any grid.

    Composing ``x <- x + f + G z`` from 0 to t multiplies the mean by ``∏(1 + f/x)`` and maps the
    variance ``v <- (1 + f/x)^2 v + G^2``; both must reproduce ``m(t)`` and ``s(t)^2`` to rounding.
    """
    sde = SDES[name]()
    grid = torch.linspace(0, 1, 37, dtype=torch.float64) ** 2
    one = torch.ones(1, 1, dtype=torch.float64)
    coef, var = torch.ones(1, dtype=torch.float64), sde.std(torch.zeros(1, dtype=torch.float64)) ** 2
    for t_prev, t in itertools.pairwise(grid):
        f, G = sde.discretize(one, t.reshape(1), (t - t_prev).reshape(1))
        a = 1 + f[:, 0]
        coef, var = a * coef, a**2 * var + G[:, 0] ** 2
    t1 = torch.ones(1, dtype=torch.float64)
    torch.testing.assert_close(coef, sde.mean_coef(t1), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(var, sde.std(t1) ** 2, rtol=1e-10, atol=1e-14)


def test_ddpm_alphas_cumprod_converge_at_first_order():
    """DDPM's ``ᾱ_i`` approximates ``m(t_i)^2`` at ``t_i = (i+1)/N`` with an O(1/N) error.

    The Riemann sum of β and ``log(1 - β) ≈ -β`` are both first order, so the max error for
    N = 2000 must be about a tenth of the one for N = 200 (we accept a ratio in [7, 13]).
    """
    sde = ss.VPSDE()
    errors = []
    for n in (200, 2000):
        t = torch.arange(1, n + 1, dtype=torch.float64) / n
        errors.append(float((sde.alphas_cumprod(n) - sde.mean_coef(t) ** 2).abs().max()))
    assert errors[0] < 0.05
    assert 7 < errors[0] / errors[1] < 13


def test_smld_sigmas_are_the_ve_std_on_a_uniform_grid():
    sde = ss.VESDE(0.01, 50.0)
    n = 10
    sigmas = sde.smld_sigmas(n)
    t = torch.arange(n, dtype=torch.float64) / (n - 1)
    torch.testing.assert_close(sigmas, sde.std(t), rtol=1e-12, atol=0)
    ratios = sigmas[1:] / sigmas[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 5000.0 ** (1 / 9)))


def test_reverse_drifts():
    gm = ss.toy_mixture()
    x = gm.sample(64, generator=torch.Generator().manual_seed(0))
    t = torch.rand(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for sde in (SDES[k]() for k in SDES):
        score = gm.score(x, t, sde)
        g2 = ss.shapes.append_dims(sde.diffusion(t) ** 2, 2)
        rev = sde.reverse(gm.score_fn(sde))
        ode = sde.reverse(gm.score_fn(sde), probability_flow=True)
        torch.testing.assert_close(rev.drift(x, t), sde.drift(x, t) - g2 * score)
        torch.testing.assert_close(ode.drift(x, t), sde.drift(x, t) - 0.5 * g2 * score)
        torch.testing.assert_close(rev.diffusion(t), sde.diffusion(t))
        zero = ode.diffusion(t)
        assert isinstance(zero, torch.Tensor) and zero.shape == t.shape and not zero.any()


def test_fokker_planck_holds_for_the_oracle(sde):
    """``∂_t log p = -∇·f - f·∇log p + g²/2 (Δ log p + |∇ log p|²)`` for ``f = -β x / 2``.

    ``∂_t log p`` by a central difference (h = 1e-5, float64: truncation ~h² and rounding
    ~1e-16/h, both below 1e-7 relative), the Laplacian by autograd of the oracle's score.
    """
    gm = ss.toy_mixture()
    x = gm.sample(32, generator=torch.Generator().manual_seed(3))
    x = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=x.dtype)
    h = 1e-5
    for t0 in (0.05, 0.4, 0.9):
        t = torch.full((32,), t0, dtype=torch.float64)
        dlogp_dt = (gm.log_prob_t(x, t + h, sde) - gm.log_prob_t(x, t - h, sde)) / (2 * h)
        xr = x.clone().requires_grad_(True)
        s = gm.score(xr, t, sde)
        laplacian = sum(
            torch.autograd.grad(s[:, i].sum(), xr, retain_graph=True)[0][:, i] for i in range(2)
        )
        beta, g2 = sde.beta(t), sde.diffusion(t) ** 2
        div_f = -0.5 * beta * 2
        rhs = -div_f - (sde.drift(x, t) * s).sum(1) + 0.5 * g2 * (laplacian + (s * s).sum(1))
        torch.testing.assert_close(dlogp_dt, rhs.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(5, 3), (5, 2, 4, 4)])
def test_shapes_dtypes_and_prior(sde, shape, dtype):
    x = torch.randn(shape, dtype=dtype)
    t = torch.linspace(0, 1, 5, dtype=dtype)
    assert sde.drift(x, t).shape == shape and sde.drift(x, t).dtype == dtype
    mean, std = sde.marginal(x, t)
    assert mean.shape == shape and std.shape == (5,) + (1,) * (len(shape) - 1)
    assert (mean + std * x).dtype == dtype
    assert sde.drift(x, 0.5).shape == shape
    z = sde.prior_sample(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    assert z.shape == shape and z.dtype == dtype
    d = math.prod(shape[1:])
    expected = -0.5 * d * math.log(2 * math.pi * sde.prior_std**2) - (
        z.reshape(5, -1).pow(2).sum(1) / (2 * sde.prior_std**2)
    )
    torch.testing.assert_close(sde.prior_logp(z), expected)
    f, G = sde.discretize(x, t.clamp(min=0.1), 0.01)
    assert f.shape == shape and G.shape == std.shape


def test_prior_sample_has_the_prior_variance(sde):
    """Sample variance of n = 100,000 prior draws: standard error ``var sqrt(2/n)``; 5 SE allowed."""
    n = 100_000
    z = sde.prior_sample((n,), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    var = sde.prior_std**2
    assert abs(float(z.var()) - var) < 5 * var * math.sqrt(2 / n)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: ss.VESDE(sigma_min=1.0, sigma_max=1.0), "sigma_min"),
        (lambda: ss.VESDE(sigma_min=-1.0, sigma_max=1.0), "sigma_min"),
        (lambda: ss.VPSDE(beta_min=-0.1), "beta_min"),
        (lambda: ss.VPSDE(beta_min=5.0, beta_max=1.0), "beta_min"),
        (lambda: ss.SubVPSDE(beta_min=5.0, beta_max=5.0), "beta_min"),
        (lambda: ss.VPSDE().ddpm_betas(1), "n_steps"),
        (lambda: ss.VESDE().smld_sigmas(1), "n_levels"),
    ],
)
def test_bad_constructor_arguments(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_bad_time(sde):
    x = torch.zeros(4, 2)
    for bad in (torch.tensor([0.1, 0.2, 1.5, 0.3]), -0.1, torch.tensor([0.1, 0.2])):
        with pytest.raises(ValueError, match="t must"):
            sde.drift(x, bad)
        with pytest.raises(ValueError, match="t must"):
            sde.marginal(x, bad)


def test_solve_time_inverts_an_increasing_function():
    """Bisection to float64 resolution: ``std(solve_time(std, std(t))) == std(t)`` to 1e-12."""
    from scoresde.sde import solve_time

    sde = ss.VPSDE()
    t = torch.linspace(1e-3, 1.0, 17, dtype=torch.float64)
    found = solve_time(sde.std, sde.std(t), 1e-3, 1.0)
    torch.testing.assert_close(found, t, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sde", [ss.VPSDE(), ss.SubVPSDE(), ss.VESDE(0.01, 50.0)], ids=repr)
def test_time_of_ratio_closed_form_inverts_the_noise_to_signal_ratio(sde):
    """Each SDE's closed form agrees with the base class's bisection and inverts ``std / m``."""
    t = torch.linspace(1e-5, 1.0, 33, dtype=torch.float64)
    ratio = sde.std(t) / sde.mean_coef(t)
    torch.testing.assert_close(sde.time_of_ratio(ratio), t, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ss.SDE._time_of_ratio(sde, ratio), t, rtol=1e-10, atol=1e-12)


def test_time_of_ratio_and_solve_time_reject_bad_input():
    from scoresde.sde import solve_time

    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="ratio must be finite and > 0"):
            ss.VPSDE().time_of_ratio(torch.tensor([1.0, bad]))
    with pytest.raises(ValueError, match="lo < hi"):
        solve_time(torch.exp, torch.ones(2, dtype=torch.float64), 1.0, 0.5)


@pytest.mark.parametrize("make, name", [
    (lambda v: ss.VESDE(v), "sigma_min"), (lambda v: ss.VESDE(0.01, v), "sigma_max"),
    (lambda v: ss.VPSDE(v), "beta_min"), (lambda v: ss.SubVPSDE(0.1, v), "beta_max")])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_sde_parameters_are_refused_by_name(make, name, value):
    with pytest.raises(ValueError, match=f"{name} must be finite"):
        make(value)


def test_non_finite_mixture_weights_are_refused():
    with pytest.raises(ValueError, match="weights contains NaN or inf"):
        ss.GaussianMixture([[0.0], [1.0]], [1.0, 1.0], [float("nan"), 1.0])


def test_integer_data_is_refused_instead_of_rounding_t():
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor; got torch\.int64"):
        ss.VPSDE().marginal(torch.ones(3, 2, dtype=torch.int64), 0.5)

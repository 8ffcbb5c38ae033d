"""The probability-flow ODE likelihood against the analytic Gaussian-mixture oracle.

With the oracle's exact score and its exact terminal density ``p_T``, the only errors left are
the ODE solver's (and, for Hutchinson, the trace estimator's), so the tolerances follow the
solver tolerance; the statistical tests derive theirs from the sample size.
"""

import math

import pytest
import torch
from conftest import SDE_NAMES, make_sde

import scoresde as ss
from scoresde.shapes import append_dims

EPS = 1e-5


def _data(n: int, seed: int = 0) -> tuple[ss.GaussianMixture, torch.Tensor]:
    gm = ss.toy_mixture()
    return gm, gm.sample(n, generator=torch.Generator().manual_seed(seed))


def _exact_ll(gm, sde, x, tol, **kw):
    return ss.log_likelihood(
        gm.score_fn(sde), sde, x, trace="exact", rtol=tol, atol=tol, eps=EPS,
        prior_logp=gm.at(1.0, sde).log_prob, **kw,
    )


def _check_oracle_accuracy(sde, **kw):
    """Exact-trace ``log p_eps`` of 12 mixture points at 1e-5 (mean error < 1e-3 nats/dim) and at
    1e-7 (largest error < 1e-4) against the oracle; returns both results."""
    gm, x = _data(12)
    ref = gm.log_prob_t(x, EPS, sde)
    coarse = _exact_ll(gm, sde, x, 1e-5, **kw)
    assert (coarse.logp - ref).abs().mean().item() / 2 < 1e-3
    fine = _exact_ll(gm, sde, x, 1e-7, **kw)
    assert (fine.logp - ref).abs().max().item() / 2 < 1e-4
    return coarse, fine


@pytest.mark.parametrize("name", SDE_NAMES)
@pytest.mark.parametrize("time_variable", ["t", "log_sigma"])
def test_exact_trace_matches_oracle_density(name, time_variable):
    """log p_eps from the ODE equals the oracle's log p_eps(x): mean < 1e-3 nats/dim at 1e-5.

    At rtol = atol = 1e-7 the maximum error over the batch falls below 1e-4 nats/dim.
    """
    coarse, fine = _check_oracle_accuracy(make_sde(name), time_variable=time_variable)
    assert fine.nfe > coarse.nfe
    assert torch.allclose(fine.logp, fine.prior_logp + fine.delta_logp)


@pytest.mark.parametrize("name", SDE_NAMES)
@pytest.mark.parametrize("norm", ["state", "logp"])
def test_error_norms_match_oracle_density(name, norm):
    """Every error norm integrates the same ODE: at rtol = atol = 1e-5 the mean error against the
    oracle's log p_eps stays below 1e-3 nats/dim (measured <= 6.6e-5; the default norm <= 2.1e-5),
    and at 1e-7 the largest below 1e-4 (measured <= 2.6e-5). The norm changes the steps, so the
    result is not the default norm's bit for bit."""
    sde = make_sde(name)
    coarse, _ = _check_oracle_accuracy(sde, norm=norm)
    gm, x = _data(12)
    assert not torch.equal(coarse.logp, _exact_ll(gm, sde, x, 1e-5).logp)


def test_sigma_time_variable_matches_oracle():
    sde = ss.VPSDE()
    gm, x = _data(12)
    res = _exact_ll(gm, sde, x, 1e-7, time_variable="sigma")
    assert (res.logp - gm.log_prob_t(x, EPS, sde)).abs().max().item() / 2 < 1e-4


@pytest.mark.parametrize("name", SDE_NAMES)
def test_latent_and_prior_mismatch(name):
    """z is x_T; the standard prior differs from p_T by exactly log p_T(z) - prior_logp(z).

    The two runs follow the same deterministic ODE, so their difference is the terminal density
    alone. Its size on the toy mixture (VP: mean_coef(1) ≈ 6.6e-3 keeps a little of the data
    mean; VE keeps all of it), measured on these 12 points: mean 3.0e-3 nats/dim for VP and
    sub-VP, 9.2e-3 for VE (max 6.7e-3 and 2.0e-2), far above the solver error.
    """
    sde = make_sde(name)
    gm, x = _data(12)
    exact = _exact_ll(gm, sde, x, 1e-5)
    std = ss.log_likelihood(gm.score_fn(sde), sde, x, trace="exact", rtol=1e-5, atol=1e-5, eps=EPS)
    assert torch.allclose(exact.z, std.z) and torch.allclose(exact.delta_logp, std.delta_logp)
    mismatch = gm.at(1.0, sde).log_prob(std.z) - sde.prior_logp(std.z)
    assert torch.allclose(exact.logp - std.logp, mismatch, atol=1e-10)
    ref = gm.log_prob_t(x, EPS, sde)
    assert (std.logp - ref).abs().mean() > 10 * (exact.logp - ref).abs().mean()
    # z is distributed as p_T: its whitened norm is that of a draw from p_T, not of a data point.
    m, s = sde.mean_coef(torch.tensor(1.0)), sde.std(torch.tensor(1.0))
    assert (std.z - m * x).norm(dim=1).max() < 6 * s * math.sqrt(2)


@pytest.mark.parametrize("time_variable", ["t", "sigma", "log_sigma"])
def test_score_is_never_called_outside_eps_T(time_variable):
    """torchdiffeq's adaptive steps would overshoot T; the last step must land on it exactly."""
    sde = ss.VPSDE()
    gm, x = _data(4)
    seen = []

    def spy(y, t):
        seen.append(t)
        return gm.score(y, t, sde)

    res = ss.log_likelihood(spy, sde, x, eps=1e-3, time_variable=time_variable, rtol=1e-3, atol=1e-3)
    ts = torch.cat(seen)
    assert res.nfe == len(seen)
    assert ts.min().item() >= 1e-3 and ts.max().item() <= 1.0
    assert ts.min().item() == pytest.approx(1e-3, rel=1e-9)
    assert ts.max().item() == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(noise):
    """Per-sample error of the estimate vs the exact trace has mean zero.

    With n = 64 independent probes the mean error must lie within 4 standard errors
    (std / sqrt(n)) of zero; the solver error (~1e-6 at this tolerance) is far smaller.
    """
    sde = ss.VPSDE()
    gm, x = _data(64, seed=1)
    exact = _exact_ll(gm, sde, x, 1e-6)
    est = ss.log_likelihood(
        gm.score_fn(sde), sde, x, noise=noise, rtol=1e-6, atol=1e-6, eps=EPS,
        prior_logp=gm.at(1.0, sde).log_prob, generator=torch.Generator().manual_seed(2),
    )
    err = est.logp - exact.logp
    assert err.std() > 1e-4  # the estimator is really random, so the test can fail
    assert err.mean().abs() < 4 * err.std() / math.sqrt(len(err))


def test_hutchinson_variance_falls_like_one_over_probes():
    """Var(error) with 4 probes is 1/4 of that with 1 probe.

    Each variance is estimated from n = 64 samples (relative SE ≈ sqrt(2/n) ≈ 0.18), so the
    log of the ratio has SE ≈ 0.25; we accept 4 within a factor exp(4 · 0.25) = e.
    """
    sde = ss.VPSDE()
    gm, x = _data(64, seed=3)
    exact = _exact_ll(gm, sde, x, 1e-6)
    var = {}
    for k in (1, 4):
        est = ss.log_likelihood(
            gm.score_fn(sde), sde, x, noise="gaussian", n_probes=k, rtol=1e-6, atol=1e-6,
            eps=EPS, prior_logp=gm.at(1.0, sde).log_prob, generator=torch.Generator().manual_seed(k),
        )
        var[k] = (est.logp - exact.logp).var().item()
    assert 4 / math.e < var[1] / var[4] < 4 * math.e


def test_image_shaped_data_and_float32():
    """(batch, c, h, w) works and float32 in gives float32 out, matching the oracle."""
    sde = ss.VPSDE()
    g = torch.Generator().manual_seed(4)
    means = torch.randn(2, 4, generator=g, dtype=torch.float64)
    gm = ss.GaussianMixture(means, torch.tensor([0.5, 0.8]), event_shape=(1, 2, 2))
    x = gm.sample(8, generator=g, dtype=torch.float32)
    res = ss.log_likelihood(gm.score_fn(sde), sde, x, trace="exact", eps=EPS, rtol=1e-5,
                            atol=1e-5, prior_logp=gm.at(1.0, sde).log_prob)
    assert res.logp.dtype == torch.float32 and res.z.shape == x.shape
    ref = gm.log_prob_t(x.double(), EPS, sde)
    assert (res.logp.double() - ref).abs().mean() / 4 < 1e-3
    hut = ss.log_likelihood(gm.score_fn(sde), sde, x, n_probes=2, eps=EPS,
                            generator=torch.Generator().manual_seed(5))
    assert hut.logp.shape == (8,) and torch.isfinite(hut.logp).all()


def test_bad_input_is_refused():
    sde = ss.VPSDE()
    gm, x = _data(2)
    f = gm.score_fn(sde)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x"):
        ss.log_likelihood(f, sde, bad)
    for kw, word in [({"trace": "foo"}, "hutchinson"), ({"method": "foo"}, "dopri5"),
                     ({"noise": "foo"}, "rademacher"), ({"time_variable": "foo"}, "sigma"),
                     ({"eps": 0.0}, "eps"), ({"n_probes": 0}, "n_probes"), ({"norm": "foo"}, "logp")]:
        with pytest.raises(ValueError, match=word):
            ss.log_likelihood(f, sde, x, **kw)
    with pytest.raises(ValueError, match="max_exact_dim"):
        ss.log_likelihood(f, sde, torch.zeros(2, 300), trace="exact")


def test_non_finite_drift_raises_with_time():
    sde = ss.VPSDE()
    _, x = _data(2)

    def broken(y, t):
        return torch.where(append_dims(t, y.ndim) > 0.5, torch.full_like(y, float("nan")), -y)

    with pytest.raises(FloatingPointError, match="t = "):
        ss.log_likelihood(broken, sde, x, rtol=1e-3, atol=1e-3)


def test_latent_equals_ode_sampler_encode():
    """result.z is the probability-flow ODE's encoding of x, as computed by the ODE sampler.

    Both solve the same ODE to rtol = atol = 1e-6 (with different steps and clocks: the
    likelihood's error control also sees the log-determinant),
    so they agree to ~1e-4.
    """
    from scoresde.samplers.ode import encode

    sde = ss.VPSDE()
    gm, x = _data(6)
    res = ss.log_likelihood(gm.score_fn(sde), sde, x, rtol=1e-6, atol=1e-6, eps=EPS,
                            generator=torch.Generator().manual_seed(0))
    z, _ = encode(gm.score_fn(sde), sde, x, rtol=1e-6, atol=1e-6, eps=EPS)
    assert torch.allclose(res.z, z, atol=1e-4, rtol=1e-4)
    assert (res.z - x).abs().max() > 0.1


def test_fixed_step_method_without_a_step_size_is_refused():
    """torchdiffeq would take one step over [eps, T] and return a wrong number silently."""
    gm, sde = ss.toy_mixture(), ss.VPSDE()
    with pytest.raises(ValueError, match="fixed-step"):
        ss.log_likelihood(gm.score_fn(sde), sde, torch.zeros(2, 2, dtype=torch.float64), method="rk4")

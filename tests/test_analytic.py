"""The Gaussian-mixture oracle: densities, scores, sampling, stability, bad input."""

import math

import numpy as np
import pytest
import torch
from conftest import SDES as SDE_TABLE
from scipy import stats
from scipy.special import logsumexp

import scoresde as ss

SDES = list(SDE_TABLE.values())


def mixtures():
    """Isotropic, per-axis and full-covariance mixtures (the three storage paths)."""
    means = torch.tensor([[-2.0, 0.0, 1.0], [2.0, 1.0, -1.0]], dtype=torch.float64)
    a = torch.tensor([[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.2]], dtype=torch.float64)
    return {
        "iso": ss.GaussianMixture(means, [0.5, 1.2], [0.3, 0.7]),
        "diag": ss.GaussianMixture(means, [[0.5, 1.0, 0.2], [1.0, 0.3, 0.7]], [0.6, 0.4]),
        "full": ss.GaussianMixture(means, torch.stack([a, a.T @ a + 0.1 * torch.eye(3)])),
    }


def scipy_log_prob(gm, x, t=None, sde=None):
    """An independent reference: scipy's multivariate normal on the mixture at time t."""
    covs = gm.covariances().numpy()
    means = gm.means.numpy()
    if sde is not None:
        m, s = float(sde.mean_coef(torch.tensor(t))), float(sde.std(torch.tensor(t)))
        means, covs = m * means, m**2 * covs + s**2 * np.eye(gm.dim)
    comps = [
        math.log(w) + stats.multivariate_normal(mu, c).logpdf(x.numpy())
        for w, mu, c in zip(gm.weights.tolist(), means, covs, strict=True)
    ]
    return torch.from_numpy(logsumexp(np.stack(comps), axis=0))


@pytest.mark.parametrize("kind", ["iso", "diag", "full"])
def test_log_prob_matches_scipy(kind):
    gm = mixtures()[kind]
    x = 2 * torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(gm.log_prob(x), scipy_log_prob(gm, x))
    for sde in SDES:
        for t in (0.0, 0.3, 1.0):
            torch.testing.assert_close(gm.log_prob_t(x, t, sde), scipy_log_prob(gm, x, t, sde))


@pytest.mark.parametrize("kind", ["iso", "diag", "full"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_score_is_gradient_of_log_prob_t(kind, dtype):
    gm = mixtures()[kind]
    gen = torch.Generator().manual_seed(1)
    x = (2 * torch.randn(40, 3, generator=gen, dtype=torch.float64)).to(dtype).requires_grad_(True)
    t = torch.rand(40, generator=gen, dtype=torch.float64).to(dtype)
    t[:2] = torch.tensor([0.0, 1.0])
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {}
    for sde in SDES:
        (grad,) = torch.autograd.grad(gm.log_prob_t(x, t, sde).sum(), x)
        score = gm.score(x, t, sde)
        assert score.dtype == dtype
        torch.testing.assert_close(score, grad, **tol)


def test_score_is_differentiable_in_x():
    """The likelihood takes a VJP through the score: its Jacobian must be the Hessian of log p."""
    gm = mixtures()["full"]
    sde = ss.VPSDE()
    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = torch.tensor([0.2], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda y: gm.score(y, t, sde), x)[0, :, 0, :]
    hess = torch.autograd.functional.hessian(lambda y: gm.log_prob_t(y, t, sde).sum(), x)[0, :, 0]
    torch.testing.assert_close(jac, hess)
    torch.testing.assert_close(jac, jac.T)


def test_log_prob_t_at_zero_is_log_prob_for_vp_and_subvp():
    """``s(0) = 0`` for VP and sub-VP; VE's ``p_0`` is the data blurred by ``σ_min`` (that case is
    covered by the scipy comparison above)."""
    gm = mixtures()["diag"]
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for sde in SDES[:2]:
        torch.testing.assert_close(gm.log_prob_t(x, 0.0, sde), gm.log_prob(x))


def test_log_prob_t_approaches_the_prior():
    """At T the mixture's log-density is close to the prior's on prior samples, and closer
    than at earlier times (VP: m(1) ≈ 6.7e-3 leaves a ~1e-2 shift; VE keeps the data mean,
    a shift of |μ| / σ_max ≈ 0.07 standard deviations)."""
    gm = ss.toy_mixture()
    for sde in (ss.VPSDE(), ss.VESDE(0.01, 50.0)):
        gen = torch.Generator().manual_seed(4)
        z = sde.prior_sample((2000, 2), generator=gen, dtype=torch.float64)
        gaps = [
            float((gm.log_prob_t(z, t, sde) - sde.prior_logp(z)).abs().mean()) for t in (0.6, 0.8, 1.0)
        ]
        assert gaps[0] > gaps[1] > gaps[2]
        assert gaps[2] < 0.05


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_at_both_ends(dtype):
    gm = ss.toy_mixture()
    x = (10 * torch.randn(200, 2, generator=torch.Generator().manual_seed(5))).to(dtype)
    for sde in SDES:
        for t in (0.0, 1.0):
            assert torch.isfinite(gm.score(x, t, sde)).all()
            assert torch.isfinite(gm.log_prob_t(x, t, sde)).all()


def test_sample_matches_the_mixture():
    """n = 20,000 exact samples: χ² of soft counts (2 dof) below its 0.999 quantile 13.8, and
    every component mean/variance z-score below 4 (|z| > 4 has probability 6e-5 each)."""
    gm = ss.toy_mixture()
    x = gm.sample(20_000, generator=torch.Generator().manual_seed(6))
    st = ss.mixture_stats(gm, x)
    assert st.chi2 < stats.chi2.ppf(0.999, st.dof)
    assert st.max_abs_z < 4
    full = ss.GaussianMixture(gm.means[2:], gm.covariances()[2:])
    y = full.sample(20_000, generator=torch.Generator().manual_seed(7))
    cov = torch.cov(y.T)
    # Sample covariance entries have standard error at most sqrt(2/n) * max variance.
    assert float((cov - full.covariances()[0]).abs().max()) < 5 * math.sqrt(2 / 20_000) * 0.5


def test_event_shape_for_images():
    d = 1 * 2 * 2
    gm = ss.GaussianMixture(torch.zeros(2, d), [1.0, 2.0], event_shape=(1, 2, 2))
    x = gm.sample(7, generator=torch.Generator().manual_seed(8))
    assert x.shape == (7, 1, 2, 2)
    sde = ss.VPSDE()
    s = gm.score(x, 0.5, sde)
    assert s.shape == x.shape
    torch.testing.assert_close(gm.log_prob_t(x, 0.5, sde), gm.log_prob_t(x.reshape(7, d), 0.5, sde))


def test_at_gives_the_time_t_mixture():
    gm = ss.toy_mixture()
    sde = ss.SubVPSDE()
    x = gm.sample(30, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(gm.at(0.4, sde).log_prob(x), gm.log_prob_t(x, 0.4, sde))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([[0.0, 0.0], [1.0, 1.0]], [1.0, 1.0], [0.6, 0.6]), "weights"),
        (([[0.0, 0.0], [1.0, 1.0]], [1.0, 1.0], [1.5, -0.5]), "weights"),
        (([[0.0, 0.0], [1.0, 1.0]], [1.0, 1.0], [1.0]), "weights"),
        (([[0.0, 0.0], [1.0, 1.0]], [1.0, -1.0]), "stds_or_covs"),
        (([[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]]), "positive-definite"),
        (([[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]]), "symmetric"),
        (([[0.0, 0.0]], [[1.0, 1.0, 1.0]]), "stds_or_covs"),
        (([0.0, 0.0], [1.0]), "means"),
        (([[float("nan"), 0.0]], [1.0]), "means"),
    ],
)
def test_bad_mixture_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        ss.GaussianMixture(*args)


def test_bad_oracle_input():
    gm = ss.toy_mixture()
    sde = ss.VPSDE()
    with pytest.raises(ValueError, match="x contains NaN"):
        gm.score(torch.tensor([[float("nan"), 0.0]]), 0.5, sde)
    with pytest.raises(ValueError, match="x must have shape"):
        gm.log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="t must"):
        gm.score(torch.zeros(3, 2), torch.tensor([0.1, 0.2]), sde)
    with pytest.raises(ValueError, match="event_shape"):
        ss.GaussianMixture(torch.zeros(1, 4), [1.0], event_shape=(1, 3, 3))

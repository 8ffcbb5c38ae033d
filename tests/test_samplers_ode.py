"""The probability-flow ODE sampler and its encode / decode pair (torchdiffeq)."""

from __future__ import annotations

import pytest
import torch
import torchdiffeq
from conftest import SDES

import scoresde as ss
from scoresde.samplers import decode, encode, probability_flow

GM = ss.toy_mixture()



def _recording(score_fn):
    """A score_fn that records the times it is called at."""
    seen: list[torch.Tensor] = []

    def recorded(x, t):
        seen.append(t.detach().clone())
        return score_fn(x, t)

    return recorded, seen


def _near_gaussian():
    """A 4-D mixture close to N(0, I) under VP at t = T: its PF drift at T is nearly zero, so
    torchdiffeq's automatic first step would probe far outside [eps, T] (it did: t = -9.25)."""
    means = torch.tensor([[1.0] * 4, [-1.0] * 4])
    return ss.GaussianMixture(means, [0.5, 0.3], event_shape=(1, 2, 2))


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "dopri8"])
@pytest.mark.parametrize("sde_name", list(SDES))
def test_score_only_called_inside_eps_T(sde_name, method):
    """Adaptive solvers must never evaluate the score outside ``[eps, T]`` in either direction:
    sampling (T -> eps) and encoding (eps -> T), on the toy mixture in float64 and on a
    near-Gaussian image-shaped mixture in float32."""
    sde = SDES[sde_name]
    for gm, shape, dtype in ((GM, (256, 2), torch.float64), (_near_gaussian(), (64, 1, 2, 2), torch.float32)):
        score_fn, seen = _recording(gm.score_fn(sde))
        eps = ss.samplers.default_eps(sde)
        x, _ = ss.sample(score_fn, sde, shape, "ode", generator=torch.Generator().manual_seed(0),
                         dtype=dtype, method=method, denoise=False)
        encode(score_fn, sde, x, method=method, eps=1e-5)
        times = torch.cat(seen)
        lo = torch.tensor(min(eps, 1e-5), dtype=dtype).item()
        assert float(times.min()) >= lo and float(times.max()) <= sde.T


def test_plain_torchdiffeq_does_step_outside():
    """Why the guard exists: plain ``odeint`` on the same near-Gaussian problem evaluates the
    drift outside ``[eps, T]``, so the test above can fail."""
    sde, gm, eps = SDES["vp"], _near_gaussian(), 1e-3
    rev = sde.reverse(gm.score_fn(sde), probability_flow=True)
    seen = []

    def drift(t, x):
        seen.append(float(t))
        return rev.drift(x, t.clamp(eps, sde.T))

    x = sde.prior_sample((64, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    torchdiffeq.odeint(drift, x, torch.tensor([sde.T, eps]), rtol=1e-5, atol=1e-5)
    assert min(seen) < eps or max(seen) > sde.T


@pytest.mark.parametrize("sde_name", list(SDES))
def test_encode_decode_round_trip(sde_name):
    """``decode(encode(x)) ≈ x`` for 500 exact data points at rtol = atol = 1e-7.

    Each dopri5 step keeps its local error below ``atol + rtol |x| <= 6e-7`` (|x| <= 5); the
    ~100-150 steps each way add up to ~2e-4 before the flow's amplification, so we accept a mean
    |error| of 1e-5 and a max of 1e-3 (measured: mean ~2e-7, max ~2e-5 for all three SDEs).
    """
    sde = SDES[sde_name]
    x = GM.sample(500, generator=torch.Generator().manual_seed(3))
    score_fn, seen = _recording(GM.score_fn(sde))
    z, nfe_enc = encode(score_fn, sde, x, rtol=1e-7, atol=1e-7)
    assert nfe_enc == len(seen)
    x_back, nfe_dec = decode(score_fn, sde, z, rtol=1e-7, atol=1e-7)
    assert nfe_dec == len(seen) - nfe_enc
    err = (x_back - x).abs()
    assert float(err.mean()) <= 1e-5 and float(err.max()) <= 1e-3


def test_fixed_grid_round_trip_and_grid_times():
    """A fixed-grid method (rk4, 200 steps) evaluates only at grid and mid-grid times and its
    round trip is accurate to the O(h^4) truncation (bound 1e-3, measured below 1e-4)."""
    sde = SDES["vp"]
    x = GM.sample(200, generator=torch.Generator().manual_seed(4))
    score_fn, seen = _recording(GM.score_fn(sde))
    z, nfe = encode(score_fn, sde, x, method="rk4", steps=200, eps=1e-3)
    assert nfe == 4 * 200
    times = torch.cat(seen)
    assert float(times.min()) >= 1e-3 and float(times.max()) <= sde.T
    x_back, _ = decode(score_fn, sde, z, method="rk4", steps=200, eps=1e-3)
    assert float((x_back - x).abs().max()) <= 1e-3


@pytest.mark.parametrize("sde_name", ["vp", "ve"])
def test_encode_reaches_the_oracle_p_T(sde_name):
    """Encoding 3,000 exact data points gives latents distributed as the oracle's ``p_T``
    (mean ``m(T) Σ w μ``, covariance ``Σ w (C_k + μ'_k μ'_kᵀ) - mean meanᵀ``): each coordinate's
    mean within 4 standard errors ``sqrt(var / n)`` and variance within ``4 var sqrt(2 / n)``
    (a Gaussian-limit bound; p_T is a mixture, nearly Gaussian at T)."""
    sde = SDES[sde_name]
    x = GM.sample(3000, generator=torch.Generator().manual_seed(5))
    z, _ = encode(GM.score_fn(sde), sde, x)
    p_T = GM.at(sde.T, sde)
    mean = p_T.weights @ p_T.means
    second = torch.einsum("k,kde->de", p_T.weights,
                          p_T.covariances() + torch.einsum("kd,ke->kde", p_T.means, p_T.means))
    var = torch.diagonal(second - torch.outer(mean, mean))
    n = z.shape[0]
    assert bool(((z.mean(0) - mean).abs() <= 4 * (var / n).sqrt()).all())
    assert bool(((z.var(0) - var).abs() <= 4 * var * (2 / n) ** 0.5).all())


def test_ode_map_is_deterministic():
    """The PF-ODE map is a function of its input: two solves from the same x agree exactly."""
    sde = SDES["subvp"]
    x = sde.prior_sample((128, 2), generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    ts = torch.tensor([sde.T, 1e-3], dtype=torch.float64)
    a = probability_flow(GM.score_fn(sde), sde, x, ts)
    b = probability_flow(GM.score_fn(sde), sde, x.clone(), ts)
    assert torch.equal(a, b)

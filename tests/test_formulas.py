"""The SDE's one home for each formula and for its per-SDE defaults: each pinned against its
closed form on VP, sub-VP and VE, and a new SDE subclass changes the samplers' defaults alone."""

from __future__ import annotations

import math

import pytest
import torch

import scoresde as ss
from scoresde.samplers.common import Grid
from scoresde.samplers.fast import FAST, FastChoice, fast_choice
from scoresde.samplers.pc import default_snr
from scoresde.sde import posterior_mean

SDES = [ss.VPSDE(), ss.SubVPSDE(), ss.VESDE(0.01, 50.0)]
T64 = torch.tensor([1e-5, 1e-3, 0.1, 0.37, 0.8, 1.0], dtype=torch.float64)


def _linear_beta(sde, t):
    return sde.beta_min + t * (sde.beta_max - sde.beta_min)


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_drift_coef_is_minus_half_beta(sde):
    """``f(x, t) = drift_coef(t) x`` with ``-β(t) / 2`` for VP and sub-VP and ``0`` for VE."""
    expected = torch.zeros_like(T64) if isinstance(sde, ss.VESDE) else -0.5 * _linear_beta(sde, T64)
    torch.testing.assert_close(sde.drift_coef(T64), expected, rtol=1e-15, atol=0)
    x = torch.randn(len(T64), 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sde.drift(x, T64), expected[:, None] * x, rtol=1e-15, atol=0)


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_denoise_is_the_gaussian_posterior_mean(sde):
    """For data ``N(μ, v I)`` the posterior mean is ``μ + v m (x_t - m μ) / (m² v + s²)``; Tweedie
    with the oracle's exact score must give it (float64: agreement to rounding)."""
    mu, v = torch.tensor([0.7, -1.2], dtype=torch.float64), 0.3
    gm = ss.GaussianMixture(mu[None], torch.tensor([math.sqrt(v)], dtype=torch.float64),
                            torch.ones(1, dtype=torch.float64))
    x = torch.randn(len(T64), 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    m, s = sde.mean_coef(T64)[:, None], sde.std(T64)[:, None]
    expected = mu + v * m * (x - m * mu) / (m**2 * v + s**2)
    torch.testing.assert_close(sde.denoise(x, T64, gm.score_fn(sde)(x, T64)), expected,
                               rtol=1e-9, atol=1e-9)


def test_posterior_mean_takes_floats_and_tensors():
    x, score = torch.tensor([[1.0, 2.0]]), torch.tensor([[-0.5, 0.25]])
    expected = (x + 0.36 * score) / 0.8
    torch.testing.assert_close(posterior_mean(x, score, 0.8, 0.6), expected)
    m, std = torch.tensor([[0.8]]), torch.tensor([[0.6]])
    torch.testing.assert_close(posterior_mean(x, score, m, std), expected)


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_diffusion_matches_the_ratio_clock(sde):
    """``g(t)^2 = m(t)^2 dσ̃^2/dt`` for every affine SDE here: the identity the likelihood's clocks
    and the importance density ``g^2 / std^2 = 2 d log σ̃ / dt`` rest on (autograd, float64)."""
    t = T64[1:].clone().requires_grad_(True)
    (dratio2,) = torch.autograd.grad((sde.ratio(t) ** 2).sum(), t)
    torch.testing.assert_close(sde.mean_coef(t.detach()) ** 2 * dratio2, sde.diffusion(t.detach()) ** 2,
                               rtol=1e-10, atol=0)


@pytest.mark.parametrize("sde", SDES[:2], ids=repr)
def test_time_of_integral_inverts_the_integrated_beta(sde):
    """``B(t) = β_min t + t² (β_max - β_min) / 2`` and its inverse, shared by VP and sub-VP."""
    B = sde.beta_min * T64 + 0.5 * T64**2 * (sde.beta_max - sde.beta_min)
    torch.testing.assert_close(sde.integral(T64), B, rtol=1e-15, atol=0)
    torch.testing.assert_close(sde.time_of_integral(B), T64, rtol=1e-12, atol=0)
    torch.testing.assert_close(sde.mean_coef(T64), torch.exp(-B / 2), rtol=1e-15, atol=0)


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_check_eps_refuses_the_ends_and_nan(sde):
    sde.check_eps(1e-5)
    for bad in (0.0, -1e-3, sde.T, 2.0, math.nan):
        with pytest.raises(ValueError, match=r"eps must lie in \(0, T\)"):
            sde.check_eps(bad)


def test_per_sde_defaults_are_class_attributes():
    """The values the samplers, losses and likelihood used to pick by ``isinstance``."""
    vp, subvp, ve = SDES
    assert [s.sampling_eps for s in SDES] == [1e-3, 1e-3, 1e-5]
    assert [s.training_eps for s in SDES] == [1e-5, 1e-5, 1e-5]
    assert [s.corrector_snr for s in SDES] == [0.16, 0.16, 0.075]
    assert [s.discrete_chain for s in SDES] == ["ddpm", None, "smld"]
    assert [default_snr(s) for s in SDES] == [0.16, 0.16, 0.075]
    assert [ss.samplers.default_eps(s) for s in SDES] == [1e-3, 1e-3, 1e-5]
    for sde in SDES:
        assert fast_choice(sde) == FAST[type(sde)]
    assert (fast_choice(vp).sampler, fast_choice(vp).steps, fast_choice(vp).eps) == ("dpm++3m", 14, 3e-2)
    assert fast_choice(subvp).eps == 0.1
    assert (fast_choice(ve).sampler, fast_choice(ve).options) == ("unipc", {"order": 3})


@pytest.mark.parametrize("sde", [SDES[0], SDES[2]], ids=repr)
def test_ancestral_coefs_are_the_chains_closed_forms(sde):
    """VP: DDPM's ``((1 - β)^{-1/2}, β (1 - β)^{-1/2}, β^{1/2})`` with ``β = 1 - m(t)^2 / m(t')^2``;
    VE: SMLD's ``(1, σ^2 - σ'^2, (σ'^2 (σ^2 - σ'^2) / σ^2)^{1/2})``."""
    t, t_next = T64[1:], T64[:-1]
    a, b, c = sde.ancestral_coefs(t, t_next)
    if isinstance(sde, ss.VPSDE):
        beta = 1 - (sde.mean_coef(t) / sde.mean_coef(t_next)) ** 2
        expected = (1 / (1 - beta).sqrt(), beta / (1 - beta).sqrt(), beta.sqrt())
    else:
        var, var_next = sde.std(t) ** 2, sde.std(t_next) ** 2
        expected = (torch.ones_like(var), var - var_next, (var_next * (var - var_next) / var).sqrt())
    for got, want in zip((a, b, c), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_subvp_has_no_ancestral_chain():
    with pytest.raises(ValueError, match="SubVPSDE has no such chain"):
        SDES[1].ancestral_coefs(T64[1:], T64[:-1])


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_grid_tables_are_the_sde_methods(sde):
    ts = torch.tensor([1.0, 0.5, 0.1, 0.01], dtype=torch.float64)
    grid = Grid(sde, ts, torch.zeros(3, 2, dtype=torch.float64))
    torch.testing.assert_close(torch.tensor(grid.drift_coef, dtype=torch.float64), sde.drift_coef(ts))
    torch.testing.assert_close(torch.tensor(grid.ratio, dtype=torch.float64), sde.std(ts) / sde.mean_coef(ts))
    if sde.discrete_chain is not None:
        a, b, c = sde.ancestral_coefs(ts[:-1], ts[1:])
        table = torch.tensor(grid.ancestral, dtype=torch.float64)
        torch.testing.assert_close(table, torch.stack([a, b, c], 1))


class _TunedVE(ss.VESDE):
    """A user's SDE: only its class says where to stop, the corrector's snr and the fast choice."""

    sampling_eps = 2e-3
    corrector_snr = 0.1
    fast_sampler = FastChoice("ddim", "uniform", 5, 0.05)


class _Unmeasured(ss.VESDE):
    fast_sampler = None


def test_a_new_sde_subclass_brings_its_own_defaults():
    """Defaults follow the instance's class: ``sample`` stops at the class's ``sampling_eps`` and
    ``sampler="fast"`` runs the class's choice (5 DDIM steps + Tweedie = 6 score evaluations)."""
    sde = _TunedVE(0.01, 5.0)
    gm = ss.toy_mixture()
    _, info = ss.sample(gm.score_fn(sde), sde, (4, 2), "em", 3, generator=torch.Generator().manual_seed(0))
    assert info.eps == 2e-3 and float(info.ts[-1]) == pytest.approx(2e-3)
    assert default_snr(sde) == 0.1
    _, info = ss.sample(gm.score_fn(sde), sde, (4, 2), "fast", generator=torch.Generator().manual_seed(0))
    assert (info.sampler, info.nfe, info.eps) == ("ddim", 6, 0.05)
    with pytest.raises(ValueError, match="no measured choice for _Unmeasured"):
        fast_choice(_Unmeasured())

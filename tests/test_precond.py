"""EDM preconditioning for every SDE, its loss weighting, the log-normal noise levels, the LR decay.

The ``edm`` parameterisation is checked three ways: (1) its coefficients are pinned against EDM's
closed forms at chosen σ̃; (2) a "network" built from the analytic oracle (it reads σ̃ back from
``c_noise = ln σ̃ / 4`` and the noisy image back from ``c_in``, and returns the ideal
``F = (E[x_0|x_t] - c_skip x̂) / c_out``) makes the wrapper return the exact score and the exact
posterior mean for VP, sub-VP and VE; (3) for data ``N(0, σ_d² I)`` the network's input and its
ideal target have unit variance at every noise level (what preconditioning is for).
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TOY_SDES as SDES
from scipy import stats
from torch import nn

import scoresde as ss
from scoresde.losses import dsm_loss, lognormal_time
from scoresde.score import ScoreModel
from scoresde.shapes import append_dims

GM = ss.toy_mixture()


class OracleDenoiserNet(nn.Module):
    """The ideal ``F(c_in x̂, c_noise)`` of the oracle, written from EDM's definitions."""

    def __init__(self, sde, sigma_data):
        super().__init__()
        self.sde, self.sd = sde, sigma_data

    def forward(self, x_in, c_noise):
        sigma = torch.exp(4 * c_noise)
        t = self.sde.time_of_ratio(sigma).to(x_in.dtype)
        x_hat = x_in * (sigma**2 + self.sd**2).sqrt()[:, None]
        x_t = self.sde.mean_coef(t)[:, None] * x_hat
        std, m = self.sde.std(t)[:, None], self.sde.mean_coef(t)[:, None]
        denoised = (x_t + std**2 * GM.score(x_t, t, self.sde)) / m
        c_skip = self.sd**2 / (sigma**2 + self.sd**2)
        c_out = sigma * self.sd / (sigma**2 + self.sd**2).sqrt()
        return (denoised - c_skip[:, None] * x_hat) / c_out[:, None]


@pytest.mark.parametrize("sde_name", list(SDES))
def test_edm_coefficients_match_the_closed_forms(sde_name):
    """σ_d = 0.5. At σ̃ = 1: c_skip = 0.25/1.25, c_out = 0.5/√1.25, c_in = 1/√1.25, c_noise = 0;
    at σ̃ = 4: 0.25/16.25, 2/√16.25, 1/√16.25, ln 4 / 4."""
    sde = SDES[sde_name]
    model = ScoreModel(nn.Identity(), sde, "edm", sigma_data=0.5)
    t = sde.time_of_ratio(torch.tensor([1.0, 4.0]))
    c_skip, c_out, c_in, c_noise = model.preconditioning(t)
    expected = [[0.2, 0.25 / 16.25], [0.5 / math.sqrt(1.25), 2 / math.sqrt(16.25)],
                [1 / math.sqrt(1.25), 1 / math.sqrt(16.25)], [0.0, math.log(4) / 4]]
    for got, want in zip((c_skip, c_out, c_in, c_noise), expected, strict=True):
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("t", [0.05, 0.3, 0.9])
def test_edm_wrapper_of_the_ideal_network_gives_the_exact_score(sde_name, t):
    """Float64; the round trip through σ̃ = exp(4 c_noise) and time_of_ratio costs ~1e-12 in t,
    amplified by 1/std² near t = 0: tolerance 1e-7."""
    sde = SDES[sde_name]
    model = ScoreModel(OracleDenoiserNet(sde, 0.5), sde, "edm", sigma_data=0.5)
    x = GM.at(t, sde).sample(300, generator=torch.Generator().manual_seed(0))
    tt = torch.full((300,), t, dtype=torch.float64)
    exact = GM.score(x, tt, sde)
    torch.testing.assert_close(model(x, t), exact, rtol=1e-7, atol=1e-7)
    std, m = sde.std(tt)[:, None], sde.mean_coef(tt)[:, None]
    torch.testing.assert_close(model.denoise(x, t), (x + std**2 * exact) / m, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("sde_name", list(SDES))
def test_edm_input_and_target_have_unit_variance_at_every_level(sde_name):
    """Data N(0, σ_d² I), n = 20,000 per level: the sample variance of a unit-variance Gaussian has
    standard error √(2/n) ≈ 0.01, so 5 standard errors is 0.05."""
    sde, sd, n = SDES[sde_name], 0.5, 20_000
    model = ScoreModel(nn.Identity(), sde, "edm", sigma_data=sd)
    gen = torch.Generator().manual_seed(1)
    for sigma in (0.02, 0.3, 2.0, 10.0):
        t = sde.time_of_ratio(torch.tensor(sigma)).expand(n)
        c_skip, c_out, c_in, _ = model.preconditioning(t)
        x0 = sd * torch.randn(n, 1, generator=gen, dtype=torch.float64)
        mean, std = sde.marginal(x0, t)
        xt = mean + std * torch.randn(n, 1, generator=gen, dtype=torch.float64)
        x_hat = xt / append_dims(sde.mean_coef(t), 2)
        net_in = append_dims(c_in, 2) * x_hat
        target = (x0 - append_dims(c_skip, 2) * x_hat) / append_dims(c_out, 2)
        assert abs(float(net_in.var()) - 1) < 0.05, sigma
        assert abs(float(target.var()) - 1) < 0.05, sigma


@pytest.mark.parametrize("sde_name", list(SDES))
def test_edm_weighting_is_edms_denoiser_loss(sde_name):
    """``dsm_loss(weighting="edm")`` equals EDM's ``λ(σ̃) ||D - x_0||²`` with
    ``λ = (σ̃² + σ_d²) / (σ̃ σ_d)²``, for the same draws of t and ε (same generator seed)."""
    sde, sd = SDES[sde_name], 0.5
    net = nn.Linear(2, 2).double()
    model = ScoreModel(_Wrap(net), sde, "edm", sigma_data=sd)
    x0 = GM.sample(64, generator=torch.Generator().manual_seed(2))
    loss = dsm_loss(model, sde, x0, weighting_name="edm", time_dist="lognormal", sigma_data=sd,
                    generator=torch.Generator().manual_seed(3), reduction="none")
    gen = torch.Generator().manual_seed(3)
    t = lognormal_time(sde, 64, generator=gen, dtype=x0.dtype)
    z = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    mean, std = sde.marginal(x0, t)
    sigma = sde.ratio(t)
    lam = (sigma**2 + sd**2) / (sigma * sd) ** 2
    direct = lam * (model.denoise(mean + std * z, t) - x0).pow(2).sum(1)
    torch.testing.assert_close(loss, direct, rtol=1e-9, atol=1e-9)


class _Wrap(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, c_noise):
        return self.net(x) * (1 + c_noise[:, None])


@pytest.mark.parametrize("sde_name", list(SDES))
def test_lognormal_times_follow_the_truncated_lognormal(sde_name):
    """n = 20,000 draws of ln σ̃(t) against the truncated N(-1.2, 1.2²) on [ln σ̃(eps), ln σ̃(T)]:
    a Kolmogorov–Smirnov test at p > 0.001 (seeded, so it either always passes or always fails)."""
    sde, eps = SDES[sde_name], 1e-5
    t = lognormal_time(sde, 20_000, eps=eps, generator=torch.Generator().manual_seed(4),
                       dtype=torch.float64)
    assert float(t.min()) >= eps and float(t.max()) <= sde.T
    a, b = ((sde.ratio(torch.tensor([eps, sde.T])).log() + 1.2) / 1.2).tolist()
    p = stats.kstest(sde.ratio(t).log().numpy(), stats.truncnorm(a, b, loc=-1.2, scale=1.2).cdf).pvalue
    assert p > 1e-3


def test_lognormal_rejects_bad_spread():
    with pytest.raises(ValueError, match="p_std"):
        lognormal_time(ss.VPSDE(), 4, p_std=0.0)
    with pytest.raises(ValueError, match="time_dist"):
        dsm_loss(lambda x, t: x, ss.VPSDE(), torch.zeros(2, 2), time_dist="beta")


def test_cosine_schedule_after_warmup(tmp_path):
    """``lr_k = lr min(1, (k+1)/W) (r + (1 - r)(1 + cos(π min(k, K)/K))/2)``, pinned at a few k."""
    from scoresde.data import TensorLoader
    from scoresde.losses import make_loss
    from scoresde.networks import MLP

    sde = ss.VPSDE()
    trainer = ss.Trainer(ScoreModel(MLP(2, 8, 1), sde), make_loss("dsm", sde),
                         TensorLoader(torch.zeros(8, 2), 4), run_dir=tmp_path, lr=1.0, warmup=10,
                         lr_schedule="cosine", lr_decay_steps=100, lr_min_ratio=0.1, progress=False)
    assert trainer.lr_at(0) == pytest.approx(0.1 * (0.1 + 0.9 * (1 + math.cos(0)) / 2))
    assert trainer.lr_at(50) == pytest.approx(0.1 + 0.9 * 0.5)
    assert trainer.lr_at(100) == pytest.approx(0.1)
    assert trainer.lr_at(500) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="lr_decay_steps"):
        ss.Trainer(ScoreModel(MLP(2, 8, 1), sde), make_loss("dsm", sde), TensorLoader(torch.zeros(8, 2), 4),
                   run_dir=tmp_path, lr_schedule="cosine", progress=False)

"""ScoreModel: each parameterisation recovers the score; Tweedie matches the mixture's posterior mean.

A "network" built from the oracle in each parameterisation (ε = -std s, x̂0 = (x + std² s)/m,
or s itself) must give back the oracle score. The denoiser is checked against ``E[x_0 | x_t]``
computed independently from Gaussian conditioning within each component:
``Σ_k r_k(x_t) (μ_k + m Σ_k (m² Σ_k + s² I)^{-1} (x_t - m μ_k))``.
Float64; tolerance 1e-8 for the score, 1e-6 for the denoiser (a matrix inverse and a
division by m(t) ≈ 0.1 amplify rounding).
"""

from __future__ import annotations

import pytest
import torch
from conftest import TOY_SDES as SDES
from torch import nn

import scoresde as ss
from scoresde.score import ScoreModel

GM = ss.toy_mixture()


class OracleNet(nn.Module):
    def __init__(self, sde, parameterization):
        super().__init__()
        self.sde, self.p = sde, parameterization

    def forward(self, x, t):
        s = GM.score(x, t, self.sde)
        std, m = self.sde.std(t)[:, None], self.sde.mean_coef(t)[:, None]
        return {"score": s, "eps": -std * s, "x0": (x + std**2 * s) / m}[self.p]


def _posterior_mean(x, t, sde):
    m, s = sde.mean_coef(torch.tensor(t)), sde.std(torch.tensor(t))
    covs = GM.covariances()
    eye = torch.eye(2, dtype=torch.float64)
    gain = m * covs @ torch.linalg.inv(m**2 * covs + s**2 * eye)  # (K, 2, 2)
    cond = GM.means + torch.einsum("kde,bke->bkd", gain, x[:, None, :] - m * GM.means)
    resp = GM.at(t, sde).responsibilities(x)
    return torch.einsum("bk,bkd->bd", resp, cond)


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("parameterization", ["eps", "score", "x0"])
def test_parameterisations_and_tweedie(sde_name, parameterization):
    sde = SDES[sde_name]
    model = ScoreModel(OracleNet(sde, parameterization), sde, parameterization)
    t = 0.3
    x = GM.at(t, sde).sample(200, generator=torch.Generator().manual_seed(0))
    tt = torch.full((200,), t, dtype=torch.float64)
    torch.testing.assert_close(model(x, t), GM.score(x, tt, sde), rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(model.denoise(x, t), _posterior_mean(x, t, sde), rtol=1e-6, atol=1e-6)


def test_bad_parameterization():
    with pytest.raises(ValueError, match=r"parameterization must be one of \('eps', 'score', 'x0', 'edm'\)"):
        ScoreModel(nn.Identity(), ss.VPSDE(), "v")

"""The ELBO on integer data (discretised decoder, bits/dim), image shapes, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

import scoresde as ss
from scoresde.elbo import _decoder_nll, _prepare

Z_MAX = 4.0
LEVELS = 256


def test_discretised_decoder_is_a_normalised_distribution():
    """Summed over all ``L`` values, ``P(x | mean, std)`` is 1 (end bins reach ±∞) up to float32
    rounding of ``L`` terms, and far-off means give finite log-probabilities (log-space tails)."""
    data = _prepare(torch.arange(LEVELS).reshape(LEVELS, 1), LEVELS, (-1.0, 1.0))
    gen = torch.Generator().manual_seed(0)
    for mean, std in zip(4 * torch.randn(8, generator=gen), torch.rand(8, generator=gen) + 1e-3,
                         strict=True):
        nll = _decoder_nll(data, data.x0, mean.expand(LEVELS, 1), std.expand(LEVELS, 1))
        assert float(torch.exp(-nll).sum()) == pytest.approx(1.0, abs=LEVELS * 2**-23)
    far = _decoder_nll(data, data.x0, torch.full((LEVELS, 1), 40.0), torch.full((LEVELS, 1), 0.01))
    assert bool(torch.isfinite(far).all())


def _quantised_mixture():
    """A 2-D diagonal two-component mixture on [-1, 1] and its exact law after quantisation."""
    means = torch.tensor([[-0.4, 0.2], [0.3, -0.3]], dtype=torch.float64)
    stds = torch.tensor([[0.2, 0.3], [0.25, 0.15]], dtype=torch.float64)
    return ss.GaussianMixture(means, stds, torch.tensor([0.6, 0.4], dtype=torch.float64))


def _exact_nll(gm: ss.GaussianMixture, k: torch.Tensor) -> torch.Tensor:
    """``-log P(k)``: the mixture's mass in each value's bin (end bins to ±∞), per sample."""
    width = 2.0 / (LEVELS - 1)
    centre = -1 + width * k.double()
    lo = torch.where(k == 0, -math.inf, centre - width / 2).unsqueeze(1)
    hi = torch.where(k == LEVELS - 1, math.inf, centre + width / 2).unsqueeze(1)
    normal = torch.distributions.Normal(gm.means, gm.eigvals.sqrt())
    mass = (normal.cdf(hi) - normal.cdf(lo)).prod(-1)
    return -(mass * gm.weights).sum(1).log()


def _quantise(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) / 2 * (LEVELS - 1)).round().clamp(0, LEVELS - 1).long()


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_integer_data_bound_is_above_the_entropy_and_below_uniform(kind):
    """On 8-bit mixture data, with DDPM's 1000 steps (std at step 1 ≈ one bin), ``E[bound] >=
    E[-log P(x)]`` (Gibbs; the oracle's score is that
    of the unquantised mixture, a model like any other) up to 4 SEs of the batch mean, and it
    beats the uniform code ``D ln L`` by a margin of 4 SEs; bits/dim is ``nats / (D ln 2)``."""
    gm, sde = _quantised_mixture(), ss.VPSDE()
    k = _quantise(gm.sample(200, generator=torch.Generator().manual_seed(1)))
    kw = {"kind": kind, "steps": 1000, "num_levels": LEVELS}
    res = ss.elbo(gm.score_fn(sde), sde, k, generator=torch.Generator().manual_seed(2), **kw)
    gap = res.nll_bound - _exact_nll(gm, k)
    se = float(gap.std()) / math.sqrt(len(gap))
    assert float(gap.mean()) > -Z_MAX * se
    assert float(res.nll_bound.mean()) < 2 * math.log(LEVELS) - Z_MAX * se
    bpd = ss.elbo_bits_per_dim(gm.score_fn(sde), sde, k, generator=torch.Generator().manual_seed(2),
                               **kw)
    torch.testing.assert_close(bpd, res.nll_bound / (2 * math.log(2)))


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_images_of_any_shape(kind):
    """``(batch, c, h, w)`` data give the same bound as the same values flattened."""
    gm = ss.GaussianMixture(torch.zeros(1, 8), torch.full((1, 8), 0.5), event_shape=(2, 2, 2))
    flat = ss.GaussianMixture(torch.zeros(1, 8), torch.full((1, 8), 0.5))
    sde = ss.VPSDE()
    x = gm.sample(5, generator=torch.Generator().manual_seed(3))
    kw = {"kind": kind, "steps": 50, "n_t": 4}
    img = ss.elbo(gm.score_fn(sde), sde, x, generator=torch.Generator().manual_seed(4), **kw)
    vec = ss.elbo(flat.score_fn(sde), sde, x.reshape(5, 8), generator=torch.Generator().manual_seed(4),
                  **kw)
    torch.testing.assert_close(img.nll_bound, vec.nll_bound)
    assert img.nll_bound.shape == (5,)


def test_bits_per_dim_switch_uses_the_bound():
    """``ss.bits_per_dim(estimator="elbo")`` is the bound through the dequantisation arithmetic:
    it agrees with the ODE estimate within their standard errors plus the bound's gap, which is
    small (< 0.05 bits/dim measured) for the exact score."""
    gm, sde = _quantised_mixture(), ss.VPSDE()
    k = _quantise(gm.sample(200, generator=torch.Generator().manual_seed(5)))
    kw = {"num_levels": LEVELS, "generator": torch.Generator().manual_seed(6)}
    ode = ss.bits_per_dim(gm.score_fn(sde), sde, k, **kw)
    bound = ss.bits_per_dim(gm.score_fn(sde), sde, k, estimator="elbo", kind="continuous", **kw)
    assert abs(bound.mean - ode.mean) < Z_MAX * math.hypot(bound.stderr, ode.stderr) + 0.05


def _call(**kw):
    gm = ss.toy_mixture()
    sde = kw.pop("sde", ss.VPSDE())
    x = kw.pop("x", gm.sample(4, generator=torch.Generator().manual_seed(0)))
    return ss.elbo(gm.score_fn(sde), sde, x, **kw)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"steps": 1}, "steps"),
        ({"steps": 20}, "steps must exceed beta_max"),
        ({"sde": ss.VESDE()}, "needs a VPSDE"),
        ({"sde": ss.SubVPSDE()}, "needs a VPSDE"),
        ({"kind": "ddpm"}, r"kind must be one of \('discrete', 'continuous'\)"),
        ({"variance": "learned"}, "variance must be one of"),
        ({"n_t": 1}, "n_t"),
        ({"n_rec": 1}, "n_rec"),
        ({"kind": "continuous", "eps": 0.0}, "eps"),
        ({"kind": "continuous", "eps": 1.0}, "eps"),
        ({"x": torch.tensor([[0, 256]])}, r"x must hold integer values in \[0, 256\)"),
        ({"x": torch.tensor([[-1, 3]])}, "x must hold integer values"),
        ({"x": torch.zeros(4)}, "x must have shape"),
        ({"x": torch.tensor([[0.0, math.nan]])}, "x contains NaN"),
    ],
)
def test_bad_input_raises_value_error_naming_it(kw, match):
    with pytest.raises(ValueError, match=match):
        _call(**kw)


def test_bits_per_dim_rejects_non_integer_images():
    gm, sde = ss.toy_mixture(), ss.VPSDE()
    with pytest.raises(ValueError, match="images must hold integer values"):
        ss.elbo_bits_per_dim(gm.score_fn(sde), sde, torch.tensor([[0.5, 2.0]]))

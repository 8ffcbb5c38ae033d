"""A score function that breaks its contract is refused on its first call, by name: a wrong
(broadcast) output shape in every sampler and in the likelihood, an output detached from ``x``
in the likelihood (which differentiates it); and a sampler's time grid must decrease."""

from __future__ import annotations

import pytest
import torch

import scoresde as ss
from scoresde.samplers import ddim
from scoresde.score_contract import CheckedScore

GM = ss.toy_mixture()
SDE = ss.VPSDE()
X = GM.sample(8, generator=torch.Generator().manual_seed(0))


def broadcast_score(x, t):
    """One number per sample, which broadcasts against ``x`` of shape ``(batch, 2)``."""
    return -x.sum(1, keepdim=True)


@pytest.mark.parametrize("sampler", ["em", "ddim", "dpm++2m", "ode", "pc", "heun"])
def test_samplers_refuse_a_broadcast_score(sampler):
    with pytest.raises(ValueError, match=r"score_fn returned shape \(8, 1\) for x of shape \(8, 2\)"):
        ss.sample(broadcast_score, SDE, (8, 2), sampler=sampler, steps=4,
                  generator=torch.Generator().manual_seed(0))


def test_likelihood_refuses_a_broadcast_score():
    with pytest.raises(ValueError, match="score_fn returned shape"):
        ss.log_likelihood(broadcast_score, SDE, X, trace="exact")


def test_likelihood_refuses_a_detached_score():
    """The exact score computed under ``no_grad`` has zero divergence: refused, not 10 nats off."""
    exact = GM.score_fn(SDE)

    def detached(x, t):
        with torch.no_grad():
            return exact(x, t)

    with pytest.raises(ValueError, match="detached from x"):
        ss.log_likelihood(detached, SDE, X, trace="exact")
    ss.log_likelihood(exact, SDE, X, trace="exact", rtol=1e-3, atol=1e-3)  # the same score attached


def test_the_check_runs_on_the_first_call_only():
    calls = []

    def score(x, t):
        calls.append(1)
        return -x if len(calls) == 1 else -x[:, :1]  # wrong from the second call on

    checked = CheckedScore(score)
    checked(X, torch.ones(8))
    assert checked(X, torch.ones(8)).shape == (8, 1) and checked.checked


def test_samplers_refuse_an_increasing_grid():
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    message = r"ts must be a strictly decreasing .* ts\[0\] = 0.001 <= ts\[1\] = 0.5"
    with pytest.raises(ValueError, match=message):
        ddim(GM.score_fn(SDE), SDE, x, torch.tensor([1e-3, 0.5, 1.0], dtype=torch.float64))

"""Classifier guidance on the oracle: with the exact noisy classifier ``log p_t(k | x)`` (the log
responsibility of component ``k`` under ``p_t``), Bayes' rule for scores,
``∇ log p_t(x) + ∇ log p_t(k | x) = ∇ log (w_k N_k,t(x))``, makes the guided score at scale 1 the
exact score of component ``k``'s own noisy marginal, at every ``t``, on every SDE."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import SDES

import scoresde as ss

N = 2000
TIMES = [1e-5, 1e-3, 0.1, 0.5, 1.0]


def points(n: int = 64, seed: int = 0) -> torch.Tensor:
    return 4 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("sde_name", SDES)
@pytest.mark.parametrize("k", [0, 1, 2])
def test_guided_score_at_scale_one_is_the_components_score(sde_name, k):
    """Pointwise, to float64 precision: ``s(x, t) + ∇ log p_t(k | x) = ∇ log N_k,t(x)``."""
    sde, gm = SDES[sde_name], ss.toy_mixture()
    guided = ss.classifier_guidance(gm.score_fn(sde), gm.class_logits_fn(sde), k)
    x = points()
    for t in TIMES:
        expected = gm.component(k).score(x, t, sde)
        got = guided(x, torch.full((x.shape[0],), t, dtype=torch.float64))
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9 * expected.abs().max()), t


def test_per_sample_labels_and_the_scale():
    """A ``(batch,)`` label tensor guides each sample to its own class; scale ``w`` adds ``w``
    times the classifier gradient ``∇ log N_k,t - ∇ log p_t``; scale 0 is the unconditional score."""
    sde, gm = SDES["vp"], ss.toy_mixture()
    score, logits = gm.score_fn(sde), gm.class_logits_fn(sde)
    x, t = points(6), torch.full((6,), 0.3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    expected = torch.stack([gm.component(int(k)).score(x[i:i + 1], 0.3, sde)[0]
                            for i, k in enumerate(y)])
    assert torch.allclose(ss.classifier_guidance(score, logits, y)(x, t), expected, atol=1e-10)
    twice = ss.classifier_guidance(score, logits, y, scale=2.0)(x, t)
    assert torch.allclose(twice, score(x, t) + 2 * (expected - score(x, t)), atol=1e-10)
    assert torch.equal(ss.classifier_guidance(score, logits, y, scale=0.0)(x, t), score(x, t))


def test_guidance_works_under_no_grad_and_detaches():
    sde, gm = SDES["ve"], ss.toy_mixture()
    guided = ss.classifier_guidance(gm.score_fn(sde), gm.class_logits_fn(sde), 1)
    x, t = points(8), torch.full((8,), 0.2, dtype=torch.float64)
    with torch.no_grad():
        out = guided(x, t)
    assert not out.requires_grad
    assert torch.allclose(out, gm.component(1).score(x, 0.2, sde), atol=1e-10)


def test_guided_score_is_differentiable_when_the_caller_differentiates():
    """As the likelihood's divergence needs: with ``x.requires_grad`` the graph is kept, and the
    Jacobian of the guided score is the component's ``-C_k,t^{-1}``, ``C = m² Σ_k + std² I``."""
    sde, gm, k, t = SDES["subvp"], ss.toy_mixture(), 2, 0.4
    guided = ss.classifier_guidance(gm.score_fn(sde), gm.class_logits_fn(sde), k)
    x = points(5).requires_grad_(True)
    s = guided(x, torch.full((5,), t, dtype=torch.float64))
    tt = torch.tensor(t, dtype=torch.float64)
    cov = sde.mean_coef(tt) ** 2 * gm.covariances()[k] + sde.std(tt) ** 2 * torch.eye(2, dtype=torch.float64)
    for j in range(2):
        (row,) = torch.autograd.grad(s[:, j].sum(), x, retain_graph=True)
        assert torch.allclose(row, -torch.linalg.inv(cov)[j].expand(5, 2), atol=1e-9)


@pytest.mark.parametrize("sde_name", SDES)
def test_sampling_with_the_exact_classifier_draws_component_k_alone(sde_name):
    """``ss.sample`` (DPM-Solver++(2M), 50 steps) with the guided score for ``k = 2`` (weight 0.2):
    at least 99 % of ``n = 2,000`` samples are assigned to ``k`` by the oracle, and no more
    leave it than an exact sample of ``N_k`` would (its misassignment rate ``p`` from 10⁵ exact
    draws; allowed ``n p + 4 sqrt(n p) + 1``). The assigned samples' mean and variance along each
    axis are within 4 standard errors of ``μ_k`` and ``diag Σ_k`` (z-scores of
    ``ss.mixture_stats`` against the component alone: ``σ / sqrt(n)`` and ``σ² sqrt(2 / n)``)."""
    sde, gm, k = SDES[sde_name], ss.toy_mixture(), 2
    guided = ss.classifier_guidance(gm.score_fn(sde), gm.class_logits_fn(sde), k)
    x, _ = ss.sample(guided, sde, (N, 2), "dpm++2m", 50, dtype=torch.float64,
                     generator=torch.Generator().manual_seed(3))
    inside = gm.assign(x) == k
    exact = gm.component(k).sample(100_000, generator=torch.Generator().manual_seed(4))
    p = float((gm.assign(exact) != k).double().mean())
    assert inside.double().mean() >= 0.99
    assert int((~inside).sum()) <= N * p + 4 * math.sqrt(N * p) + 1
    stats = ss.mixture_stats(gm.component(k), x[inside])
    assert stats.max_abs_z < 4, (stats.mean_z, stats.std_z)


def test_bad_inputs_name_the_argument():
    sde, gm = SDES["vp"], ss.toy_mixture()
    score, logits = gm.score_fn(sde), gm.class_logits_fn(sde)
    x, t = points(4), torch.full((4,), 0.5, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"y must lie in \[0, 3\)"):
        ss.classifier_guidance(score, logits, 3)(x, t)
    with pytest.raises(ValueError, match=r"y must lie in"):
        ss.classifier_guidance(score, logits, torch.tensor([0, 1, -1, 2]))(x, t)
    with pytest.raises(ValueError, match=r"y must be a scalar or have shape \(batch,\)"):
        ss.classifier_guidance(score, logits, torch.tensor([0, 1]))(x, t)
    with pytest.raises(ValueError, match="y must hold integer"):
        ss.classifier_guidance(score, logits, torch.tensor([0.0, 1, 1, 2]))(x, t)
    with pytest.raises(ValueError, match="scale must be a finite number"):
        ss.classifier_guidance(score, logits, 0, scale=float("nan"))
    with pytest.raises(ValueError, match=r"log_prob_y must return logits of shape \(batch, classes\)"):
        ss.classifier_guidance(score, lambda x, t: logits(x, t)[0], 0)(x, t)

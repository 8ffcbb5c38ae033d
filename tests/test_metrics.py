"""Sample-quality statistics."""

import pytest
import torch
from scipy import stats

import scoresde as ss


def test_sliced_wasserstein_of_a_shift_in_one_dimension_is_the_shift():
    """In 1-D every unit direction is ±1, so SW2 between x and x + c is exactly |c|."""
    x = torch.randn(500, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert ss.sliced_wasserstein(x, x) == 0.0
    assert ss.sliced_wasserstein(x, x + 0.7) == pytest.approx(0.7, rel=1e-12)


def test_sliced_wasserstein_rejects_dimension_mismatch():
    with pytest.raises(ValueError, match="same dimension"):
        ss.sliced_wasserstein(torch.zeros(3, 2), torch.zeros(3, 3))



def test_sliced_wasserstein_to_a_fixed_reference_is_the_pairwise_distance():
    """The precomputed form (one set of directions, the reference sorted once) gives the same
    number as the one-call form with the same generator seed, for samples of several sizes."""
    from scoresde.metrics import SlicedWasserstein

    gen = torch.Generator().manual_seed(0)
    ref, x = torch.randn(500, 3, generator=gen), torch.randn(800, 3, generator=gen) + 0.2
    fixed = SlicedWasserstein(ref, 64, torch.Generator().manual_seed(1))
    for n in (50, 500, 800):
        one_call = ss.sliced_wasserstein(x[:n], ref, 64, torch.Generator().manual_seed(1))
        assert fixed(x[:n]) == one_call
    with pytest.raises(ValueError, match="same dimension"):
        fixed(torch.zeros(4, 2))

def test_mixture_stats_separate_exact_from_biased_samples():
    """n = 5,000. Exact samples: χ² below its 0.999 quantile, |z| < 4. Samples with the weights
    of two components swapped give χ² far above it; samples with every std inflated by 10 %
    give std z-scores near 0.21 var / (var sqrt(2/n_k)) ≈ 5–10, far above 4."""
    gm = ss.toy_mixture()
    n = 5_000
    gen = torch.Generator().manual_seed(1)
    good = ss.mixture_stats(gm, gm.sample(n, generator=gen))
    assert good.chi2 < stats.chi2.ppf(0.999, good.dof) and good.max_abs_z < 4
    swapped = ss.GaussianMixture(gm.means, gm.covariances(), [0.3, 0.5, 0.2])
    bad_w = ss.mixture_stats(gm, swapped.sample(n, generator=gen))
    assert bad_w.chi2 > 10 * stats.chi2.ppf(0.999, bad_w.dof)
    wide = ss.GaussianMixture(gm.means, 1.21 * gm.covariances(), gm.weights)
    bad_s = ss.mixture_stats(gm, wide.sample(n, generator=gen))
    assert bad_s.std_z.abs().max() > 4

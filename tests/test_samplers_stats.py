"""Every sampler reproduces the oracle's Gaussian mixture, with exact scores and no training.

Tolerances (derived once here, used by every test below):

* Weights: the soft component counts of ``n`` exact samples give a statistic ``χ²`` with
  ``K - 1`` degrees of freedom; we accept ``χ² <= χ²_{K-1}.isf(1e-3)`` (13.8 for ``K = 3``), a
  0.1 % false-alarm rate for an exact sampler.
* Component means and variances: ``mixture_stats`` turns each into a z-score with its sampling
  error (``sqrt(Σ_dd / n_k)`` and ``Σ_dd sqrt(2 / n_k)``). With ``m = 2 K d`` z-scores, a
  Bonferroni bound ``|z| <= Φ^{-1}(1 - 1e-3 / (2 m))`` (3.94 for ``d = 2``, 4.42 for ``d = 16``)
  keeps the family-wise false-alarm rate below 0.1 %.
* Sliced-W2 to a fresh exact sample of the same size: under an exact sampler the distance has
  the law of the distance between two independent exact samples (the noise floor, dominated by
  the multinomial noise of the weights). We draw 8 such exact pairs, and accept
  ``SW <= mean + 4 sd`` of their distances (Cantelli: at most 1/17 for one test if the floor's
  mean and sd were known; the floor is near-Gaussian so the real rate is far smaller).

Discretisation bias: the step counts below were chosen by running each sampler on 30,000 points
(10x the test size) and keeping the bias below ~1 z-unit at n = 3,000 (|z| at 30,000 / sqrt(10));
e.g. VP Euler–Maruyama: |z| <= 1.8 at 250 steps; DDIM needs 100 steps (|z| = 8 at 30,000 with
50), Heun 40 steps (|z| = 10 at 30,000 with 18); Heun with EDM's churn ``γ = 0.25`` 100 steps
(max |z| 1.2-2.6 at 10,000 over two seeds and the three SDEs; 3.8-5.1 with 40 steps, where the
churn's own discretisation error shows). Annealed Langevin is tested at its defaults by
``test_ald_defaults_unbiased`` on 18,000 pooled points (``benchmarks/results/ald_bias.json``:
χ² 23 / 31 on VE / VP with the old 200 levels); it is not tested on sub-VP, where the levels'
means move by ``1 - m(t) ≈ std(t) / 2`` and the small late steps cannot follow them
(max |z| 17.7 with 800 levels and 11.5 with 1,600 on the same 18,000 points). The Tweedie
denoising step and stopping at ``eps`` change the variances by ``std(eps)^2 / Σ_dd <= 1.3e-3``
relative, far below the resolution ``sqrt(2 / n_k) >= 0.058``. Seeds are fixed, so the outcome
is deterministic.
"""

from __future__ import annotations

import functools

import pytest
import torch
from conftest import SDES
from scipy import stats

import scoresde as ss

N = 3000
FALSE_ALARM = 1e-3
COMMON = [
    ("em", {"steps": 250}),
    ("reverse_diffusion", {"steps": 250}),
    ("pc", {"steps": 250}),
    ("ode", {}),
    ("ddim", {"steps": 100}),
    ("heun", {"steps": 40}),
]
CASES = (
    [("vp", s, o) for s, o in COMMON]
    + [("vp", "ancestral", {"steps": 250}), ("vp", "ddim", {"steps": 250, "eta": 1.0})]
    + [("vp", "pc", {"steps": 250, "corrector": "ald"})]
    + [("subvp", s, o) for s, o in COMMON]
    + [("ve", s, o) for s, o in COMMON]
    + [("ve", "ancestral", {"steps": 250})]
    + [(d, "heun", {"steps": 100, "s_churn": 25.0}) for d in ("vp", "subvp", "ve")]
)



def mixture16() -> ss.GaussianMixture:
    """A 16-D, three-component mixture: means ~3 from the origin, per-axis stds in [0.3, 0.8]."""
    g = torch.Generator().manual_seed(16)
    means = 3.0 * torch.nn.functional.normalize(torch.randn(3, 16, generator=g, dtype=torch.float64), dim=1)
    stds = 0.3 + 0.5 * torch.rand(3, 16, generator=g, dtype=torch.float64)
    return ss.GaussianMixture(means, stds, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))


@functools.cache
def sw_bound(dim: int) -> float:
    """``mean + 4 sd`` of the sliced-W2 between 8 pairs of exact samples of size ``N``."""
    gm = ss.toy_mixture() if dim == 2 else mixture16()
    g = torch.Generator().manual_seed(100)
    floor = torch.tensor([
        ss.sliced_wasserstein(gm.sample(N, g), gm.sample(N, g), generator=torch.Generator().manual_seed(7))
        for _ in range(8)
    ])
    return float(floor.mean() + 4 * floor.std())


def check_against_oracle(gm: ss.GaussianMixture, x: torch.Tensor) -> None:
    """The χ², z and sliced-W2 acceptance tests of the module docstring."""
    st = ss.mixture_stats(gm, x)
    chi2_max = stats.chi2.isf(FALSE_ALARM, st.dof)
    z_max = stats.norm.isf(FALSE_ALARM / (2 * 2 * gm.n_components * gm.dim))
    assert st.chi2 <= chi2_max, f"weights {st.weights.tolist()}: chi2 {st.chi2:.1f} > {chi2_max:.1f}"
    assert st.max_abs_z <= z_max, f"max |z| {st.max_abs_z:.2f} > {z_max:.2f}"
    ref = gm.sample(N, generator=torch.Generator().manual_seed(2))
    sw = ss.sliced_wasserstein(x, ref, generator=torch.Generator().manual_seed(7))
    assert sw <= sw_bound(gm.dim), f"sliced W2 {sw:.3f} > {sw_bound(gm.dim):.3f}"


@pytest.mark.parametrize(
    ("sde_name", "sampler", "options"), CASES,
    ids=[f"{d}-{s}-" + "-".join(f"{k}={v}" for k, v in o.items()) for d, s, o in CASES],
)
def test_sampler_reproduces_toy_mixture(sde_name, sampler, options):
    """n = 3,000 samples of the 2-D toy mixture pass the χ², z and sliced-W2 tests above."""
    gm, sde = ss.toy_mixture(), SDES[sde_name]
    x, info = ss.sample(gm.score_fn(sde), sde, (N, 2), sampler, generator=torch.Generator().manual_seed(1),
                        dtype=torch.float64, **options)
    assert x.shape == (N, 2) and info.nfe > 0
    check_against_oracle(gm, x)


@pytest.mark.parametrize(("sde_name", "sampler", "options"), [
    ("vp", "pc", {"steps": 250, "snr": 0.03, "norms": "sample"}),
    ("ve", "ode", {}),
])
def test_sampler_reproduces_16d_mixture(sde_name, sampler, options):
    """d = 16: PC with the per-sample (``norms="sample"``) Langevin corrector and the adaptive
    PF-ODE pass the same tests with m = 2 K d = 96 z-scores.

    The per-sample step ``ε = 2 α (r ||z|| / ||s||)^2`` depends on the position (through ``||s||``)
    and on the very noise it scales, so each corrector step inflates the variance by a bias that
    grows like ``r^2`` and does not shrink with more steps: measured at n = 3,000, max variance
    |z| = 13 at the default r = 0.16, 5.0 at r = 0.05, 3.6 at r = 0.03. We test r = 0.03.
    """
    gm, sde = mixture16(), SDES[sde_name]
    x, _ = ss.sample(gm.score_fn(sde), sde, (N, 16), sampler, generator=torch.Generator().manual_seed(1),
                     dtype=torch.float64, **options)
    check_against_oracle(gm, x)


@pytest.mark.parametrize("sde_name", ["vp", "ve"])
def test_ald_defaults_unbiased(sde_name):
    """``ss.sample(..., "ald")`` at its defaults (800 levels x 5 steps, ε = σ_L² / 2), three seeds of
    6,000 points pooled: the χ² of the component weights stays below 13.8 (the 0.1 % point of χ²
    with 2 dof, as above) and the 12 mean and std z-scores below the Bonferroni bound 3.94.

    Pooling 18,000 points makes a bias show that 3,000 hide: a weight off by δ adds about
    ``N δ² / w`` to χ², so 0.01 on the 0.5 weight and -0.01 on the 0.2 weight add 12.6. The old
    default, 200 levels, gave χ² 23 (VE) and 31 (VP) on these seeds; 800 levels give 7.6 and 7.0,
    and 11.4 / 9.5 on seeds 20-22 (``benchmarks/results/ald_bias.json``). The z-scores' scale is
    the pooled size's, and the denoising step's variance change (``std(eps)^2 / Σ_dd <= 1.3e-3``)
    stays far below their resolution ``sqrt(2 / n_k) >= 0.024``."""
    gm, sde = ss.toy_mixture(), SDES[sde_name]
    xs = [ss.sample(gm.score_fn(sde), sde, (6000, 2), "ald", generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)[0] for seed in range(3)]
    st = ss.mixture_stats(gm, torch.cat(xs))
    z_max = stats.norm.isf(FALSE_ALARM / (2 * 2 * gm.n_components * gm.dim))
    chi2_max = stats.chi2.isf(FALSE_ALARM, st.dof)
    assert st.chi2 <= chi2_max, f"weights {st.weights.tolist()}: chi2 {st.chi2:.1f} > {chi2_max:.1f}"
    assert st.max_abs_z <= z_max, f"max |z| {st.max_abs_z:.2f} > {z_max:.2f}"


@pytest.mark.parametrize(("sampler", "options"), [
    ("em", {"steps": 10}),
    ("ald", {"steps": 10, "n_steps_each": 100, "step_lr": 2e-5}),
])
def test_checks_detect_a_biased_sampler(sampler, options):
    """The acceptance tests can fail: 10-step Euler–Maruyama and NCSN's original annealed Langevin
    settings (10 levels x 100 steps, ε = 2e-5) are rejected on the same n = 3,000."""
    gm, sde = ss.toy_mixture(), SDES["ve"]
    x, _ = ss.sample(gm.score_fn(sde), sde, (N, 2), sampler, generator=torch.Generator().manual_seed(1),
                     dtype=torch.float64, **options)
    with pytest.raises(AssertionError):
        check_against_oracle(gm, x)

"""The few-step multistep solvers (``"dpm++2m"``, ``"dpm++3m"``, ``"unipc"``, ``"fast"``).

Convergence order: on a single Gaussian ``N(μ, v I)`` the probability-flow ODE is solved in closed
form, since ``ξ = (x_t - m_t μ) / sqrt(m_t² v + s_t²)`` is conserved along it. The error at
``eps`` (no denoise), in units of the marginal std there, is measured at 32 and 128 steps of the
log-SNR grid; its slope ``log(e_32 / e_128) / log 4`` estimates the global order. Measured
(VP; VE alike): DPM-Solver++ 1M/2M/3M 0.99 / 1.98 / 2.15, UniPC 1/2/3 2.01 / 3.01 / 3.3–3.5.
Claimed, and asserted within ``ORDER_TOL = 0.3``: 1, 2, 2 and 2, 3, 3 (3M's first two steps are
the 1M and 2M warm-up, whose local errors cap the global order at 2; UniPC's free corrector
raises each step by one order, and its first-order warm-up caps order 3 at 3, so UniPC-3 is
checked one-sided). The computation is deterministic (one fixed prior sample), so the only
tolerance is for the pre-asymptotic drift of the slope (measured up to 0.2 at these steps).

Statistics: at its documented NFE (``scoresde.samplers.fast``) each solver reproduces the toy
mixture on n = 3,000 fixed-seed samples within the tolerances of ``test_samplers_stats``
(χ² ≤ 13.8, |z| ≤ 3.94: 0.1 % false alarm for an exact sampler, Bonferroni over 12 z-scores).
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import SDES

import scoresde as ss
from scoresde.samplers.grids import logsnr as logsnr_grid
from scoresde.samplers.multistep import dpm_solver_pp, unipc

ORDER_TOL = 0.3
MU, VAR = torch.tensor([1.5, -1.5], dtype=torch.float64), 0.25
ORDERS = [
    (dpm_solver_pp, 1, 1.0), (dpm_solver_pp, 2, 2.0), (dpm_solver_pp, 3, 2.0),
    (unipc, 1, 2.0), (unipc, 2, 3.0), (unipc, 3, 3.0),
]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread avoids oversubscription overhead on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ode_error(solver, order: int, sde, steps: int) -> float:
    """Largest error at ``eps`` against the exact PF-ODE solution, in marginal stds."""
    gm = ss.GaussianMixture(MU[None], torch.tensor([math.sqrt(VAR)]))
    x = sde.prior_sample((64, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ts = logsnr_grid(sde, steps, ss.samplers.default_eps(sde))
    m0, m1 = sde.mean_coef(ts[0]), sde.mean_coef(ts[-1])
    sd0, sd1 = (m0**2 * VAR + sde.std(ts[0]) ** 2).sqrt(), (m1**2 * VAR + sde.std(ts[-1]) ** 2).sqrt()
    exact = m1 * MU + (x - m0 * MU) / sd0 * sd1
    out = solver(gm.score_fn(sde), sde, x, ts, order=order, lower_order_final=False)
    return float((out - exact).abs().max() / sd1)


@pytest.mark.parametrize("sde_name", ["vp", "ve"])
@pytest.mark.parametrize(("solver", "order", "claimed"), ORDERS)
def test_convergence_order(solver, order, claimed, sde_name):
    sde = SDES[sde_name]
    slope = math.log(ode_error(solver, order, sde, 32) / ode_error(solver, order, sde, 128)) / math.log(4)
    if solver is unipc and order == 3:
        assert slope > claimed - ORDER_TOL, slope
    else:
        assert abs(slope - claimed) < ORDER_TOL, slope


CHI2_MAX = 13.8
Z_MAX = 3.94
# (sampler, SDE, steps, options): the measured NFE (= steps + 1) of benchmarks/fast_samplers.py
DOCUMENTED = [
    ("dpm++2m", "vp", 16, {"eps": 3e-2}),
    ("dpm++3m", "vp", 14, {"eps": 3e-2}),
    ("unipc", "vp", 15, {"eps": 3e-2}),
    ("dpm++2m", "ve", 20, {"eps": 0.1}),
    ("dpm++3m", "ve", 21, {"eps": 0.1}),
    ("unipc", "ve", 16, {"eps": 0.1}),
    ("unipc", "ve", 12, {"eps": 0.28}),
    ("fast", "vp", None, {}),
    ("fast", "subvp", None, {}),
    ("fast", "ve", None, {}),
]


@pytest.mark.parametrize(("sampler", "sde_name", "steps", "options"), DOCUMENTED)
def test_mixture_statistics_at_documented_nfe(sampler, sde_name, steps, options):
    sde, gm = SDES[sde_name], ss.toy_mixture()
    x, info = ss.sample(gm.score_fn(sde), sde, (3000, 2), sampler, steps, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(0), **options)
    st = ss.mixture_stats(gm, x)
    assert info.nfe == (steps or ss.samplers.fast.FAST[type(sde)].steps) + 1
    assert st.chi2 <= CHI2_MAX and st.max_abs_z <= Z_MAX, (st.chi2, st.max_abs_z)


def test_fast_resolves_per_sde_and_explicit_arguments_win():
    sde, gm = SDES["ve"], ss.toy_mixture()
    _, info = ss.sample(gm.score_fn(sde), sde, (8, 2), "fast", 5, eps=0.05)
    assert (info.sampler, len(info.ts), info.eps) == ("unipc", 6, 0.05)
    with pytest.raises(ValueError, match="no measured choice"):
        ss.sample(gm.score_fn(sde), object(), (8, 2), "fast")

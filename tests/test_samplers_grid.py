"""The per-run grid coefficients (``samplers.common.Grid``) and what they imply for the solvers."""

from __future__ import annotations

import pytest
import torch
from conftest import SDES as SDE_TABLE
from scipy.optimize import brentq

import scoresde as ss
from scoresde.samplers.common import Grid
from scoresde.samplers.grids import logsnr
from scoresde.samplers.multistep import dpm_solver_pp, unipc

SDES = list(SDE_TABLE.values())


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_grid_coefficients_are_the_sde_functions(sde):
    ts = torch.tensor([1.0, 0.6, 0.25, 0.01], dtype=torch.float64)
    x = torch.randn(5, 3, 2, dtype=torch.float64)
    grid = Grid(sde, ts, x)
    assert grid.steps == 3
    torch.testing.assert_close(torch.tensor(grid.m, dtype=torch.float64), sde.mean_coef(ts))
    torch.testing.assert_close(torch.tensor(grid.std, dtype=torch.float64), sde.std(ts))
    torch.testing.assert_close(torch.tensor(grid.g2, dtype=torch.float64), sde.diffusion(ts) ** 2)
    for i in range(grid.steps):
        assert grid.time(i).shape == (5,) and bool((grid.time(i) == ts[i]).all())
        f, G = sde.discretize(x, ts[i], ts[i] - ts[i + 1])
        torch.testing.assert_close(f, grid.chain_f[i] * x)
        torch.testing.assert_close(G.flatten(), torch.full((5,), grid.chain_g[i], dtype=torch.float64))


def test_grid_rejects_times_outside_the_sde_interval():
    with pytest.raises(ValueError, match="t must lie in"):
        Grid(ss.VPSDE(), torch.tensor([1.5, 0.5]), torch.zeros(2, 2))


@pytest.mark.parametrize("solver", [lambda *a: dpm_solver_pp(*a, order=3), lambda *a: unipc(*a, order=3)],
                         ids=["dpm++3m", "unipc3"])
def test_data_prediction_solvers_see_the_sde_only_through_log_snr(solver):
    """DPM-Solver++ and UniPC step the probability-flow ODE in ``λ = log(m / std)`` with Tweedie's
    ``D``, so on two SDEs whose grids hold the same ``λ`` values, from the same ``y = x_T / m(T)``,
    they return the same ``x / m`` (float64; the only difference is rounding, hence 1e-9). This is
    why sub-VP with ``eps = 0.1`` and VP with ``eps = 0.03`` (both ``σ̃ ≈ 0.11``) measure alike."""
    gm, subvp, vp = ss.toy_mixture(), ss.SubVPSDE(), ss.VPSDE()
    ts_sub = logsnr(subvp, 7, 0.1)
    ratio_sub = (subvp.std(ts_sub) / subvp.mean_coef(ts_sub)).tolist()

    def ratio_vp(t: float) -> float:
        t = torch.tensor(t, dtype=torch.float64)
        return float(vp.std(t) / vp.mean_coef(t))

    ts_vp = torch.tensor([brentq(lambda t, r=r: ratio_vp(t) - r, 1e-6, 1.0, xtol=1e-15) for r in ratio_sub],
                         dtype=torch.float64)
    y = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = [solver(gm.score_fn(sde), sde, y * sde.mean_coef(ts[0]), ts) / sde.mean_coef(ts[-1])
           for sde, ts in [(subvp, ts_sub), (vp, ts_vp)]]
    torch.testing.assert_close(out[0], out[1], rtol=1e-9, atol=1e-9)

"""The multistep updates against their closed forms, and one ``lower_order_final`` rule for
DPM-Solver++ and UniPC (``scoresde.samplers.multistep``, ``multistep_updates``)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import SDES as SDE_TABLE

import scoresde as ss
from scoresde.samplers import multistep
from scoresde.samplers.multistep import LOWER_ORDER_FINAL_BELOW, dpm_solver_pp, step_order, unipc
from scoresde.samplers.multistep_updates import unipc_rhos

SDES = {name: SDE_TABLE[name] for name in ("vp", "ve")}


@pytest.mark.parametrize("sde_name", list(SDES))
def test_dpmpp_2m_two_steps_is_the_closed_form(sde_name):
    """Two steps of DPM-Solver++(2M), written out by hand: a DDIM warm-up step, then the 2M step
    ``D = (1 + 1/(2r)) D_1 - 1/(2r) D_0``, ``r = h_1 / h_2``,
    ``x_2 = (σ_2/σ_1) x_1 - α_2 (e^{-h_2} - 1) D``."""
    sde, gm = SDES[sde_name], ss.toy_mixture()
    score = gm.score_fn(sde)
    ts = torch.tensor([1.0, 0.3, 1e-3], dtype=torch.float64)
    x0 = sde.prior_sample((16, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    alpha, sigma = sde.mean_coef(ts).tolist(), sde.std(ts).tolist()
    lam = [math.log(a / s) for a, s in zip(alpha, sigma, strict=True)]

    def data_prediction(x, i):
        return (x + sigma[i] ** 2 * score(x, ts[i].expand(len(x)))) / alpha[i]

    h1, h2 = lam[1] - lam[0], lam[2] - lam[1]
    d0 = data_prediction(x0, 0)
    x1 = sigma[1] / sigma[0] * x0 - alpha[1] * math.expm1(-h1) * d0
    d1 = data_prediction(x1, 1)
    r = h1 / h2
    d = (1 + 1 / (2 * r)) * d1 - 1 / (2 * r) * d0
    x2 = sigma[2] / sigma[1] * x1 - alpha[2] * math.expm1(-h2) * d
    out = dpm_solver_pp(score, sde, x0, ts, order=2, lower_order_final=False)
    torch.testing.assert_close(out, x2, rtol=1e-12, atol=1e-12)


def test_step_order_rule():
    """Warm-up ``min(order, i + 1)``; with ``lower_order_final`` below 15 steps, at most the
    steps left."""
    assert [step_order(3, i, 5, False) for i in range(5)] == [1, 2, 3, 3, 3]
    assert [step_order(3, i, 5, True) for i in range(5)] == [1, 2, 3, 2, 1]
    assert [step_order(2, i, 3, True) for i in range(3)] == [1, 2, 1]
    steps = LOWER_ORDER_FINAL_BELOW
    assert [step_order(3, i, steps, True) for i in range(steps)][-2:] == [3, 3]


def _orders_used(monkeypatch, solver, steps: int, order: int, lower_order_final: bool) -> list[int]:
    """The order of each step's (last) update, seen by wrapping the update functions the solver
    calls: DPM-Solver++ passes its ``k`` predictions, UniPC its ``k - 1`` earlier points."""
    seen, orders = [], []

    def recording_dpmpp(update):
        def step(x, ds, *args):
            seen.append(len(ds))
            return update(x, ds, *args)
        return step

    def recording_unipc(update):
        def step(x, d, points, *args):
            seen.append(1 + sum(r < 0 for _, r in points))
            return update(x, d, points, *args)
        return step

    recorded = {k: recording_dpmpp(update) for k, update in multistep.DPMPP_STEPS.items()}
    monkeypatch.setattr(multistep, "DPMPP_STEPS", recorded)
    monkeypatch.setattr(multistep, "unipc_step", recording_unipc(multistep.unipc_step))
    sde, gm = SDES["vp"], ss.toy_mixture()
    ts = ss.samplers.grids.logsnr(sde, steps, 1e-3)
    x = sde.prior_sample((4, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    solver(gm.score_fn(sde), sde, x, ts, order=order, lower_order_final=lower_order_final,
           callback=lambda info: orders.append(seen[-1]))
    return orders


@pytest.mark.parametrize(("steps", "order", "lower_order_final", "expected"), [
    (5, 3, True, [1, 2, 3, 2, 1]),
    (5, 3, False, [1, 2, 3, 3, 3]),
    (4, 2, True, [1, 2, 2, 1]),
    (LOWER_ORDER_FINAL_BELOW, 3, True, [1, 2] + [3] * (LOWER_ORDER_FINAL_BELOW - 2)),
])
def test_dpm_solver_pp_and_unipc_use_the_same_orders(monkeypatch, steps, order, lower_order_final, expected):
    dpm = _orders_used(monkeypatch, dpm_solver_pp, steps, order, lower_order_final)
    uni = _orders_used(monkeypatch, unipc, steps, order, lower_order_final)
    assert dpm == uni == expected


def test_unipc_weights_tend_to_adams_bashforth_and_moulton():
    """As ``h -> 0`` (``g_j -> 1/(j+1)``) UniPC's weights on a uniform grid become the linear
    multistep ones: UniP-2 (``r = -1``) Adams–Bashforth ``D = 3/2 D_s - 1/2 D_{s-1}``; UniC-1
    (``r = 1``) the trapezoidal rule, ``ρ = 1/2``; UniC-2 (``r = -1, 1``) Adams–Moulton
    ``D = 5/12 D_t + 8/12 D_s - 1/12 D_{s-1}``, i.e. ``ρ = (1/12, 5/12)``."""
    h = 1e-4
    torch.testing.assert_close(unipc_rhos([-1.0], h), [0.5], rtol=0, atol=1e-3)
    torch.testing.assert_close(unipc_rhos([1.0], h), [0.5], rtol=0, atol=1e-3)
    torch.testing.assert_close(unipc_rhos([-1.0, 1.0], h), [1 / 12, 5 / 12], rtol=0, atol=1e-3)

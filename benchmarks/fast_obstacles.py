"""What stands between the few-step solvers and 10 NFE (issue 11), on the exact 2-D mixture score.

One seed, n = 30,000 draws from the VP prior; every max |z| is divided by sqrt(n / 3,000), i.e.
the bias in the units of the n = 3,000 noise-level rule (|z| < 3), with noise ~0.3 left.

* ``ode_error``: DPM-Solver++(3M), NFE steps on log-SNR grids ending at σ̃ = 0.01 and without
  the final Tweedie step, so what remains is the solver's own error, against NFE; beside it the same
  multistep method in its noise-prediction form (DPM-Solver-3M, written here:
  ``x_t = (α_t/α_s) x_s - σ_t (e^h - 1) ε_s`` plus the same divided-difference corrections).
* ``warped``: 10 NFE (9 steps + Tweedie at σ̃ = 0.1) on λ grids ``λ_T + (λ_end - λ_T) u^p``.

    python benchmarks/fast_obstacles.py [--quick]   # results/fast_obstacles[_quick].json
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

import scoresde as ss
from scoresde.samplers.multistep import dpm_solver_pp

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, metadata, write_json


def grid(sde, nfe_steps: int, sigma_end: float, power: float = 1.0) -> torch.Tensor:
    """``nfe_steps + 1`` times whose λ = -log σ̃ runs from λ(T) to -log(sigma_end) as ``u^power``."""
    lam_T = -math.log(float(sde.ratio(torch.tensor(sde.T, dtype=torch.float64))))
    u = torch.linspace(0, 1, nfe_steps + 1, dtype=torch.float64) ** power
    ts = sde.time_of_ratio(torch.exp(-(lam_T + (-math.log(sigma_end) - lam_T) * u)))
    ts[0] = sde.T
    return ts


def noise_prediction_3m(score_fn, sde, x: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """DPM-Solver-3M in its noise-prediction form ``ε̂ = -std s`` (Lu et al. 2022, multistep)."""
    m, s = sde.mean_coef(ts).tolist(), sde.std(ts).tolist()
    lam = [math.log(a / b) for a, b in zip(m, s, strict=True)]
    eps: list[torch.Tensor] = []
    for i in range(len(ts) - 1):
        eps = [*eps, -s[i] * score_fn(x, ts[i].expand(x.shape[0]))][-3:]
        h, k = lam[i + 1] - lam[i], len(eps)
        phi = math.expm1(h)
        x = m[i + 1] / m[i] * x - s[i + 1] * phi * eps[-1]
        if k == 2:
            x = x - 0.5 * s[i + 1] * phi * (eps[-1] - eps[-2]) / ((lam[i] - lam[i - 1]) / h)
        elif k == 3:
            r0, r1 = (lam[i] - lam[i - 1]) / h, (lam[i - 1] - lam[i - 2]) / h
            d1_0, d1_1 = (eps[-1] - eps[-2]) / r0, (eps[-2] - eps[-3]) / r1
            d1, d2 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1), (d1_0 - d1_1) / (r0 + r1)
            phi1 = phi / h - 1
            x = x - s[i + 1] * phi1 * d1 - s[i + 1] * (phi1 / h - 0.5) * d2
    return x


def bias_z(gm, x: torch.Tensor) -> float:
    st = ss.mixture_stats(gm, x)
    z = torch.cat([st.mean_z.flatten(), st.std_z.flatten()])
    return float(z.abs().max()) / math.sqrt(x.shape[0] / 3000)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    quick = (3000, [10], [1.0])
    n, nfes, powers = quick if args.quick else (30000, [8, 10, 14, 20, 40], [0.6, 0.8, 1.0, 1.2, 1.5])
    sde, gm = ss.VPSDE(), ss.toy_mixture()
    score = gm.score_fn(sde)
    x_T = sde.prior_sample((n, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ode_error = []
    for nfe in nfes:
        ts = grid(sde, nfe, 0.01)
        m_end = float(sde.mean_coef(ts[-1]))
        data = dpm_solver_pp(score, sde, x_T, ts, order=3, lower_order_final=False) / m_end
        noise = noise_prediction_3m(score, sde, x_T, ts) / m_end
        ode_error.append({"nfe": nfe, "data_prediction_3m": bias_z(gm, data),
                          "noise_prediction_3m": bias_z(gm, noise)})
        print(ode_error[-1], flush=True)
    warped = []
    for power in powers:
        ts = grid(sde, 9, 0.1, power)
        x = ss.samplers.common.tweedie(score, sde, dpm_solver_pp(score, sde, x_T, ts, order=3,
                                                                 lower_order_final=False), ts[-1])
        warped.append({"power": power, "nfe": 10, "sigma_end": 0.1, "max_abs_z": bias_z(gm, x)})
        print(warped[-1], flush=True)
    write_json("fast_obstacles", {**metadata(), "n": n, "seed": 0, "sde": "VP",
                                  "ode_error": ode_error, "warped": warped}, args.quick, args.results)


if __name__ == "__main__":
    main()

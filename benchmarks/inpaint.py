"""Inpainting on the oracle (issue 19): replacement vs SMC against the exact conditional.

The problem of ``tests/test_inpaint.py``: a 2-D two-component mixture (means (∓0.5, ∓2), ``x₁``
std 0.3 in both, the second correlated) conditioned on ``x₁ = 0.15``, where the components
overlap. The exact ``p(x₂ | x₁)`` is bimodal with weights (0.22, 0.78), means (-2, 1.77) and stds
(0.2, 0.6) (closed form below). Each configuration inpaints ``n`` copies of the problem with the
exact score and is judged by each mode's weight, mean and std (``ss.mixture_stats`` on the exact
1-D conditional) and their z-scores, per seed and as the mean over seeds (whose noise is
``1 / sqrt(seeds)``: a mean |z| well above that is bias).

    python benchmarks/inpaint.py [--quick] [--seeds 4] [--sdes vp,subvp,ve] [--results DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import scoresde as ss

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, metadata, write_json

C = 0.15
SDES = {"vp": ss.VPSDE(), "subvp": ss.SubVPSDE(), "ve": ss.VESDE(0.01, 50.0)}
REPLACEMENT = [("pc", 1000), ("em", 1000), ("ddim", 200), ("dpm++2m", 50)]
SMC = [(1, 200, True), (4, 200, True), (8, 200, True), (16, 100, True), (16, 150, True), (16, 200, False),
       (16, 200, True), (32, 200, True)]


def bimodal() -> ss.GaussianMixture:
    means = torch.tensor([[-0.5, -2.0], [0.5, 2.0]], dtype=torch.float64)
    covs = torch.tensor([[[0.09, 0.0], [0.0, 0.04]], [[0.09, 0.06], [0.06, 0.4]]], dtype=torch.float64)
    return ss.GaussianMixture(means, covs, torch.tensor([0.6, 0.4], dtype=torch.float64))


def exact_conditional(gm: ss.GaussianMixture, c: float) -> ss.GaussianMixture:
    """``w'_k ∝ w_k N(c; μ_k1, Σ_k11)``, mean ``μ_k2 + Σ_k21 (c - μ_k1) / Σ_k11``, variance
    ``Σ_k22 - Σ_k21² / Σ_k11``."""
    mu, cov = gm.means, gm.covariances()
    s11, s21, s22 = cov[:, 0, 0], cov[:, 1, 0], cov[:, 1, 1]
    log_w = gm.weights.log() - 0.5 * (c - mu[:, 0]) ** 2 / s11 - 0.5 * s11.log()
    mean = mu[:, 1] + s21 / s11 * (c - mu[:, 0])
    return ss.GaussianMixture(mean[:, None], (s22 - s21**2 / s11).sqrt(), log_w.softmax(0))


def judge(x: torch.Tensor, cond: ss.GaussianMixture) -> dict:
    """Each mode's weight, mean, std and their z-scores (weight: ``sqrt(w (1 - w) / n)``)."""
    n, w = x.shape[0], cond.weights
    st = ss.mixture_stats(cond, x[:, 1:].double())
    sd = cond.covariances()[:, 0, 0].sqrt()
    return {"weights": st.weights.tolist(),
            "means": (cond.means[:, 0] + st.mean_z[:, 0] * sd / (st.weights * n).sqrt()).tolist(),
            "stds": (sd**2 * (1 + st.std_z[:, 0] * (2 / (st.weights * n)).sqrt())).sqrt().tolist(),
            "weight_z": ((st.weights - w) / (w * (1 - w) / n).sqrt()).tolist(),
            "mean_z": st.mean_z[:, 0].tolist(), "std_z": st.std_z[:, 0].tolist()}


def run(sde, n: int, seed: int, **kwargs) -> dict:
    gm, cond = bimodal(), exact_conditional(bimodal(), C)
    known = torch.zeros(n, 2, dtype=torch.float32)
    known[:, 0] = C
    start = time.perf_counter()
    x, info = ss.inpaint(gm.score_fn(sde), sde, known, torch.tensor([True, False]),
                         generator=torch.Generator().manual_seed(seed), **kwargs)
    seconds = time.perf_counter() - start
    return {**judge(x, cond), "nfe": info.nfe, "seconds": round(seconds, 2),
            "min_ess": None if info.ess is None else float(info.ess.min())}


def configs(quick: bool) -> list[dict]:
    if quick:
        return [{"method": "replacement", "sampler": "ddim", "steps": 10},
                {"method": "smc", "particles": 2, "steps": 10, "grid": "logsnr"}]
    rep = [{"method": "replacement", "sampler": s, "steps": k} for s, k in REPLACEMENT]
    smc = [{"method": "smc", "particles": p, "steps": k, "grid": "logsnr", "twist": tw}
           for p, k, tw in SMC]
    return rep + smc


def summarise(rows: list[dict]) -> dict:
    keys = ("weights", "means", "stds", "weight_z", "mean_z", "std_z")
    mean = {k: torch.tensor([r[k] for r in rows]).mean(0).tolist() for k in keys}
    worst = max(abs(z) for r in rows for k in ("weight_z", "mean_z", "std_z") for z in r[k])
    return {**mean, "max_abs_z": worst, "seconds": sum(r["seconds"] for r in rows) / len(rows)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 200, one seed, 10 steps")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--sdes", default="vp,subvp,ve")
    parser.add_argument("--tag", default="", help="suffix of the results file")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    n, seeds = (200, 1) if args.quick else (args.n, args.seeds)
    cond = exact_conditional(bimodal(), C)
    exact = {"weights": cond.weights.tolist(), "means": cond.means[:, 0].tolist(),
             "stds": cond.covariances()[:, 0, 0].sqrt().tolist()}
    rows = []
    for name in args.sdes.split(","):
        for cfg in configs(args.quick):
            per_seed = [run(SDES[name], n, seed, **cfg) for seed in range(seeds)]
            rows.append({"sde": name, **cfg, "n": n, "seeds": seeds, **summarise(per_seed),
                         "nfe": per_seed[0]["nfe"], "per_seed": per_seed})
            r = rows[-1]
            print(f"{name:6s} {cfg} w={[round(v, 3) for v in r['weights']]} "
                  f"mean={[round(v, 3) for v in r['means']]} std={[round(v, 3) for v in r['stds']]} "
                  f"max|z|={r['max_abs_z']:.1f} {r['seconds']:.0f}s", flush=True)
    write_json(f"inpaint{args.tag}", {**metadata(), "problem": {"c": C, "exact": exact},
                                      "quick": args.quick, "rows": rows}, args.quick, args.results)


if __name__ == "__main__":
    main()

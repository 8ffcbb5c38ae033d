"""How biased annealed Langevin dynamics is on the 2-D test mixture, and what removes the bias.

    python benchmarks/ald_bias.py [--quick]   # results/ald_bias[_quick].json and .png

Every row runs ``ss.sample(gm.score_fn(sde), sde, (n, 2), "ald", levels, ...)`` with the exact
mixture score, once per seed (``--seeds`` seeds of ``--n`` points), and records the χ² (2 dof) of
the soft component counts per seed and over the pooled ``seeds × n`` points, the pooled weights and
max |z| of the component means and stds, the NFE counted by ``ss.sample`` and the seconds. An
exact sampler gives χ² ~ χ²_2 (below 13.8 with probability 0.999) at any sample size; a bias δ_k
in the weights adds about ``N Σ δ_k² / w_k``, so pooling 18,000 points makes a bias of 0.01 in one
weight show (χ² ≈ 4-9 on its own).

What is varied, from the old default (200 levels × 5 steps, ε = σ_L² / 2):

* ``levels``: 200 to 1,600 levels, 5 steps each, the same relative step;
* ``layout``: the same 1,000 steps as 1,000 levels × 1 step;
* ``step_ratio``: ε / σ_L² of 0.25 and 1 (steps half and twice the default; 0.25 also at 1,600
  levels), and the rule of the improved NCSN paper (Song & Ermon 2020, Technique 4: the ε that
  brings the variance after the ``K`` steps of a level closest to σ_i² for a point mass,
  :func:`improved_ncsn_ratio`);
* ``denoise``: without the final Tweedie step;
* ``seeds``: the default (800 levels) again on two more sets of seeds (10-12, 20-22), to tell
  a bias that stays from the noise of one set.

``--quick`` runs 300 points, one seed and levels / 10, only to keep the script working.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from scipy.optimize import minimize_scalar

import scoresde as ss

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, metadata, save_figure, write_json

from scoresde.plotting import pyplot

SDES = {"VE": ss.VESDE(0.01, 50.0), "VP": ss.VPSDE(), "sub-VP": ss.SubVPSDE()}
CHI2_2DOF_P001 = 13.8
DEFAULT_LEVELS = ss.samplers.SAMPLERS["ald"].steps


def improved_ncsn_ratio(levels: int, n_steps_each: int, sde) -> float:
    """Our ``ε / σ_L²`` from Song & Ermon (2020), Technique 4, for geometric levels with ratio
    ``γ = σ_{i-1} / σ_i``: with ``κ = α_i / σ_i²`` (their ``ε / σ_L²``; their step ``α s + sqrt(2α) z``
    is half of ours), ``K`` steps on ``N(0, σ_i²)`` from variance ``γ² σ_i²`` end at
    ``s_K² / σ_i² = (1 - κ)^{2K} (γ² - r) + r``, ``r = 2 / (2 - κ)``. We take the ``κ`` that brings
    this closest to 1 (it has no root at these ``γ``, ``K``) and return ``2 κ``."""
    std = sde.std(torch.tensor([sde.sampling_eps, sde.T], dtype=torch.float64))
    gamma = float((std[1] / std[0]) ** (1 / (levels - 1)))

    def gap(kappa: float) -> float:
        r = 2 / (2 - kappa)
        return abs((1 - kappa) ** (2 * n_steps_each) * (gamma**2 - r) + r - 1)

    return 2 * minimize_scalar(gap, bounds=(1e-4, 0.999), method="bounded").x


def run(sde_name: str, levels: int, n: int, seeds: int, *, n_steps_each: int = 5,
        step_ratio: float = 0.5, denoise: bool = True, first_seed: int = 0, varied: str) -> dict:
    """Runs of ``n`` points seeded ``first_seed, …, first_seed + seeds - 1``; per-seed and pooled
    statistics."""
    sde, gm = SDES[sde_name], ss.toy_mixture()
    sigma_last = float(sde.std(torch.tensor(sde.sampling_eps, dtype=torch.float64)))
    start = time.perf_counter()
    xs = []
    for seed in range(first_seed, first_seed + seeds):
        x, info = ss.sample(gm.score_fn(sde), sde, (n, 2), "ald", levels, n_steps_each=n_steps_each,
                            step_lr=step_ratio * sigma_last**2, denoise=denoise, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(seed))
        xs.append(x)
    seconds = time.perf_counter() - start
    pooled = ss.mixture_stats(gm, torch.cat(xs))
    return {"sde": sde_name, "varied": varied, "levels": levels, "n_steps_each": n_steps_each,
            "step_ratio": step_ratio, "denoise": denoise, "first_seed": first_seed, "nfe": info.nfe,
            "n": n, "seeds": seeds,
            "chi2_per_seed": [ss.mixture_stats(gm, x).chi2 for x in xs], "chi2": pooled.chi2,
            "weights": pooled.weights.tolist(), "max_abs_z": pooled.max_abs_z, "seconds": seconds}


def rows(n: int, seeds: int, scale: int) -> list[dict]:
    out = []

    def add(sde_name, levels, **kw):
        out.append(run(sde_name, max(2, levels // scale), n, seeds, **kw))
        r = out[-1]
        print(f"{r['sde']:6} {r['varied']:10} L={r['levels']:4} K={r['n_steps_each']} "
              f"ratio={r['step_ratio']:.3f} denoise={r['denoise']} nfe={r['nfe']:5} "
              f"chi2={r['chi2']:6.1f} w={[round(w, 4) for w in r['weights']]} "
              f"max|z|={r['max_abs_z']:.1f} {r['seconds']:.0f}s", flush=True)

    for sde_name in SDES:
        for levels in (200, 400, 800, 1600):
            add(sde_name, levels, varied="levels")
    for sde_name in ("VE", "VP"):
        add(sde_name, 1000, n_steps_each=1, varied="layout")
        for ratio in (0.25, 1.0):
            add(sde_name, 200, step_ratio=ratio, varied="step_ratio")
        rule = improved_ncsn_ratio(max(2, 200 // scale), 5, SDES[sde_name])
        add(sde_name, 200, step_ratio=rule, varied="ncsnv2_rule")
        add(sde_name, 200, denoise=False, varied="denoise")
        for first_seed in (10, 20):
            add(sde_name, DEFAULT_LEVELS, first_seed=first_seed, varied="seeds")
        add(sde_name, 1600, step_ratio=0.25, varied="step_ratio")
    return out


def plot(results: list[dict], path: Path) -> None:
    """Pooled χ² against NFE: the levels sweep as lines, the other variants as markers."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for sde_name, color in zip(SDES, ("C0", "C1", "C2"), strict=True):
        sweep = [r for r in results if r["sde"] == sde_name and r["varied"] == "levels"]
        ax.plot([r["nfe"] for r in sweep], [r["chi2"] for r in sweep], "o-", color=color,
                label=f"{sde_name}: levels × 5")
        for r in results:
            if r["sde"] == sde_name and r["varied"] != "levels":
                ax.plot(r["nfe"], r["chi2"], "x", color=color)
                ax.annotate(_label(r), (r["nfe"], r["chi2"]), fontsize=7, color=color)
    ax.axhline(CHI2_2DOF_P001, color="k", ls="--", lw=0.8, label="χ²₂ 0.1 % point (13.8)")
    ax.set(xscale="log", yscale="log", xlabel="NFE", ylabel="pooled χ² of the weights",
           title=f"annealed Langevin, {results[0]['seeds']} × {results[0]['n']} points")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _label(r: dict) -> str:
    if r["varied"] == "layout":
        return f"{r['levels']}×{r['n_steps_each']}"
    if r["varied"] == "denoise":
        return "no denoise"
    if r["varied"] == "seeds":
        return f"seeds {r['first_seed']}+"
    return f"{r['levels']} levels, ε/σ_L² {r['step_ratio']:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small tensors: one thread is fastest on a shared 2-core machine
    n, seeds, scale = (300, 1, 10) if args.quick else (args.n, args.seeds, 1)
    results = rows(n, seeds, scale)
    payload = {**metadata(), "n": n, "seeds": seeds, "chi2_bound": CHI2_2DOF_P001,
               "weights_true": ss.toy_mixture().weights.tolist(), "rows": results}
    path = write_json("ald_bias", payload, args.quick, args.results)
    plot(results, path.with_suffix(".png"))


if __name__ == "__main__":
    main()

"""Sample quality against NFE for every sampler, on the exact score (no training).

With the oracle's exact score of the 2-D three-component mixture, every difference between the
curves is the sampler's own discretisation error: ALD, Euler–Maruyama, reverse diffusion,
ancestral (DDPM / SMLD), predictor–corrector, the probability-flow ODE (adaptive dopri5 at three
tolerances, fixed-step RK4), DDIM, Heun and the DPM-Solver++ / UniPC multistep solvers, each on
VP, sub-VP and VE. Quality: sliced W2 to a 10,000-point exact sample (grey band: exact samples of
the same size) and the χ² of the mode weights. Writes ``compare_samplers.png`` and ``.json``.
"""

from __future__ import annotations

import time

import torch
from _common import parse, parser, pyplot, save_figure, save_json

import scoresde as ss
from scoresde.compare import Defaults, distance_to, line_style, measure, plan_runs, quality_vs_nfe

SDES = {"vp": ss.VPSDE(), "subvp": ss.SubVPSDE(), "ve": ss.VESDE(0.01, 12.0)}


def run(sde_name: str, d: Defaults, gm, distance, args) -> list[dict]:
    """Every applicable sampler on ``sde_name`` at every budget of ``d``."""
    sde = SDES[sde_name]
    runs = []
    for label, sampler, budget, steps, options in plan_runs(sde_name, 2, d, None):
        gen = torch.Generator(args.device).manual_seed(args.seed + 1)
        tic = time.perf_counter()
        x, info = ss.sample(gm.score_fn(sde), sde, (d.n_samples, 2), sampler=sampler, steps=steps,
                            generator=gen, device=args.device, dtype=torch.float64, **options)
        seconds = time.perf_counter() - tic
        runs.append(measure(label, sde_name, budget, steps, info.nfe, seconds, x.cpu(), distance,
                            gm, options, score="oracle").__dict__)
    return runs


def chi2_figure(runs: list[dict], out) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(SDES), figsize=(15, 4), sharey=True)
    labels = list(dict.fromkeys(r["sampler"] for r in runs))
    for ax, sde_name in zip(axes, SDES, strict=True):
        for i, label in enumerate(labels):
            pts = sorted((r["nfe"], r["chi2"]) for r in runs if r["sampler"] == label
                         and r["sde"] == sde_name and r["chi2"] is not None)
            if pts:
                ax.plot(*zip(*pts, strict=True), **line_style(i), label=label)
        ax.axhline(5.99, color="0.5", ls="--", label="95% of exact samples")
        ax.set_xscale("log"), ax.set_yscale("log"), ax.set_title(sde_name)
        ax.set_xlabel("NFE")
    axes[0].set_ylabel("χ² of the mode weights (dof 2)")
    axes[-1].legend(fontsize=7, ncol=2)
    save_figure(fig, out, "compare_samplers_chi2")


def main() -> None:
    args = parse(parser(__doc__))
    d = (Defaults((10,), 0, 300, 0, (1e-2,)) if args.quick
         else Defaults((10, 20, 50, 100, 200), 0, 2000, 0))
    gm = ss.toy_mixture()
    reference = gm.sample(2000 if args.quick else 10_000,
                          generator=torch.Generator().manual_seed(args.seed + 10_000))
    floor = [ss.sliced_wasserstein(gm.sample(d.n_samples, generator=torch.Generator().manual_seed(k)),
                                   reference, 128, torch.Generator().manual_seed(args.seed))
             for k in range(5)]
    distance = distance_to(reference, args.seed)
    runs = [r for name in SDES for r in run(name, d, gm, distance, args)]
    save_json(args.out, "compare_samplers", {"n": d.n_samples, "floor_sliced_w2": floor, "runs": runs})
    args.out.mkdir(parents=True, exist_ok=True)
    quality_vs_nfe(args.out / "compare_samplers.png", runs, floor, list(SDES))
    chi2_figure(runs, args.out)


if __name__ == "__main__":
    main()

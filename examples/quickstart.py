"""Quickstart: pick an SDE and a sampler, sample, compute a likelihood.

The score is the exact one of the 2-D three-component mixture (``ss.toy_mixture()``), so no
training is needed: swap in a trained ``ss.ScoreModel`` and nothing else changes. Writes
``quickstart.png`` (the sample beside an exact one) and ``quickstart.json``.
"""

from __future__ import annotations

import torch
from _common import parse, parser, pyplot, save_figure, save_json

import scoresde as ss


def main() -> None:
    args = parse(parser(__doc__))
    n, steps = (500, 100) if args.quick else (3000, 500)
    gm = ss.toy_mixture()                              # the data: an exact oracle
    sde = ss.VPSDE(beta_min=0.1, beta_max=20.0)        # or ss.SubVPSDE(), ss.VESDE(0.01, 12.0)
    score_fn = gm.score_fn(sde)                        # ∇ log p_t, any callable (x, t) -> like x
    gen = torch.Generator(args.device).manual_seed(args.seed)
    x, info = ss.sample(score_fn, sde, (n, 2), sampler="reverse_diffusion", steps=steps,
                        generator=gen, device=args.device, dtype=torch.float64)
    stats = ss.mixture_stats(gm, x)                    # χ² of the mode weights, z of moments
    held_out = gm.sample(200, generator=torch.Generator().manual_seed(args.seed + 1))
    res = ss.log_likelihood(score_fn, sde, held_out.to(args.device), trace="exact")
    exact = gm.log_prob_t(held_out, 1e-5, sde)        # the ODE starts at t = eps = 1e-5
    record = {
        "sampler": "reverse_diffusion", "sde": repr(sde), "n": n, "sample_nfe": info.nfe,
        "weights_true": gm.weights.tolist(), "weights_sampled": stats.weights.tolist(),
        "chi2": stats.chi2, "max_abs_z": stats.max_abs_z,
        "nll_ode": -res.logp.mean().item(), "nll_exact": -exact.mean().item(),
        "likelihood_nfe": res.nfe,
    }
    save_json(args.out, "quickstart", record)
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    truth = gm.sample(n, generator=torch.Generator().manual_seed(args.seed + 2))
    for ax, pts, title in ((axes[0], truth, "exact sample"),
                           (axes[1], x.cpu(), f"reverse diffusion, NFE {info.nfe}")):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4)
        ax.set_title(title)
        ax.set_aspect("equal")
    save_figure(fig, args.out, "quickstart")


if __name__ == "__main__":
    main()

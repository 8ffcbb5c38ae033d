"""Why anneal: plain Langevin dynamics with the exact score recovers the wrong mode weights.

Data: two well-separated 1-D Gaussians with weights 0.8 and 0.2. Langevin dynamics
``x <- x + (α/2) ∇log p(x) + sqrt(α) z`` with the *exact* data score converges to ``p`` only
after it has crossed the low-density gap between the modes many times, which takes an
exponentially long time; started from a broad uniform cloud, each chain stays in the mode it
first falls into, so the weights are those of the basins of attraction, not of ``p``. Annealed
Langevin dynamics (``ss.sample(..., sampler="ald")``) and the reverse SDE start where the noised
modes overlap and carry the right weights down. Writes ``why_anneal.png`` and ``why_anneal.json``.
"""

from __future__ import annotations

import torch
from _common import parse, parser, pyplot, save_figure, save_json

import scoresde as ss

MEANS, STD, WEIGHTS = [[-4.0], [4.0]], [0.5, 0.5], [0.8, 0.2]


def plain_langevin(score_fn, x: torch.Tensor, t: float, steps: int, alpha: float,
                   gen: torch.Generator) -> torch.Tensor:
    """``x <- x + (α/2) s(x, t) + sqrt(α) z`` at the fixed time ``t`` (the data, for small ``t``)."""
    t_vec = torch.full((x.shape[0],), t, dtype=x.dtype)
    for _ in range(steps):
        x = x + 0.5 * alpha * score_fn(x, t_vec) + alpha**0.5 * torch.randn(x.shape, generator=gen,
                                                                             dtype=x.dtype)
    return x


def main() -> None:
    args = parse(parser(__doc__))
    n, steps = (1000, 200) if args.quick else (5000, 2000)
    gm = ss.GaussianMixture(MEANS, STD, WEIGHTS)
    sde = ss.VESDE(sigma_min=0.01, sigma_max=50.0)  # p_T ≈ N(0, σ_max²) needs σ_max ≫ |E x| = 2.4
    score_fn = gm.score_fn(sde)
    gen = torch.Generator().manual_seed(args.seed)
    x0 = torch.empty(n, 1, dtype=torch.float64).uniform_(-8, 8, generator=gen)
    alpha = 0.1 * STD[0] ** 2  # a step well inside one mode's stability limit
    samples = {
        "plain Langevin": plain_langevin(score_fn, x0, 1e-5, steps, alpha, gen),
        "annealed Langevin": ss.sample(score_fn, sde, (n, 1), sampler="ald", steps=steps // 5,
                                       generator=gen, dtype=torch.float64)[0],
        "reverse SDE": ss.sample(score_fn, sde, (n, 1), sampler="reverse_diffusion", steps=steps,
                                 generator=gen, dtype=torch.float64)[0],
    }
    weights = {k: [round(c / n, 4) for c in torch.bincount(gm.assign(x), minlength=2).tolist()]
               for k, x in samples.items()}
    se = (WEIGHTS[0] * WEIGHTS[1] / n) ** 0.5
    save_json(args.out, "why_anneal", {"true_weights": WEIGHTS, "n": n, "steps": steps,
                                       "weight_se": se, "measured_weights": weights})
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), sharey=True)
    grid = torch.linspace(-7, 7, 400, dtype=torch.float64)[:, None]
    density = gm.log_prob(grid).exp()
    for ax, (name, x) in zip(axes, samples.items(), strict=True):
        ax.hist(x[:, 0].clamp(-7, 7).numpy(), bins=80, range=(-7, 7), density=True, alpha=0.6)
        ax.plot(grid[:, 0], density, "k", lw=1, label="p(x)")
        w = weights[name]
        ax.set_title(f"{name}: weights {w[0]:.2f} / {w[1]:.2f}")
        ax.set_xlabel("x")
    axes[0].legend()
    fig.suptitle(f"true weights {WEIGHTS[0]} / {WEIGHTS[1]}")
    save_figure(fig, args.out, "why_anneal")


if __name__ == "__main__":
    main()

"""DDPM and SMLD are discretisations of the VP and VE SDEs, side by side.

1. DDPM's ``ᾱ_i = ∏ (1 - β_i)`` (``β_i`` from ``β_min/N`` to ``β_max/N``) against the VP SDE's
   ``mean_coef(t_i)² = exp(-B(t_i))`` at ``t_i = (i + 1)/N``.
2. SMLD's geometric noise levels ``σ_i`` against the VE SDE's ``σ(t) = σ_min (σ_max/σ_min)^t``.
3. DDPM's ancestral sampler (the discrete chain, written out here with ``ε̂ = -sqrt(1 - ᾱ_i) s``)
   against Euler–Maruyama on the VP reverse SDE, both with the exact score of the 2-D mixture:
   the same distribution (mixture statistics, and the sliced W2 between the two samples beside
   that between two exact samples). Writes ``ddpm_smld_unification.png`` and ``.json``.
"""

from __future__ import annotations

import torch
from _common import parse, parser, pyplot, save_figure, save_json

import scoresde as ss


def ddpm_ancestral(score_fn, vp: ss.VPSDE, n: int, n_steps: int, gen: torch.Generator) -> torch.Tensor:
    """Ho et al. (2020), Algorithm 2: ``x_{i-1} = (x_i - β_i ε̂ / sqrt(1 - ᾱ_i)) / sqrt(α_i)
    + sqrt(β_i) z`` (no noise at the last step), ``ε̂ = -sqrt(1 - ᾱ_i) s(x_i, t_i)``."""
    betas = vp.ddpm_betas(n_steps)
    abar = vp.alphas_cumprod(n_steps)
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    for i in reversed(range(n_steps)):
        t = torch.full((n,), (i + 1) / n_steps, dtype=torch.float64)
        eps_hat = -(1 - abar[i]).sqrt() * score_fn(x, t)
        x = (x - betas[i] / (1 - abar[i]).sqrt() * eps_hat) / (1 - betas[i]).sqrt()
        if i > 0:
            x = x + betas[i].sqrt() * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    return x


def schedules(n_steps: int, n_levels: int) -> tuple[dict, dict]:
    """DDPM's ᾱ_i beside the VP ``m(t_i)²``; SMLD's σ_i beside the VE ``σ(t)``."""
    vp, ve = ss.VPSDE(), ss.VESDE(sigma_min=0.01, sigma_max=50.0)
    t = torch.arange(1, n_steps + 1, dtype=torch.float64) / n_steps
    abar, m2 = vp.alphas_cumprod(n_steps), vp.mean_coef(t) ** 2
    sigmas = ve.smld_sigmas(n_levels)
    t_levels = torch.linspace(0, 1, n_levels, dtype=torch.float64)
    ddpm = {"t": t, "abar": abar, "mean_coef2": m2,
            "max_abs_diff": (abar - m2).abs().max().item(),
            "max_rel_diff": ((abar - m2).abs() / m2).max().item()}
    smld = {"t": t_levels, "sigmas": sigmas, "sigma_t": ve.sigma(t_levels), "ve": ve,
            "max_rel_diff": ((sigmas - ve.sigma(t_levels)).abs() / sigmas).max().item()}
    return ddpm, smld


def main() -> None:
    args = parse(parser(__doc__))
    n, n_steps = (500, 200) if args.quick else (3000, 1000)
    ddpm, smld = schedules(1000, 10)
    gm, vp = ss.toy_mixture(), ss.VPSDE()
    gen = torch.Generator().manual_seed(args.seed)
    x_ddpm = ddpm_ancestral(gm.score_fn(vp), vp, n, n_steps, gen)
    x_sde, info = ss.sample(gm.score_fn(vp), vp, (n, 2), sampler="em", steps=n_steps, generator=gen,
                            dtype=torch.float64, eps=1.0 / n_steps)
    exact = [gm.sample(n, generator=torch.Generator().manual_seed(args.seed + k)) for k in (1, 2)]
    proj = torch.Generator().manual_seed(args.seed)
    stats = {name: ss.mixture_stats(gm, x) for name, x in (("ddpm", x_ddpm), ("vp_sde_em", x_sde))}
    record = {
        "ddpm_abar_vs_vp_mean_coef2": {"max_abs_diff": ddpm["max_abs_diff"],
                                       "max_rel_diff": ddpm["max_rel_diff"]},
        "smld_sigma_vs_ve_sigma_t_max_rel_diff": smld["max_rel_diff"],
        "n": n, "steps": n_steps, "sde_nfe": info.nfe,
        "weights": {k: s.weights.tolist() for k, s in stats.items()},
        "chi2": {k: s.chi2 for k, s in stats.items()},
        "max_abs_z": {k: s.max_abs_z for k, s in stats.items()},
        "sw2_ddpm_vs_sde": ss.sliced_wasserstein(x_ddpm, x_sde, 128, proj),
        "sw2_exact_vs_exact": ss.sliced_wasserstein(*exact, 128, proj.manual_seed(args.seed)),
    }
    save_json(args.out, "ddpm_smld_unification", record)
    figure(ddpm, smld, x_ddpm, x_sde, args.out)


def figure(ddpm: dict, smld: dict, x_ddpm, x_sde, out) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.plot(ddpm["t"], ddpm["mean_coef2"], "k", lw=3, alpha=0.3, label="VP: mean_coef(t)²")
    ax.plot(ddpm["t"], ddpm["abar"], "C0--", label="DDPM: ᾱ_i at t = (i+1)/N")
    ax.set_yscale("log"), ax.set_xlabel("t"), ax.legend()
    ax.set_title(f"N = 1000: max |ᾱ_i - m(t_i)²| = {ddpm['max_abs_diff']:.1e}")
    ax = axes[1]
    t_fine = torch.linspace(0, 1, 200, dtype=torch.float64)
    ax.plot(t_fine, smld["ve"].sigma(t_fine), "k", lw=3, alpha=0.3, label="VE: σ(t)")
    ax.plot(smld["t"], smld["sigmas"], "C1o", label="SMLD: σ_i, 10 levels")
    ax.set_yscale("log"), ax.set_xlabel("t"), ax.legend()
    ax.set_title("SMLD noise levels on the VE curve")
    ax = axes[2]
    ax.scatter(x_ddpm[:, 0], x_ddpm[:, 1], s=1, alpha=0.4, label="DDPM ancestral")
    ax.scatter(x_sde[:, 0], x_sde[:, 1], s=1, alpha=0.4, label="VP reverse SDE (EM)")
    ax.set_aspect("equal"), ax.legend(markerscale=5)
    ax.set_title("same score, same distribution")
    save_figure(fig, out, "ddpm_smld_unification")


if __name__ == "__main__":
    main()

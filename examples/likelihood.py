"""Likelihoods: the PF-ODE against the exact log-density, Hutchinson's variance, bits/dim.

1. ``ss.log_likelihood`` with the oracle's exact score of the 2-D mixture (float64, exact trace)
   against the exact ``log p_eps(x)``, on VP, sub-VP and VE, with the exact terminal density
   ``p_T`` and with the SDE's prior (the prior is not exactly ``p_T``: a visible bias).
2. The Hutchinson–Skilling trace estimate on a 16-D mixture: the standard deviation of the
   log-likelihood over independent probe draws, against the number of probes, Rademacher and
   Gaussian (exact-trace value for reference).
3. A briefly trained digits model (8x8, 17 levels, VP, U-Net): bits/dim by the ODE and by the
   discrete (DDPM) and continuous (likelihood-weighted DSM) variational bounds, side by side, on
   the same dequantised test images. Writes ``likelihood.png`` and ``likelihood.json``.
"""

from __future__ import annotations

import time

import torch
from _common import parse, parser, pyplot, save_figure, save_json

import scoresde as ss
from scoresde.build import build_trainer, load_config, load_data

SDES = {"vp": ss.VPSDE(), "subvp": ss.SubVPSDE(), "ve": ss.VESDE(0.01, 12.0)}
EPS = 1e-5


def oracle_accuracy(n: int, tol: float, seed: int) -> dict:
    """Per SDE: mean and max |ODE - exact| (nats/dim) with the exact ``p_T`` and with the prior."""
    gm = ss.toy_mixture()
    x = gm.sample(n, generator=torch.Generator().manual_seed(seed))
    out = {}
    for name, sde in SDES.items():
        exact = gm.log_prob_t(x, EPS, sde)
        res = ss.log_likelihood(gm.score_fn(sde), sde, x, trace="exact", rtol=tol, atol=tol,
                                eps=EPS, prior_logp=gm.at(1.0, sde).log_prob)
        err = (res.logp - exact).abs() / 2
        prior_err = (res.delta_logp + sde.prior_logp(res.z) - exact) / 2
        out[name] = {"mean_abs_err_per_dim": err.mean().item(), "max_abs_err_per_dim": err.max().item(),
                     "mean_err_per_dim_with_sde_prior": prior_err.mean().item(), "nfe": res.nfe,
                     "exact": exact.tolist(), "ode": res.logp.tolist()}
    return out


def mixture_16d(seed: int) -> ss.GaussianMixture:
    gen = torch.Generator().manual_seed(seed)
    means = 2 * torch.randn(3, 16, generator=gen, dtype=torch.float64)
    return ss.GaussianMixture(means, [0.5, 0.8, 1.0], [0.5, 0.3, 0.2])


def hutchinson_spread(n: int, probes: tuple[int, ...], repeats: int, seed: int) -> dict:
    """Std over ``repeats`` probe draws of the estimated log p, averaged over ``n`` points."""
    gm, sde = mixture_16d(seed), ss.VPSDE()
    x = gm.sample(n, generator=torch.Generator().manual_seed(seed + 1))
    kw = {"rtol": 1e-4, "atol": 1e-4, "prior_logp": gm.at(1.0, sde).log_prob}
    exact = ss.log_likelihood(gm.score_fn(sde), sde, x, trace="exact", **kw).logp
    out = {"exact_mean_logp": exact.mean().item(), "probes": list(probes)}
    for noise in ("rademacher", "gaussian"):
        stds, biases = [], []
        for k in probes:
            draws = torch.stack([
                ss.log_likelihood(gm.score_fn(sde), sde, x, noise=noise, n_probes=k, **kw,
                                  generator=torch.Generator().manual_seed(1000 * k + r)).logp
                for r in range(repeats)])
            stds.append(draws.std(0).mean().item())
            biases.append((draws.mean(0) - exact).mean().item())
        out[noise] = {"std": stds, "mean_minus_exact": biases}
    return out


def digits_bpd(steps: int, n_test: int, quick: bool, seed: int) -> dict:
    """Train the digits U-Net for ``steps`` steps, then bits/dim by the ODE and both bounds."""
    tiny = ["model.channels=8", "train.batch_size=8"] if quick else ["train.batch_size=64"]
    cfg = load_config(None, ["data.name=digits", "model.name=unet", "train.lr=1e-3",
                             f"train.warmup={steps // 10}", f"train.log_every={steps}",
                             f"train.ckpt_every={steps}", f"train.seed={seed}", *tiny])
    data = load_data(cfg.data)
    from tempfile import TemporaryDirectory

    with TemporaryDirectory() as run_dir:
        trainer = build_trainer(cfg, run_dir, "cpu", data, progress=not quick)
        trainer.fit(steps)
    model = trainer.ema.eval().requires_grad_(False)
    images = data.test_levels[:n_test]
    tol = 1e-2 if quick else 1e-4
    estimators = {"ode": {"rtol": tol, "atol": tol},
                  "elbo_discrete": {"estimator": "elbo", "kind": "discrete", "n_t": 2 if quick else None},
                  "elbo_continuous": {"estimator": "elbo", "kind": "continuous",
                                      "n_t": 4 if quick else 256}}
    out = {"train_steps": steps, "n_test": n_test, "num_levels": data.num_levels}
    for name, kw in estimators.items():
        tic = time.perf_counter()
        res = ss.bits_per_dim(model, model.sde, images, num_levels=data.num_levels,
                              generator=torch.Generator().manual_seed(seed), **kw)
        out[name] = {"bpd": res.mean, "se": res.stderr, "nfe": res.nfe,
                     "seconds": time.perf_counter() - tic}
    return out


def figure(acc: dict, hut: dict, bpd: dict, out) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for name, r in acc.items():
        ax.scatter(r["exact"], r["ode"], s=6, label=f"{name}: max err {r['max_abs_err_per_dim']:.1e}/dim")
    lo, hi = ax.get_xlim()
    ax.plot([lo, hi], [lo, hi], "k", lw=0.5)
    ax.set_xlabel("exact log p_eps(x)"), ax.set_ylabel("PF-ODE log p (exact score)"), ax.legend()
    ax.set_title("2-D mixture: ODE vs exact")
    ax = axes[1]
    k = torch.tensor(hut["probes"], dtype=torch.float64)
    for noise in ("rademacher", "gaussian"):
        ax.plot(k, hut[noise]["std"], "o-", label=noise)
    ax.plot(k, hut["rademacher"]["std"][0] / k.sqrt(), "k:", label="1/sqrt(probes)")
    ax.set_xscale("log"), ax.set_yscale("log"), ax.legend()
    ax.set_xlabel("probes per evaluation"), ax.set_ylabel("std of log p over probe draws (nats)")
    ax.set_title("Hutchinson on a 16-D mixture")
    ax = axes[2]
    names = ["ode", "elbo_discrete", "elbo_continuous"]
    ax.bar(names, [bpd[n]["bpd"] for n in names], yerr=[bpd[n]["se"] for n in names], capsize=4)
    ax.set_ylabel("bits/dim"), ax.set_title(f"digits, VP U-Net after {bpd['train_steps']} steps")
    save_figure(fig, out, "likelihood")


def main() -> None:
    args = parse(parser(__doc__))
    q = args.quick
    acc = oracle_accuracy(20 if q else 200, 1e-4 if q else 1e-5, args.seed)
    hut = hutchinson_spread(4 if q else 20, (1, 4) if q else (1, 4, 16), 2 if q else 8, args.seed)
    bpd = digits_bpd(3 if q else 400, 4 if q else 64, q, args.seed)
    summary = {k: {m: v for m, v in r.items() if m not in ("exact", "ode")} for k, r in acc.items()}
    save_json(args.out, "likelihood", {"oracle_2d": summary, "hutchinson_16d": hut, "digits": bpd})
    figure(acc, hut, bpd, args.out)


if __name__ == "__main__":
    main()

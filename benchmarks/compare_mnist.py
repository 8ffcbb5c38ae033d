"""Samplers on one trained image model, judged by the feature-classifier metrics, beside
k-diffusion's samplers and diffusers' schedulers driving the same model (issue 18).

Every row draws ``--n`` images from the same prior noise (block ``k`` of ``--batch`` images from
``block_generator(seed + 1, k)``) and is judged by the data set's feature classifier: Fréchet
distance, kernel distance ± se, the confident share (p > 0.9), beside the floor of as many real
training images. scoresde's samplers run at the budgets of their kind (``scoresde compare``'s
image plan, trimmed by ``--nfe`` / ``--stochastic-nfe``); the peers run at ``--peer-nfe``,
each twice: on the noise-level grid scoresde's own solver of that order uses (``grid: "ours"``:
the log-SNR grid of DPM-Solver++, the Karras grid of Heun, for Euler the uniform-t grid of
DDIM; diffusers with ``"trailing"`` timestep spacing, which starts at the last training step as
scoresde's grids start at T) and on the peer's recommended grid (k-diffusion: Karras ρ = 7;
diffusers: its default spacing). NFE is counted by wrapping the score.

    python benchmarks/compare_mnist.py --checkpoint runs/mnist_cmp   # -> results/compare_mnist.*
    python benchmarks/compare_mnist.py --quick --results /tmp/b      # a 2-step digits model, seconds

``results/compare_mnist.{json,png}`` hold the rows and the FD-vs-NFE figure, and
``compare_mnist_samples_<sampler>.png`` the first 64 images of each budget (same prior noise).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from scoresde.build import load_config, load_data, load_trained
from scoresde.compare.images import judge_samplers
from scoresde.compare.plan import CompareOptions, Defaults
from scoresde.compare.plots import image_samples, line_style
from scoresde.compare.report import line_label
from scoresde.distributed import block_generator
from scoresde.metrics import ImageJudge, load_or_train_classifier
from scoresde.samplers import GRIDS, SAMPLERS

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, metadata, pyplot, save_figure, write_json
from peers import (
    MISSING,
    KDenoiser,
    diffusers_vp_sample,
    k_sample,
    load_diffusers,
    load_k_diffusion,
)

ROOT = Path(__file__).resolve().parents[1]
K_SAMPLERS = {"euler": "ddim", "heun": "heun", "dpmpp_2m": "dpm++2m"}
"""k-diffusion's sampler -> the scoresde sampler whose grid is "ours" for it."""
DIFFUSERS = {"DDIMScheduler": "ddim", "DPMSolverMultistepScheduler": "dpm++2m"}


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, help="trained image run directory (checkpoint.pt, config.yaml)")
    p.add_argument("--n", type=int, default=300, help="images per row (FD needs more than 128)")
    p.add_argument("--batch", type=int, default=150, help="images per sampling block")
    p.add_argument("--samplers", default="ddim,heun,dpm++2m,dpm++3m,unipc,em,ancestral,ode")
    p.add_argument("--nfe", default="5,10,20", help="budgets of scoresde's ODE solvers")
    p.add_argument("--stochastic-nfe", default="50,100", help="budgets of the stochastic samplers")
    p.add_argument("--peer-nfe", default="10,20", help="budgets of the peers")
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--quick", action="store_true", help="a 2-step digits model, n = 150, seconds")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


def quick_run(work: Path) -> Path:
    """A 2-step digits model in ``work`` (the tests' smoke run)."""
    from scoresde import cli

    sets = ["model.channels=8", "model.channel_mult=[1, 2]", "model.attn_resolutions=[4]",
            "train.batch_size=8", "train.steps=2"]
    argv = ["train", "--config", str(ROOT / "configs" / "digits_vp.yaml"), "--run-dir", str(work),
            "--device", "cpu", "--no-progress"]
    for item in sets:
        argv += ["--set", item]
    if cli.main(argv) != 0:
        raise RuntimeError("training the quick digits model failed")
    return work


def load_judged(checkpoint: Path):
    """A trained image run's config, data, EMA model (on the CPU), the data set's judge and the
    feature classifier's record."""
    cfg = load_config(checkpoint / "config.yaml")
    data = load_data(cfg.data)
    model = load_trained(checkpoint, cfg, "cpu")
    classifier, info = load_or_train_classifier(data.train, data.train_labels, test_images=data.test,
                                                test_labels=data.test_labels, progress=False)
    return cfg, data, model, ImageJudge(classifier, data.test, data.train), info


def judged(judge: ImageJudge, x: torch.Tensor, seed: int) -> dict:
    q = judge.judge(x.clamp(-1, 1), generator=torch.Generator().manual_seed(seed))
    return {"fd": q.fd, "kd": q.kd, "kd_se": q.kd_se, "confident": q.confident,
            "max_class_dev": q.max_class_dev}


def prior(model, shape: tuple[int, ...], batch: int, seed: int) -> list[torch.Tensor]:
    """The prior blocks scoresde's runs start from (``sample`` draws ``x_T`` first)."""
    return [model.sde.prior_sample((min(batch, shape[0] - lo), *shape[1:]),
                                   generator=block_generator(seed + 1, k))
            for k, lo in enumerate(range(0, shape[0], batch))]


def peer_rows(model, sde_name: str, blocks, judge, args, budgets) -> list[dict]:
    """k-diffusion's and diffusers' samplers on ``model``, each on "ours" and its own grid."""
    sde, eps, rows = model.sde, model.sde.sampling_eps, []
    kd, diffusers = load_k_diffusion(), load_diffusers()
    runs = []
    for budget in budgets:
        if kd is not None:
            for name, ours in K_SAMPLERS.items():
                steps = (budget + 1) // 2 if name == "heun" else budget  # heun: 2 per step, Euler last
                own = SAMPLERS[ours].grid
                runs += [("k-diffusion", name, budget, "ours: " + own,
                          lambda z, n=name, s=steps, g=own: k_ours(kd, n, model, sde, z, s, eps, g)),
                         ("k-diffusion", name, budget, "karras",
                          lambda z, n=name, s=steps: k_sample(kd, n, model, sde, z, s, eps, "karras"))]
        if diffusers is not None and hasattr(sde, "beta_min"):
            for name in DIFFUSERS:
                for spacing in ("trailing", "default"):
                    runs.append(("diffusers", name.removesuffix("Scheduler"), budget,
                                 "ours: trailing" if spacing == "trailing" else "default spacing",
                                 lambda z, n=name, sp=spacing, b=budget: diffusers_vp_sample(
                                     diffusers, n, model, sde, z, b,
                                     spacing=None if sp == "default" else sp)))
    for lib, name, budget, grid, run in runs:
        tic = time.perf_counter()
        with torch.no_grad():
            outs = [run(z) for z in blocks]
        x, nfe = torch.cat([o[0] for o in outs]), round(sum(o[1] for o in outs) / len(outs))
        rows.append({"lib": lib, "sampler": name, "sde": sde_name, "budget": budget,
                     "grid": grid, "nfe": nfe, "seconds": time.perf_counter() - tic,
                     **judged(judge, x, args.seed)})
        print(f"{lib:12s} {name:18s} {grid:16s} NFE {nfe:4d}  FD {rows[-1]['fd']:.3g}")
    return rows


def k_ours(kd, name: str, score_fn, sde, z, steps: int, eps: float, grid: str):
    """k-diffusion's ``sample_<name>`` on the σ̃ levels of scoresde's ``grid`` (then σ = 0)."""
    ts = GRIDS[grid](sde, steps - 1, eps) if steps > 1 else torch.tensor([sde.T, eps], dtype=torch.float64)
    sigmas = torch.cat([sde.ratio(ts), torch.zeros(1, dtype=torch.float64)])
    denoiser = KDenoiser(score_fn, sde)
    x = z / float(sde.mean_coef(torch.tensor(sde.T, dtype=torch.float64)))
    x = getattr(kd, f"sample_{name}")(denoiser, x, sigmas.to(z.dtype), disable=True)
    return x, denoiser.nfe


def figure(result: dict, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    keys = list(dict.fromkeys((r["lib"], r["sampler"], r["grid"]) for r in result["rows"]))
    for i, key in enumerate(keys):
        pts = sorted((r["nfe"], r["fd"]) for r in result["rows"]
                     if (r["lib"], r["sampler"], r["grid"]) == key)
        ls = {"scoresde": "-", "k-diffusion": "--", "diffusers": ":"}[key[0]]
        name = line_label(key[1]) if key[0] == "scoresde" else f"{key[0]} {key[1]} ({key[2]})"
        ax.plot(*zip(*pts, strict=True), ls=ls, **line_style(i), label=name)
    ax.axhline(result["floor"]["fd"], color="0.3", ls="-.", label="data floor (real images)")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel("NFE (score evaluations)"), ax.set_ylabel("Fréchet distance (classifier features)")
    ax.set_title(f"{result['config']}: {result['n']} images per row, same prior noise", fontsize=10)
    ax.legend(fontsize=6, ncol=2)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.results.mkdir(parents=True, exist_ok=True)
        args.checkpoint = quick_run(args.results / "compare_mnist_quick_run")
        args.n, args.batch, args.samplers, args.nfe, args.stochastic_nfe, args.peer_nfe = (
            150, 150, "ddim,em", "5", "5", "5")
    if args.checkpoint is None:
        raise SystemExit("--checkpoint RUN is required (or --quick)")
    cfg, data, model, judge, info = load_judged(args.checkpoint)
    split = lambda text: tuple(int(v) for v in text.split(","))  # noqa: E731
    d = Defaults(split(args.nfe), None, args.n, 0, (1e-2,), stochastic_nfe=split(args.stochastic_nfe))
    cfg.sample.batch_size = args.batch
    opts = CompareOptions(samplers=tuple(args.samplers.split(",")), seed=args.seed, progress=False)
    runs, samples = judge_samplers(model, cfg, d, opts, judge, data.shape)
    rows = [{"lib": "scoresde", "grid": SAMPLERS["ode" if r.sampler == "ode_rk4" else r.sampler].grid,
             **{k: v for k, v in vars(r).items() if k not in ("class_hist",)}} for r in runs]
    for r in rows:
        print(f"scoresde     {r['sampler']:18s} {r['grid']:16s} NFE {r['nfe']:4d}  FD {r['fd']:.3g}")
    if not args.no_peers:
        blocks = prior(model, (args.n, *data.shape), args.batch, args.seed)
        rows += peer_rows(model, cfg.sde.name, blocks, judge, args, split(args.peer_nfe))
    result = {**metadata(), "checkpoint": str(args.checkpoint), "config": cfg.name, "n": args.n,
              "classifier": {k: info[k] for k in ("key", "test_accuracy", "cached")},
              "floor": judge.floor(args.n), "rows": rows, "missing_peers": dict(MISSING)}
    path = write_json("compare_mnist", result, args.quick, args.results)
    figure(result, path.with_suffix(".png"))
    for label in dict.fromkeys(r.sampler for r in runs):
        image_samples(path.with_name(f"{path.stem}_samples_{label}.png"), label, samples, d.tolerances)


if __name__ == "__main__":
    main()

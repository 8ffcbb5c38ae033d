"""``scoresde compare``: train a small score model, then run every sampler on every SDE at a few
NFE budgets and the probability-flow likelihood, and write a table and figures to a run directory.

On the embedded default (the 2-D three-component mixture of :func:`scoresde.toy_mixture`, no
download) one MLP is trained per SDE (VP, sub-VP, VE) by denoising score matching. Sample quality
is the sliced 2-Wasserstein distance to a 10,000-point exact sample (with the spread of the same
distance for exact samples of the same size, the floor no sampler can beat) and the mixture
statistics of :func:`scoresde.mixture_stats`; the likelihood is the PF-ODE NLL
``-log p_eps(x)`` of held-out points, beside the exact ``-log p_eps(x)`` of the oracle.
A ``--config`` of digits or MNIST trains its U-Net instead and reports bits/dim.

Run directory::

    report.md            the tables (samplers; likelihood) in markdown
    results.json         the same numbers
    samples_<sampler>.png   scatter plots (or image grids), one row per SDE, one column per budget
    quality_vs_nfe.png   sliced-W2 against NFE, one panel per SDE
    train_<sde>/         config, checkpoint and metrics of each trained model (a run directory)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scoresde.analytic import GaussianMixture, toy_mixture
from scoresde.cli import build_trainer, load_data
from scoresde.config import Config, load_config, save_config
from scoresde.data import TOYS, Dataset
from scoresde.likelihood import bits_per_dim, log_likelihood
from scoresde.metrics import mixture_stats, sliced_wasserstein
from scoresde.samplers import SAMPLERS, sample
from scoresde.sde import SDE
from scoresde.shapes import flatten_batch

SDE_NAMES = ("vp", "subvp", "ve")
ODE_TOLERANCES = (1e-2, 1e-3, 1e-5)
"""``rtol = atol`` of the adaptive ``dopri5`` runs: its NFE is chosen by the solver, not by us."""
N_PROJECTIONS = 128
FLOOR_SEEDS = 5
SMALL_DIM = 16
"""Below this dimension PC uses the ``ald`` corrector: the SNR corrector is unreliable in 2-D."""


@dataclass
class CompareOptions:
    """What ``compare`` trains and measures (``None`` fields take defaults from the data kind).

    ``config``: YAML file (default: the embedded 2-D mixture); ``sdes``: SDE names (default: all
    three for 2-D toys, the config's own for images); ``nfe``: target budgets; ``train_steps``:
    optimiser steps per SDE; ``n_samples`` / ``n_likelihood``: points per sampler run / held-out
    points for the likelihood.
    """

    config: str | None = None
    overrides: tuple[str, ...] = ()
    data_dir: str | None = None
    sdes: tuple[str, ...] | None = None
    samplers: tuple[str, ...] | None = None
    nfe: tuple[int, ...] | None = None
    train_steps: int | None = None
    n_samples: int | None = None
    n_likelihood: int | None = None
    quick: bool = False
    device: str = "cpu"
    seed: int = 0
    progress: bool = True


@dataclass
class Defaults:
    """Budgets for one data kind; ``quick`` replaces them by a seconds-long smoke run."""

    nfe: tuple[int, ...]
    train_steps: int
    n_samples: int
    n_likelihood: int
    tolerances: tuple[float, ...] = ODE_TOLERANCES
    likelihood_tol: float = 1e-4
    reference_size: int = 10_000


TOY_DEFAULTS = Defaults((10, 25, 50, 100), 800, 2000, 500)
IMAGE_DEFAULTS = Defaults((10, 50), 300, 64, 64, (1e-2, 1e-3), 1e-3)
QUICK_DEFAULTS = Defaults((10,), 30, 300, 40, (1e-2,), 1e-3, 2000)


@dataclass
class Run:
    """One sampler run: what was asked, what was spent, how good the sample is."""

    sampler: str
    sde: str
    budget: int
    steps: int | None
    nfe: int
    seconds: float
    sw2: float
    chi2: float | None = None
    max_abs_z: float | None = None
    options: dict = field(default_factory=dict)


def run_compare(opts: CompareOptions, run_dir: str | Path) -> dict:
    """Train one model per SDE, run every sampler at every budget, write the report; return it."""
    tic, cpu = time.perf_counter(), time.process_time()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    base = _base_config(opts)
    image = base.data.name not in TOYS
    d = _resolve_defaults(opts, image)
    data = load_data(base.data)
    oracle = toy_mixture() if base.data.name == "mixture" else None
    reference = _reference(oracle, data, d.reference_size, opts.seed)
    sdes = opts.sdes or (SDE_NAMES if not image else (base.sde.name,))
    if unknown := sorted(set(sdes) - set(SDE_NAMES)):
        raise ValueError(f"sdes: each must be one of {SDE_NAMES}; got {unknown}")
    floor = _floor(oracle, data, reference, d.n_samples, opts.seed)
    runs, nll, samples = [], [], {}
    for name in sdes:
        model = _train(_sde_config(base, name, data), data, run_dir / f"train_{name}", d, opts)
        nll.append(_likelihood(model, name, data, oracle, d, opts))
        runs += _sample_all(model, name, d, opts, reference, oracle, samples)
    result = {"config": base.name, "data": base.data.name, "options": _jsonable(asdict(opts)),
              "floor_sw2": floor, "runs": [asdict(r) for r in runs], "likelihood": nll,
              "seconds": time.perf_counter() - tic, "cpu_seconds": time.process_time() - cpu}
    (run_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (run_dir / "report.md").write_text(report_markdown(result))
    for label in dict.fromkeys(r.sampler for r in runs):
        sample_grid(run_dir / f"samples_{label}.png", label, samples, sdes, image)
    quality_vs_nfe(run_dir / "quality_vs_nfe.png", result["runs"], floor, sdes)
    return result


def _base_config(opts: CompareOptions) -> Config:
    cfg = load_config(opts.config, list(opts.overrides))
    if opts.data_dir:
        cfg.data.root = opts.data_dir
    return cfg


def _resolve_defaults(opts: CompareOptions, image: bool) -> Defaults:
    d = QUICK_DEFAULTS if opts.quick else (IMAGE_DEFAULTS if image else TOY_DEFAULTS)
    if opts.quick and image:
        d = replace(d, n_samples=16, n_likelihood=8)
    return replace(
        d,
        nfe=opts.nfe or d.nfe,
        train_steps=opts.train_steps or d.train_steps,
        n_samples=opts.n_samples or d.n_samples,
        n_likelihood=opts.n_likelihood or d.n_likelihood,
    )


def _sde_config(base: Config, name: str, data: Dataset) -> Config:
    """``base`` with ``sde.name = name``; switching to VE sets ``σ_max`` to the data's diameter."""
    cfg = copy.deepcopy(base)
    if name == "ve" and base.sde.name != "ve":
        cfg.sde.sigma_max = _diameter(data.train)
    cfg.sde.name, cfg.name = name, f"{base.name}_{name}"
    return cfg


def _diameter(x: Tensor, n: int = 2000) -> float:
    """The largest pairwise distance among the first ``n`` points, rounded up (σ_max for VE)."""
    sub = flatten_batch(x[:n]).double()
    return float(math.ceil(torch.cdist(sub, sub).max()))


def _train(cfg: Config, data: Dataset, run_dir: Path, d: Defaults, opts: CompareOptions):
    """Train ``cfg``'s model for ``d.train_steps`` steps (from scratch) and return its EMA."""
    cfg.train.steps = d.train_steps
    cfg.train.seed = opts.seed
    cfg.train.warmup = min(cfg.train.warmup, d.train_steps // 10)
    cfg.train.ckpt_every = cfg.train.log_every = max(1, d.train_steps)
    for stale in ("checkpoint.pt", "metrics.jsonl"):
        (run_dir / stale).unlink(missing_ok=True)
    trainer = build_trainer(cfg, run_dir, opts.device, data, progress=opts.progress)
    save_config(cfg, run_dir / "config.yaml")  # so that `scoresde sample --run-dir` can use it
    trainer.fit(d.train_steps)
    return trainer.ema.eval().requires_grad_(False)


def steps_for(sampler: str, nfe: int) -> tuple[int, dict]:
    """Solver steps (and knobs) spending about ``nfe`` score evaluations, the final Tweedie
    denoising step included: 2 per step for ``heun`` and ``pc`` (one corrector step), 2 per
    level for ``ald``, 4 per step for the RK4 ODE, 1 otherwise."""
    per_step = {"heun": 2, "pc": 2, "ald": 2, "ode_rk4": 4}.get(sampler, 1)
    options = {"n_steps_each": 2} if sampler == "ald" else {}
    if sampler == "ode_rk4":
        options = {"method": "rk4"}
    return max(1, (nfe - 1) // per_step), options


def plan_runs(sde_name: str, dim: int, d: Defaults, samplers: tuple[str, ...] | None) -> list[tuple]:
    """``(label, sampler, budget, steps, options)`` of every applicable run."""
    names = samplers or [*SAMPLERS, "ode_rk4"]
    plan = []
    for label in names:
        if label == "ancestral" and sde_name == "subvp":
            continue  # sub-VP has no exact discrete chain
        if label == "ode":
            plan += [(label, "ode", i, None, {"rtol": tol, "atol": tol})
                     for i, tol in enumerate(d.tolerances)]
            continue
        for budget in d.nfe:
            steps, options = steps_for(label, budget)
            if label == "pc" and dim < SMALL_DIM:
                options = {"corrector": "ald"}
            plan.append((label, "ode" if label == "ode_rk4" else label, budget, steps, options))
    return plan


def _sample_all(model, sde_name: str, d: Defaults, opts: CompareOptions, reference: Tensor,
                oracle: GaussianMixture | None, samples: dict) -> list[Run]:
    shape = (d.n_samples, *reference.shape[1:])
    plan = plan_runs(sde_name, flatten_batch(reference).shape[1], d, opts.samplers)
    runs = []
    for label, sampler, budget, steps, options in tqdm(plan, desc=f"sample {sde_name}",
                                                       disable=not opts.progress):
        gen = torch.Generator(opts.device).manual_seed(opts.seed + 1)
        tic = time.perf_counter()
        with torch.no_grad():
            x, info = sample(model, model.sde, shape, sampler=sampler, steps=steps,
                             generator=gen, device=opts.device, **options)
        seconds = time.perf_counter() - tic
        samples[(label, sde_name, budget)] = x.cpu()
        runs.append(measure(label, sde_name, budget, steps, info.nfe, seconds, x.cpu(),
                             reference, oracle, options, opts.seed))
    return runs


def measure(label, sde_name, budget, steps, nfe, seconds, x, reference, oracle, options,
             seed) -> Run:
    finite = bool(torch.isfinite(x).all())
    dist = sw2(x, reference, seed) if finite else float("inf")
    run = Run(label, sde_name, budget, steps, nfe, seconds, dist, options=_jsonable(options))
    if oracle is not None and finite:
        stats = mixture_stats(oracle, x)
        run.chi2, run.max_abs_z = stats.chi2, stats.max_abs_z
    return run


def sw2(x: Tensor, reference: Tensor, seed: int) -> float:
    """Sliced W2 with the same ``N_PROJECTIONS`` directions for every run."""
    return sliced_wasserstein(x, reference, N_PROJECTIONS, torch.Generator().manual_seed(seed))


def _reference(oracle: GaussianMixture | None, data: Dataset, size: int, seed: int) -> Tensor:
    """The truth the samples are measured against: an exact sample, else the held-out data."""
    if oracle is None:
        return data.test
    gen = torch.Generator().manual_seed(seed + 10_000)
    return oracle.sample(size, generator=gen, dtype=torch.float32)


def _floor(oracle, data: Dataset, reference: Tensor, n: int, seed: int) -> list[float]:
    """Sliced W2 from exact samples of size ``n`` to the reference (``FLOOR_SEEDS`` draws)."""
    if oracle is not None:
        draws = [oracle.sample(n, generator=torch.Generator().manual_seed(seed + 20_000 + k))
                 for k in range(FLOOR_SEEDS)]
    else:
        draws = [data.train[torch.randperm(len(data.train),
                                           generator=torch.Generator().manual_seed(seed + k))[:n]]
                 for k in range(FLOOR_SEEDS)]
    return [sw2(x, reference, seed) for x in draws]


def _likelihood(model, sde_name: str, data: Dataset, oracle, d: Defaults, opts: CompareOptions) -> dict:
    """PF-ODE NLL of ``n`` held-out points (nats, or bits/dim for images) and, with an oracle,
    the exact ``-log p_eps`` and the PF-ODE NLL of the exact score."""
    gen = torch.Generator(opts.device).manual_seed(opts.seed + 2)
    n, tol = d.n_likelihood, d.likelihood_tol
    tic = time.perf_counter()
    if data.num_levels is not None:
        res = bits_per_dim(model, model.sde, data.test_levels[:n].to(opts.device),
                           num_levels=data.num_levels, generator=gen, rtol=tol, atol=tol)
        return {"sde": sde_name, "unit": "bits/dim", "model": res.mean, "model_se": res.stderr,
                "nfe": res.nfe, "seconds": time.perf_counter() - tic}
    x = data.test[:n].to(opts.device)
    res = log_likelihood(model, model.sde, x, trace="exact", rtol=tol, atol=tol)
    nll = -res.logp.detach().cpu().double()
    record = {"sde": sde_name, "unit": "nats", "model": nll.mean().item(),
              "model_se": nll.std().item() / math.sqrt(n), "nfe": res.nfe,
              "seconds": time.perf_counter() - tic}
    if oracle is not None:
        record.update(_oracle_nll(oracle, model.sde, x.cpu().double(), nll, tol))
    return record


def _oracle_nll(oracle: GaussianMixture, sde: SDE, x: Tensor, model_nll: Tensor, tol: float) -> dict:
    """Exact ``-log p_eps(x)`` and the PF-ODE NLL with the exact score (its prior ``N(0, I)``
    or ``N(0, σ_max² I)``, as for the model), and the model's error against the exact value."""
    exact = -oracle.log_prob_t(x, 1e-5, sde)
    ode = -log_likelihood(oracle.score_fn(sde), sde, x, trace="exact", rtol=tol, atol=tol).logp
    return {"exact": exact.mean().item(), "oracle_ode": ode.mean().item(),
            "model_minus_exact_se": (model_nll - exact).std().item() / math.sqrt(len(x))}


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def report_markdown(result: dict) -> str:
    """The two tables of ``report.md`` from a :func:`run_compare` result."""
    floor = result["floor_sw2"]
    lines = [f"# scoresde compare: {result['config']} ({result['data']})", "",
             f"Sliced W2 of an exact sample of the same size to the reference: "
             f"{min(floor):.3f}–{max(floor):.3f} over {len(floor)} draws (the floor).", "",
             "| sampler | SDE | NFE | wall s | sliced W2 | χ² (dof 2) | max abs z |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in result["runs"]:
        lines.append(f"| {_label(r)} | {r['sde']} | {r['nfe']} | {r['seconds']:.2f} | "
                     f"{r['sw2']:.3f} | {_num(r['chi2'])} | {_num(r['max_abs_z'])} |")
    lines += ["", "| SDE | unit | PF-ODE NLL (model) | exact NLL | PF-ODE NLL (exact score) "
                  "| NFE | wall s |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in result["likelihood"]:
        lines.append(f"| {r['sde']} | {r['unit']} | {r['model']:.4f} ± {r['model_se']:.4f} | "
                     f"{_num(r.get('exact'), 4)} | {_num(r.get('oracle_ode'), 4)} | "
                     f"{r['nfe']} | {r['seconds']:.1f} |")
    lines += ["", f"Total {result['seconds']:.0f} s wall, {result['cpu_seconds']:.0f} s CPU."]
    return "\n".join(lines) + "\n"


def line_style(i: int) -> dict:
    """The ``i``-th sampler's colour and marker, the same in every panel (tab20 has 20 colours)."""
    from matplotlib import colormaps

    return {"color": colormaps["tab20"](2 * i % 20 + i // 10), "marker": "osD^v"[i % 5], "ms": 4}


def _line_label(sampler: str) -> str:
    return {"ode": "ode (dopri5)", "ode_rk4": "ode (rk4)"}.get(sampler, sampler)


def _label(r: dict) -> str:
    if r["sampler"] == "ode":
        return f"ode (dopri5, tol {r['options']['rtol']:g})"
    return _line_label(r["sampler"])


def _num(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``scoresde compare`` options."""
    parser.add_argument("--config", help="YAML config (default: the embedded 2-D mixture); "
                        "e.g. configs/digits_vp.yaml or configs/mnist_vp.yaml")
    parser.add_argument("--run-dir", default="runs/compare", help="output directory")
    parser.add_argument("--data-dir", help="directory of the MNIST .gz files "
                        "(default: ../shared/data/mnist beside the checkout)")
    parser.add_argument("--sdes", help="comma-separated, from vp,subvp,ve")
    parser.add_argument("--samplers", help=f"comma-separated, from {','.join([*SAMPLERS, 'ode_rk4'])}")
    parser.add_argument("--nfe", help="comma-separated NFE budgets, e.g. 10,25,50,100")
    parser.add_argument("--train-steps", type=int, help="optimiser steps per SDE")
    parser.add_argument("--n-samples", type=int, help="samples per sampler run")
    parser.add_argument("--n-likelihood", type=int, help="held-out points for the PF-ODE NLL")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: "
                        "the default models are small and more threads only add overhead)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set model.width=64")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def options_from_args(args: argparse.Namespace) -> CompareOptions:
    def split(value, cast=str):
        return tuple(cast(v) for v in value.split(",")) if value else None

    return CompareOptions(
        config=args.config, overrides=tuple(args.set), data_dir=args.data_dir,
        sdes=split(args.sdes), samplers=split(args.samplers), nfe=split(args.nfe, int),
        train_steps=args.train_steps, n_samples=args.n_samples, n_likelihood=args.n_likelihood,
        quick=args.quick,
        device=args.device, seed=args.seed, progress=not args.no_progress,
    )


def main(args: argparse.Namespace) -> int:
    """``scoresde compare``: run and print where the report went."""
    torch.set_num_threads(args.threads)
    result = run_compare(options_from_args(args), args.run_dir)
    print((Path(args.run_dir) / "report.md").read_text())
    print(f"wrote {args.run_dir}/report.md, results.json and figures in {result['seconds']:.0f} s")
    return 0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sample_grid(path: Path, label: str, samples: dict, sdes, image: bool) -> None:
    """One row per SDE, one column per budget: a scatter plot (2-D) or a 4x4 image grid."""
    from einops import rearrange

    plt = _pyplot()
    budgets = sorted({b for (lab, _, b) in samples if lab == label})
    fig, axes = plt.subplots(len(sdes), len(budgets), figsize=(2.6 * len(budgets), 2.6 * len(sdes)),
                             squeeze=False)
    for row, sde_name in enumerate(sdes):
        for col, budget in enumerate(budgets):
            ax, x = axes[row, col], samples.get((label, sde_name, budget))
            ax.set_xticks([]), ax.set_yticks([])
            if x is None:
                ax.set_axis_off()
                continue
            if image:
                grid = rearrange(x[:16, 0], "(r c) h w -> (r h) (c w)", r=4)
                ax.imshow(((grid + 1) / 2).clamp(0, 1), cmap="gray")
            else:
                ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
                ax.set_xlim(-6, 6), ax.set_ylim(-5, 6)
            ax.set_title(f"{sde_name}, {_budget_name(label, budget)}", fontsize=9)
    fig.suptitle(f"{label}: samples from the trained model")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _budget_name(label: str, budget: int) -> str:
    return f"tol {ODE_TOLERANCES[budget]:g}" if label == "ode" else f"NFE≈{budget}"


def quality_vs_nfe(path: Path, runs: list[dict], floor: list[float], sdes) -> None:
    """Sliced W2 against the measured NFE (log axis), one line per sampler, one panel per SDE;
    the grey band is the spread of exact samples of the same size (the floor)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(sdes), figsize=(5 * len(sdes), 4), squeeze=False, sharey=True)
    labels = list(dict.fromkeys(r["sampler"] for r in runs))
    for ax, sde_name in zip(axes[0], sdes, strict=True):
        for i, label in enumerate(labels):
            pts = sorted((r["nfe"], r["sw2"]) for r in runs
                         if r["sampler"] == label and r["sde"] == sde_name)
            if pts:
                ax.plot(*zip(*pts, strict=True), **line_style(i), label=_line_label(label))
        ax.axhspan(min(floor), max(floor), color="0.85", label="exact sample")
        ax.set_xscale("log"), ax.set_yscale("log")
        ax.set_xlabel("NFE (score evaluations)"), ax.set_title(sde_name)
    axes[0, 0].set_ylabel("sliced W2 to the truth")
    axes[0, -1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

"""The experiment of ``scoresde compare``: train one model per SDE, run every sampler at every
budget and the probability-flow likelihood, and write the results (see :mod:`scoresde.compare`)."""

from __future__ import annotations

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
from scoresde.build import build_trainer, load_config, load_data
from scoresde.compare.plan import (
    IMAGE_DEFAULTS,
    QUICK_DEFAULTS,
    SDE_NAMES,
    TOY_DEFAULTS,
    TOY_RECIPE,
    Defaults,
    plan_runs,
)
from scoresde.compare.plots import quality_vs_nfe, sample_grid
from scoresde.compare.report import report_markdown
from scoresde.config import Config, save_config
from scoresde.data import TOYS, Dataset
from scoresde.likelihood import bits_per_dim, log_likelihood
from scoresde.metrics import mixture_stats, sliced_wasserstein
from scoresde.samplers import sample
from scoresde.sde import SDE
from scoresde.shapes import flatten_batch

N_PROJECTIONS = 128
FLOOR_SEEDS = 5


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
class Run:
    """One sampler run: what was asked, which score drove it, what was spent, how good it is.

    ``score`` is ``"trained"`` (the network) or ``"oracle"`` (the mixture's exact score, on the
    same prior noise: its error is the sampler's discretisation error alone).
    """

    sampler: str
    sde: str
    score: str
    budget: int
    steps: int | None
    nfe: int
    seconds: float
    sliced_w2: float
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
    runs, nll, samples, phases = [], [], {}, dict.fromkeys(("train", "likelihood", "sample"), 0.0)
    for name in sdes:
        clock = time.perf_counter()
        model = _train(_sde_config(base, name, data), data, run_dir / f"train_{name}", d, opts)
        phases["train"] += time.perf_counter() - clock
        nll.append(_likelihood(model, name, data, oracle, d, opts))
        phases["likelihood"] += nll[-1]["seconds"]
        clock = time.perf_counter()
        runs += _sample_all(model, name, d, opts, reference, oracle, samples)
        phases["sample"] += time.perf_counter() - clock
    result = {"config": base.name, "data": base.data.name, "options": _jsonable(asdict(opts)),
              "train_steps": d.train_steps, "floor_sliced_w2": floor,
              "runs": [asdict(r) for r in runs], "likelihood": nll, "phase_seconds": phases,
              "seconds": time.perf_counter() - tic, "cpu_seconds": time.process_time() - cpu}
    (run_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (run_dir / "report.md").write_text(report_markdown(result))
    density = oracle.log_prob if oracle is not None else None
    for label in dict.fromkeys(r.sampler for r in runs):
        sample_grid(run_dir / f"samples_{label}.png", label, samples, sdes, image, density,
                    d.tolerances)
    quality_vs_nfe(run_dir / "quality_vs_nfe.png", result["runs"], floor, sdes)
    return result


def _base_config(opts: CompareOptions) -> Config:
    """The config to train: ``--config`` (or the embedded mixture with :data:`TOY_RECIPE`)."""
    recipe = list(TOY_RECIPE) if opts.config is None else []
    cfg = load_config(opts.config, recipe + list(opts.overrides))
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
    if cfg.train.lr_schedule == "cosine":
        cfg.train.lr_decay_steps = max(1, d.train_steps)
    cfg.train.ckpt_every = cfg.train.log_every = max(1, d.train_steps)
    for stale in ("checkpoint.pt", "metrics.jsonl"):
        (run_dir / stale).unlink(missing_ok=True)
    trainer = build_trainer(cfg, run_dir, opts.device, data, progress=opts.progress)
    save_config(cfg, run_dir / "config.yaml")  # so that `scoresde sample --run-dir` can use it
    trainer.fit(d.train_steps)
    return trainer.ema.eval().requires_grad_(False)


def _sample_all(model, sde_name: str, d: Defaults, opts: CompareOptions, reference: Tensor,
                oracle: GaussianMixture | None, samples: dict) -> list[Run]:
    """Every planned run with the trained network and, on the mixture, with the exact score,
    each pair from the same prior noise (seed ``opts.seed + 1``)."""
    shape = (d.n_samples, *reference.shape[1:])
    scores = {"trained": model}
    if oracle is not None:
        scores["oracle"] = oracle.score_fn(model.sde)
    plan = plan_runs(sde_name, flatten_batch(reference).shape[1], d, opts.samplers)
    runs = []
    for label, sampler, budget, steps, options in tqdm(plan, desc=f"sample {sde_name}",
                                                       disable=not opts.progress):
        for score, score_fn in scores.items():
            gen = torch.Generator(opts.device).manual_seed(opts.seed + 1)
            tic = time.perf_counter()
            with torch.no_grad():
                x, info = sample(score_fn, model.sde, shape, sampler=sampler, steps=steps,
                                 generator=gen, device=opts.device, **options)
            seconds = time.perf_counter() - tic
            samples[(label, sde_name, budget, score)] = x.cpu()
            runs.append(measure(label, sde_name, budget, steps, info.nfe, seconds, x.cpu(),
                                reference, oracle, options, opts.seed, score))
    return runs


def measure(label: str, sde_name: str, budget: int, steps: int | None, nfe: int, seconds: float,
            x: Tensor, reference: Tensor, oracle: GaussianMixture | None, options: dict,
            seed: int, score: str = "trained") -> Run:
    """A :class:`Run` of sample ``x``: sliced W2 to ``reference`` and, with an oracle, the
    mixture statistics (``inf`` / ``None`` when ``x`` is not finite)."""
    finite = bool(torch.isfinite(x).all())
    dist = sw2(x, reference, seed) if finite else float("inf")
    run = Run(label, sde_name, score, budget, steps, nfe, seconds, dist, options=_jsonable(options))
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



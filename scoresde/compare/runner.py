"""The experiment of ``scoresde compare`` on 2-D toys: train one model per SDE, run every sampler
at every budget with the trained and (on the mixture) the exact score, the probability-flow
likelihood, and write the results (see :mod:`scoresde.compare`); images go to
:mod:`scoresde.compare.images`."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scoresde.analytic import GaussianMixture, toy_mixture
from scoresde.build import load_config, load_data
from scoresde.compare.fit import sde_config, train
from scoresde.compare.images import run_image_compare
from scoresde.compare.nll import likelihood
from scoresde.compare.plan import (
    IMAGE_DEFAULTS,
    QUICK_DEFAULTS,
    SDE_NAMES,
    TOY_DEFAULTS,
    TOY_RECIPE,
    CompareOptions,
    Defaults,
    jsonable,
    plan_runs,
)
from scoresde.compare.plots import quality_vs_nfe, sample_grid
from scoresde.compare.report import report_markdown
from scoresde.config import Config
from scoresde.data import TOYS, Dataset
from scoresde.metrics import SlicedWasserstein, mixture_stats
from scoresde.samplers import sample
from scoresde.shapes import flatten_batch

N_PROJECTIONS = 128
FLOOR_SEEDS = 5


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
    """Run the comparison ``opts`` asks for (toys here, images in :mod:`.images`), write the
    report and figures to ``run_dir``; return the results."""
    tic, cpu = time.perf_counter(), time.process_time()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    base = base_config(opts)
    image = base.data.name not in TOYS
    d = resolve_defaults(opts, image)
    if opts.checkpoint is not None and not image:
        raise ValueError(f"--checkpoint compares the samplers on a trained image model; "
                         f"{opts.checkpoint} was trained on {base.data.name!r}")
    if image:
        return run_image_compare(opts, base, d, run_dir, tic, cpu)
    data = load_data(base.data)
    oracle = toy_mixture() if base.data.name == "mixture" else None
    reference = _reference(oracle, data, d.reference_size, opts.seed)
    sdes = check_sdes(opts.sdes or SDE_NAMES)
    distance = distance_to(reference, opts.seed)
    floor = _floor(oracle, data, distance, d.n_samples, opts.seed)
    runs, nll, samples, phases = [], [], {}, dict.fromkeys(("train", "likelihood", "sample"), 0.0)
    shared = {"base": base, "data": data, "oracle": oracle, "reference": reference,
              "distance": distance, "d": d, "opts": opts, "run_dir": run_dir}
    for sde_runs, sde_nll, sde_samples, sde_phases in _each_sde(sdes, workers(opts, len(sdes)), shared):
        runs += sde_runs
        nll += sde_nll
        samples.update(sde_samples)
        phases = {k: phases[k] + sde_phases[k] for k in phases}
    result = {"config": base.name, "data": base.data.name, "options": jsonable(asdict(opts)),
              "train_steps": d.train_steps, "floor_sliced_w2": floor,
              "runs": [asdict(r) for r in runs], "likelihood": nll, "phase_seconds": phases,
              "seconds": time.perf_counter() - tic, "cpu_seconds": time.process_time() - cpu}
    (run_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (run_dir / "report.md").write_text(report_markdown(result))
    density = oracle.log_prob if oracle is not None else None
    for label in dict.fromkeys(r.sampler for r in runs):
        sample_grid(run_dir / f"samples_{label}.png", label, samples, sdes, False, density,
                    d.tolerances)
    quality_vs_nfe(run_dir / "quality_vs_nfe.png", result["runs"], floor, sdes)
    return result


def workers(opts: CompareOptions, n_sdes: int) -> int:
    """Processes for the SDEs: ``opts.workers``, or with ``0`` one per SDE when they run on a CPU
    with more than one core (each SDE is a separate model: they share nothing until the report),
    except for ``quick`` runs, which take less time than starting a process (a spawned worker
    imports torch afresh)."""
    if opts.workers < 0:
        raise ValueError(f"workers must be >= 0 (0: automatic); got {opts.workers}")
    if opts.workers:
        return min(opts.workers, n_sdes)
    on_cpu = torch.device(opts.device).type == "cpu"
    return n_sdes if on_cpu and not opts.quick and (os.cpu_count() or 1) > 1 else 1


def _each_sde(sdes: tuple[str, ...], n_workers: int, shared: dict) -> list[tuple]:
    """:func:`_one_sde` of every SDE (``shared``: its other arguments), in order: in this process,
    or in ``n_workers`` spawned processes of one torch thread each (their progress bars off, one
    bar here over the SDEs)."""
    if n_workers <= 1:
        return [_one_sde(name, **shared) for name in sdes]
    quiet = {**shared, "opts": replace(shared["opts"], progress=False)}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n_workers, mp_context=context, initializer=torch.set_num_threads,
                             initargs=(1,)) as pool:
        futures = [pool.submit(_one_sde, name, **quiet) for name in sdes]
        for _ in tqdm(as_completed(futures), total=len(futures), desc="SDEs",
                      disable=not shared["opts"].progress):
            pass
        return [f.result() for f in futures]


def _one_sde(name: str, base: Config, data: Dataset, oracle: GaussianMixture | None,
             reference: Tensor, distance: SlicedWasserstein, d: Defaults, opts: CompareOptions,
             run_dir: Path) -> tuple[list[Run], list[dict], dict, dict]:
    """Train the model of SDE ``name``, its likelihood (if ``d.n_likelihood``) and every sampler
    run: ``(runs, likelihood records, samples, phase seconds)``."""
    phases = {}
    clock = time.perf_counter()
    model = train(sde_config(base, name, data), data, run_dir / f"train_{name}", d.train_steps, opts)
    phases["train"] = time.perf_counter() - clock
    nll = [likelihood(model, name, data, oracle, d, opts)] if d.n_likelihood else []
    phases["likelihood"] = sum(r["seconds"] for r in nll)
    clock, samples = time.perf_counter(), {}
    runs = _sample_all(model, name, d, opts, reference, distance, oracle, samples)
    phases["sample"] = time.perf_counter() - clock
    return runs, nll, samples, phases


def check_sdes(sdes: tuple[str, ...]) -> tuple[str, ...]:
    """``sdes`` if each is one of :data:`SDE_NAMES`, else a ``ValueError`` naming the others."""
    if unknown := sorted(set(sdes) - set(SDE_NAMES)):
        raise ValueError(f"sdes: each must be one of {SDE_NAMES}; got {unknown}")
    return tuple(sdes)


def base_config(opts: CompareOptions) -> Config:
    """The config to train or load: ``--checkpoint``'s own ``config.yaml``, ``--config``, or the
    embedded mixture with :data:`TOY_RECIPE` (``--set`` overrides applied last)."""
    if opts.checkpoint is not None:
        if opts.config is not None:
            raise ValueError("give --config (train a model) or --checkpoint (use a trained one), not both")
        path, recipe = Path(opts.checkpoint) / "config.yaml", []
    else:
        path, recipe = opts.config, list(TOY_RECIPE) if opts.config is None else []
    cfg = load_config(path, recipe + list(opts.overrides))
    if opts.data_dir:
        cfg.data.root = opts.data_dir
    return cfg


def resolve_defaults(opts: CompareOptions, image: bool) -> Defaults:
    """The budgets of the data kind (or ``--quick``'s), with the options given overriding them;
    an explicit ``nfe`` applies to every sampler."""
    d = QUICK_DEFAULTS if opts.quick else (IMAGE_DEFAULTS if image else TOY_DEFAULTS)
    if opts.quick and image:
        d = replace(d, n_samples=150, n_likelihood=0)  # FD needs more samples than features (128)
    return replace(
        d,
        nfe=opts.nfe or d.nfe,
        stochastic_nfe=None if opts.nfe else d.stochastic_nfe,
        train_steps=opts.train_steps or d.train_steps,
        n_samples=opts.n_samples or d.n_samples,
        n_likelihood=d.n_likelihood if opts.n_likelihood is None else opts.n_likelihood,
    )


def _sample_all(model, sde_name: str, d: Defaults, opts: CompareOptions, reference: Tensor,
                distance: SlicedWasserstein,
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
                                distance, oracle, options, score))
    return runs


def measure(label: str, sde_name: str, budget: int, steps: int | None, nfe: int, seconds: float,
            x: Tensor, distance: SlicedWasserstein, oracle: GaussianMixture | None, options: dict,
            score: str = "trained") -> Run:
    """A :class:`Run` of sample ``x``: its sliced W2 ``distance`` to the reference and, with an
    oracle, the mixture statistics (``inf`` / ``None`` when ``x`` is not finite)."""
    finite = bool(torch.isfinite(x).all())
    dist = distance(x) if finite else float("inf")
    run = Run(label, sde_name, score, budget, steps, nfe, seconds, dist, options=jsonable(options))
    if oracle is not None and finite:
        stats = mixture_stats(oracle, x)
        run.chi2, run.max_abs_z = stats.chi2, stats.max_abs_z
    return run


def distance_to(reference: Tensor, seed: int) -> SlicedWasserstein:
    """Sliced W2 to ``reference`` over the same ``N_PROJECTIONS`` directions (drawn from
    ``seed``) for every run, the reference projected and sorted once."""
    return SlicedWasserstein(reference, N_PROJECTIONS, torch.Generator().manual_seed(seed))


def _reference(oracle: GaussianMixture | None, data: Dataset, size: int, seed: int) -> Tensor:
    """The truth the samples are measured against: an exact sample, else the held-out data."""
    if oracle is None:
        return data.test
    gen = torch.Generator().manual_seed(seed + 10_000)
    return oracle.sample(size, generator=gen, dtype=torch.float32)


def _floor(oracle, data: Dataset, distance: SlicedWasserstein, n: int, seed: int) -> list[float]:
    """Sliced W2 from exact samples of size ``n`` to the reference (``FLOOR_SEEDS`` draws)."""
    if oracle is not None:
        draws = [oracle.sample(n, generator=torch.Generator().manual_seed(seed + 20_000 + k))
                 for k in range(FLOOR_SEEDS)]
    else:
        draws = [data.train[torch.randperm(len(data.train),
                                           generator=torch.Generator().manual_seed(seed + k))[:n]]
                 for k in range(FLOOR_SEEDS)]
    return [distance(x) for x in draws]




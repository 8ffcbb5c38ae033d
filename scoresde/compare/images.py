"""The image half of ``scoresde compare``: every sampler on one trained image model, judged by
the feature-classifier metrics (Fréchet distance, kernel distance ± se, confident share) beside
the data's own floor.

The model is trained from ``--config`` (for its ``train.steps``, or ``--train-steps``) or read
from a trained run directory (``--checkpoint``). Every sampler then draws ``n`` images at each
NFE budget of its kind (:data:`~scoresde.compare.plan.IMAGE_DEFAULTS`: the ODE solvers at few
evaluations, the stochastic samplers at many), all from the same prior noise: block ``k`` of
``sample.batch_size`` images starts from :func:`scoresde.distributed.block_generator`
``(seed + 1, k)``, whatever the sampler.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scoresde.build import data_shape, load_data, load_trained
from scoresde.compare.fit import train
from scoresde.compare.nll import likelihood
from scoresde.compare.plan import CompareOptions, Defaults, jsonable, plan_runs
from scoresde.compare.plots import fd_vs_nfe, image_samples
from scoresde.compare.report import image_report
from scoresde.config import Config
from scoresde.data import Dataset
from scoresde.distributed import block_generator
from scoresde.metrics import ImageJudge, load_or_train_classifier
from scoresde.samplers import sample
from scoresde.score import ScoreModel

GRID_IMAGES = 64
"""Images per sampler and budget in the sample figures (the first of the shared prior noise)."""


@dataclass
class ImageRun:
    """One sampler run on images: what was asked, what was spent, how good the images are."""

    sampler: str
    sde: str
    budget: int
    steps: int | None
    nfe: int
    seconds: float
    fd: float
    kd: float
    kd_se: float
    confident: float
    max_class_dev: float
    class_hist: list[float] = field(default_factory=list)
    options: dict = field(default_factory=dict)


def run_image_compare(opts: CompareOptions, base: Config, d: Defaults, run_dir: Path,
                      tic: float, cpu: float) -> dict:
    """Train (or load: ``base`` is then the run's config) the image model, judge every planned
    run, write report and figures."""
    cfg, run = base, opts.checkpoint
    if opts.sdes and tuple(opts.sdes) != (cfg.sde.name,):
        raise ValueError(f"sdes: an image comparison runs the config's own SDE ({cfg.sde.name!r}); "
                         f"set sde.name instead of --sdes {','.join(opts.sdes)}")
    data = load_data(cfg.data)
    if data.train_labels is None:
        raise ValueError(f"an image comparison needs a labelled image set; data.name is {cfg.data.name!r}")
    clock = time.perf_counter()
    model = _model(opts, cfg, run, data, d, run_dir)
    phases = {"train": time.perf_counter() - clock, "likelihood": 0.0, "sample": 0.0}
    classifier, info = load_or_train_classifier(
        data.train, data.train_labels, test_images=data.test, test_labels=data.test_labels,
        device=opts.device, progress=opts.progress)
    judge = ImageJudge(classifier, data.test, data.train)
    nll = [likelihood(model, cfg.sde.name, data, None, d, opts)] if d.n_likelihood else []
    phases["likelihood"] = sum(r["seconds"] for r in nll)
    clock = time.perf_counter()
    runs, samples = judge_samplers(model, cfg, d, opts, judge, data.shape)
    phases["sample"] = time.perf_counter() - clock
    result = {"config": cfg.name, "data": cfg.data.name, "checkpoint": run,
              "options": jsonable(asdict(opts)), "n": d.n_samples, "classifier": info,
              "floor": judge.floor(d.n_samples), "runs": [asdict(r) for r in runs],
              "likelihood": nll, "phase_seconds": phases,
              "seconds": time.perf_counter() - tic, "cpu_seconds": time.process_time() - cpu}
    (run_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (run_dir / "report.md").write_text(image_report(result))
    for label in dict.fromkeys(r.sampler for r in runs):
        image_samples(run_dir / f"samples_{label}.png", label, samples, d.tolerances)
    fd_vs_nfe(run_dir / "fd_vs_nfe.png", result)
    return result


def _model(opts: CompareOptions, cfg: Config, run: str | None, data: Dataset, d: Defaults,
           run_dir: Path) -> ScoreModel:
    """The trained run's EMA model, or one trained here for ``train_steps`` (the config's own
    ``train.steps`` unless given)."""
    if run is not None:
        if tuple(data_shape(cfg.data)) != tuple(data.shape):
            raise ValueError(f"{run} models images of shape {data_shape(cfg.data)}, the data set "
                             f"has {data.shape}")
        return load_trained(Path(run), cfg, opts.device)
    steps = d.train_steps if d.train_steps is not None else cfg.train.steps
    return train(cfg, data, run_dir / f"train_{cfg.sde.name}", steps, opts)


def judge_samplers(model: ScoreModel, cfg: Config, d: Defaults, opts: CompareOptions,
                   judge: ImageJudge, shape: tuple[int, ...]) -> tuple[list[ImageRun], dict]:
    """Every planned run of ``d.n_samples`` images, each judged; the first :data:`GRID_IMAGES`
    of each kept for the figures (by ``(sampler, budget)``)."""
    plan = plan_runs(cfg.sde.name, math.prod(shape), d, opts.samplers)
    runs, samples = [], {}
    for label, sampler, budget, steps, options in tqdm(plan, desc="sample", disable=not opts.progress):
        tic = time.perf_counter()
        x, nfe = draw(model, (d.n_samples, *shape), cfg.sample.batch_size, opts,
                      sampler=sampler, steps=steps, **options)
        seconds = time.perf_counter() - tic
        q = judge.judge(x, generator=torch.Generator().manual_seed(opts.seed))
        samples[(label, budget)] = x[:GRID_IMAGES]
        runs.append(ImageRun(label, cfg.sde.name, budget, steps, nfe, seconds, q.fd, q.kd, q.kd_se,
                             q.confident, q.max_class_dev, q.class_hist, jsonable(options)))
    return runs, samples


def draw(model: ScoreModel, shape: tuple[int, ...], batch_size: int, opts: CompareOptions,
         **kwargs) -> tuple[Tensor, int]:
    """``shape[0]`` images in blocks of ``batch_size``, block ``k`` from the generator
    ``block_generator(seed + 1, k)`` (so every sampler starts from the same prior noise), clamped
    to ``[-1, 1]``; returns them and the NFE per image (the blocks' mean, rounded)."""
    blocks, nfes = [], []
    for k, lo in enumerate(range(0, shape[0], batch_size)):
        n = min(batch_size, shape[0] - lo)
        gen = block_generator(opts.seed + 1, k, opts.device)
        with torch.no_grad():
            x, info = sample(model, model.sde, (n, *shape[1:]), generator=gen, device=opts.device,
                             **kwargs)
        blocks.append(x.clamp(-1, 1).cpu())
        nfes.append(info.nfe)
    return torch.cat(blocks), round(sum(nfes) / len(nfes))


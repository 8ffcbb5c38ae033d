"""``scoresde evaluate``: judge a trained image model's samples by the feature-classifier metrics.

The run directory's EMA model draws ``--n`` samples with ``--sampler`` / ``--steps`` (or the run's
``sample`` section), or ``--samples`` names a saved ``.npy`` / ``.pt`` of images; the feature
classifier of the run's data set (trained once and cached, :func:`scoresde.metrics.load_or_train_classifier`)
then reports the Fréchet and kernel distances, the confident share and the class histogram beside
the data's own floor, as a table on the terminal and as ``<run>/evaluate/<name>.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from scoresde import distributed
from scoresde.arguments import (
    add_class_arguments,
    add_common,
    add_grid_arguments,
    checkpoint_run_dir,
    class_score,
    grid_options,
    guidance_scale,
    guiding_classifier,
    positive,
    requested_classes,
    resolve,
    sampler_name,
    sampler_steps,
)
from scoresde.atomic import write_json
from scoresde.build import data_shape, load_data, load_trained
from scoresde.data import Dataset, to_model_range

SAMPLE_FILES = (".npy", ".pt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--checkpoint", dest="checkpoint", metavar="RUN",
                        help="run directory holding checkpoint.pt and config.yaml (same as --run-dir)")
    parser.add_argument("--samples", type=Path, help="judge saved images (.npy uint8 or .pt) instead")
    parser.add_argument("--sampler", help="sampler name (default: sample.sampler)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: sample.steps)")
    add_grid_arguments(parser)
    parser.add_argument("--n", type=int, default=1000, help="samples to draw and judge (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior noise and the subsets")
    parser.add_argument("--cache-dir", type=Path, help="feature-classifier cache (default "
                        "$SCORESDE_CACHE or ~/.cache/scoresde/classifiers)")
    parser.add_argument("--out", type=Path, help="JSON output (default <run>/evaluate/<name>.json)")
    add_class_arguments(parser)


def main(args: argparse.Namespace) -> int:
    checkpoint_run_dir(args)
    positive(args, "n", 1000)
    positive(args, "steps", 1)
    cfg, run_dir = resolve(args)
    data = load_data(cfg.data)
    if data.train_labels is None:
        raise ValueError(f"evaluate judges labelled images; data.name {cfg.data.name!r} is not an image set")
    if args.samples is not None:
        if args.klass is not None or args.guidance is not None or args.classifier is not None:
            raise ValueError("--class / --guidance / --classifier draw guided samples; they do not "
                             "apply to --samples")
        x = read_samples(args.samples, data.shape, data.num_levels)
        source = {"samples": str(args.samples)}
        name = args.samples.stem
    else:
        x, source = draw(args, cfg, run_dir, data)
        name = f"{sampler_name(source['sampler'], source['steps'], source)}_n{args.n}"
        if args.klass is not None:
            name += f"_class{args.klass}_w{source['guidance']:g}"
        if args.classifier is not None:
            name += "_classifier"
    if not distributed.is_main():
        return 0
    from scoresde.metrics import ImageJudge, load_or_train_classifier

    classifier, info = load_or_train_classifier(
        data.train, data.train_labels, test_images=data.test, test_labels=data.test_labels,
        cache_dir=args.cache_dir, device=args.device, progress=not args.no_progress)
    judge = ImageJudge(classifier, data.test, data.train)
    quality = judge.judge(x, generator=torch.Generator().manual_seed(args.seed))
    print(quality.table())
    if "classes" in source:
        source["class_match"] = class_match(judge, x, source.pop("classes"))
        print(f"| assigned to the requested class | {source['class_match']:.1%} | |")
    out = args.out or run_dir / "evaluate" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"run": str(run_dir), **source, "classifier": info, **quality.to_dict()}
    write_json(out, record)
    print(f"-> {out}")
    return 0


def draw(args: argparse.Namespace, cfg, run_dir: Path, data: Dataset) -> tuple[Tensor, dict]:
    """``args.n`` samples of the run's EMA model; refuses a model of another image shape."""
    shape = data_shape(cfg.data)
    if tuple(shape) != tuple(data.shape):
        raise ValueError(f"{run_dir} models images of shape {shape}, the data set has {data.shape}")
    s = cfg.sample
    sampler, steps = sampler_steps(args, s)
    grid = grid_options(args, s)
    model = load_trained(run_dir, cfg, args.device, s.ema)
    classifier = guiding_classifier(args, cfg)
    score_fn = class_score(model, args.klass, args.guidance, classifier)
    tic = time.perf_counter()
    x, nfe = distributed.sharded_sample(
        score_fn, model.sde, (args.n, *shape), seed=args.seed, batch_size=s.batch_size,
        device=args.device, sampler=sampler, steps=steps, **grid,
        progress=not args.no_progress and distributed.is_main())
    source = {"sampler": sampler, "steps": steps, **grid, "nfe": nfe,
              "sample_seconds": time.perf_counter() - tic}
    if args.klass is not None:
        k = (classifier or model).num_classes
        source.update({"class": args.klass, "guidance": guidance_scale(args.guidance, classifier),
                       "classes": requested_classes(args.klass, args.n, s.batch_size, k)})
    if classifier is not None:
        source["guidance_classifier"] = str(args.classifier)
    return x.clamp(-1, 1).cpu(), source


def class_match(judge, x: Tensor, classes: Tensor) -> float:
    """The share of samples whose most probable class under the judge's classifier is the one
    they were guided toward."""
    _, probs = judge.outputs(x, "samples")
    return float((probs.argmax(1).cpu() == classes).double().mean())


def read_samples(path: Path, shape: tuple[int, ...], num_levels: int) -> Tensor:
    """Images from ``.npy`` (integer levels ``{0..L-1}``, ``(n, h, w)`` or ``(n, c, h, w)``) or
    ``.pt`` (the model's range ``[-1, 1]``, as ``scoresde sample`` writes), in the model's range."""
    if path.suffix not in SAMPLE_FILES:
        raise ValueError(f"--samples must be one of {SAMPLE_FILES}; got {path}")
    if not path.is_file():
        raise FileNotFoundError(f"--samples file {path} not found")
    x = torch.from_numpy(np.load(path)) if path.suffix == ".npy" else torch.load(path, weights_only=True)
    if x.ndim == len(shape) and shape[0] == 1:
        x = x.unsqueeze(1)
    if tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"--samples {path} holds images of shape {tuple(x.shape[1:])}; the data set's "
                         f"are {tuple(shape)}")
    if path.suffix == ".npy":
        if x.dtype != torch.uint8 or int(x.max()) >= num_levels:
            raise ValueError(f"--samples {path}: a .npy must hold uint8 levels below {num_levels}")
        return to_model_range(x, num_levels)
    return x.float().clamp(-1, 1)

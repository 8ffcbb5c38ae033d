"""Command line: ``scoresde train | train-classifier | sample | likelihood | compare | evaluate |
inpaint`` (also ``python -m scoresde``).

Run directory layout (``--run-dir``, default ``runs/<config name>``)::

    config.yaml        the resolved configuration (written by ``train``, read by the others)
    checkpoint.pt      model, EMA, optimizer, step, RNG states (atomic; ``train`` resumes from it)
    metrics.jsonl      one JSON record per log / evaluation
    samples/           <sampler>_<steps>.png (scatter plot or image grid), .pt, .json
    likelihood.json    NLL in nats (vectors) or bits/dim (images), with its standard error

This module parses arguments and prints; what a run is made of comes from :mod:`scoresde.build`.
Subcommands live in :data:`COMMANDS`; another module adds one with :func:`register`.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from scoresde import distributed
from scoresde.arguments import (
    add_class_arguments,
    add_common,
    add_grid_arguments,
    checked_device,
    checkpoint_run_dir,
    class_score,
    grid_options,
    guidance_scale,
    guiding_classifier,
    positive,
    resolve,
    sampler_name,
    sampler_steps,
)
from scoresde.atomic import write_json
from scoresde.build import (
    build_classifier_trainer,
    build_trainer,
    data_shape,
    load_data,
    load_trained,
)
from scoresde.config import save_config
from scoresde.plotting import plot_samples
from scoresde.training import StoppedAtOnce, Trainer, TrainingStopped


@dataclass
class Command:
    """A subcommand: ``configure(parser)`` adds its arguments, ``run(args)`` executes it."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


COMMANDS: dict[str, Command] = {}


def register(name: str, command: Command) -> None:
    """Add a subcommand (e.g. a later ``compare``) to the ``scoresde`` command line."""
    COMMANDS[name] = command


def _train_args(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--fresh", action="store_true",
                        help="refuse to resume: fail if the run directory has a checkpoint")


def run_train(args: argparse.Namespace) -> int:
    return train_with(args, build_trainer)


def run_train_classifier(args: argparse.Namespace) -> int:
    return train_with(args, build_classifier_trainer)


def train_with(args: argparse.Namespace, build: Callable[..., Trainer]) -> int:
    """``train`` and ``train-classifier``: resume the run directory's checkpoint (if any) with the
    trainer that ``build(cfg, run_dir, device, data, progress)`` makes, and train to ``train.steps``."""
    cfg, run_dir = resolve(args)
    if args.fresh and (run_dir / "checkpoint.pt").exists():
        raise ValueError(f"--fresh given but {run_dir / 'checkpoint.pt'} exists")
    trainer = build(cfg, run_dir, args.device, load_data(cfg.data), not args.no_progress)
    with trainer.lock:  # from the resume to the end: one `train` per run directory
        if trainer.maybe_resume() and distributed.is_main():
            print(f"resumed {run_dir} at step {trainer.step}")
        if trainer.step >= cfg.train.steps:
            if distributed.is_main():
                print(f"{run_dir} is at step {trainer.step} >= train.steps = {cfg.train.steps}: "
                      "nothing to train")
            return 0
        if distributed.is_main():
            save_config(cfg, run_dir / "config.yaml")
        trainer.fit(cfg.train.steps)
    if distributed.is_main():
        print(f"trained {run_dir} to step {trainer.step}; checkpoint {trainer.checkpoint_path}")
    return 0


def _sample_args(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--checkpoint", metavar="RUN", help="run directory (same as --run-dir)")
    parser.add_argument("--sampler", help="sampler name (default: sample.sampler)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: sample.steps)")
    add_grid_arguments(parser)
    parser.add_argument("--n", type=int, help="number of samples (default: sample.n)")
    parser.add_argument("--out", help="output PNG (default: <run-dir>/samples/<sampler>_<steps>.png)")
    add_class_arguments(parser)


def run_sample(args: argparse.Namespace) -> int:
    checkpoint_run_dir(args)
    cfg, run_dir = resolve(args)
    s = cfg.sample
    n = positive(args, "n", s.n)
    sampler, steps = sampler_steps(args, s)
    grid = grid_options(args, s)
    model = load_trained(run_dir, cfg, args.device, s.ema)
    classifier = guiding_classifier(args, cfg)
    score_fn = class_score(model, args.klass, args.guidance, classifier)
    x, nfe = distributed.sharded_sample(
        score_fn, model.sde, (n, *data_shape(cfg.data)), seed=s.seed, batch_size=s.batch_size,
        device=args.device, sampler=sampler, steps=steps, **grid,
        progress=not args.no_progress and distributed.is_main())
    if not distributed.is_main():
        return 0
    blocks = math.ceil(n / s.batch_size)
    w = guidance_scale(args.guidance, classifier)
    name = sampler_name(sampler, steps, grid)
    title = f"{sampler}, {steps or 'auto'} steps" + "".join(f", {k} {v}" for k, v in grid.items())
    record = {"sampler": sampler, "steps": steps, **grid, "n": n, "nfe": nfe}
    if args.klass is not None:
        name, title = f"{name}_class{args.klass}", f"{title}, class {args.klass}, w = {w:g}"
        record.update({"class": args.klass, "guidance": w})
    if classifier is not None:
        name, title = f"{name}_classifier", f"{title} (classifier)"
        record["guidance_classifier"] = str(args.classifier)
    out = Path(args.out) if args.out else run_dir / "samples" / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(x, out.with_suffix(".pt"))
    plot_samples(x, out, f"{cfg.name}: {title}, NFE/batch {nfe // blocks}")
    write_json(out.with_suffix(".json"), record)
    print(f"{n} samples -> {out} (NFE {nfe})")
    return 0


def _likelihood_args(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--n", type=int, help="held-out samples (default: likelihood.n)")
    parser.add_argument("--trace", choices=("hutchinson", "exact"), help="divergence estimator")


def run_likelihood(args: argparse.Namespace) -> int:
    cfg, run_dir = resolve(args)
    lk = cfg.likelihood
    n, trace = positive(args, "n", lk.n), args.trace or lk.trace
    model = load_trained(run_dir, cfg, args.device, lk.ema)
    data = load_data(cfg.data)
    ode_kw = {"trace": trace, "method": lk.method, "rtol": lk.rtol, "atol": lk.atol, "norm": lk.norm,
              "eps": lk.eps}
    blocks = {"seed": lk.seed, "batch_size": lk.batch_size}
    if data.num_levels is None:
        logp, _ = distributed.sharded_log_likelihood(
            model, model.sde, data.test[:n].to(args.device), **blocks, **ode_kw)
        record = {"unit": "nats", "mean": -logp.mean().item(),
                  "sem": logp.std().item() / math.sqrt(len(logp))}
    else:
        res = distributed.sharded_bits_per_dim(
            model, model.sde, data.test_levels[:n].to(args.device), num_levels=data.num_levels,
            **blocks, **ode_kw)
        record = {"unit": "bits/dim", "mean": res.mean, "sem": res.stderr}
    if not distributed.is_main():
        return 0
    record.update(n=min(n, len(data.test)), **ode_kw)
    write_json(run_dir / "likelihood.json", record)
    print(f"{cfg.name}: {record['mean']:.4f} ± {record['sem']:.4f} {record['unit']} (n = {record['n']})")
    return 0


register("train", Command("train a score model (resumes from the run's checkpoint)",
                          _train_args, run_train))
register("train-classifier", Command("train a noise-conditional classifier on x_t from the forward "
                                     "SDE, for sample --classifier (resumes like train)",
                                     _train_args, run_train_classifier))
register("sample", Command("draw samples from a trained model with any sampler",
                           _sample_args, run_sample))
register("likelihood", Command("held-out NLL (nats) or bits/dim through the probability-flow ODE",
                               _likelihood_args, run_likelihood))


def lazy_command(help: str, module: str) -> Command:
    """A subcommand whose ``add_arguments(parser)`` and ``main(args)`` live in ``module``, imported
    only when it is used (so that ``scoresde --help`` stays fast)."""

    def configure(parser: argparse.ArgumentParser) -> None:
        importlib.import_module(module).add_arguments(parser)

    def run(args: argparse.Namespace) -> int | None:
        return importlib.import_module(module).main(args)

    return Command(help, configure, run)


register("compare", lazy_command("the main job: train small models, compare every sampler on every "
                                 "SDE (NFE, time, sliced W2) and the PF-ODE NLL; table and figures",
                                 "scoresde.compare"))
register("evaluate", lazy_command("judge a trained image model's samples: Fréchet / kernel distance "
                                  "on classifier features, confident share, class histogram, data floor",
                                  "scoresde.evaluate"))
register("inpaint", lazy_command("fill in the masked part of test images with a trained image model; "
                                 "a grid of (masked input, sample, original)", "scoresde.inpaint_command"))


EXIT_CODES = {"bad input": 2, "file system": 3, "numerical": 4, "runtime": 5, "stopped": 130}
"""The exit status of each kind of failure (0 is success); ``--debug`` shows the traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scoresde", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        subparser = sub.add_parser(name, help=command.help, description=command.help)
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                               help="show the traceback of an error")
        command.configure(subparser)
    return parser


def failure_kind(err: BaseException) -> str:
    """Which :data:`EXIT_CODES` entry ``err`` belongs to; anything unforeseen is ``runtime``."""
    if isinstance(err, KeyboardInterrupt):
        return "stopped"
    if isinstance(err, (ValueError, FileNotFoundError, yaml.YAMLError)):
        return "bad input"
    if isinstance(err, OSError):
        return "file system"
    if isinstance(err, ArithmeticError):
        return "numerical"
    return "runtime"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scoresde`` console script: each failure is one line on stderr naming
    what to fix, and the exit status of its kind (:data:`EXIT_CODES`)."""
    args = build_parser().parse_args(argv)
    formatwarning = warnings.formatwarning
    if not args.debug:
        warnings.formatwarning = _warning_line(args.command)
    try:
        if hasattr(args, "device"):
            args.device = checked_device(args.device)
        with distributed.session(args):
            return COMMANDS[args.command].run(args) or 0
    except (Exception, KeyboardInterrupt) as err:
        if args.debug:
            raise
        kind = failure_kind(err)
        if isinstance(err, (TrainingStopped, StoppedAtOnce)):
            print(f"scoresde {args.command}: {err}; run it again to resume", file=sys.stderr)
        elif kind == "stopped":
            print(f"scoresde {args.command}: interrupted", file=sys.stderr)
        else:
            name = "" if kind == "bad input" else f"{type(err).__name__}: "
            print(f"scoresde {args.command}: error: {name}{_one_line(err)}", file=sys.stderr)
        return EXIT_CODES[kind]
    finally:
        warnings.formatwarning = formatwarning


def _warning_line(command: str):
    """A ``warnings.formatwarning`` printing ``scoresde <command>: warning: <message>`` (with
    ``--debug``, Python's own form with the file and line)."""

    def line(message, category, filename, lineno, line=None) -> str:
        return f"scoresde {command}: warning: {' '.join(str(message).split())}\n"

    return line


def _one_line(err: BaseException) -> str:
    """The error's message on one line (YAML and torch messages span several)."""
    return " ".join(str(err).split()) or type(err).__name__

"""The command-line arguments that several ``scoresde`` subcommands share, and how they resolve
to a config and a run directory (used by :mod:`scoresde.cli`, :mod:`scoresde.evaluate` and
:mod:`scoresde.compare`, so that none of them imports another)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from scoresde import distributed
from scoresde.build import default_device, load_config
from scoresde.config import Config, SampleConfig
from scoresde.samplers.budget import default_steps


def add_common(parser: argparse.ArgumentParser) -> None:
    """``--config --run-dir --device --set --no-progress`` and the distributed flags."""
    parser.add_argument("--config", help="YAML config (default: the run's config.yaml, else toy2d_vp)")
    parser.add_argument("--run-dir", help="run directory (default: runs/<config name>)")
    parser.add_argument("--device", default=default_device(), help="torch device, e.g. cpu, cuda:0")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.lr=1e-3 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    distributed.add_arguments(parser)


def checked_device(name: str) -> str:
    """``--device`` if torch can use it here: a bad name, or a CUDA device without CUDA (a CPU
    build of torch, or no GPU), is a ``ValueError`` that says so instead of a traceback later."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r} is not a torch device ({err})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no visible GPU"
            raise ValueError(f"--device {name}: CUDA is not available here (torch {torch.__version__}, "
                             f"{build}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return name


def resolve(args: argparse.Namespace) -> tuple[Config, Path]:
    """The config (``--config``, else the run's ``config.yaml``, else the default) and run dir."""
    run_dir = Path(args.run_dir) if args.run_dir else None
    path = args.config
    if path is None and run_dir is not None and (run_dir / "config.yaml").exists():
        path = run_dir / "config.yaml"
    cfg = load_config(path, args.set)
    return cfg, run_dir or Path("runs") / cfg.name


def positive(args: argparse.Namespace, name: str, default: int) -> int:
    """``--<name>`` if given (it must be >= 1: 0 or a negative count is an error, not the config's
    value), else ``default``."""
    value = getattr(args, name)
    if value is None:
        return default
    if value < 1:
        raise ValueError(f"--{name} must be >= 1; got {value}")
    return value


def sampler_steps(args: argparse.Namespace, cfg: SampleConfig) -> tuple[str, int | None]:
    """``--sampler`` and ``--steps`` over the config's ``sample`` section (``None`` steps: the
    sampler chooses, see :data:`scoresde.samplers.budget.OWN_STEPS`)."""
    sampler = args.sampler or cfg.sampler
    steps = None if args.steps is None else positive(args, "steps", cfg.steps)
    return sampler, default_steps(sampler, steps, cfg.steps)

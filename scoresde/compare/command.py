"""The ``scoresde compare`` command-line options, turned into :class:`CompareOptions`."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from scoresde.build import default_device
from scoresde.compare.plan import CompareOptions
from scoresde.compare.runner import run_compare
from scoresde.samplers import SAMPLERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``scoresde compare`` options."""
    parser.add_argument("--config", help="YAML config (default: the embedded 2-D mixture); "
                        "e.g. configs/digits_vp.yaml or configs/mnist_vp.yaml")
    parser.add_argument("--checkpoint", metavar="RUN", help="a trained image run directory "
                        "(checkpoint.pt, config.yaml) to compare the samplers on, instead of training")
    parser.add_argument("--run-dir", default="runs/compare", help="output directory")
    parser.add_argument("--data-dir", help="directory of the MNIST .gz files "
                        "(default: ../shared/data/mnist beside the checkout)")
    parser.add_argument("--sdes", help="comma-separated, from vp,subvp,ve")
    parser.add_argument("--samplers", help=f"comma-separated, from {','.join([*SAMPLERS, 'ode_rk4'])}")
    parser.add_argument("--nfe", help="comma-separated NFE budgets, e.g. 10,25,50,100")
    parser.add_argument("--train-steps", type=int, help="optimiser steps per SDE")
    parser.add_argument("--n-samples", type=int, help="samples per sampler run")
    parser.add_argument("--n-likelihood", type=int, help="held-out points for the PF-ODE NLL "
                        "(0: skip; default 500 on toys, 0 on images)")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: "
                        "the default models are small and more threads only add overhead)")
    parser.add_argument("--workers", type=int, default=0, help="processes for the SDEs of a toy "
                        "comparison, one torch thread each (default 0: one per SDE on a multi-core CPU)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set model.width=64")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def options_from_args(args: argparse.Namespace) -> CompareOptions:
    def split(value, cast=str):
        return tuple(cast(v) for v in value.split(",")) if value else None

    return CompareOptions(
        config=args.config, checkpoint=args.checkpoint, overrides=tuple(args.set),
        data_dir=args.data_dir,
        sdes=split(args.sdes), samplers=split(args.samplers), nfe=split(args.nfe, int),
        train_steps=args.train_steps, n_samples=args.n_samples, n_likelihood=args.n_likelihood,
        quick=args.quick,
        device=args.device, seed=args.seed, progress=not args.no_progress, workers=args.workers,
    )


def main(args: argparse.Namespace) -> int:
    """``scoresde compare``: run and print where the report went."""
    torch.set_num_threads(args.threads)
    result = run_compare(options_from_args(args), args.run_dir)
    print((Path(args.run_dir) / "report.md").read_text())
    print(f"wrote {args.run_dir}/report.md, results.json and figures in {result['seconds']:.0f} s")
    return 0



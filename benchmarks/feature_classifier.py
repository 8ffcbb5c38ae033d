"""The image metrics' feature classifier on MNIST: test accuracy, training time, and what FD / KD read.

The classifier is trained with the full default recipe of :func:`scoresde.metrics.train_classifier`
on the MNIST train split (``--data-dir``) through :func:`~scoresde.metrics.load_or_train_classifier`
(into a fresh temporary cache unless ``--cache-dir`` is given, so by default it trains), and its
accuracy on the 10,000 test images and its training wall and process-CPU seconds are recorded (goal:
>= 99 % within 3 CPU minutes). Then :class:`~scoresde.metrics.ImageJudge` reports the data's floor,
FD and KD of ``--n`` random train images against the test split, and FD / KD of the whole test
split, Gaussian-blurred (σ in pixels) or with additive Gaussian noise (std in the model range
[-1, 1], clamped), against itself undegraded, each beside the floor of the same size.

    python benchmarks/feature_classifier.py                        # -> results/feature_classifier.json
    python benchmarks/feature_classifier.py --quick --results /tmp/b   # 2,000 images, 1 epoch, seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from scoresde.build import DEFAULT_MNIST
from scoresde.data import load_mnist
from scoresde.metrics import ImageJudge, load_or_train_classifier
from scoresde.metrics.degrade import add_noise, gaussian_blur

sys.path.insert(0, str(Path(__file__).parent))
from common import add_run_options, metadata, write_json

LEVELS = {"blur": (0.5, 1.0, 2.0), "noise": (0.05, 0.1, 0.2, 0.4)}
QUICK_LEVELS = {"blur": (1.0, 2.0), "noise": (0.1, 0.4)}
QUICK_TRAIN, QUICK_TEST = 2_000, 1_000


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_MNIST, help="directory of the MNIST .gz files")
    p.add_argument("--n", type=int, help="train images in the data floor (default 1000; quick 200)")
    p.add_argument("--epochs", type=int, help="training epochs (default: the recipe's; quick 1)")
    p.add_argument("--cache-dir", type=Path,
                   help="classifier cache (default: a fresh temporary directory, so it always trains)")
    p.add_argument("--out", type=Path,
                   help="results JSON (default <results>/feature_classifier[_quick].json)")
    add_run_options(p)
    args = p.parse_args(argv)
    args.n = args.n or (200 if args.quick else 1000)
    args.epochs = args.epochs or (1 if args.quick else None)
    return args


def load(args: argparse.Namespace) -> tuple[torch.Tensor, ...]:
    """MNIST train and test images and labels (the first few thousand in quick mode)."""
    x_train, y_train = load_mnist(args.data_dir, "train")
    x_test, y_test = load_mnist(args.data_dir, "test")
    if args.quick:
        x_train, y_train, x_test, y_test = (x_train[:QUICK_TRAIN], y_train[:QUICK_TRAIN],
                                            x_test[:QUICK_TEST], y_test[:QUICK_TEST])
    return x_train, y_train, x_test, y_test


def train(args: argparse.Namespace, x_train, y_train, x_test, y_test):
    """The classifier and its info (accuracy, training seconds) from the cache or a fresh training."""
    recipe = {"epochs": args.epochs} if args.epochs else {}
    with tempfile.TemporaryDirectory() as tmp:
        net, info = load_or_train_classifier(
            x_train, y_train, test_images=x_test, test_labels=y_test, cache_dir=args.cache_dir or tmp,
            seed=args.seed, progress=not args.quick, **recipe)
    if args.cache_dir is None:
        info.pop("path")
    return net, info


def degraded(judge: ImageJudge, x_test: torch.Tensor, levels: dict, seed: int) -> list[dict]:
    """The test split, blurred or noised at each level, judged against itself undegraded."""
    make = {"blur": lambda s: gaussian_blur(x_test, s),
            "noise": lambda s: add_noise(x_test, s, torch.Generator().manual_seed(seed))}
    return [{"kind": kind, "level": level,
             **judge.judge(make[kind](level), torch.Generator().manual_seed(seed)).to_dict()}
            for kind, values in levels.items() for level in values]


def report(info: dict, floor: dict, rows: list[dict]) -> None:
    print(f"test accuracy {info['test_accuracy']:.2%} after {info['train_seconds']:.0f} s wall, "
          f"{info['train_cpu_seconds']:.0f} s CPU (cached: {info['cached']})")
    print(f"data floor, n = {floor['n']}: FD {floor['fd']:.3f}, KD {floor['kd']:.4g} ± {floor['kd_se']:.2g}")
    print("| test split | FD | KD | confident | FD floor (n = test) |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} {r['level']} | {r['fd']:.3f} | {r['kd']:.4g} ± {r['kd_se']:.2g} | "
              f"{r['confident']:.1%} | {r['fd_floor']:.3f} |")


def main(argv: list[str] | None = None) -> dict:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    x_train, y_train, x_test, y_test = load(args)
    net, info = train(args, x_train, y_train, x_test, y_test)
    judge = ImageJudge(net, x_test, x_train, seed=args.seed)
    floor = {"n": args.n, **judge.floor(args.n)}
    rows = degraded(judge, x_test, QUICK_LEVELS if args.quick else LEVELS, args.seed)
    report(info, floor, rows)
    payload = {"benchmark": "feature_classifier", **metadata(), "quick": args.quick,
               "data_dir": str(args.data_dir), "n_train": len(y_train), "n_test": len(y_test),
               "classifier": info, "floor": floor, "degraded": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.out}")
    else:
        write_json("feature_classifier", payload, args.quick, args.results)
    return payload


if __name__ == "__main__":
    main()

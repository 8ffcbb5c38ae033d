"""MNIST for a fixed CPU budget: test bits/dim against training time, and sample grids per sampler.

Each config (``configs/mnist_vp.yaml``, ``mnist_subvp.yaml``, ``mnist_ve.yaml``) is trained by the
library's :class:`~scoresde.training.Trainer` (``scoresde.build.build_trainer``) for
``--budget-minutes`` of training wall time on one torch thread; the only training override is a
``WARMUP``-step learning-rate warm-up, because the budget reaches only 100-250 steps and the
configs' 500-step warm-up would never finish. At the fractions ``--eval-every`` of the budget
training pauses (evaluation time is not charged to the budget) and the EMA model's test bits/dim
is measured with ``ss.bits_per_dim``: uniform dequantisation, the probability-flow ODE
(``dopri5``, ``rtol = atol = --tol``, one Rademacher Hutchinson probe) on a fixed seeded subset of
``--n-test`` of the 10,000 test images, mean ± SE (std / sqrt(n)). The final model then draws one
row of images with each of ``--samplers`` at about ``--nfe`` score evaluations
(``scoresde.samplers.steps_for``), every row from the same prior noise.

    python benchmarks/mnist.py                       # full (about 45 min) -> results/mnist.json, PNGs
    python benchmarks/mnist.py --quick --results /tmp/bench    # tiny U-Net, seconds
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import scoresde as ss
from scoresde.build import DEFAULT_MNIST, build_trainer, load_config, load_data
from scoresde.config import Config
from scoresde.data import Dataset
from scoresde.samplers import steps_for
from scoresde.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "examples"))
from common import add_run_options, metadata, pyplot, save_figure, write_json  # noqa: E402
from train_mnist import TINY  # noqa: E402  (the example's tiny U-Net: both --quick runs share it)

CONFIGS = "mnist_vp,mnist_subvp,mnist_ve"
SAMPLERS = "ddim,dpm++2m,heun,pc"
WARMUP = 20
BUDGET_MINUTES = 11.0
CHUNK_SECONDS = 60.0


@dataclass
class Clock:
    """Training time spent so far: wall and process CPU seconds."""

    wall: float = 0.0
    cpu: float = 0.0


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-minutes", type=float,
                   help="training wall time per config (default 11; quick 0.01)")
    p.add_argument("--configs", default=CONFIGS, help="comma-separated names in configs/ or YAML paths")
    p.add_argument("--eval-every", help="fractions of the budget at which bits/dim is measured "
                   "(comma-separated; default 0.25,0.5,1; quick 0.5,1), or one f meaning f, 2f, ..., 1")
    p.add_argument("--n-test", type=int, help="test images in the seeded subset (default 32; quick 4)")
    p.add_argument("--tol", type=float, help="ODE rtol = atol for bits/dim (default 1e-3; quick 5e-2)")
    p.add_argument("--samplers", default=SAMPLERS, help="comma-separated sampler names")
    p.add_argument("--nfe", type=int, help="score evaluations per sampler, about (default 50; quick 10)")
    p.add_argument("--n-images", type=int, help="images per sampler row (default 8; quick 2)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every config (repeatable)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_MNIST, help="directory of the MNIST .gz files")
    add_run_options(p)
    args = p.parse_args(argv)
    q = args.quick
    args.budget_minutes = args.budget_minutes or (0.01 if q else BUDGET_MINUTES)
    args.eval_every = args.eval_every or ("0.5,1" if q else "0.25,0.5,1")
    args.n_test = args.n_test or (4 if q else 32)
    args.tol = args.tol or (5e-2 if q else 1e-3)
    args.nfe = args.nfe or (10 if q else 50)
    args.n_images = args.n_images or (2 if q else 8)
    return args


def eval_fractions(spec: str) -> list[float]:
    """``"0.25,0.5,1"`` -> those fractions; ``"0.25"`` -> ``[0.25, 0.5, 0.75, 1]``."""
    values = [float(v) for v in spec.split(",")]
    if any(not 0 < v <= 1 for v in values):
        raise SystemExit(f"--eval-every fractions must lie in (0, 1]; got {spec!r}")
    if len(values) == 1:
        values = [min(1.0, k * values[0]) for k in range(1, math.ceil(1 / values[0] - 1e-9) + 1)]
    return sorted(set(values) | {1.0})


def config_path(name: str) -> Path:
    """``configs/<name>.yaml`` for a bare name, else the path itself."""
    return Path(name) if name.endswith((".yaml", ".yml")) else ROOT / "configs" / f"{name}.yaml"


def overrides(args: argparse.Namespace) -> list[str]:
    """The config overrides applied to every config (recorded in the results)."""
    base = [f"data.root={args.data_dir}", f"train.seed={args.seed}", f"train.warmup={WARMUP}",
            "train.ckpt_every=1000000"]
    return [*base, *(TINY if args.quick else []), *args.set]


def git_state() -> dict:
    """The checkout's commit and its uncommitted library files (others edit the tree concurrently)."""
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.rstrip("\n")
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {"commit": git("rev-parse", "HEAD"),
            "modified": git("status", "--porcelain", "--", "scoresde").splitlines()}


def held_out(data: Dataset, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` of a seeded permutation of the test set: (indices, integer levels)."""
    idx = torch.randperm(len(data.test_levels), generator=torch.Generator().manual_seed(seed))[:n]
    return idx, data.test_levels[idx]


def train_until(trainer: Trainer, seconds: float, clock: Clock) -> None:
    """``trainer.fit`` in chunks (at most ``CHUNK_SECONDS``) until ``clock.wall`` reaches
    ``seconds``, sized by the rate so far (the last chunk aims to end within half a step of it;
    on a loaded machine it may overrun by a few steps)."""
    while clock.wall < seconds:
        if trainer.step == 0:
            k = 1
        else:
            rate = trainer.step / clock.wall
            k = min(round((seconds - clock.wall) * rate), max(1, round(CHUNK_SECONDS * rate)))
            if k < 1:
                return
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.fit(trainer.step + k)
        clock.wall += time.perf_counter() - wall
        clock.cpu += time.process_time() - cpu


def evaluate(model: ss.ScoreModel, levels: torch.Tensor, tol: float, seed: int) -> dict:
    """Test bits/dim of ``levels`` (PF-ODE, uniform dequantisation): mean, SE, NFE, seconds."""
    tic = time.perf_counter()
    res = ss.bits_per_dim(model, model.sde, levels, num_levels=256, rtol=tol, atol=tol,
                          batch_size=len(levels), generator=torch.Generator().manual_seed(seed))
    return {"bpd": res.mean, "se": res.stderr, "n": len(levels), "nfe": res.nfe,
            "eval_seconds": time.perf_counter() - tic}


def sample_rows(model: ss.ScoreModel, samplers: list[str], nfe: int, n: int,
                seed: int) -> tuple[dict, dict]:
    """One row of ``n`` images per sampler (same prior noise): ``(images, records)``."""
    images, records = {}, {}
    for name in samplers:
        steps, options = steps_for(name, nfe)
        gen = torch.Generator().manual_seed(seed)
        tic = time.perf_counter()
        try:
            with torch.no_grad():
                x, info = ss.sample(model, model.sde, (n, 1, 28, 28), sampler=name, steps=steps,
                                    generator=gen, **options)
        except FloatingPointError as err:  # an under-trained model may diverge: record it
            records[name] = {"steps": steps, "error": str(err)}
            continue
        images[name] = x
        records[name] = {"steps": steps, "nfe": info.nfe, "seconds": time.perf_counter() - tic,
                         "n_images": n}
    return images, records


def run_config(cfg: Config, data: Dataset, levels: torch.Tensor, args: argparse.Namespace,
               fractions: list[float]) -> tuple[dict, dict]:
    """Train ``cfg`` for the budget with bits/dim at each fraction; then sample: ``(record, images)``."""
    budget = 60 * args.budget_minutes
    clock, evals = Clock(), []
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = build_trainer(cfg, Path(run_dir), "cpu", data, progress=False)
        for fraction in fractions:
            train_until(trainer, fraction * budget, clock)
            model = trainer.ema.eval().requires_grad_(False)
            row = {"fraction": fraction, "step": trainer.step, "train_seconds": clock.wall,
                   "train_cpu_seconds": clock.cpu,
                   **evaluate(model, levels, args.tol, args.seed + 2)}
            evals.append(row)
            print(f"{cfg.name}: step {row['step']} after {clock.wall / 60:.2f} min: "
                  f"{row['bpd']:.3f} ± {row['se']:.3f} bits/dim ({row['eval_seconds']:.0f} s)", flush=True)
        images, samplers = sample_rows(model, args.samplers.split(","), args.nfe, args.n_images,
                                       args.seed + 1)
    record = {"steps": trainer.step, "train_seconds": clock.wall, "train_cpu_seconds": clock.cpu,
              "steps_per_s": trainer.step / clock.wall, "evals": evals, "samplers": samplers}
    return record, images


def plot_samples(name: str, images: dict, record: dict, path: Path) -> None:
    """One row per sampler, labelled with its NFE and wall time."""
    plt = pyplot()
    fig, axes = plt.subplots(len(images), 1, figsize=(1.1 * max(4, len(next(iter(images.values())))),
                                                        1.3 * len(images) + 0.6), squeeze=False)
    for ax, (sampler, x) in zip(axes[:, 0], images.items(), strict=True):
        row = torch.cat(list(((x[:, 0] + 1) / 2).clamp(0, 1)), dim=1)
        ax.imshow(row.numpy(), cmap="gray", vmin=0, vmax=1)
        s = record["samplers"][sampler]
        ax.set_title(f"{sampler}: NFE {s['nfe']}, {s['seconds']:.1f} s", fontsize=8, loc="left")
        ax.axis("off")
    last = record["evals"][-1]
    fig.suptitle(f"{name}, {record['steps']} steps ({record['train_seconds'] / 60:.1f} min): "
                 f"{last['bpd']:.2f} ± {last['se']:.2f} bits/dim", fontsize=9)
    save_figure(fig, path)


def plot_bpd(configs: dict, n_test: int, path: Path) -> None:
    """Test bits/dim (± SE) against training minutes, one curve per config."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, record in configs.items():
        ev = record["evals"]
        ax.errorbar([e["train_seconds"] / 60 for e in ev], [e["bpd"] for e in ev],
                    yerr=[e["se"] for e in ev], marker="o", capsize=3, label=name)
    ax.set(xlabel="training wall time (min, one thread)", ylabel=f"test bits/dim (n = {n_test})",
           title="MNIST: PF-ODE bits/dim vs CPU training time")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    start, git = time.perf_counter(), git_state()
    fractions = eval_fractions(args.eval_every)
    extra = overrides(args)
    cfgs = [load_config(config_path(name), extra) for name in args.configs.split(",")]
    data = load_data(cfgs[0].data)
    if any(c.data != cfgs[0].data for c in cfgs):
        raise SystemExit("--configs must share one data section (MNIST)")
    idx, levels = held_out(data, args.n_test, args.seed)
    suffix = "_quick" if args.quick else ""
    args.results.mkdir(parents=True, exist_ok=True)
    results = {}
    for cfg in cfgs:
        results[cfg.name], images = run_config(cfg, data, levels, args, fractions)
        if images:
            grid = args.results / f"{cfg.name}_samples{suffix}.png"
            plot_samples(cfg.name, images, results[cfg.name], grid)
    plot_bpd(results, args.n_test, args.results / f"mnist_bpd{suffix}.png")
    payload = {"benchmark": "mnist", "quick": args.quick, **metadata(), "git": git,
               "total_wall_seconds": time.perf_counter() - start,
               "budget_minutes_per_config": args.budget_minutes, "eval_fractions": fractions,
               "overrides": extra, "bits_per_dim": {
                   "estimator": "PF-ODE, uniform dequantisation, 1 Rademacher probe, dopri5",
                   "rtol": args.tol, "atol": args.tol, "n_test": args.n_test,
                   "subset_seed": args.seed, "test_indices": idx.tolist(), "se": "std / sqrt(n)"},
               "sampling": {"nfe_target": args.nfe, "n_images": args.n_images, "seed": args.seed + 1},
               "configs": results}
    write_json("mnist", payload, args.quick, args.results)
    return payload


if __name__ == "__main__":
    main()

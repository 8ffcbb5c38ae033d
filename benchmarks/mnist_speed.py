"""Training throughput of CPU-sized MNIST U-Nets: shape, batch, and the speed switches.

Each variant builds the quick config's model (``ScoreModel(UNet, VP, "edm")``, EDM loss), takes
``warmup`` untimed optimiser steps of a :class:`scoresde.Trainer` and then times ``steps`` more,
in wall time and process CPU time; the figures are images per second (batch x steps / s), so
batch sizes compare. Variants run one after another in one process, so their ratios are
comparable; absolute figures depend on the machine and its load (recorded beside them).

Switches measured: ``channels_last`` memory format, bf16 autocast (``train.autocast``),
``torch.compile`` of the network (``--compile``; its compile time reported apart), and the intra-op
thread count.

    python benchmarks/mnist_speed.py            # -> results/mnist_speed.json
    python benchmarks/mnist_speed.py --quick    # tiny images, seconds (the test suite)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from scoresde.data import TensorLoader
from scoresde.losses import make_loss
from scoresde.networks import UNet
from scoresde.score import ScoreModel
from scoresde.sde import VPSDE
from scoresde.training import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from common import add_run_options, metadata, write_json


@dataclass(frozen=True)
class Variant:
    name: str
    channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    batch: int = 128
    channels_last: bool = False
    autocast: str = "none"
    compile: bool = False
    threads: int = 2


BASE = Variant("base: 32ch, mult 1-2-2, 1 block, batch 128")
VARIANTS = [
    BASE,
    replace(BASE, name="channels_last", channels_last=True),
    replace(BASE, name="bf16 autocast", autocast="bf16"),
    replace(BASE, name="bf16 autocast + channels_last", autocast="bf16", channels_last=True),
    replace(BASE, name="1 thread", threads=1),
    replace(BASE, name="batch 64", batch=64),
    replace(BASE, name="batch 256", batch=256),
    replace(BASE, name="24 channels", channels=24),
    replace(BASE, name="48 channels", channels=48),
    replace(BASE, name="2 res blocks", num_res_blocks=2),
    replace(BASE, name="mult 1-2", channel_mult=(1, 2)),
    replace(BASE, name="bf16 autocast, batch 64", autocast="bf16", batch=64),
    replace(BASE, name="bf16 autocast, 48 channels", autocast="bf16", channels=48),
]
COMPILE = replace(BASE, name="torch.compile", compile=True)


def measure(v: Variant, size: int, steps: int, warmup: int) -> dict:
    """Images/s (wall and CPU) of ``steps`` Trainer steps after ``warmup`` untimed ones."""
    torch.set_num_threads(v.threads)
    torch.manual_seed(0)
    sde = VPSDE()
    net = UNet(1, size, v.channels, v.channel_mult, v.num_res_blocks, (), 8)
    params = sum(p.numel() for p in net.parameters())
    if v.channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = ScoreModel(net, sde, "edm")
    compile_s = 0.0
    if v.compile:
        model.net = torch.compile(net)
    data = torch.rand(2048, 1, size, size) * 2 - 1
    if v.channels_last:
        data = data.contiguous(memory_format=torch.channels_last)
    loss = make_loss("dsm", sde, weighting_name="edm", time_dist="lognormal")
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, loss, TensorLoader(data, v.batch), run_dir=run_dir, lr=1e-3,
                          autocast=v.autocast, progress=False)
        tic = time.perf_counter()
        for _ in range(warmup):
            trainer.train_step()
        first = time.perf_counter() - tic
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            trainer.train_step()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if v.compile:
        compile_s = first
    return {**asdict(v), "params": params, "images_per_s": v.batch * steps / wall,
            "images_per_cpu_s": v.batch * steps / cpu, "steps_per_s": steps / wall,
            "warmup_s": first, "compile_s": compile_s}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile (its compilation takes minutes on 2 cores)")
    args = parser.parse_args(argv)
    size, steps, warmup = (8, 2, 1) if args.quick else (28, args.steps, 3)
    variants = VARIANTS[:3] if args.quick else VARIANTS + [COMPILE] * args.compile
    threads = torch.get_num_threads()
    rows = []
    for v in variants:
        v = replace(v, channel_mult=v.channel_mult[:2]) if args.quick else v
        row = measure(v, size, steps, warmup)
        rows.append(row)
        print(f"{row['name']:<44} {row['params'] / 1e6:5.2f}M  {row['images_per_s']:7.1f} img/s  "
              f"{row['steps_per_s']:.3f} steps/s  (CPU {row['images_per_cpu_s']:.1f} img/s)")
    torch.set_num_threads(threads)
    base = rows[0]["images_per_s"]
    for row in rows:
        row["ratio_to_base"] = row["images_per_s"] / base
    write_json("mnist_speed", {**metadata(), "image_size": size, "steps": steps, "warmup": warmup,
                               "rows": rows}, args.quick, args.results)


if __name__ == "__main__":
    main()

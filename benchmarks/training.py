"""Trainer throughput vs a bare PyTorch loop on the same model, loss and batches.

Both loops draw batches from the same :class:`TensorLoader` and minimise the same ε-loss of a
``ScoreModel(MLP)`` with Adam; the bare loop does only ``zero_grad / loss / backward / step``,
the Trainer adds warm-up, gradient clipping, EMA, metrics logging, the progress bar (disabled)
and its final checkpoint. Runs alternate (bare, trainer, bare, ...) and the median steps/s of
each is reported, with their ratio (goal: ≥ 0.95).

    python benchmarks/training.py            # full: 400 steps x 5 repeats -> results/training.json
    python benchmarks/training.py --quick    # smoke run -> results/training_quick.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

import scoresde as ss
from scoresde.data import TensorLoader, toy_2d
from scoresde.losses import make_loss
from scoresde.networks import MLP

RESULTS = Path(__file__).parent / "results"


def _setup(batch: int, width: int, depth: int):
    torch.manual_seed(0)
    sde = ss.VPSDE()
    model = ss.ScoreModel(MLP(2, width, depth), sde)
    loader = TensorLoader(toy_2d("mixture", 20_000, torch.Generator().manual_seed(0)), batch)
    return model, make_loss("dsm", sde), loader


def bare(steps: int, batch: int, width: int, depth: int) -> float:
    """Steps per second of the minimal loop."""
    model, loss_fn, loader = _setup(batch, width, depth)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    tic = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss_fn(model, loader.next(), gen).backward()
        opt.step()
    return steps / (time.perf_counter() - tic)


def trainer(steps: int, batch: int, width: int, depth: int) -> float:
    """Steps per second of ``Trainer.fit`` (EMA, clipping, warm-up, logging, final checkpoint)."""
    model, loss_fn, loader = _setup(batch, width, depth)
    with tempfile.TemporaryDirectory() as run_dir:
        tr = ss.Trainer(model, loss_fn, loader, run_dir=run_dir, lr=2e-3, warmup=100,
                        grad_clip=1.0, ema_decay=0.999, log_every=100, ckpt_every=10**9,
                        progress=False)
        tic = time.perf_counter()
        tr.fit(steps)
        return steps / (time.perf_counter() - tic)


def metadata() -> dict:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"processor": platform.processor() or platform.machine(),
                    "platform": platform.platform(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "scoresde": ss.__version__},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps, for the test suite")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", help="results file (default: results/training[_quick].json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    steps, repeats = (30, 2) if args.quick else (400, 5)
    cases = [{"batch": 256, "width": 128, "depth": 3}, {"batch": 1024, "width": 256, "depth": 4}]
    results = []
    for case in cases[:1] if args.quick else cases:
        runs = {"bare": [], "trainer": []}
        for _ in range(repeats):
            runs["bare"].append(bare(steps, **case))
            runs["trainer"].append(trainer(steps, **case))
        med = {k: statistics.median(v) for k, v in runs.items()}
        results.append({**case, "steps": steps, "repeats": repeats,
                        "bare_steps_per_s": med["bare"], "trainer_steps_per_s": med["trainer"],
                        "ratio": med["trainer"] / med["bare"], "runs": runs})
        print(f"{case}: bare {med['bare']:.1f} steps/s, trainer {med['trainer']:.1f} steps/s, "
              f"ratio {med['trainer'] / med['bare']:.3f}")
    payload = {"benchmark": "training", "quick": args.quick, **metadata(), "results": results}
    path = Path(args.out) if args.out else RESULTS / f"training{'_quick' if args.quick else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()

"""Shared benchmark helpers: machine and version metadata, results JSON, robust timing."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from pathlib import Path

import torch

from scoresde.plotting import pyplot

RESULTS = Path(__file__).parent / "results"


def cpu_model() -> str:
    """``lscpu``'s model name, or ``platform.processor()`` where lscpu is missing."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")]
    return names[0] if names else platform.processor()


def version(package: str) -> str | None:
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return None


def metadata() -> dict:
    """Machine, versions and date for a results file."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
                    "platform": platform.platform()},
        "versions": {p: version(p) for p in
                     ("scoresde", "torch", "numpy", "scipy", "diffusers", "k-diffusion")},
    }


def write_json(name: str, payload: dict, quick: bool, directory: Path = RESULTS) -> Path:
    """Write ``<directory>/<name>[_quick].json`` (default ``results/``) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}{'_quick' if quick else ''}.json"
    path.write_text(json.dumps(payload, indent=1))
    print(f"wrote {path}")
    return path


def median_time(
    fn: Callable[[], object], repeats: int, warmup: int = 1, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median time of ``fn()`` on ``clock`` (default wall time) over ``repeats`` runs after
    ``warmup`` untimed runs. ``clock=time.thread_time`` counts only this thread's CPU time, which
    other processes on a shared machine barely disturb (with one torch thread the work runs in
    the calling thread)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return sorted(times)[len(times) // 2]


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--quick``, ``--results``, ``--seed`` and ``--threads``: what the training benchmarks share."""
    parser.add_argument("--quick", action="store_true", help="tiny U-Net, seconds (the test suite)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """Lay out, write and close ``fig``; print where it went."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    print(f"wrote {path}")

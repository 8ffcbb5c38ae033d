"""The training benchmark runs in --quick mode and writes a well-formed results file.

Speed itself is measured by the benchmark, never asserted here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "training.py"


def test_training_benchmark_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_training", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        bench.main(["--quick", "--out", str(tmp_path / "t.json")])
    finally:
        torch.set_num_threads(threads)
    payload = json.loads((tmp_path / "t.json").read_text())
    assert payload["quick"] and {"date", "machine", "versions"} <= payload.keys()
    (row,) = payload["results"]
    assert row["bare_steps_per_s"] > 0 and row["trainer_steps_per_s"] > 0
    assert len(row["runs"]["bare"]) == row["repeats"]

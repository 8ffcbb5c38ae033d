"""Shared test set-up."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

# The suite's tensors are small: one intra-op thread is as fast and immune to oversubscription
# (measured on a loaded 2-core machine: a tiny softmax took 19 ms with two threads, 2 µs with one).
torch.set_num_threads(1)


@pytest.fixture
def run_benchmark(tmp_path, monkeypatch):
    """``run_benchmark(name)``: load ``benchmarks/<name>.py`` as a module, run its ``main`` with
    ``--quick`` into ``tmp_path`` (the torch thread count restored after), return its results JSON."""

    def run(name: str) -> dict:
        script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"bench_{name}", script)
        bench = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, f"bench_{name}", bench)  # its dataclasses look it up
        spec.loader.exec_module(bench)
        threads = torch.get_num_threads()
        try:
            bench.main(["--quick", "--results", str(tmp_path)])
        finally:
            torch.set_num_threads(threads)
        return json.loads((tmp_path / f"{name}_quick.json").read_text())

    return run

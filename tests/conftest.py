"""Shared test set-up."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import scoresde as ss

# The suite's tensors are small: one intra-op thread is as fast and immune to oversubscription
# (measured on a loaded 2-core machine: a tiny softmax took 19 ms with two threads, 2 µs with one).
torch.set_num_threads(1)

SDE_NAMES = ("vp", "subvp", "ve")
VE_SIGMA_MAX = 50.0
"""The suite's VE ``σ_max``: well above the oracle mixture's diameter (about 10.6), so that the
prior ``N(0, σ_max² I)`` matches ``p_T`` to test precision."""
TOY_SIGMA_MAX = 12.0
"""The VE ``σ_max`` of the 2-D toy configs (about the mixture's diameter): trained-model tests."""


def make_sde(name: str, ve_sigma_max: float = VE_SIGMA_MAX) -> ss.SDE:
    """A fresh SDE of the suite: VP and sub-VP with β in [0.1, 20], VE with σ in [0.01, σ_max]."""
    return {"vp": ss.VPSDE, "subvp": ss.SubVPSDE,
            "ve": lambda: ss.VESDE(0.01, ve_sigma_max)}[name]()


SDES = {name: make_sde(name) for name in SDE_NAMES}
"""The three SDEs most tests run on (VE up to :data:`VE_SIGMA_MAX`)."""
TOY_SDES = {name: make_sde(name, TOY_SIGMA_MAX) for name in SDE_NAMES}
"""The same with the toy configs' VE (up to :data:`TOY_SIGMA_MAX`)."""


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

"""``benchmarks/mnist.py --quick`` trains the three MNIST configs (tiny U-Net) for a moment and
records bits/dim against training time and a sample grid per config.

Speed and quality are measured by the benchmark, never asserted here.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist"


@pytest.mark.skipif(not MNIST.is_dir(), reason="MNIST not found beside the checkout")
def test_mnist_benchmark_quick(tmp_path, run_benchmark):
    """The quick run's records are complete and consistent. Its bits/dim after a moment of
    training may take any size, so only what holds for every model is checked: with uniform
    dequantisation the continuous NLL bounds ``-log2 P(x)`` of the discrete image from above, and
    ``P(x) <= 1``, so a recorded bits/dim must be positive (a negative or non-finite one is an
    arithmetic error)."""
    out = run_benchmark("mnist")
    assert out["quick"] and {"date", "machine", "versions"} <= out.keys()
    assert out["budget_minutes_per_config"] > 0 and out["eval_fractions"][-1] == 1.0
    n = out["bits_per_dim"]["n_test"]
    assert len(set(out["bits_per_dim"]["test_indices"])) == n >= 2
    assert set(out["configs"]) == {"mnist_vp", "mnist_subvp", "mnist_ve"}
    for name, rec in out["configs"].items():
        assert rec["steps"] >= 1 and rec["steps_per_s"] > 0
        evals = rec["evals"]
        assert len(evals) == len(out["eval_fractions"])
        assert [e["step"] for e in evals] == sorted(e["step"] for e in evals)
        assert evals[-1]["step"] == rec["steps"]
        for e in evals:
            assert math.isfinite(e["bpd"]) and e["bpd"] > 0 and e["se"] > 0
            assert e["n"] == n and e["nfe"] > 0 and e["train_seconds"] > 0
        for sampler in ("ddim", "dpm++2m", "heun", "pc"):
            s = rec["samplers"][sampler]
            assert 1 <= s["nfe"] <= out["sampling"]["nfe_target"] and s["seconds"] > 0
        assert (tmp_path / f"{name}_samples_quick.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "mnist_bpd_quick.png").stat().st_size > 0

"""``benchmarks/mnist_quality.py --quick``: the three quick configs (tiny U-Net, a few steps) are
trained, judged by the feature-classifier metrics at each kept step, and their final samples
saved as uint8 arrays in the data's layout. Quality and speed are recorded, never asserted here."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist"


@pytest.mark.skipif(not MNIST.is_dir(), reason="MNIST not found beside the checkout")
def test_mnist_quality_benchmark_quick(tmp_path, run_benchmark):
    out = run_benchmark("mnist_quality")
    assert {"date", "machine", "versions", "classifier"} <= out.keys()
    assert set(out["sdes"]) == {"vp", "subvp", "ve"}
    for sde, res in out["sdes"].items():
        rows = res["rows"]
        assert [r["step"] for r in rows] == sorted({r["step"] for r in rows}) and rows[-1]["step"] == 4
        assert [r["train_seconds"] for r in rows] == sorted(r["train_seconds"] for r in rows)
        for r in rows:
            assert math.isfinite(r["fd"]) and r["fd"] > r["fd_floor"] >= 0  # 4 steps: far from data
            assert 0 <= r["confident"] <= 1 and abs(sum(r["class_hist"]) - 1) < 1e-9
            assert r["nfe"] == out["sampler_steps"] + 1 and math.isfinite(r["bpd"])
        images = np.load(tmp_path / f"mnist_quality_{sde}_quick.npy")
        assert images.dtype == np.uint8 and images.shape == (out["n"], 28, 28)
        assert (tmp_path / f"mnist_quality_{sde}_quick.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "mnist_quality_quick.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "mnist_quality_work").exists()

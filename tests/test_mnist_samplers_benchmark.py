"""``benchmarks/mnist_samplers.py --quick``: a tiny trained run judged for a few sampler specs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist"
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_parse_spec():
    from mnist_samplers import parse_spec

    spec = parse_spec("heun:40,s_churn=20,autocast=bf16")
    assert spec == ("heun", 40, {"s_churn": 20.0, "autocast": "bf16"})
    with pytest.raises(SystemExit, match="expected sampler:steps"):
        parse_spec("heun")


@pytest.mark.skipif(not MNIST.exists(), reason="MNIST files not beside the checkout")
def test_quick_run_writes_one_row_per_spec(tmp_path):
    """Every spec gives a row whose NFE is the sampler's count (Heun 2 x steps + 1 with the
    denoising step, DPM-Solver++ steps + 1), a finite FD and a share in [0, 1], and a grid."""
    import mnist_samplers

    specs = "dpm++2m:3;heun:2,s_churn=1;dpm++2m:3,autocast=bf16"
    mnist_samplers.main(["--quick", "--results", str(tmp_path), "--specs", specs])
    rows = json.loads((tmp_path / "mnist_samplers_quick.json").read_text())["rows"]
    assert [(r["spec"], r["nfe"]) for r in rows] == [
        ("dpm++2m:3", 4), ("heun:2,s_churn=1", 5), ("dpm++2m:3,autocast=bf16", 4)]
    for r in rows:
        assert 0 <= r["confident"] <= 1 and r["fd"] == r["fd"] and r["fd"] > r["fd_floor"]
    assert len(list(tmp_path.glob("mnist_samplers_*_quick.png"))) == 3

"""``benchmarks/fast_trained.py --quick`` trains a tiny digits U-Net for a moment and records the
few-step solvers' error against a dopri5 reference of the same probability-flow ODE.

Speed is measured by the benchmark, never asserted here.
"""

from __future__ import annotations

import math


def test_fast_trained_benchmark_quick(tmp_path, run_benchmark):
    out = run_benchmark("fast_trained")
    assert out["quick"] and {"date", "machine", "versions"} <= out.keys()
    assert out["training"]["steps"] == 50 and out["training"]["seconds"] > 0
    assert [r["eps"] for r in out["references"]] == [1e-3, 3e-2]
    assert all(r["nfe"] > 10 for r in out["references"])
    solvers = {"ddim", "heun", "dpm++2m", "dpm++3m", "unipc3", "fast", "fast (own eps)"}
    assert {r["solver"] for r in out["rows"]} == solvers
    assert len(out["rows"]) == len(solvers) * len(out["budgets"]) == 14
    for r in out["rows"]:
        assert 1 <= r["nfe"] <= r["budget"], r
        assert math.isfinite(r["rms"]) and r["rms"] > 0 and r["seconds"] > 0
        assert math.isfinite(r["sliced_w2"]) and r["sliced_w2"] <= r["rms"] * (1 + 1e-9)
    by = {(r["solver"], r["budget"]): r for r in out["rows"]}
    assert by["dpm++3m", 10]["rms"] < by["dpm++3m", 6]["rms"]
    assert by["fast", 10]["rms"] == by["dpm++3m", 10]["rms"]  # VP's "fast" is DPM-Solver++(3M)
    assert (tmp_path / "fast_trained_quick.png").read_bytes()[:4] == b"\x89PNG"

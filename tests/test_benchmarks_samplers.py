"""``benchmarks/samplers.py --quick`` runs end to end without the peer libraries and records what
it measured: the results JSON (machine, versions, rows, overhead) and the quality-vs-NFE plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "samplers.py"


def test_samplers_benchmark_quick(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--no-peers", "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skipped k-diffusion" in proc.stdout
    out = json.loads((tmp_path / "samplers_quick.json").read_text())
    assert {"machine", "versions", "date"} <= set(out)
    assert {r["lib"] for r in out["rows"]} == {"scoresde"}
    assert all(r["nfe"] <= r["budget"] for r in out["rows"])
    dpm = [r for r in out["rows"] if r["sampler"] == "dpm++3m" and r["budget"] == 20]
    assert dpm[0]["max_abs_z"] < 5, dpm
    assert [(r["sampler"], r["nfe"]) for r in out["overhead"]] == [("ddim", 21), ("dpm++3m", 21)]
    assert (tmp_path / "samplers_quick.png").stat().st_size > 0


def test_samplers_toy_benchmark_quick(run_benchmark):
    """``benchmarks/samplers_toy.py --quick``: every sampler and both PC norm rules recorded."""
    out = run_benchmark("samplers_toy")
    assert len(out["defaults"]) == 3 * 11 - 1  # no ancestral on sub-VP
    assert {(r["sde"], r["norms"]) for r in out["pc_norms"]} == {
        (s, n) for s in ("VP", "sub-VP", "VE") for n in ("batch", "sample")}
    assert all(r["nfe"] > 0 and r["chi2"] >= 0 for r in out["defaults"] + out["pc_norms"])


def test_fast_obstacles_benchmark_quick(run_benchmark):
    """``benchmarks/fast_obstacles.py --quick``: both solver forms and the warped grid recorded."""
    out = run_benchmark("fast_obstacles")
    row = out["ode_error"][0]
    assert row["nfe"] == 10 and 0 < row["data_prediction_3m"] < row["noise_prediction_3m"]
    assert out["warped"][0]["power"] == 1.0 and out["warped"][0]["max_abs_z"] > 0

"""The likelihood benchmark runs end to end in --quick mode and writes a complete record."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "likelihood.py"


def test_quick_benchmark_writes_results(tmp_path):
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("bench_likelihood", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "likelihood_quick.json"
    module.main(["--quick", "--out", str(out)])
    record = json.loads(out.read_text())
    assert {"date", "machine", "versions", "config", "results"} <= set(record)
    results = record["results"]
    assert {"baseline_scipy_rk45", "ours_t", "ours_log_sigma"} <= set(results)
    for name, rec in results.items():
        assert rec["nfe"] > 0 and rec["seconds"] > 0 and "speedup_vs_baseline" in rec
        if not name.endswith("_x10"):
            # same ODE, same probe, same tolerance: the same bits/dim to solver accuracy
            assert abs(rec["bpd_minus_baseline"]) < 0.1
    assert "speedup_equal_accuracy" in results["ours_t"]

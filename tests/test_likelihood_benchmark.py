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


MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.mark.skipif(not MNIST.is_dir(), reason="MNIST not found beside the checkout")
def test_likelihood_speed_quick(run_benchmark):
    """``benchmarks/likelihood_speed.py --quick`` (untrained tiny U-Net, 2 images, loose
    tolerances) records every method's error against its reference, the anchor's speedup over
    itself is 1 by construction of the front interpolation, and the oracle rows cover both SDEs
    and every norm. The paper recipe counts two network passes per call, so its NFE is even."""
    out = run_benchmark("likelihood_speed")
    image = out["image"]
    methods = {r["method"] for r in image["rows"]}
    assert methods == {"paper", "mixed", "state", "logp", "mixed_log_sigma", "bf16", "channels_last"}
    for r in image["rows"]:
        assert r["nfe"] > 0 and len(r["seconds"]) == 1 and r["err_abs"] >= abs(r["err_mean"])
    assert all(r["nfe"] % 2 == 0 for r in image["rows"] if r["method"] == "paper")
    assert image["speedup"]["paper"]["speedup"] == pytest.approx(1.0)
    assert image["hutchinson"]["se_mean_bpd_batch256"] > 0
    assert {(r["sde"], r["norm"]) for r in out["oracle"]} == {
        (s, n) for s in ("VP", "VE") for n in ("mixed", "state", "logp")}

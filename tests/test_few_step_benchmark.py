"""``benchmarks/few_step_mnist.py --quick``: the few-step sweep on a 2-step digits model. Quality is
recorded, never asserted; what is checked is the bookkeeping the docs quote: NFE, the reference,
the summary and resuming."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "few_step_mnist.py"


def run(tmp_path: Path, monkeypatch, *flags: str) -> dict:
    spec = importlib.util.spec_from_file_location("bench_few_step_mnist", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_few_step_mnist", bench)
    spec.loader.exec_module(bench)
    bench.main(["--quick", "--results", str(tmp_path), "--threads", "1", *flags])
    return json.loads((tmp_path / "few_step_mnist_quick.json").read_text())


def test_few_step_benchmark_quick(tmp_path, monkeypatch):
    """Every row spends exactly its budget (the final denoise counted, k-diffusion's σ = 0 step
    being that denoise); the reference is DDIM at 20 NFE to the SDE's ``sampling_eps``; the
    summary's first row within 1.5x of the reference is recomputed here from the rows; and a
    ``--resume`` run keeps every row as it was (its wall time included: nothing re-ran)."""
    out = run(tmp_path, monkeypatch)
    rows = out["rows"]
    fields = {"lib", "sde", "sampler", "grid", "eps", "budget", "nfe", "fd", "kd", "kd_se",
              "confident", "seconds", "reference"}
    assert all(fields <= r.keys() and math.isfinite(r["fd"]) for r in rows)
    assert all(r["nfe"] == r["budget"] for r in rows)
    (ref,) = [r for r in rows if r["reference"]]
    assert (ref["sampler"], ref["grid"], ref["nfe"], ref["eps"]) == ("ddim", "uniform", 20, 1e-3)
    ours = [r for r in rows if r["lib"] == "scoresde" and not r["reference"]]
    assert len(ours) == 2 * 2 * 2  # two solvers x two end times x two budgets
    libs = {r["lib"] for r in rows}
    assert libs == {"scoresde"} | ({"k-diffusion"} - set(out["missing_peers"]))
    target = 1.5 * ref["fd"]
    assert out["summary"]["target_fd"] == target
    for lib, info in out["summary"]["libs"].items():
        mine = [r for r in rows if r["lib"] == lib and not r["reference"]]
        within = sorted((r["nfe"], r["fd"]) for r in mine if r["fd"] <= target)
        first = info["first_within"]
        assert (first is None) == (not within)
        if within:
            assert first["nfe"] == within[0][0]
            assert first["fd"] == min(fd for nfe, fd in within if nfe == within[0][0])
    again = run(tmp_path, monkeypatch, "--resume")
    assert again["rows"] == rows
    assert (tmp_path / "few_step_mnist_quick.png").stat().st_size > 0

"""``benchmarks/compare_mnist.py --quick``: scoresde's samplers and the installed peers on one
(2-step digits) image model, each row judged by the feature-classifier metrics from the same
prior noise. Quality and speed are recorded, never asserted here."""

from __future__ import annotations

import math


def test_compare_mnist_benchmark_quick(run_benchmark):
    """Every row has the record fields of issue 18 and says which library and grid it used. With
    the same prior noise, DDIM and k-diffusion's Euler on the same uniform-t grid are the same
    first-order method (Euler in σ̃ on x / m), so their FD agree to 2 % (what they share is all
    but the final step's rounding); the peers are absent only when not installed."""
    out = run_benchmark("compare_mnist")
    rows = out["rows"]
    fields = {"lib", "grid", "sde", "sampler", "nfe", "fd", "kd", "kd_se", "confident", "seconds"}
    assert all(fields <= r.keys() for r in rows) and out["n"] == 150
    assert all(math.isfinite(r["fd"]) and r["fd"] > out["floor"]["fd"] for r in rows)
    ours = {r["sampler"] for r in rows if r["lib"] == "scoresde"}
    assert ours == {"ddim", "em"}
    libs = {r["lib"] for r in rows}
    assert libs == {"scoresde"} | ({"k-diffusion", "diffusers"} - set(out["missing_peers"]))
    if "k-diffusion" in libs:
        ddim = next(r for r in rows if r["lib"] == "scoresde" and r["sampler"] == "ddim")
        euler = next(r for r in rows if r["lib"] == "k-diffusion" and r["sampler"] == "euler"
                     and r["grid"] == "ours: uniform")
        assert ddim["nfe"] == euler["nfe"] == 5
        assert abs(ddim["fd"] - euler["fd"]) < 0.02 * ddim["fd"]
    for lib in libs - {"scoresde"}:
        assert {r["grid"].startswith("ours") for r in rows if r["lib"] == lib} == {True, False}

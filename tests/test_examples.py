"""Every example runs in --quick mode and writes its figure and numbers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
OUTPUTS = {
    "quickstart": ["quickstart"],
    "compare_samplers": ["compare_samplers", "compare_samplers_chi2"],
    "likelihood": ["likelihood"],
    "why_anneal": ["why_anneal"],
    "ddpm_smld_unification": ["ddpm_smld_unification"],
    "train_mnist": ["train_mnist"],
    "conditional_mnist": ["conditional_mnist"],
}
MNIST = EXAMPLES.parents[1] / "shared" / "data" / "mnist"


def _run(name: str, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", "--out", str(out),
                           "--device", "cpu"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for stem in OUTPUTS[name]:
        png = out / f"{stem}.png"
        assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    return json.loads((out / f"{OUTPUTS[name][0]}.json").read_text())


def test_every_example_is_tested():
    assert {p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_")} == set(OUTPUTS)


def test_quickstart(tmp_path):
    r = _run("quickstart", tmp_path)
    assert r["sample_nfe"] == 101 and abs(sum(r["weights_sampled"]) - 1) < 1e-6
    assert abs(r["nll_ode"] - r["nll_exact"]) < 0.02


def test_compare_samplers(tmp_path):
    r = _run("compare_samplers", tmp_path)
    names = {(x["sampler"], x["sde"]) for x in r["runs"]}
    assert ("ancestral", "subvp") not in names and ("ancestral", "ve") in names
    assert {s for s, _ in names} >= {"ald", "em", "reverse_diffusion", "pc", "ode", "ddim", "heun"}
    assert all(x["nfe"] >= 1 and x["sliced_w2"] > 0 for x in r["runs"])


def test_likelihood(tmp_path):
    """The digits model of ``--quick`` has trained 3 steps, so nothing bounds its bits/dim from
    above (measured: ODE 9.3, discrete bound 16.2, continuous bound 12.7; the bits/dim formulas
    are pinned in test_likelihood_dequantize and test_elbo_inputs). What holds for any model is
    the lower bound: the dequantised bits/dim is at least ``-log2 P(x) / D >= 0`` (Jensen), and
    the discrete bound's terms are KLs and a normalised decoder's ``-log2 P``, each >= 0; and the
    numbers are finite."""
    r = _run("likelihood", tmp_path)
    for sde in ("vp", "subvp", "ve"):
        assert r["oracle_2d"][sde]["mean_abs_err_per_dim"] < 2e-3  # rtol = atol = 1e-4
    hut = r["hutchinson_16d"]["rademacher"]["std"]
    assert hut[1] < hut[0]  # more probes, less spread
    assert all(0 < r["digits"][k]["bpd"] < math.inf for k in ("ode", "elbo_discrete", "elbo_continuous"))


def test_why_anneal(tmp_path):
    w = _run("why_anneal", tmp_path)["measured_weights"]
    assert abs(w["plain Langevin"][0] - 0.5) < 0.1  # stuck at the basins' split, not 0.8
    assert abs(w["reverse SDE"][0] - 0.8) < 0.05


def test_ddpm_smld_unification(tmp_path):
    r = _run("ddpm_smld_unification", tmp_path)
    assert r["ddpm_abar_vs_vp_mean_coef2"]["max_abs_diff"] < 2e-3
    assert r["smld_sigma_vs_ve_sigma_t_max_rel_diff"] < 1e-12
    assert max(r["max_abs_z"].values()) < 4.5


@pytest.mark.skipif(not MNIST.is_dir(), reason="MNIST not found beside the checkout")
def test_train_mnist(tmp_path):
    """After 3 training steps only the lower bound of :func:`test_likelihood` holds: finite and > 0."""
    r = _run("train_mnist", tmp_path)
    assert r["train_steps"] == 3 and 0 < r["bits_per_dim"]["mean"] < math.inf


def test_conditional_mnist(tmp_path):
    """The quick run (a 4-step class-conditional digits model) draws one row per class and fills
    in the lower halves; its quality is not judged here (``class_match`` is a share, the MSEs are
    means of squares), only the bookkeeping: NFE of 20 dpm++2m steps and the final denoise."""
    r = _run("conditional_mnist", tmp_path)
    assert r["grid_nfe"] == r["inpaint_nfe"] == 21 and r["per_class"] == 8
    assert 0 <= r["class_match"] <= 1 and r["mse_unknown"] > 0 and r["mse_mean_image"] > 0

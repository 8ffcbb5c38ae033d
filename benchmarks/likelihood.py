"""Speed of ``ss.log_likelihood`` against a baseline written like the score-SDE paper's code.

Baseline (the reference implementation's ``likelihood.py``): ``scipy.integrate.solve_ivp`` with
RK45 on one flattened float64 numpy state ``[x, logp]``, integrating in ``t`` from ``eps`` to
``T``; each right-hand side evaluates the drift twice (once plain, once inside the
Hutchinson divergence, where it is recomputed under autograd); steps shared by the batch.

Ours: ``torchdiffeq`` ``dopri5`` on torch tensors, drift and VJP from one forward pass, and a
choice of solver clock: ``t`` (as the paper), ``σ̄ = std/m`` or ``log σ̄`` with the scaled state
``x/m``. Same data, network, probe, ``rtol``/``atol``. Each run's bits/dim error is measured
against a reference (ours at ``tol / 100``); ``speedup_vs_baseline`` compares at the same
tolerance, ``speedup_equal_accuracy`` takes the faster of our runs at ``tol`` and ``10 tol`` whose
error is no larger than the baseline's (``None`` if neither is).

Peer: k-diffusion's ``log_likelihood`` (when installed; see ``peers.py``) on the same network
through its denoiser interface, at the same tolerances; its error is measured against its own
run at ``tol / 100`` (it draws its own probe), and ``speedup_vs_k_diffusion`` = its time / ours
at the same tolerance.

Model: ``scoresde.networks.MLP`` with random but fixed weights (``torch.manual_seed(0)``), used
as an ε-predicting ``ScoreModel`` in float32 — no trained network is used here. Data: the 8x8
scikit-learn digits (17 grey levels, D = 64), dequantised to ``[-1, 1]``.

    python benchmarks/likelihood.py [--quick] [--n 32] [--tol 1e-5] [--width 128]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import torch
import torchdiffeq
from scipy.integrate import solve_ivp

import scoresde as ss
from scoresde.dequantize import dequantize, nats_to_bits_per_dim
from scoresde.likelihood import _probes
from scoresde.networks import MLP
from scoresde.score import ScoreModel

sys.path.insert(0, str(Path(__file__).parent))
from common import version
from peers import KDenoiser, load_k_diffusion, ratio_of_time

RESULTS = Path(__file__).parent / "results"
LEVELS = 17


def load_digits_uint(n: int) -> torch.Tensor:
    """The first ``n`` scikit-learn digits as integers in ``[0, 17)``, shape ``(n, 64)``."""
    from sklearn.datasets import load_digits

    return torch.as_tensor(load_digits().data[:n], dtype=torch.int64)


def baseline_log_likelihood(score_fn, sde, x, probe, rtol, atol, eps):
    """The paper's recipe: scipy RK45 on a flat float64 numpy state, two drift passes per call."""
    shape, batch = x.shape, x.shape[0]
    rev = sde.reverse(score_fn, probability_flow=True)
    nfe = 0

    def drift(sample, t):
        return rev.drift(sample, torch.full((batch,), t, dtype=x.dtype))

    def div(sample, t):
        with torch.enable_grad():
            sample = sample.detach().requires_grad_(True)
            out = (drift(sample, t) * probe).sum()
            (grad,) = torch.autograd.grad(out, sample)
        return (grad * probe).reshape(batch, -1).sum(1)

    def ode_func(t, state):
        nonlocal nfe
        nfe += 2
        sample = torch.from_numpy(state[: -batch].reshape(shape)).to(x.dtype)
        d = drift(sample, t).detach().cpu().numpy().reshape(-1).astype(np.float64)
        lg = div(sample, t).detach().cpu().numpy().astype(np.float64)
        return np.concatenate([d, lg])

    init = np.concatenate([x.detach().cpu().numpy().reshape(-1), np.zeros(batch)]).astype(np.float64)
    sol = solve_ivp(ode_func, (eps, sde.T), init, rtol=rtol, atol=atol, method="RK45")
    zp = sol.y[:, -1]
    z = torch.from_numpy(zp[: -batch].reshape(shape)).to(x.dtype)
    delta = torch.from_numpy(zp[-batch:]).to(x.dtype)
    return sde.prior_logp(z) + delta, nfe


def k_diffusion_log_likelihood(kd, score_fn, sde, y, tol, eps):
    """k-diffusion's ``log_likelihood`` (dopri5 in ``σ̃`` on ``x̃ = x / m``, one Rademacher probe
    from the global RNG, seeded here so that all its runs share one probe), moved back to ``x``:
    ``log p(y) = log p̃(y / m(eps)) - D log m(eps)``. Returns ``(logp, network passes)``."""
    model = KDenoiser(score_fn, sde)
    m_eps = float(sde.mean_coef(torch.tensor(eps, dtype=torch.float64)))
    torch.manual_seed(2)
    logp, _ = kd.log_likelihood(model, y / m_eps, ratio_of_time(sde, eps), ratio_of_time(sde, sde.T),
                                atol=tol, rtol=tol)
    return logp - y[0].numel() * math.log(m_eps), model.nfe


def run(n: int, tol: float, eps: float, repeats: int, width: int) -> dict:
    torch.manual_seed(0)
    sde = ss.VPSDE()
    net = MLP(64, width=width, depth=2)
    score_fn = ScoreModel(net, sde, parameterization="eps").requires_grad_(False)
    data = load_digits_uint(n)
    y, _ = dequantize(data, LEVELS, (-1.0, 1.0), generator=torch.Generator().manual_seed(1),
                      dtype=torch.float32)
    probe = _probes(y, "rademacher", 1, torch.Generator().manual_seed(2))

    def bpd(logp):
        return nats_to_bits_per_dim(-logp, 64, num_levels=LEVELS).mean().item()

    def ours(variable, tolerance=tol):
        res = ss.log_likelihood(score_fn, sde, y, rtol=tolerance, atol=tolerance, eps=eps,
                                time_variable=variable, generator=torch.Generator().manual_seed(2))
        return res.logp, res.nfe

    reference = bpd(ours("t", tol * 1e-2)[0])

    runs = {"baseline_scipy_rk45": lambda: baseline_log_likelihood(score_fn, sde, y, probe[0], tol, tol, eps)}
    for variable in ("t", "sigma", "log_sigma"):
        runs[f"ours_{variable}"] = lambda v=variable: ours(v)
        runs[f"ours_{variable}_tol_x10"] = lambda v=variable: ours(v, 10 * tol)
    kd = load_k_diffusion()
    if kd is not None:
        kd_reference = bpd(k_diffusion_log_likelihood(kd, score_fn, sde, y, tol * 1e-2, eps)[0])
        runs["k_diffusion"] = lambda: k_diffusion_log_likelihood(kd, score_fn, sde, y, tol, eps)
        runs["k_diffusion_tol_x10"] = lambda: k_diffusion_log_likelihood(kd, score_fn, sde, y, 10 * tol, eps)
    out = {name: {"seconds": math.inf} for name in runs}
    for _ in range(repeats):  # interleaved, best of `repeats`: the machine is shared
        for name, fn in runs.items():
            start = time.perf_counter()
            logp, nfe = fn()
            seconds = time.perf_counter() - start
            out[name] = {"seconds": min(seconds, out[name]["seconds"]), "nfe": nfe,
                         "bpd": bpd(logp)}
    base = out["baseline_scipy_rk45"]
    for name, rec in out.items():
        rec["ms_per_forward_pass"] = 1e3 * rec["seconds"] / rec["nfe"]
        rec["speedup_vs_baseline"] = base["seconds"] / rec["seconds"]
        rec["bpd_minus_baseline"] = rec["bpd"] - base["bpd"]
        rec["bpd_error_vs_reference"] = rec["bpd"] - (kd_reference if name.startswith("k_") else reference)
    if kd is not None:
        for variable in ("t", "sigma", "log_sigma"):
            out[f"ours_{variable}"]["speedup_vs_k_diffusion"] = (
                out["k_diffusion"]["seconds"] / out[f"ours_{variable}"]["seconds"])
    for variable in ("t", "sigma", "log_sigma"):
        as_good = [out[name]["seconds"] for name in (f"ours_{variable}", f"ours_{variable}_tol_x10")
                   if abs(out[name]["bpd_error_vs_reference"])
                   <= abs(base["bpd_error_vs_reference"])]
        out[f"ours_{variable}"]["speedup_equal_accuracy"] = (
            base["seconds"] / min(as_good) if as_good else None
        )
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run (a few seconds), for CI")
    parser.add_argument("--n", type=int, default=32, help="number of digits")
    parser.add_argument("--tol", type=float, default=1e-5, help="rtol = atol")
    parser.add_argument("--eps", type=float, default=1e-5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=int, default=128, help="MLP hidden width")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.tol, args.repeats = 2, 1e-3, 1
    torch.set_num_threads(args.threads)
    results = run(args.n, args.tol, args.eps, args.repeats, args.width)
    record = {
        "benchmark": "likelihood",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": __import__("os").cpu_count(), "torch_threads": args.threads},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchdiffeq": torchdiffeq.__version__, "scipy": scipy.__version__,
                     "numpy": np.__version__, "k-diffusion": version("k-diffusion")},
        "config": {"n": args.n, "rtol": args.tol, "atol": args.tol, "eps": args.eps,
                   "sde": "VPSDE()", "data": f"sklearn digits, {LEVELS} levels, D=64, [-1, 1]",
                   "model": f"MLP(64, width={args.width}, depth=2), random fixed weights, eps-param, float32",
                   "trace": "hutchinson, one Rademacher probe shared by all runs",
                   "nfe": "network forward passes (the baseline makes two per ODE call)",
                   "reference": "ours_t at rtol = atol = tol / 100, same probe",
                   "repeats": args.repeats, "quick": args.quick},
        "results": results,
    }
    suffix = "_quick" if args.quick else ("" if args.width == 128 else f"_width{args.width}")
    out = args.out or RESULTS / f"likelihood{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    for name, rec in results.items():
        print(f"{name:22s} {rec['seconds']:8.3f}s  nfe {rec['nfe']:5d}  bpd {rec['bpd']:.5f}  "
              f"err {rec['bpd_error_vs_reference']:+.1e}  "
              f"speedup {rec['speedup_vs_baseline']:.2f}x")
    if not math.isfinite(results["ours_t"]["bpd"]):  # a broken run must not pass silently
        raise SystemExit("non-finite bits/dim")
    return record


if __name__ == "__main__":
    main()

"""Bits/dim error against wall time for the probability-flow likelihood: a trained MNIST U-Net,
the paper code's recipe beside ours in one process, and the 2-D oracle.

    python benchmarks/likelihood_speed.py [--quick] [--run runs/mnist_quick] [--n 8] [--repeats 2]

Trained model: the EMA weights of ``--run`` (``scoresde train --config configs/mnist_quick.yaml``,
2,250 steps), ``--n`` MNIST test images (seeded subset), dequantised once, one Rademacher probe
per image shared by every run. The reference is ``ss.log_likelihood`` at rtol = atol = 1e-7 with
the same probe, so each error is the solver's alone: ``err_abs`` is the mean over images of
``|bpd_i - ref_i|``, ``err_mean`` the error of the mean bits/dim. Each setting runs ``--repeats``
times, interleaved with the others (the machine is shared), and records every time.

Methods, each over a range of rtol = atol:

* ``paper``: the score-SDE code's procedure (``benchmarks/likelihood.py``: scipy RK45 on the flat
  float64 numpy state ``[x, ℓ]``, drift evaluated twice per call); its NFE counts network passes;
* ``mixed``, ``state``, ``logp``: ``ss.log_likelihood`` in ``t`` with each error norm
  (``norm=``: torchdiffeq's max of the state's and the accumulator's RMS, scipy's RMS over the
  whole state, the accumulator alone); ``mixed_log_sigma``: the default norm in ``log σ̄``;
* ``bf16``: ``mixed`` with the network under bfloat16 autocast, ``channels_last``: ``mixed``
  with the network and data in channels-last memory format (one tolerance each).

``speedup`` is the anchor's time (``paper`` at 1e-4, the setting of the paper's code and of
issue 23) over each method's time at the anchor's ``err_abs``, read off the method's error-time
front (log-log interpolation between its neighbouring settings); the spread is that ratio from
the fastest and slowest repeats. ``hutchinson`` is the Monte-Carlo standard error of the mean
bits/dim over a batch of 256 images from the per-image spread over ``--probes`` probes.

Oracle: the 2-D test mixture under VP and VE, exact trace, the error of ``log p_eps`` against
the mixture's closed form in nats/dim, for each norm and tolerance.

``--float64``: instead, the same images against a float64 reference (the network in float64,
rtol = atol = 1e-6), with the mixed norm at 1e-3, 1e-4 and 3e-5 in float32 and in float64, to
tell the solver's error from float32 rounding (``results/likelihood_speed_float64.json``).

``--quick`` uses an untrained tiny U-Net, 2 images and loose tolerances, to keep the script working.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import torch

import scoresde as ss
from scoresde.build import build_model, load_config, load_data, load_trained
from scoresde.dequantize import dequantize, nats_to_bits_per_dim
from scoresde.likelihood import _probes

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, metadata, save_figure, write_json
from likelihood import baseline_log_likelihood

from scoresde.plotting import pyplot

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = ("paper", 1e-4)
TOLS = {"paper": (1e-3, 3e-4, 1e-4, 3e-5), "mixed": (1e-3, 3e-4, 1e-4, 3e-5),
        "state": (1e-3, 1e-4, 1e-5), "logp": (1e-2, 3e-3, 1e-3, 3e-4, 1e-4),
        "mixed_log_sigma": (1e-3, 1e-4), "bf16": (1e-3,), "channels_last": (1e-3,)}
QUICK_TOLS = {name: (1e-2,) for name in TOLS} | {"paper": (1e-4, 1e-2)}


def bf16(score_fn):
    """The network under bfloat16 autocast, its output back in float32."""

    def score(x, t):
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            out = score_fn(x, t)
        return out.float()

    return score


def load_model(args):
    """The trained run's EMA model (``--quick``: the quick config's U-Net, untrained, tiny)."""
    tiny = ["model.channels=8", "model.channel_mult=[1,2]", "model.groups=4"]
    cfg = load_config(ROOT / "configs" / "mnist_quick.yaml" if args.quick else args.run / "config.yaml",
                      tiny if args.quick else [])
    data = load_data(cfg.data)
    if args.quick:
        return build_model(cfg).eval(), data
    if not (args.run / "checkpoint.pt").is_file():
        raise SystemExit(f"no trained run at {args.run}: scoresde train --config configs/mnist_quick.yaml")
    return load_trained(args.run, cfg, "cpu"), data


def image_methods(model, y: torch.Tensor):
    """``name -> f(tol) -> (logp, nfe)`` on the images ``y``."""
    sde, eps = model.sde, model.sde.training_eps
    probe = _probes(y, "rademacher", 1, torch.Generator().manual_seed(2))[0]
    last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    y_last = y.contiguous(memory_format=torch.channels_last)

    def ours(score_fn, x, norm="mixed", variable="t"):
        def run(tol):
            r = ss.log_likelihood(score_fn, sde, x, rtol=tol, atol=tol, norm=norm, time_variable=variable,
                                  generator=torch.Generator().manual_seed(2))
            return r.logp, r.nfe
        return run

    return {"paper": lambda tol: baseline_log_likelihood(model, sde, y, probe, tol, tol, eps),
            "mixed": ours(model, y), "state": ours(model, y, "state"), "logp": ours(model, y, "logp"),
            "mixed_log_sigma": ours(model, y, variable="log_sigma"), "bf16": ours(bf16(model), y),
            "channels_last": ours(last, y_last)}


def image_curves(model, data, args) -> dict:
    y = images(data, args.n)
    dim = y[0].numel()

    def bpd(logp):
        return nats_to_bits_per_dim(-logp, dim, num_levels=data.num_levels)

    methods = image_methods(model, y)
    start = time.perf_counter()
    ref_logp, ref_nfe = methods["mixed"](args.ref_tol)
    ref = bpd(ref_logp)
    print(f"reference rtol = atol = {args.ref_tol:g}: nfe {ref_nfe}, {time.perf_counter() - start:.0f} s, "
          f"bpd {ref.mean():.5f}", flush=True)
    tols = QUICK_TOLS if args.quick else TOLS
    points = {(name, tol): {"method": name, "tol": tol, "seconds": []} for name in tols for tol in tols[name]}
    for _ in range(args.repeats):
        for (name, tol), p in points.items():
            start = time.perf_counter()
            logp, nfe = methods[name](tol)
            p["seconds"].append(time.perf_counter() - start)
            err = bpd(logp) - ref
            p.update(nfe=nfe, bpd=float(bpd(logp).mean()), err_abs=float(err.abs().mean()),
                     err_mean=float(err.mean()), err_max=float(err.abs().max()))
            print(f"{name:16} tol {tol:7.0e} nfe {nfe:5} {p['seconds'][-1]:7.2f} s  "
                  f"err_abs {p['err_abs']:.2e} err_mean {p['err_mean']:+.2e}", flush=True)
    rows = list(points.values())
    for p in rows:
        p["median_seconds"] = sorted(p["seconds"])[len(p["seconds"]) // 2]
    return {"n": args.n, "dim": dim, "ref_tol": args.ref_tol, "ref_nfe": ref_nfe,
            "ref_bpd": float(ref.mean()), "rows": rows, "speedup": speedups(rows),
            "hutchinson": hutchinson_spread(bpd, args.probes, model, y)}


def images(data, n: int) -> torch.Tensor:
    """``n`` seeded test images, dequantised once, in float32."""
    g = torch.Generator().manual_seed(0)
    levels = data.test_levels[torch.randperm(len(data.test_levels), generator=g)[:n]]
    y, _ = dequantize(levels, data.num_levels, (-1.0, 1.0), generator=torch.Generator().manual_seed(1),
                      dtype=torch.float32)
    return y


def float64_check(model, data, args) -> dict:
    """The mixed norm's error in float32 and float64 against a float64 reference."""
    y32 = images(data, args.n)
    dim = y32[0].numel()
    nets = {"float32": (model, y32), "float64": (copy.deepcopy(model).double(), y32.double())}

    def run(net, y, tol):
        start = time.perf_counter()
        r = ss.log_likelihood(net, model.sde, y, rtol=tol, atol=tol,
                              generator=torch.Generator().manual_seed(2))
        bpd = nats_to_bits_per_dim(-r.logp.double(), dim, num_levels=data.num_levels)
        return bpd, r.nfe, time.perf_counter() - start

    ref, ref_nfe, ref_seconds = run(*nets["float64"], 1e-6)
    rows = []
    for dtype, (net, y) in nets.items():
        for tol in (1e-3, 1e-4, 3e-5):
            bpd, nfe, seconds = run(net, y, tol)
            rows.append({"dtype": dtype, "tol": tol, "nfe": nfe, "seconds": seconds,
                         "err_abs": float((bpd - ref).abs().mean())})
            print(rows[-1], flush=True)
    return {"n": args.n, "ref_tol": 1e-6, "ref_nfe": ref_nfe, "ref_seconds": ref_seconds, "rows": rows}


def front_time(rows: list[dict], target: float, key: str) -> float | None:
    """Time at error ``target`` on the error-time front of ``rows`` (``key``: which time), by
    log-log interpolation between the fastest setting at or below ``target`` and the slower
    one above it; ``None`` if no setting reaches ``target``."""
    rows = sorted(rows, key=lambda r: r[key])
    best = math.inf
    front = []
    for r in rows:  # keep the settings that improve on every faster one
        if r["err_abs"] < best:
            best = r["err_abs"]
            front.append(r)
    for slow, fast in zip(front[1:], front, strict=False):
        if slow["err_abs"] <= target < fast["err_abs"]:
            w = math.log(fast["err_abs"] / target) / math.log(fast["err_abs"] / slow["err_abs"])
            return math.exp((1 - w) * math.log(fast[key]) + w * math.log(slow[key]))
    return front[0][key] if front and front[0]["err_abs"] <= target else None


def speedups(rows: list[dict]) -> dict:
    anchor = next((r for r in rows if (r["method"], r["tol"]) == ANCHOR), None)
    if anchor is None:
        return {}
    out = {}
    for name in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == name]
        for r in mine:
            r["fast"], r["slow"] = min(r["seconds"]), max(r["seconds"])
        t_med = front_time(mine, anchor["err_abs"], "median_seconds")
        t_fast = front_time(mine, anchor["err_abs"], "fast")
        t_slow = front_time(mine, anchor["err_abs"], "slow")
        out[name] = {"target_err_abs": anchor["err_abs"], "seconds": t_med,
                     "speedup": None if t_med is None else anchor["median_seconds"] / t_med,
                     "speedup_range": None if t_fast is None or t_slow is None else
                     [min(anchor["seconds"]) / t_slow, max(anchor["seconds"]) / t_fast]}
    return out


def hutchinson_spread(bpd, probes: int, model, y) -> dict:
    """Per-image spread of the one-probe estimate over ``probes`` probe draws (``logp`` norm at
    3e-3), and the standard error of a 256-image mean bits/dim it implies."""
    draws = []
    for seed in range(probes):
        r = ss.log_likelihood(model, model.sde, y, rtol=3e-3, atol=3e-3, norm="logp",
                              generator=torch.Generator().manual_seed(100 + seed))
        draws.append(bpd(r.logp))
    sd = torch.stack(draws).std(0)
    return {"probes": probes, "per_image_sd_mean": float(sd.mean()),
            "se_mean_bpd_batch256": float(sd.pow(2).mean().sqrt() / 16)}


def oracle_curves(quick: bool) -> list[dict]:
    """The 2-D mixture, exact trace: error of ``log p_eps`` in nats/dim per norm and tolerance."""
    gm, rows = ss.toy_mixture(), []
    x = gm.sample(50 if quick else 500, generator=torch.Generator().manual_seed(0))
    for sde_name, sde in (("VP", ss.VPSDE()), ("VE", ss.VESDE(0.01, 50.0))):
        exact = gm.log_prob_t(x, sde.training_eps, sde)
        for norm in ss.likelihood.NORMS:
            for tol in (1e-3,) if quick else (1e-3, 1e-4, 1e-5):
                start = time.perf_counter()
                r = ss.log_likelihood(gm.score_fn(sde), sde, x, trace="exact", rtol=tol, atol=tol, norm=norm,
                                      prior_logp=lambda z, s=sde: gm.log_prob_t(z, s.T, s))
                err = (r.logp - exact).abs() / x.shape[1]
                rows.append({"sde": sde_name, "norm": norm, "tol": tol, "nfe": r.nfe,
                             "seconds": time.perf_counter() - start, "err_nats_per_dim": float(err.mean()),
                             "max_err_nats_per_dim": float(err.max())})
                print(rows[-1], flush=True)
    return rows


def plot(image: dict, oracle: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in dict.fromkeys(r["method"] for r in image["rows"]):
        mine = sorted((r for r in image["rows"] if r["method"] == name), key=lambda r: r["tol"])
        a.plot([r["median_seconds"] for r in mine], [r["err_abs"] for r in mine],
               "o-" if len(mine) > 1 else "s", label=name)
    a.set(xscale="log", yscale="log", xlabel="seconds (median)", ylabel="mean |bpd error| per image",
          title=f"trained MNIST U-Net, {image['n']} images")
    a.legend(fontsize=8)
    for sde_name, ls in (("VP", "-"), ("VE", "--")):
        for norm, color in zip(ss.likelihood.NORMS, ("C0", "C1", "C2"), strict=True):
            mine = [r for r in oracle if r["sde"] == sde_name and r["norm"] == norm]
            b.plot([r["nfe"] for r in mine], [r["err_nats_per_dim"] for r in mine], "o" + ls, color=color,
                   label=f"{sde_name} {norm}")
    b.axhline(1e-3, color="k", lw=0.8, ls=":")
    b.set(xscale="log", yscale="log", xlabel="NFE", ylabel="mean |error| (nats/dim)",
          title="2-D oracle, exact trace")
    b.legend(fontsize=8)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "mnist_quick")
    parser.add_argument("--n", type=int, default=8, help="test images")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--probes", type=int, default=6, help="probe draws for the Hutchinson spread")
    parser.add_argument("--ref-tol", type=float, default=1e-7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--float64", action="store_true", help="only the float32 / float64 comparison")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats, args.probes, args.ref_tol = 2, 1, 2, 1e-4
    torch.set_num_threads(args.threads)
    model, data = load_model(args)
    model.requires_grad_(False)
    if args.float64:
        check = float64_check(model, data, args)
        payload = {**metadata(), "quick": args.quick, "run": str(args.run), **check}
        write_json("likelihood_speed_float64", payload, args.quick, args.results)
        return
    image = image_curves(model, data, args)
    oracle = oracle_curves(args.quick)
    payload = {**metadata(), "quick": args.quick, "run": str(args.run), "image": image, "oracle": oracle}
    path = write_json("likelihood_speed", payload, args.quick, args.results)
    plot(image, oracle, path.with_suffix(".png"))
    for name, s in image["speedup"].items():
        print(f"{name:16} at err_abs {s['target_err_abs']:.2e}: speedup {s['speedup']}, "
              f"range {s['speedup_range']}")


if __name__ == "__main__":
    main()

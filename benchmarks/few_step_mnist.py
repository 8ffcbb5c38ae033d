"""The few-step goal of issue 18 on a trained image model: which sampler, time grid and end time
``eps`` first reach a Fréchet distance within 1.5x of the 1,000-NFE reference, and at what NFE,
beside k-diffusion's solvers given the same model, the same end times and both its own Karras
grid and its VP grid (uniform in t, the grid of scoresde's ``"uniform"``).

Every row draws ``--n`` images from the same prior noise (block ``k`` of ``--batch`` images
from ``block_generator(seed + 1, k)``) and is judged by the data set's feature classifier (FD,
KD ± se, confident share p > 0.9). NFE counts every score evaluation, the final Tweedie
denoising step included (scoresde: ``steps = NFE - 1`` solver steps to ``eps``, then the
denoise; k-diffusion: ``NFE`` noise levels from σ̃(T) to σ̃(eps), then σ = 0, whose step is the
denoised estimate at σ̃(eps)). The reference is DDIM on the uniform grid at ``--reference-nfe``
steps to the SDE's own ``sampling_eps``: the probability-flow ODE solved to the model's limit.
k-diffusion's ``dpmpp_3m_sde`` runs with ``eta = 0``, its deterministic DPM-Solver++(3M).

    python benchmarks/few_step_mnist.py --checkpoint runs/mnist_quality/vp  # -> results/few_step_mnist.*
    python benchmarks/few_step_mnist.py --quick --results /tmp/b             # a 2-step digits model

The JSON is rewritten after every row, and ``--resume`` skips the rows already in it, so an
interrupted run loses at most one row. ``results/few_step_mnist.png`` draws the best FD over
``eps`` of each solver and grid against NFE, with the reference, the 1.5x target and the floor;
``few_step_mnist_samples.png`` the first 64 images of the reference and of each library's best
row at the smallest and largest budget.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from scoresde import atomic
from scoresde.distributed import block_generator
from scoresde.plotting import show_images
from scoresde.samplers import sample
from scoresde.samplers.budget import steps_for

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, metadata, pyplot, save_figure, write_json
from compare_mnist import load_judged, quick_run
from peers import MISSING, k_sample, load_k_diffusion

TARGET = 1.5
"""A row meets the goal when its FD is at most ``TARGET`` times the reference's."""
OURS = ("ddim@uniform,dpm++2m@uniform,dpm++2m@logsnr,dpm++2m@karras,dpm++3m@uniform,"
        "dpm++3m@logsnr,dpm++3m@karras,unipc@uniform,unipc@logsnr,unipc@karras")
PEERS = "dpmpp_2m@karras,dpmpp_2m@vp,dpmpp_3m_sde@karras,dpmpp_3m_sde@vp"
SHOWN = 64


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, help="trained image run (checkpoint.pt, config.yaml)")
    p.add_argument("--n", type=int, default=256, help="images per row")
    p.add_argument("--batch", type=int, default=128, help="images per sampling block")
    p.add_argument("--nfe", default="4,5,6,8,10", help="NFE budgets")
    p.add_argument("--eps", default="1e-3,3e-2,0.1,0.2,0.3", help="end times of the grids")
    p.add_argument("--ours", default=OURS, help="scoresde sampler@grid list")
    p.add_argument("--peers", default=PEERS, help="k-diffusion sampler@grid list (grid karras|vp)")
    p.add_argument("--reference-nfe", type=int, default=1000)
    p.add_argument("--resume", action="store_true", help="keep the rows of an existing results file")
    p.add_argument("--quick", action="store_true", help="a 2-step digits model, n = 150, seconds")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


def plan(args: argparse.Namespace, sampling_eps: float) -> list[dict]:
    """The reference first, then every ``lib × sampler@grid × eps × NFE`` row."""
    budgets = [int(v) for v in args.nfe.split(",")]
    ends = [float(v) for v in args.eps.split(",")]
    rows = [{"lib": "scoresde", "sampler": "ddim", "grid": "uniform", "eps": sampling_eps,
             "budget": args.reference_nfe, "reference": True}]
    for lib, specs in (("scoresde", args.ours), ("k-diffusion", args.peers)):
        for spec in filter(None, specs.split(",")):
            sampler, grid = spec.split("@")
            rows += [{"lib": lib, "sampler": sampler, "grid": grid, "eps": eps, "budget": b,
                      "reference": False} for eps in ends for b in budgets]
    return rows


def key(row: dict) -> tuple:
    return row["lib"], row["sampler"], row["grid"], row["eps"], row["budget"]


def draw(model, row: dict, shape: tuple[int, ...], batch: int, seed: int, kd) -> tuple[torch.Tensor, int]:
    """``shape[0]`` images of ``row``'s solver from the shared prior blocks, and their NFE."""
    images, nfe = [], 0
    for k, lo in enumerate(range(0, shape[0], batch)):
        n = min(batch, shape[0] - lo)
        gen = block_generator(seed + 1, k)
        with torch.no_grad():
            if row["lib"] == "scoresde":
                steps, options = steps_for(row["sampler"], row["budget"])
                x, info = sample(model, model.sde, (n, *shape[1:]), sampler=row["sampler"],
                                 steps=steps, grid=row["grid"], eps=row["eps"], generator=gen,
                                 **options)
                nfe = info.nfe
            else:
                z = model.sde.prior_sample((n, *shape[1:]), generator=gen)
                options = {"eta": 0.0} if row["sampler"].endswith("_sde") else {}
                x, nfe = k_sample(kd, row["sampler"], model, model.sde, z, row["budget"],
                                  row["eps"], row["grid"], **options)
        images.append(x.clamp(-1, 1))
    return torch.cat(images), nfe


def summary(rows: list[dict]) -> dict:
    """The reference FD, the target, and per library its best row at each NFE and the first NFE
    whose best row is within the target."""
    ref = next(r for r in rows if r["reference"])
    target = TARGET * ref["fd"]
    out = {"reference_fd": ref["fd"], "target_fd": target, "libs": {}}
    for lib in dict.fromkeys(r["lib"] for r in rows if not r["reference"]):
        best = {}
        for r in rows:
            if r["lib"] == lib and not r["reference"] and (r["nfe"] not in best
                                                           or r["fd"] < best[r["nfe"]]["fd"]):
                best[r["nfe"]] = r
        best = dict(sorted(best.items()))
        first = next((r for r in best.values() if r["fd"] <= target), None)
        out["libs"][lib] = {
            "best": {str(n): {k: r[k] for k in ("sampler", "grid", "eps", "fd", "confident")}
                     for n, r in best.items()},
            "first_within": None if first is None else
            {k: first[k] for k in ("nfe", "sampler", "grid", "eps", "fd")}}
    return out


def figure(result: dict, path: Path) -> None:
    """Best FD over ``eps`` per (lib, sampler, grid) against NFE."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    rows = [r for r in result["rows"] if not r["reference"]]
    families = list(dict.fromkeys((r["lib"], r["sampler"], r["grid"]) for r in rows))
    for i, fam in enumerate(families):
        best = {}
        for r in rows:
            if (r["lib"], r["sampler"], r["grid"]) == fam:
                best[r["nfe"]] = min(best.get(r["nfe"], math.inf), r["fd"])
        ls = "-" if fam[0] == "scoresde" else "--"
        ax.plot(*zip(*sorted(best.items()), strict=True), ls=ls, marker="o", ms=3,
                color=plt.cm.tab20(i % 20), label=f"{fam[0]} {fam[1]} ({fam[2]})")
    s = result["summary"]
    ax.axhline(s["reference_fd"], color="k", lw=1, label=f"reference ({result['reference_nfe']} NFE)")
    ax.axhline(s["target_fd"], color="k", lw=1, ls=":", label=f"{TARGET}x reference")
    ax.axhline(result["floor"]["fd"], color="0.5", ls="-.", label="data floor (real images)")
    ax.set_yscale("log")
    ax.set_xlabel("NFE (score evaluations, final denoise included)")
    ax.set_ylabel("Fréchet distance (best over eps)")
    ax.set_title(f"{result['config']}: {result['n']} images per row, same prior noise", fontsize=10)
    ax.legend(fontsize=6, ncol=2)
    save_figure(fig, path)


def samples_figure(shown: dict, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(shown), figsize=(2.8 * len(shown), 3.3), squeeze=False)
    for (title, x), ax in zip(shown.items(), axes[0], strict=True):
        show_images(ax, x, math.isqrt(len(x)))
        ax.set_title(title, fontsize=7)
    fig.suptitle("the same prior noise in every panel", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def shown_rows(result: dict) -> list[dict]:
    """The reference and each library's best row at the smallest and the largest budget."""
    picks = [next(r for r in result["rows"] if r["reference"])]
    for info in result["summary"]["libs"].values():
        for nfe in (min(info["best"], key=int), max(info["best"], key=int)):
            best = info["best"][nfe]
            picks.append(next(r for r in result["rows"] if not r["reference"] and r["nfe"] == int(nfe)
                              and all(r[k] == best[k] for k in ("sampler", "grid", "eps", "fd"))))
    return picks


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    args.results.mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.checkpoint = quick_run(args.results / "few_step_quick_run")
        args.n, args.batch, args.nfe, args.eps, args.reference_nfe = 150, 150, "4,5", "1e-3,0.1", 20
        args.ours, args.peers = "ddim@uniform,dpm++2m@logsnr", "dpmpp_2m@karras"
    if args.checkpoint is None:
        raise SystemExit("--checkpoint RUN is required (or --quick)")
    cfg, data, model, judge, info = load_judged(args.checkpoint)
    kd = load_k_diffusion()
    todo = [r for r in plan(args, model.sde.sampling_eps) if r["lib"] == "scoresde" or kd is not None]
    path = args.results / f"few_step_mnist{'_quick' if args.quick else ''}.json"
    done = {key(r): r for r in json.loads(path.read_text())["rows"]} if args.resume and path.exists() else {}
    result = {**metadata(), "checkpoint": str(args.checkpoint), "config": cfg.name, "n": args.n,
              "reference_nfe": args.reference_nfe, "target": TARGET,
              "classifier": {k: info[k] for k in ("key", "test_accuracy", "cached")},
              "floor": judge.floor(args.n), "missing_peers": dict(MISSING), "rows": []}
    kept = {}
    for row in todo:
        if key(row) in done:
            result["rows"].append(done[key(row)])
            continue
        tic = time.perf_counter()
        x, nfe = draw(model, row, (args.n, *data.shape), args.batch, args.seed, kd)
        q = judge.judge(x, generator=torch.Generator().manual_seed(args.seed))
        result["rows"].append({**row, "sde": cfg.sde.name, "nfe": nfe,
                               "seconds": time.perf_counter() - tic, "fd": q.fd, "kd": q.kd,
                               "kd_se": q.kd_se, "confident": q.confident})
        kept[key(row)] = x[:SHOWN]
        print(f"{row['lib']:12s} {row['sampler']:13s} {row['grid']:8s} eps {row['eps']:<6g} "
              f"NFE {nfe:4d}  FD {q.fd:7.2f}  confident {q.confident:.3f}", flush=True)
        atomic.write_json(path, result)
    result["summary"] = summary(result["rows"])
    write_json(path.stem.removesuffix("_quick"), result, args.quick, args.results)
    figure(result, path.with_suffix(".png"))
    shown = {f"{r['lib']} {r['sampler']} ({r['grid']}, eps {r['eps']:g}) {r['nfe']} NFE: "
             f"FD {r['fd']:.1f}": kept[key(r)] for r in shown_rows(result) if key(r) in kept}
    if shown:
        samples_figure(shown, path.with_name(f"{path.stem}_samples.png"))


if __name__ == "__main__":
    main()

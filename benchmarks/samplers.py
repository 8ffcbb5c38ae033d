"""Sampler quality against NFE on the exact oracle score, beside k-diffusion and diffusers (issue 9).

Problems: the 2-D toy mixture (``ss.toy_mixture()``) and a d = 64 mixture (:func:`mixture64`),
with the exact score, so quality measures the sampler alone. For every sampler and NFE budget:
sliced-W2 to a large exact reference sample, with its noise floor (SW2 from exact samples of the
same size to the same reference, mean and sd over seeds), the mixture χ² / max|z|
(``ss.mixture_stats``; an exact sampler has χ² ≈ 2, max|z| ≈ 2 in 2-D), and wall time (one run,
one thread, noisy on a shared machine: compare within a run only). Peers get the same score
through their model interfaces (``peers.py``) and the same prior sample: k-diffusion's denoiser
on ``x / m``, diffusers' ε-prediction (VP) or score (VE). NFE is counted by wrapping the score.

Sampler overhead: ``ss.sample`` wall time against NFE x the bare time of one call of a small
network (``scoresde.networks.MLP`` as an ε-model), side by side in one run, median of repeats.

    python benchmarks/samplers.py [--quick]      # results/samplers[_quick].json and .png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import scoresde as ss
from scoresde.metrics import SlicedWasserstein
from scoresde.networks import MLP
from scoresde.plotting import pyplot

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, median_time, metadata, write_json
from peers import (
    DIFFUSERS_VP,
    MISSING,
    diffusers_ve_sample,
    diffusers_vp_sample,
    k_sample,
    load_diffusers,
    load_k_diffusion,
)

BUDGETS = [10, 20, 50, 100, 200, 500, 1000]
SCORESDE = [
    "em", "reverse_diffusion", "ancestral", "pc", "ddim", "heun", "dpm++2m", "dpm++3m", "unipc", "ald",
]
K_SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m", "lms"]
TWO_PER_STEP = {"heun", "pc", "dpm_2"}


def mixture64() -> ss.GaussianMixture:
    """Four isotropic components in d = 64, means ``N(0, 4 I)`` draws (seed 0), stds 0.5–1."""
    g = torch.Generator().manual_seed(0)
    means = 2 * torch.randn(4, 64, generator=g, dtype=torch.float64)
    return ss.GaussianMixture(means, torch.tensor([0.5, 0.7, 0.85, 1.0]), [0.4, 0.3, 0.2, 0.1])


def steps_for(name: str, budget: int) -> int:
    """Solver steps spending ``budget`` evaluations with the final denoise (one per step, two
    for Heun / PC / DPM-2; annealed Langevin: levels of 5 Langevin steps)."""
    if name == "ald":
        return max((budget - 1) // 5, 1)
    return max((budget - 1) // 2, 1) if name in TWO_PER_STEP else budget - 1


def prior_z(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The standard normal ``z`` behind ``ss.sample``'s prior draw ``prior_std * z`` for ``seed``:
    peers start from this same sample."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def run_scoresde(name: str, score_fn, sde, shape, budget: int, seed: int) -> tuple[torch.Tensor, int]:
    options = {"corrector": "ald"} if name == "pc" else {"n_steps_each": 5} if name == "ald" else {}
    x, info = ss.sample(score_fn, sde, shape, name, steps_for(name, budget), dtype=torch.float64,
                        generator=torch.Generator().manual_seed(seed), **options)
    return x, info.nfe


def runners(sde, quick: bool, peers: bool) -> dict:
    """``(library, sampler) -> run(score_fn, shape, budget, seed) -> (x, nfe)`` for this SDE."""
    is_ve = isinstance(sde, ss.VESDE)
    names = ["em", "ddim", "heun", "dpm++3m"] if quick else SCORESDE
    out = {("scoresde", n): (lambda f, shape, b, s, n=n: run_scoresde(n, f, sde, shape, b, s))
           for n in names if not (n == "ancestral" and isinstance(sde, ss.SubVPSDE))}
    if not peers:
        MISSING.update({"k-diffusion": "--no-peers", "diffusers": "--no-peers"})
        return out
    kd, diffusers = load_k_diffusion(), load_diffusers()
    eps = ss.samplers.default_eps(sde)
    for n in (["dpmpp_2m"] if quick else K_SAMPLERS) if kd is not None else []:
        levels = (lambda b: (b + 1) // 2) if n in TWO_PER_STEP else (lambda b: b)
        out[("k-diffusion", n)] = (lambda f, shape, b, s, n=n, lv=levels: k_sample(
            kd, n, f, sde, sde.prior_std * prior_z(shape, s), lv(b), eps))
    if diffusers is None:
        return out
    if is_ve:
        out[("diffusers", "ScoreSdeVe")] = lambda f, shape, b, s: diffusers_ve_sample(
            diffusers, f, sde, prior_z(shape, s), b, eps, torch.Generator().manual_seed(s))
    elif isinstance(sde, ss.VPSDE):
        for n in (DIFFUSERS_VP[1:2] if quick else DIFFUSERS_VP):
            out[("diffusers", n.removesuffix("Scheduler"))] = (
                lambda f, shape, b, s, n=n: diffusers_vp_sample(
                    diffusers, n, f, sde, prior_z(shape, s), b, torch.Generator().manual_seed(s)))
    return out


def exact_sample(gm, n: int, seed: int, chunk: int = 4000) -> torch.Tensor:
    """``gm.sample`` in chunks (it forms one ``d x d`` matrix per point)."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([gm.sample(min(chunk, n - i), g) for i in range(0, n, chunk)])


class SlicedW2:
    """``ss.sliced_wasserstein(x, ref, generator=seed 1)`` for samples of a fixed size ``n``: the
    library's :class:`~scoresde.metrics.SlicedWasserstein`, its directions and the sorted
    reference computed once."""

    def __init__(self, ref: torch.Tensor, n: int, n_projections: int = 256):
        self.n = n
        self.distance = SlicedWasserstein(ref, n_projections, torch.Generator().manual_seed(1))

    def __call__(self, x: torch.Tensor) -> float:
        if len(x) != self.n:
            raise ValueError(f"SlicedW2 was set up for samples of size {self.n}; got {len(x)}")
        return self.distance(x)


def noise_floor(gm, sw: SlicedW2, n: int, seeds: int) -> dict:
    """SW2 from ``seeds`` exact samples of size ``n`` to the reference: mean and sd."""
    values = torch.tensor([sw(exact_sample(gm, n, 100 + s)) for s in range(seeds)])
    return {"mean": float(values.mean()), "sd": float(values.std()), "seeds": seeds}


def evaluate(gm, sw: SlicedW2, x: torch.Tensor) -> dict:
    x = x.to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        return {"sw2": None, "chi2": None, "max_abs_z": None}
    st = ss.mixture_stats(gm, x)
    return {"sw2": sw(x), "chi2": st.chi2, "max_abs_z": st.max_abs_z}


def quality(problems: dict, sdes: dict, budgets: list[int], n: int, quick: bool, peers: bool) -> list[dict]:
    """Every runner at every budget (d = 64: budgets up to 200, to bound the run time)."""
    rows = []
    for pname, (gm, sw, floor) in problems.items():
        shape = (n, *gm.event_shape)
        budgets = [b for b in budgets if gm.dim < 64 or b <= 200]
        for sname, sde in sdes.items():
            for (lib, name), run in runners(sde, quick, peers).items():
                for b in budgets:
                    start = time.perf_counter()
                    x, nfe = run(gm.score_fn(sde), shape, b, 0)
                    seconds = time.perf_counter() - start
                    rows.append({"problem": pname, "sde": sname, "lib": lib, "sampler": name, "budget": b,
                                 "nfe": nfe, "seconds": seconds, **evaluate(gm, sw, x),
                                 "floor_mean": floor["mean"], "floor_sd": floor["sd"]})
                    print({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()},
                          flush=True)
    return rows


def overhead(quick: bool) -> list[dict]:
    """What ``ss.sample`` costs beyond its network calls, two ways, in this thread's CPU time
    (one torch thread, so other jobs on the machine stay out of it as far as they can).

    ``overhead_ratio``: ``ss.sample`` against a bare loop of the same number of network calls on
    the same input, alternating, median of the repeats, minus 1. It takes the difference of two
    noisy times of ~0.4 s each, which the shared machine moves by ±10 %.
    ``bookkeeping_ratio``: the sampler run with a free score (a stored tensor, so the time left
    is all the sampler's own work) over NFE network calls, each the fastest of the repeats — a
    ratio of two separately measured times, far less sensitive to the machine's noise.
    """
    torch.manual_seed(0)
    sde = ss.VPSDE()
    model = ss.ScoreModel(MLP(2, width=128, depth=3), sde, parameterization="eps")
    x, t = torch.randn(512, 2), torch.full((512,), 0.5)
    stored = model(x, t).detach()

    def free(y, s):
        return stored

    repeats, steps = (3, 20) if quick else (15, 100)
    rows = []
    with torch.no_grad():
        for name in ["ddim", "dpm++3m"] if quick else ["ddim", "dpm++3m", "unipc", "em", "heun"]:
            nfe = ss.sample(model, sde, (512, 2), name, steps)[1].nfe
            fns = [lambda n=nfe: [model(x, t) for _ in range(n)],
                   lambda n=name: ss.sample(model, sde, (512, 2), n, steps),
                   lambda n=name: ss.sample(free, sde, (512, 2), n, steps)]
            times = [[median_time(fn, 1, clock=time.thread_time) for fn in fns] for _ in range(repeats)]
            bare, wall, _ = (sorted(col)[repeats // 2] for col in zip(*times, strict=True))
            fastest_bare, _, fastest_book = (min(col) for col in zip(*times, strict=True))
            rows.append({"sampler": name, "steps": steps, "nfe": nfe, "bare_calls_seconds": bare,
                         "sample_seconds": wall, "overhead_ratio": wall / bare - 1,
                         "bookkeeping_seconds": fastest_book, "call_seconds": fastest_bare / nfe,
                         "bookkeeping_ratio": fastest_book / fastest_bare})
            print(rows[-1], flush=True)
    return rows


def prior_mismatch() -> list[dict]:
    """The same ODE solver (DPM-Solver++(3M), 49 log-SNR steps + denoise) on the d = 64 mixture,
    started from the prior and from an exact sample of ``p_T``: the mixture χ² separates the
    prior's mismatch with ``p_T`` (which a deterministic sampler never forgets) from the solver."""
    from scoresde.samplers.common import tweedie
    from scoresde.samplers.grids import logsnr as logsnr_grid
    from scoresde.samplers.multistep import dpm_solver_pp

    gm, rows = mixture64(), []
    for name, sde in {"VP": ss.VPSDE(), "VE": ss.VESDE(0.01, 50.0)}.items():
        ts, score = logsnr_grid(sde, 49, ss.samplers.default_eps(sde)), gm.score_fn(sde)
        starts = {"prior": sde.prior_sample((3000, 64), generator=torch.Generator().manual_seed(0),
                                            dtype=torch.float64),
                  "exact p_T": exact_sample(gm.at(sde.T, sde), 3000, 0).reshape(3000, 64)}
        for start, x in starts.items():
            x = dpm_solver_pp(score, sde, x, ts, order=3, lower_order_final=False)
            x = tweedie(score, sde, x, ts[-1])
            st = ss.mixture_stats(gm, x)
            rows.append({"sde": name, "start": start, "chi2": st.chi2, "max_abs_z": st.max_abs_z})
            print(rows[-1], flush=True)
    return rows


SPEED_PAIRS = [  # (scoresde sampler, peer library, peer sampler): the same algorithm
    ("dpm++2m", "k-diffusion", "dpmpp_2m"),
    ("heun", "k-diffusion", "heun"),
    ("ddim", "diffusers", "DDIM"),
    ("dpm++2m", "diffusers", "DPMSolverMultistep"),
]


def speed(quick: bool, peers: bool) -> list[dict]:
    """Wall time of scoresde and a peer running the same algorithm on the toy mixture (VP, exact
    score, same prior sample, budget 100 NFE), alternating, median of repeats after a warm-up;
    ``speedup`` = peer time / scoresde time (> 1: scoresde faster)."""
    sde, gm = ss.VPSDE(), ss.toy_mixture()
    table = runners(sde, quick=False, peers=peers)
    shape, budget, repeats = (3000, 2), 20 if quick else 100, 3 if quick else 7
    rows = []
    for ours, lib, theirs in SPEED_PAIRS:
        if (lib, theirs) not in table:
            continue
        fns = [lambda k=k: table[k](gm.score_fn(sde), shape, budget, 0)
               for k in (("scoresde", ours), (lib, theirs))]
        times = [[median_time(fn, 1) for fn in fns] for _ in range(repeats)]  # alternating
        t_ours, t_peer = (sorted(col)[repeats // 2] for col in zip(*times, strict=True))
        rows.append({"scoresde": ours, "peer": f"{lib} {theirs}", "budget": budget,
                     "scoresde_seconds": t_ours, "peer_seconds": t_peer, "speedup": t_peer / t_ours})
        print(rows[-1], flush=True)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """SW2 against NFE, one panel per (problem, SDE), floor mean ± sd shaded."""
    plt = pyplot()

    panels = sorted({(r["problem"], r["sde"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5), squeeze=False)
    for ax, (pname, sname) in zip(axes[0], panels, strict=True):
        sub = [r for r in rows if (r["problem"], r["sde"]) == (pname, sname) and r["sw2"] is not None]
        for key in sorted({(r["lib"], r["sampler"]) for r in sub}):
            pts = sorted((r["nfe"], r["sw2"]) for r in sub if (r["lib"], r["sampler"]) == key)
            style = {"scoresde": "-o", "k-diffusion": "--s", "diffusers": ":^"}[key[0]]
            ax.plot(*zip(*pts, strict=True), style, ms=3, label=f"{key[0]}: {key[1]}")
        floor = sub[0]
        ax.axhspan(floor["floor_mean"] - floor["floor_sd"], floor["floor_mean"] + floor["floor_sd"],
                   color="grey", alpha=0.3, label="exact-sample floor (±sd)")
        ax.set(xscale="log", yscale="log", xlabel="NFE", ylabel="sliced W2 to reference",
               title=f"{pname}, {sname}")
    axes[0][-1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def merge(paths: list[Path], directory: Path) -> None:
    """Concatenate the rows of several runs (e.g. one per SDE, run in parallel) into
    ``samplers.json`` and redraw the plot; metadata of each run kept under ``runs``."""
    import json

    runs = [json.loads(p.read_text()) for p in paths]
    rows = [r for run in runs for r in run["rows"]]
    meta = [{k: v for k, v in run.items() if k not in ("rows",)} for run in runs]
    write_json("samplers", {**metadata(), "merged_from": [p.name for p in paths], "runs": meta,
                            "rows": rows}, False, directory)
    plot(rows, directory / "samplers.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2-D, VP, 10/20 NFE, few samplers")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--no-peers", action="store_true", help="skip k-diffusion and diffusers")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for JSON and PNG")
    parser.add_argument("--speed-only", action="store_true", help="only the peer wall-time pairs")
    parser.add_argument("--overhead-only", action="store_true", help="only the sampler overhead")
    parser.add_argument("--prior-check", action="store_true", help="ODE from the prior vs from p_T, d = 64")
    parser.add_argument("--sdes", nargs="*", default=["VP", "VE"], help="subset of VP, VE")
    parser.add_argument("--tag", default="", help="suffix of the results files")
    parser.add_argument("--merge", nargs="*", type=Path, help="combine results JSONs into one, replot")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.merge:
        merge(args.merge, args.results)
        return
    if args.prior_check:
        write_json("samplers_prior", {**metadata(), "rows": prior_mismatch()}, False, args.results)
        return
    if args.overhead_only:
        write_json("samplers_overhead", {**metadata(), "rows": overhead(args.quick)}, args.quick,
                   args.results)
        return
    if args.speed_only:
        write_json("samplers_speed", {**metadata(), "rows": speed(args.quick, not args.no_peers)},
                   args.quick, args.results)
        return
    quick = args.quick
    n = args.n or (500 if quick else 3000)
    budgets = [10, 20] if quick else BUDGETS
    gms = {"toy2d": ss.toy_mixture()} if quick else {"toy2d": ss.toy_mixture(), "mix64": mixture64()}
    sdes = {"VP": ss.VPSDE()} if quick else {k: v for k, v in
                                              {"VP": ss.VPSDE(), "VE": ss.VESDE(0.01, 50.0)}.items()
                                              if k in args.sdes}
    problems = {}
    for name, gm in gms.items():
        sw = SlicedW2(exact_sample(gm, 5000 if quick else 40000, 12345).reshape(-1, gm.dim), n)
        problems[name] = (gm, sw, noise_floor(gm, sw, n, 3 if quick else 8))
    rows = quality(problems, sdes, budgets, n, quick, not args.no_peers)
    over = overhead(quick)
    pairs = speed(quick, not args.no_peers)
    for peer, how in MISSING.items():
        print(f"skipped {peer}: not installed ({how})")
    suffix = ("_quick" if quick else "") + args.tag
    write_json(f"samplers{args.tag}", {**metadata(), "n": n, "quick": quick, "missing_peers": MISSING,
                            "floors": {k: v[2] for k, v in problems.items()}, "rows": rows,
                            "overhead": over, "speed": pairs}, quick, args.results)
    plot(rows, args.results / f"samplers{suffix}.png")


if __name__ == "__main__":
    main()

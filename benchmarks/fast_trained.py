"""Few-step solvers on a trained digits model (issue 11): solver error against NFE.

The U-Net of ``configs/digits_vp.yaml`` (VP SDE, ε-parameterisation, scikit-learn's 8x8 digits
in ``[-1, 1]``) is trained by the library's :class:`~scoresde.training.Trainer`
(``scoresde.build.build_trainer``) for ``--train-steps`` steps on one torch thread, or restored
from ``--checkpoint``; the EMA weights are sampled.

Metric. With a learned score there is no exact answer to compare samples with, and distribution
statistics at n = 256 in 64 dimensions are dominated by sampling noise and by how well the model
is trained, not by the solver. But every ODE solver here (DDIM, Heun, DPM-Solver++(2M/3M),
UniPC-3) integrates the *same* probability-flow ODE of the *same* trained score, so its error is
well defined: run it from the same prior draws ``x_T`` (one fixed ``generator`` seed for every
run) to the same ``eps`` and compare with an adaptive ``dopri5`` solution at ``rtol = atol =
--ref-tol`` (``ss.sample(..., "ode")``) that also ends with the Tweedie denoise. The number is the
RMS over samples and pixels of ``x_solver - x_ref`` in the data's scale (pixels in ``[-1, 1]``,
17 grey levels 0.118 apart), reported with the NFE actually spent (``info.nfe``, the denoise
included) and wall time. It measures integration error only; whether the model's samples are good
digits is a separate question (training budget). The reference's own error is estimated by a
second ``dopri5`` run at 10x the tolerance (``reference.check_rms``). A second, distribution-level
number is the sliced 2-Wasserstein distance between a solver's samples and the reference samples
(``ss.sliced_wasserstein``, fixed projections); the paired coupling bounds it by the RMS, so it
tells how much of the pointwise error also moves the sample distribution.

Budgets ``--budgets`` are NFE; ``scoresde.samplers.steps_for`` turns them into steps (Heun spends
two per step). Each solver uses its default grid (DDIM uniform, Heun Karras, the multistep
solvers log-SNR) and ``--eps`` (1e-3). ``"fast"`` is run at that ``eps`` and again at its own
default ``eps`` (``fast_choice``), then against a reference that stops at the same ``eps``;
how far that reference is from the ``--eps`` one (the larger ``eps``'s own effect, not a solver
error) is recorded as ``rms_to_eps_reference``.

    python benchmarks/fast_trained.py      # ~4 min training, then the sweep -> results/fast_trained.*
    python benchmarks/fast_trained.py --checkpoint RUN/checkpoint.pt
    python benchmarks/fast_trained.py --quick --results /tmp/bench     # tiny U-Net, seconds
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor

import scoresde as ss
from scoresde.build import build_trainer, load_config, load_data
from scoresde.plotting import pyplot
from scoresde.samplers import steps_for
from scoresde.samplers.fast import fast_choice

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "examples"))
from common import add_run_options, metadata, write_json  # noqa: E402
from train_mnist import TINY  # noqa: E402  (the example's tiny U-Net, for --quick)

CONFIG = ROOT / "configs" / "digits_vp.yaml"
SHAPE = (1, 8, 8)
TRAIN_STEPS = 500  # ~0.46 s/step on one thread of the recording machine: about 4 minutes
BUDGETS = (6, 8, 10, 12, 15, 20, 30, 50)
# label -> (sampler, options)
SOLVERS = {
    "ddim": ("ddim", {}), "heun": ("heun", {}), "dpm++2m": ("dpm++2m", {}),
    "dpm++3m": ("dpm++3m", {}), "unipc3": ("unipc", {"order": 3}), "fast": ("fast", {}),
}


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-steps", type=int, help=f"training steps (default {TRAIN_STEPS}; quick 50)")
    p.add_argument("--checkpoint", type=Path, help="restore this Trainer checkpoint instead of training")
    p.add_argument("--run-dir", type=Path, help="keep the run (checkpoint.pt, metrics) here")
    p.add_argument("--n", type=int, help="samples (default 256; quick 16)")
    p.add_argument("--budgets", help="comma-separated NFE budgets (default 6,...,50; quick 6,10)")
    p.add_argument("--eps", type=float, default=1e-3, help="where every solver stops (t)")
    p.add_argument("--ref-tol", type=float, help="reference dopri5 rtol = atol (default 1e-6; quick 1e-3)")
    add_run_options(p)
    args = p.parse_args(argv)
    q = args.quick
    args.train_steps = args.train_steps or (50 if q else TRAIN_STEPS)
    args.n = args.n or (16 if q else 256)
    budgets = args.budgets or ("6,10" if q else ",".join(map(str, BUDGETS)))
    args.budgets = [int(b) for b in budgets.split(",")]
    args.ref_tol = args.ref_tol or (1e-3 if q else 1e-6)
    return args


def overrides(args: argparse.Namespace) -> list[str]:
    """Config overrides (recorded): seed, a warm-up that ends within the budget, no mid-run saves."""
    base = [f"train.seed={args.seed}", f"train.warmup={max(1, args.train_steps // 10)}",
            f"train.log_every={args.train_steps}", "train.ckpt_every=1000000"]
    return [*base, *(TINY if args.quick else [])]


def trained_model(args: argparse.Namespace, run_dir: Path) -> tuple[ss.ScoreModel, dict]:
    """The EMA model after training (or restored from ``--checkpoint``) and what that cost."""
    cfg = load_config(CONFIG, overrides(args))
    trainer = build_trainer(cfg, run_dir, "cpu", load_data(cfg.data), progress=False)
    if args.checkpoint is not None:
        trainer.load(args.checkpoint)
        return trainer.ema.eval().requires_grad_(False), {"steps": trainer.step,
                                                          "checkpoint": str(args.checkpoint)}
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit(args.train_steps)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    record = {"steps": trainer.step, "seconds": wall, "cpu_seconds": cpu,
              "steps_per_s": trainer.step / wall, "batch_size": cfg.train.batch_size}
    print(f"trained {trainer.step} steps in {wall:.0f} s ({trainer.step / wall:.2f} steps/s)", flush=True)
    return trainer.ema.eval().requires_grad_(False), record


def draw(model: ss.ScoreModel, n: int, sampler: str, seed: int, **kwargs) -> tuple[Tensor, int, float]:
    """One ``ss.sample`` run from the prior draws of ``seed``: ``(x, nfe, seconds)``."""
    gen = torch.Generator().manual_seed(seed)
    tic = time.perf_counter()
    with torch.no_grad():
        x, info = ss.sample(model, model.sde, (n, *SHAPE), sampler, generator=gen, **kwargs)
    return x, info.nfe, time.perf_counter() - tic


def rms(x: Tensor, y: Tensor) -> float:
    return float((x - y).double().pow(2).mean().sqrt())


def reference(model: ss.ScoreModel, args: argparse.Namespace, eps: float) -> tuple[Tensor, dict]:
    """The ``dopri5`` solution at ``--ref-tol``, and its distance to one at 10x that tolerance."""
    tol = args.ref_tol
    x, nfe, seconds = draw(model, args.n, "ode", args.seed, eps=eps, rtol=tol, atol=tol)
    loose, loose_nfe, _ = draw(model, args.n, "ode", args.seed, eps=eps, rtol=10 * tol, atol=10 * tol)
    record = {"eps": eps, "rtol": tol, "atol": tol, "nfe": nfe, "seconds": seconds,
              "check_tol": 10 * tol, "check_nfe": loose_nfe, "check_rms": rms(loose, x)}
    print(f"reference eps={eps:g}: NFE {nfe}, {seconds:.0f} s, "
          f"RMS to tol {10 * tol:g}: {record['check_rms']:.2e}", flush=True)
    return x, record


def solver_row(model: ss.ScoreModel, args: argparse.Namespace, label: str, budget: int,
               eps: float | None, ref: Tensor) -> dict:
    """One solver at one NFE budget against the reference ``ref``."""
    sampler, options = SOLVERS[label]
    steps, extra = steps_for(sampler, budget)
    x, nfe, seconds = draw(model, args.n, sampler, args.seed, steps=steps, eps=eps, **options, **extra)
    sw = ss.sliced_wasserstein(x, ref, generator=torch.Generator().manual_seed(args.seed + 1))
    return {"solver": label if eps is not None else f"{label} (own eps)", "sampler": sampler,
            "options": options, "eps": eps if eps is not None else fast_choice(model.sde).eps,
            "budget": budget, "steps": steps, "nfe": nfe, "rms": rms(x, ref),
            "max_abs": float((x - ref).abs().max()), "sliced_w2": sw, "seconds": seconds}


def sweep(model: ss.ScoreModel, args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """Every solver and budget at ``--eps``, then ``fast`` at its own ``eps``: (rows, references)."""
    ref, ref_record = reference(model, args, args.eps)
    runs = [(label, args.eps, ref) for label in SOLVERS]
    own_eps = fast_choice(model.sde).eps
    own_ref, own_record = reference(model, args, own_eps)
    own_record["rms_to_eps_reference"] = rms(own_ref, ref)  # what the larger eps itself changes
    runs.append(("fast", None, own_ref))
    rows = []
    for label, eps, target in runs:
        for budget in args.budgets:
            rows.append(solver_row(model, args, label, budget, eps, target))
            r = rows[-1]
            print(f"{r['solver']:16s} NFE {r['nfe']:3d}: RMS {r['rms']:.2e}, SW2 {r['sliced_w2']:.2e}, "
                  f"{r['seconds']:.1f} s", flush=True)
    return rows, [ref_record, own_record]


def table(rows: list[dict], budgets: list[int]) -> str:
    """RMS error per solver (rows) and NFE budget (columns), actual NFE where it differs."""
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    lines = [f"{'RMS error':16s}" + "".join(f"{b:>11d}" for b in budgets)]
    for s in solvers:
        cells = {r["budget"]: r for r in rows if r["solver"] == s}
        lines.append(f"{s:16s}" + "".join(_cell(cells[b]) for b in budgets))
    return "\n".join(lines)


def _cell(r: dict) -> str:
    mark = "" if r["nfe"] == r["budget"] else f"({r['nfe']})"
    return f"{mark:>4s}{r['rms']:7.1e}"


def figure(rows: list[dict], payload: dict, path: Path) -> None:
    """RMS error against NFE spent, log-log, one curve per solver."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for s in dict.fromkeys(r["solver"] for r in rows):
        pts = [(r["nfe"], r["rms"]) for r in rows if r["solver"] == s]
        ax.loglog(*zip(*pts, strict=True), "o--" if "own" in s else "o-", label=s, ms=3)
    ax.set_xlabel("NFE (score evaluations, denoise included)")
    ax.set_ylabel("RMS error vs dopri5 reference (pixels in [-1, 1])")
    t = payload["training"]
    ax.set_title(f"digits_vp, {t['steps']} training steps, n = {payload['n']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model, training = trained_model(args, args.run_dir or Path(tmp))
    rows, refs = sweep(model, args)
    payload = {**metadata(), "quick": args.quick, "config": "digits_vp", "overrides": overrides(args),
               "training": training, "n": args.n, "seed": args.seed, "eps": args.eps,
               "budgets": args.budgets, "data_scale": "pixels in [-1, 1], 17 levels (step 2/17)",
               "references": refs, "rows": rows}
    print(table(rows, args.budgets))
    path = write_json("fast_trained", payload, args.quick, args.results)
    figure(rows, payload, path.with_suffix(".png"))


if __name__ == "__main__":
    main()

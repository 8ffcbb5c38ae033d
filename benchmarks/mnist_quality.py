"""MNIST sample quality against CPU training time, for VP, sub-VP and VE (the quick configs).

Each SDE's quick config (``configs/mnist_quick.yaml``, ``mnist_quick_subvp.yaml``,
``mnist_quick_ve.yaml``) is trained by the library's :class:`~scoresde.training.Trainer` for its
``train.steps``; at the fractions ``--evals`` of those steps training pauses and the EMA weights are
kept (``--work``/<sde>/ema_<step>.pt, with the training wall and CPU seconds so far). Then every
kept model draws ``--n`` samples with ``--sampler`` at ``--steps`` (all from the same prior noise),
judged by the feature classifier of :mod:`scoresde.metrics` (Fréchet and kernel distance, the
confident share, the class histogram) beside the data's own floor (a same-size train subset
against the test split), and its test bits/dim is measured on ``--n-test`` test images
(PF-ODE, ``rtol = atol = --tol``). Sampling and evaluation time are recorded beside training time.

The final model of each SDE also saves its samples as ``mnist_quality_<sde>.npy`` (uint8,
``(n, 28, 28)``, white digits on black as in the data) and a grid ``mnist_quality_<sde>.png``.

    python benchmarks/mnist_quality.py                  # all three SDEs -> results/mnist_quality*.json
    python benchmarks/mnist_quality.py --sdes vp --phase train     # train only (resumable)
    python benchmarks/mnist_quality.py --sdes vp --phase eval      # judge what was kept
    python benchmarks/mnist_quality.py --quick --results /tmp/b    # tiny, seconds (the tests)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

import scoresde as ss
from scoresde.build import DEFAULT_MNIST, build_model, build_trainer, load_config, load_data
from scoresde.data import Dataset, from_model_range

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from common import metadata, pyplot, save_figure, write_json  # noqa: E402

CONFIGS = {"vp": "mnist_quick", "subvp": "mnist_quick_subvp", "ve": "mnist_quick_ve"}
QUICK = ["model.channels=8", "model.channel_mult=[1,2]", "model.groups=4", "train.steps=4",
         "train.warmup=1", "train.lr_decay_steps=4", "train.batch_size=16"]


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sdes", default="vp,subvp,ve", help="comma-separated subset of vp, subvp, ve")
    p.add_argument("--phase", choices=("train", "eval", "all", "merge"), default="all",
                   help="merge: combine results/mnist_quality_<sde>.json of separate runs")
    p.add_argument("--evals", default="0.25,0.5,0.75,1", help="fractions of train.steps to judge")
    p.add_argument("--n", type=int, help="samples judged per kept model (default 1000; quick 200)")
    p.add_argument("--sampler", default="dpm++2m")
    p.add_argument("--steps", type=int, default=20, help="sampler steps")
    p.add_argument("--n-test", type=int, help="test images for bits/dim (default 32; quick 2)")
    p.add_argument("--tol", type=float, default=1e-3, help="ODE rtol = atol for bits/dim")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_MNIST)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "mnist_quality",
                   help="run directories and kept models")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every SDE (repeatable)")
    p.add_argument("--quick", action="store_true", help="tiny U-Net, a few steps (the test suite)")
    p.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    args.n = args.n or (200 if args.quick else 1000)
    args.n_test = args.n_test or (2 if args.quick else 32)
    if args.quick:
        args.work = args.results / "mnist_quality_work"
    return args


def config(sde: str, args: argparse.Namespace):
    extra = [f"data.root={args.data_dir}", f"train.seed={args.seed}", *(QUICK if args.quick else []),
             *args.set]
    return load_config(ROOT / "configs" / f"{CONFIGS[sde]}.yaml", extra)


def train(sde: str, data: Dataset, args: argparse.Namespace) -> list[dict]:
    """Train to ``train.steps``, keeping the EMA weights at each fraction; resumes a stopped run."""
    cfg = config(sde, args)
    run_dir = args.work / sde
    log_path = run_dir / "kept.json"
    trainer = build_trainer(cfg, run_dir, "cpu", data, progress=not args.quick)
    kept = json.loads(log_path.read_text()) if trainer.maybe_resume() and log_path.exists() else []
    wall, cpu = (kept[-1]["train_seconds"], kept[-1]["train_cpu_seconds"]) if kept else (0.0, 0.0)
    for fraction in sorted(float(f) for f in args.evals.split(",")):
        target = max(1, round(fraction * cfg.train.steps))
        if target <= trainer.step:
            continue
        tic, cpu_tic = time.perf_counter(), time.process_time()
        trainer.fit(target)
        wall, cpu = wall + time.perf_counter() - tic, cpu + time.process_time() - cpu_tic
        torch.save(trainer.ema.state_dict(), run_dir / f"ema_{target}.pt")
        kept.append({"step": target, "train_seconds": wall, "train_cpu_seconds": cpu})
        log_path.write_text(json.dumps(kept, indent=1))
        print(f"{sde}: step {target} after {wall / 60:.1f} min of training", flush=True)
    return kept


def judge_kept(sde: str, judge, data: Dataset, args: argparse.Namespace) -> dict:
    """Sample, judge and measure bits/dim for every kept model of ``sde``."""
    cfg = config(sde, args)
    run_dir = args.work / sde
    kept = json.loads((run_dir / "kept.json").read_text())
    model = build_model(cfg).eval().requires_grad_(False)
    levels = data.test_levels[torch.randperm(len(data.test_levels),
                                             generator=torch.Generator().manual_seed(args.seed))[:args.n_test]]
    rows, x = [], None
    for entry in kept:
        model.load_state_dict(torch.load(run_dir / f"ema_{entry['step']}.pt", weights_only=True))
        tic = time.perf_counter()
        x, nfe = draw(model, args.n, data.train.shape[1:], args)
        sample_s = time.perf_counter() - tic
        quality = judge.judge(x.clamp(-1, 1), generator=torch.Generator().manual_seed(args.seed + 3))
        tic = time.perf_counter()
        bpd = ss.bits_per_dim(model, model.sde, levels, num_levels=256, rtol=args.tol, atol=args.tol,
                              generator=torch.Generator().manual_seed(args.seed + 2))
        rows.append({**entry, "minutes": entry["train_seconds"] / 60, "sampler": args.sampler,
                     "sampler_steps": args.steps, "nfe": nfe, "sample_seconds": sample_s,
                     **quality.to_dict(), "bpd": bpd.mean, "bpd_se": bpd.stderr,
                     "bpd_n": len(levels), "bpd_seconds": time.perf_counter() - tic})
        r = rows[-1]
        print(f"{sde} step {r['step']} ({r['minutes']:.1f} min): FD {r['fd']:.2f} "
              f"(floor {r['fd_floor']:.2f}), KD {r['kd']:.4f}, confident {r['confident']:.1%}, "
              f"bpd {r['bpd']:.3f}", flush=True)
    suffix = "_quick" if args.quick else ""
    images = from_model_range(x.clamp(-1, 1), 256)[:, 0].numpy()
    np.save(args.results / f"mnist_quality_{sde}{suffix}.npy", images)
    grid(images, args.results / f"mnist_quality_{sde}{suffix}.png", grid_title(cfg.name, rows[-1]))
    return {"config": cfg.to_dict(), "rows": rows}


def draw(model: ss.ScoreModel, n: int, shape: tuple[int, ...], args: argparse.Namespace,
         batch: int = 500) -> tuple[torch.Tensor, int]:
    """``n`` samples in batches of ``batch`` from one seeded generator; NFE per batch."""
    gen, parts = torch.Generator().manual_seed(args.seed + 1), []
    with torch.no_grad():
        for start in range(0, n, batch):
            x, info = ss.sample(model, model.sde, (min(batch, n - start), *shape), args.sampler,
                                steps=args.steps, generator=gen, progress=not args.quick)
            parts.append(x)
    return torch.cat(parts), info.nfe


def grid_title(name: str, row: dict) -> str:
    return (f"{name}: {row['step']} steps, {row['sampler']} NFE {row['nfe']}; {row['confident']:.0%} "
            f"confident, FD {row['fd']:.1f}")


def grid(images: np.ndarray, path: Path, title: str, side: int = 10) -> None:
    """The first ``side²`` samples as a grid, in the data's orientation and grey levels."""
    plt = pyplot()
    tiles = images[: side * side].reshape(side, side, *images.shape[1:])
    fig, ax = plt.subplots(figsize=(6, 6.3))
    ax.imshow(np.concatenate(np.concatenate(tiles, axis=1), axis=1), cmap="gray", vmin=0, vmax=255)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    save_figure(fig, path)


def plot_curves(results: dict, path: Path, rate: float | None = None) -> None:
    """FD (with the data floor), the confident share and test bits/dim against training steps,
    per SDE; ``rate`` (steps/s of the quick config on idle cores) labels the axis in minutes."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax_fd, ax_conf, ax_bpd = axes
    for sde, res in results.items():
        rows = res["rows"]
        steps = [r["step"] for r in rows]
        line = ax_fd.plot(steps, [r["fd"] for r in rows], marker="o", label=sde)[0]
        ax_fd.axhline(rows[-1]["fd_floor"], color=line.get_color(), ls=":", lw=1)
        ax_conf.plot(steps, [r["confident"] for r in rows], marker="o", label=sde)
        ax_bpd.errorbar(steps, [r["bpd"] for r in rows], yerr=[r["bpd_se"] for r in rows], marker="o",
                        capsize=3, label=sde)
    xlabel = "training steps" + (f" (1,000 ≈ {1000 / rate / 60:.1f} min on 2 idle cores)" if rate else "")
    ax_fd.set(yscale="log", xlabel=xlabel, ylabel="FD (dotted: data floor)",
              title="Fréchet distance on classifier features")
    ax_conf.set(xlabel=xlabel, ylabel="share with p > 0.9", ylim=(0, 1),
                title="confidently classified samples")
    ax_bpd.set(xlabel=xlabel, ylabel="test bits/dim (PF-ODE)", title="test bits/dim")
    ax_conf.axhline(0.8, color="grey", ls="--", lw=1)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def clean_rate(results: Path) -> float | None:
    """Steps/s of the quick config (bf16 autocast, batch 128) in ``mnist_speed.json``, if recorded."""
    path = results / "mnist_speed.json"
    if not path.exists():
        return None
    rows = json.loads(path.read_text())["rows"]
    return next((r["steps_per_s"] for r in rows if r["name"] == "bf16 autocast"), None)


def merge(sdes: list[str], results: Path) -> dict:
    """One ``mnist_quality.json`` and figure from the per-SDE files of separate runs."""
    parts = {sde: json.loads((results / f"mnist_quality_{sde}.json").read_text()) for sde in sdes}
    rate = clean_rate(results)
    merged = {**next(iter(parts.values())), "sdes": {s: p["sdes"][s] for s, p in parts.items()},
              "dates": {s: p["date"] for s, p in parts.items()}, "clean_steps_per_s": rate,
              "clean_rate_source": "results/mnist_speed.json, row 'bf16 autocast'" if rate else None}
    for res in merged["sdes"].values():
        for row in res["rows"]:
            row["minutes_idle"] = row["step"] / rate / 60 if rate else None
    plot_curves(merged["sdes"], results / "mnist_quality.png", rate)
    for sde, res in merged["sdes"].items():
        grid(np.load(results / f"mnist_quality_{sde}.npy"), results / f"mnist_quality_{sde}.png",
             grid_title(res["config"]["name"], res["rows"][-1]))
    write_json("mnist_quality", merged, False, results)
    return merged


def main(argv: list[str] | None = None) -> dict:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    sdes = args.sdes.split(",")
    if any(s not in CONFIGS for s in sdes):
        raise SystemExit(f"--sdes must name some of {tuple(CONFIGS)}; got {args.sdes!r}")
    args.results.mkdir(parents=True, exist_ok=True)
    if args.phase == "merge":
        return merge(sdes, args.results)
    data = load_data(config(sdes[0], args).data)
    if args.phase in ("train", "all"):
        for sde in sdes:
            train(sde, data, args)
    if args.phase == "train":
        return {}
    from scoresde.metrics import ImageJudge, load_or_train_classifier

    n_cls = 4000 if args.quick else len(data.train_levels)  # quick: a rough classifier, seconds
    classifier, cls_info = load_or_train_classifier(
        data.train[:n_cls], data.train_labels[:n_cls], test_images=data.test,
        test_labels=data.test_labels, progress=not args.quick,
        cache_dir=args.work / "classifiers" if args.quick else None, **({"epochs": 1} if args.quick else {}))
    judge = ImageJudge(classifier, data.test, data.train)
    results = {sde: judge_kept(sde, judge, data, args) for sde in sdes}
    suffix = "_quick" if args.quick else ""
    plot_curves(results, args.results / f"mnist_quality{suffix}.png")
    payload = {"benchmark": "mnist_quality", **metadata(), "classifier": cls_info,
               "sampler": args.sampler, "sampler_steps": args.steps, "n": args.n,
               "bpd": {"n_test": args.n_test, "rtol": args.tol, "atol": args.tol}, "sdes": results}
    name = "mnist_quality" if len(sdes) == 3 else f"mnist_quality_{'_'.join(sdes)}"
    write_json(name, payload, args.quick, args.results)
    if args.quick:
        shutil.rmtree(args.work, ignore_errors=True)
    return payload


if __name__ == "__main__":
    main()

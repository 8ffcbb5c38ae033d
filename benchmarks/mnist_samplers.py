"""Which sampler makes a trained MNIST model's samples best, at what NFE and wall time.

One trained run (``--run``: a run directory with ``checkpoint.pt`` and ``config.yaml``, e.g. the
VP run of ``benchmarks/mnist_quality.py`` at ``runs/mnist_quality/vp``) draws ``--n`` samples for
every spec of ``--specs``, all from the same prior noise, and the feature classifier of
:mod:`scoresde.metrics` judges them (Fréchet and kernel distance, the confident share, the class
histogram) beside the data's floor. A spec is ``sampler:steps`` with optional ``,key=value``
options for the sampler (``heun:40,s_churn=20``); the option ``autocast=bf16`` runs the network
under bf16 autocast (the score is returned in float32). Results go to
``results/mnist_samplers.json`` with one grid of samples per spec.

    python benchmarks/mnist_samplers.py --run runs/mnist_quality/vp
    python benchmarks/mnist_samplers.py --quick --results /tmp/b        # seconds (the tests)
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import torch

import scoresde as ss
from scoresde.build import DEFAULT_MNIST, build_trainer, load_config, load_data, load_trained
from scoresde.checkpoint import read_checkpoint
from scoresde.data import from_model_range

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from common import metadata, pyplot, save_figure, write_json  # noqa: E402

SPECS = ("dpm++2m:20", "dpm++2m:20,autocast=bf16", "heun:20", "heun:20,s_churn=10",
         "heun:40,s_churn=20", "heun:40,s_churn=40", "ancestral:100", "em:100")
QUICK = ["model.channels=8", "model.channel_mult=[1,2]", "model.groups=4", "train.steps=2",
         "train.warmup=1", "train.lr_decay_steps=2", "train.batch_size=8"]


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=ROOT / "runs" / "mnist_quality" / "vp")
    p.add_argument("--config", type=Path, help="the run's config (default: <run>/config.yaml, else "
                   "configs/mnist_quick.yaml)")
    p.add_argument("--specs", default=";".join(SPECS), help="';'-separated sampler:steps[,key=value]")
    p.add_argument("--n", type=int, help="samples per spec (default 1000; quick 200)")
    p.add_argument("--batch", type=int, default=500, help="samples per sampler call")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a 2-step tiny model, seconds (the tests)")
    p.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    args.n = args.n or (200 if args.quick else 1000)
    return args


def parse_spec(spec: str) -> tuple[str, int, dict]:
    """``"heun:40,s_churn=20"`` -> ``("heun", 40, {"s_churn": 20.0})``; numbers become floats."""
    head, *options = spec.split(",")
    sampler, _, steps = head.partition(":")
    if not steps.isdigit():
        raise SystemExit(f"spec {spec!r}: expected sampler:steps[,key=value...]")
    parsed = {}
    for option in options:
        key, _, value = option.partition("=")
        try:
            parsed[key] = float(value)
        except ValueError:
            parsed[key] = value
    return sampler, int(steps), parsed


def score_fn(model: ss.ScoreModel, autocast: str | None):
    """The model's score, with the network under bf16 autocast if asked (float32 out)."""
    if autocast in (None, "none"):
        return model
    if autocast != "bf16":
        raise SystemExit(f"autocast must be bf16 or none; got {autocast!r}")

    def scored(x, t):
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return model(x, t).float()

    return scored


def draw(model, spec: str, n: int, shape: tuple[int, ...], args) -> tuple[torch.Tensor, int, float]:
    """``n`` samples for ``spec`` from one seeded generator (the same prior noise for every spec
    whose sampler draws only the prior), its NFE per batch and the wall seconds."""
    sampler, steps, options = parse_spec(spec)
    fn = score_fn(model, options.pop("autocast", None))
    gen, parts = torch.Generator().manual_seed(args.seed + 1), []
    tic = time.perf_counter()
    with torch.no_grad():
        for start in range(0, n, args.batch):
            x, info = ss.sample(fn, model.sde, (min(args.batch, n - start), *shape), sampler,
                                steps=steps, generator=gen, progress=not args.quick, **options)
            parts.append(x)
    return torch.cat(parts).clamp(-1, 1), info.nfe, time.perf_counter() - tic


def quick_run(results: Path) -> Path:
    """A tiny trained run for the tests: 2 steps of an 8-channel U-Net."""
    cfg = load_config(ROOT / "configs" / "mnist_quick.yaml", [f"data.root={DEFAULT_MNIST}", *QUICK])
    run = results / "mnist_samplers_run"
    build_trainer(cfg, run, "cpu", load_data(cfg.data), progress=False).fit(cfg.train.steps)
    return run


def grid(images: np.ndarray, path: Path, title: str, side: int = 8) -> None:
    """The first ``side²`` samples (uint8, white digits on black) as one image."""
    plt = pyplot()
    side = min(side, int(len(images) ** 0.5))
    tiles = images[: side * side].reshape(side, side, *images.shape[1:])
    fig, ax = plt.subplots(figsize=(5, 5.3))
    ax.imshow(np.concatenate(np.concatenate(tiles, axis=1), axis=1), cmap="gray", vmin=0, vmax=255)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    save_figure(fig, path)


def slug(spec: str) -> str:
    return spec.replace(":", "_").replace(",", "_").replace("=", "").replace("+", "p")


def main(argv: list[str] | None = None) -> dict:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    args.results.mkdir(parents=True, exist_ok=True)
    run = quick_run(args.results) if args.quick else args.run
    config = args.config or next(p for p in (run / "config.yaml", ROOT / "configs" / "mnist_quick.yaml")
                                 if p.exists())
    cfg = load_config(config, [f"data.root={DEFAULT_MNIST}", *(QUICK if args.quick else [])])
    data = load_data(cfg.data)
    model = load_trained(run, cfg, "cpu").eval().requires_grad_(False)
    n_cls = 4000 if args.quick else len(data.train_levels)
    classifier, cls_info = ss.load_or_train_classifier(
        data.train[:n_cls], data.train_labels[:n_cls], test_images=data.test,
        test_labels=data.test_labels, progress=not args.quick,
        cache_dir=run / "classifiers" if args.quick else None, **({"epochs": 1} if args.quick else {}))
    judge = ss.ImageJudge(classifier, data.test, data.train)
    suffix = "_quick" if args.quick else ""
    rows = []
    for spec in args.specs.split(";"):
        x, nfe, seconds = draw(model, spec, args.n, data.shape, args)
        quality = judge.judge(x, generator=torch.Generator().manual_seed(args.seed + 3)).to_dict()
        rows.append({"spec": spec, "nfe": nfe, "seconds": seconds, **quality})
        print(f"{spec:28s} NFE {nfe:4d}  {seconds:6.1f} s  FD {quality['fd']:7.2f} "
              f"(floor {quality['fd_floor']:.2f})  confident {quality['confident']:.1%}  "
              f"max class dev {quality['max_class_dev']:.1%}", flush=True)
        images = from_model_range(x, 256)[:, 0].numpy()
        grid(images, args.results / f"mnist_samplers_{slug(spec)}{suffix}.png",
             f"{spec}: NFE {nfe}, {quality['confident']:.0%} confident, FD {quality['fd']:.1f}")
    step = read_checkpoint(run / "checkpoint.pt")["step"]
    payload = {"benchmark": "mnist_samplers", **metadata(), "run": str(run), "step": step,
               "config_file": str(config),
               "config": cfg.to_dict(), "classifier": cls_info, "n": args.n, "rows": rows}
    write_json("mnist_samplers", payload, args.quick, args.results)
    return payload


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()

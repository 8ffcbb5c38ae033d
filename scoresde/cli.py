"""Command line: ``scoresde train | sample | likelihood | compare`` (also ``python -m scoresde``).

Run directory layout (``--run-dir``, default ``runs/<config name>``)::

    config.yaml        the resolved configuration (written by ``train``, read by the others)
    checkpoint.pt      model, EMA, optimizer, step, RNG states (atomic; ``train`` resumes from it)
    metrics.jsonl      one JSON record per log / evaluation
    samples/           <sampler>_<steps>.png (scatter plot or image grid), .pt, .json
    likelihood.json    NLL in nats (vectors) or bits/dim (images), with its standard error

Subcommands live in :data:`COMMANDS`; another module adds one with :func:`register`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from scoresde import distributed
from scoresde.config import Config, DataConfig, ModelConfig, SDEConfig, load_config, save_config
from scoresde.data import Dataset, image_shape, load_dataset
from scoresde.losses import make_loss
from scoresde.networks import MLP, UNet
from scoresde.score import ScoreModel
from scoresde.sde import SDE, VESDE, VPSDE, SubVPSDE
from scoresde.training import Hook, Trainer, TrainingStopped, fingerprint_diff, read_checkpoint

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@dataclass
class Command:
    """A subcommand: ``configure(parser)`` adds its arguments, ``run(args)`` executes it."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


COMMANDS: dict[str, Command] = {}


def register(name: str, command: Command) -> None:
    """Add a subcommand (e.g. a later ``compare``) to the ``scoresde`` command line."""
    COMMANDS[name] = command


def build_sde(cfg: SDEConfig) -> SDE:
    """The SDE named by ``sde.name`` (``vp``, ``subvp``, ``ve``) with its parameters."""
    if cfg.name == "ve":
        return VESDE(cfg.sigma_min, cfg.sigma_max)
    if cfg.name in ("vp", "subvp"):
        return (VPSDE if cfg.name == "vp" else SubVPSDE)(cfg.beta_min, cfg.beta_max)
    raise ValueError(f"sde.name must be one of ('vp', 'subvp', 've'); got {cfg.name!r}")


def data_root(cfg: DataConfig) -> Path | None:
    """``data.root``, else the MNIST files beside the checkout for ``mnist``, else ``None``."""
    return Path(cfg.root) if cfg.root else (DEFAULT_MNIST if cfg.name == "mnist" else None)


def data_shape(cfg: DataConfig) -> tuple[int, ...]:
    """Shape of one sample: ``(2,)`` for the toys, ``(c, h, w)`` for images (read from the files)."""
    return image_shape(cfg.name, data_root(cfg))


def build_net(cfg: ModelConfig, shape: tuple[int, ...]) -> nn.Module:
    """An :class:`MLP` for vectors or a :class:`UNet` for ``(c, s, s)`` images."""
    if cfg.name == "mlp":
        if len(shape) != 1:
            raise ValueError(f"model.name 'mlp' needs vector data; data shape is {shape}")
        return MLP(shape[0], cfg.width, cfg.depth, cfg.embed_dim)
    if len(shape) != 3:
        raise ValueError(f"model.name 'unet' needs image data (c, h, w); data shape is {shape}")
    return UNet(shape[0], shape[1], cfg.channels, cfg.channel_mult, cfg.num_res_blocks,
                cfg.attn_resolutions, cfg.groups)


def build_model(cfg: Config) -> ScoreModel:
    """``ScoreModel(net, sde, parameterization)`` from a config (seeded by ``train.seed``)."""
    torch.manual_seed(cfg.train.seed)
    net = build_net(cfg.model, data_shape(cfg.data))
    return ScoreModel(net, build_sde(cfg.sde), cfg.model.parameterization, cfg.model.sigma_data)


def load_data(cfg: DataConfig) -> Dataset:
    return load_dataset(cfg.name, root=data_root(cfg), n_train=cfg.n_train, n_test=cfg.n_test,
                        seed=cfg.seed)


def build_trainer(cfg: Config, run_dir: Path, device: str, data: Dataset,
                  progress: bool = True) -> Trainer:
    """A :class:`Trainer` for ``cfg`` writing to ``run_dir``, with a held-out-loss hook."""
    model = build_model(cfg)
    sde = model.sde
    loss = make_loss(cfg.loss.kind, sde, weighting_name=cfg.loss.weighting,
                     importance=cfg.loss.importance, eps=cfg.loss.eps, n_steps=cfg.loss.n_steps,
                     time_dist=cfg.loss.time_dist, p_mean=cfg.loss.p_mean, p_std=cfg.loss.p_std,
                     sigma_data=cfg.model.sigma_data)
    t = cfg.train
    hooks = [Hook(t.eval_every, _test_loss_hook(loss, data))] if t.eval_every > 0 else []
    loader = distributed.make_loader(data.train, t.batch_size, seed=t.seed)
    return distributed.trainer_class()(
        model, loss, loader, run_dir=run_dir, lr=t.lr, warmup=t.warmup, lr_schedule=t.lr_schedule,
        lr_decay_steps=t.lr_decay_steps, lr_min_ratio=t.lr_min_ratio, grad_clip=t.grad_clip,
        ema_decay=t.ema_decay, accumulate=t.accumulate, autocast=t.autocast, device=device,
        seed=t.seed, log_every=t.log_every, ckpt_every=t.ckpt_every, hooks=hooks,
        fingerprint=run_fingerprint(cfg, data.shape), progress=progress)


def run_fingerprint(cfg: Config, shape: tuple[int, ...]) -> dict:
    """The config's fingerprint and the shape of one sample (``data.root`` may name another set)."""
    return {**cfg.fingerprint(), "data_shape": list(shape)}


def _test_loss_hook(loss, data: Dataset) -> Callable[[Trainer], dict]:
    """The EMA model's loss on (up to 2,000) held-out points with fixed noise."""

    def hook(trainer: Trainer) -> dict:
        x0 = data.test[:2000].to(trainer.device)
        gen = torch.Generator(trainer.device).manual_seed(0)
        with torch.no_grad():
            return {"test_loss": float(loss(trainer.ema, x0, gen))}

    return hook


def load_trained(run_dir: Path, cfg: Config, device: str, ema: bool = True) -> ScoreModel:
    """The trained score model of ``run_dir`` (EMA weights by default), in eval mode."""
    state = read_checkpoint(run_dir / "checkpoint.pt")
    trained, shape = state["fingerprint"].get("data_shape"), list(data_shape(cfg.data))
    if trained is not None and trained != shape:
        raise ValueError(f"{run_dir / 'checkpoint.pt'} was trained on images of shape {tuple(trained)}; "
                         f"data.name / data.root now give {tuple(shape)}")
    differing = fingerprint_diff(state["fingerprint"], cfg.fingerprint())
    if differing:
        raise ValueError(f"{run_dir / 'checkpoint.pt'} was not trained with this configuration; differing "
                         f"entries: {differing}")
    model = build_model(cfg)
    model.load_state_dict(state["ema" if ema else "model"])
    return model.to(device).eval().requires_grad_(False)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (default: the run's config.yaml, else toy2d_vp)")
    parser.add_argument("--run-dir", help="run directory (default: runs/<config name>)")
    parser.add_argument("--device", default=default_device(), help="torch device, e.g. cpu, cuda:0")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.lr=1e-3 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    distributed.add_arguments(parser)


def resolve(args: argparse.Namespace) -> tuple[Config, Path]:
    """The config (``--config``, else the run's ``config.yaml``, else the default) and run dir."""
    run_dir = Path(args.run_dir) if args.run_dir else None
    path = args.config
    if path is None and run_dir is not None and (run_dir / "config.yaml").exists():
        path = run_dir / "config.yaml"
    cfg = load_config(path, args.set)
    return cfg, run_dir or Path("runs") / cfg.name


def positive(args: argparse.Namespace, name: str, default: int) -> int:
    """``--<name>`` if given (it must be >= 1: 0 or a negative count is an error, not the config's
    value), else ``default``."""
    value = getattr(args, name)
    if value is None:
        return default
    if value < 1:
        raise ValueError(f"--{name} must be >= 1; got {value}")
    return value


def _write_json(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def _train_args(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--fresh", action="store_true",
                        help="refuse to resume: fail if the run directory has a checkpoint")


def run_train(args: argparse.Namespace) -> int:
    cfg, run_dir = resolve(args)
    if args.fresh and (run_dir / "checkpoint.pt").exists():
        raise ValueError(f"--fresh given but {run_dir / 'checkpoint.pt'} exists")
    trainer = build_trainer(cfg, run_dir, args.device, load_data(cfg.data), not args.no_progress)
    if trainer.maybe_resume() and distributed.is_main():
        print(f"resumed {run_dir} at step {trainer.step}")
    if trainer.step >= cfg.train.steps:
        if distributed.is_main():
            print(f"{run_dir} is at step {trainer.step} >= train.steps = {cfg.train.steps}: nothing to train")
        return 0
    if distributed.is_main():
        save_config(cfg, run_dir / "config.yaml")
    trainer.fit(cfg.train.steps)
    if distributed.is_main():
        print(f"trained {run_dir} to step {trainer.step}; checkpoint {trainer.checkpoint_path}")
    return 0


def _sample_args(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--sampler", help="sampler name (default: sample.sampler)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: sample.steps)")
    parser.add_argument("--n", type=int, help="number of samples (default: sample.n)")
    parser.add_argument("--out", help="output PNG (default: <run-dir>/samples/<sampler>_<steps>.png)")


def run_sample(args: argparse.Namespace) -> int:
    cfg, run_dir = resolve(args)
    s = cfg.sample
    sampler, n = args.sampler or s.sampler, positive(args, "n", s.n)
    own_steps = sampler in ("ode", "fast") and args.steps is None  # adaptive, or fast's tuned count
    steps = None if own_steps else positive(args, "steps", s.steps)
    model = load_trained(run_dir, cfg, args.device, s.ema)
    x, nfe = distributed.sharded_sample(
        model, model.sde, (n, *data_shape(cfg.data)), seed=s.seed, batch_size=s.batch_size,
        device=args.device, sampler=sampler, steps=steps,
        progress=not args.no_progress and distributed.is_main())
    if not distributed.is_main():
        return 0
    blocks = math.ceil(n / s.batch_size)
    out = Path(args.out) if args.out else run_dir / "samples" / f"{sampler}_{steps or 'auto'}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(x, out.with_suffix(".pt"))
    _plot(x, cfg, out, f"{cfg.name}: {sampler}, {steps or 'auto'} steps, NFE/batch {nfe // blocks}")
    _write_json(out.with_suffix(".json"), {"sampler": sampler, "steps": steps, "n": n, "nfe": nfe})
    print(f"{n} samples -> {out} (NFE {nfe})")
    return 0


def _plot(x: torch.Tensor, cfg: Config, out: Path, title: str) -> None:
    """A scatter plot for 2-D samples, an image grid for images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from einops import rearrange

    fig, ax = plt.subplots(figsize=(6, 6))
    if x.ndim == 2:
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2, alpha=0.5)
        ax.set_aspect("equal")
    else:
        side = math.isqrt(min(len(x), 100))
        grid = rearrange(x[: side * side], "(r c) ch h w -> (r h) (c w) ch", r=side)
        grid = ((grid + 1) / 2).clamp(0, 1)  # the model's [-1, 1] back to the data's [0, 1]
        if grid.shape[-1] == 1:
            ax.imshow(grid[..., 0].numpy(), cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(grid.numpy())
        ax.axis("off")
    ax.set_title(title)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _likelihood_args(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--n", type=int, help="held-out samples (default: likelihood.n)")
    parser.add_argument("--trace", choices=("hutchinson", "exact"), help="divergence estimator")


def run_likelihood(args: argparse.Namespace) -> int:
    cfg, run_dir = resolve(args)
    lk = cfg.likelihood
    n, trace = positive(args, "n", lk.n), args.trace or lk.trace
    model = load_trained(run_dir, cfg, args.device, lk.ema)
    data = load_data(cfg.data)
    ode_kw = {"trace": trace, "method": lk.method, "rtol": lk.rtol, "atol": lk.atol, "eps": lk.eps}
    blocks = {"seed": lk.seed, "batch_size": lk.batch_size}
    if data.num_levels is None:
        logp, _ = distributed.sharded_log_likelihood(
            model, model.sde, data.test[:n].to(args.device), **blocks, **ode_kw)
        record = {"unit": "nats", "mean": -logp.mean().item(),
                  "sem": logp.std().item() / math.sqrt(len(logp))}
    else:
        res = distributed.sharded_bits_per_dim(
            model, model.sde, data.test_levels[:n].to(args.device), num_levels=data.num_levels,
            **blocks, **ode_kw)
        record = {"unit": "bits/dim", "mean": res.mean, "sem": res.stderr}
    if not distributed.is_main():
        return 0
    record.update(n=min(n, len(data.test)), **ode_kw)
    _write_json(run_dir / "likelihood.json", record)
    print(f"{cfg.name}: {record['mean']:.4f} ± {record['sem']:.4f} {record['unit']} (n = {record['n']})")
    return 0


register("train", Command("train a score model (resumes from the run's checkpoint)",
                          _train_args, run_train))
register("sample", Command("draw samples from a trained model with any sampler",
                           _sample_args, run_sample))
register("likelihood", Command("held-out NLL (nats) or bits/dim through the probability-flow ODE",
                               _likelihood_args, run_likelihood))


def lazy_command(help: str, module: str) -> Command:
    """A subcommand whose ``add_arguments(parser)`` and ``main(args)`` live in ``module``, imported
    only when it is used (``compare`` and ``evaluate`` import this module back)."""

    def configure(parser: argparse.ArgumentParser) -> None:
        importlib.import_module(module).add_arguments(parser)

    def run(args: argparse.Namespace) -> int | None:
        return importlib.import_module(module).main(args)

    return Command(help, configure, run)


register("compare", lazy_command("the main job: train small models, compare every sampler on every "
                                 "SDE (NFE, time, sliced W2) and the PF-ODE NLL; table and figures",
                                 "scoresde.compare"))
register("evaluate", lazy_command("judge a trained image model's samples: Fréchet / kernel distance "
                                  "on classifier features, confident share, class histogram, data floor",
                                  "scoresde.evaluate"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scoresde", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.configure(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scoresde`` console script."""
    args = build_parser().parse_args(argv)
    try:
        with distributed.session(args):
            return COMMANDS[args.command].run(args) or 0
    except (ValueError, FileNotFoundError) as err:
        print(f"scoresde {args.command}: error: {err}", file=sys.stderr)
        return 2
    except TrainingStopped as stop:
        print(f"scoresde {args.command}: {stop}; run it again to resume", file=sys.stderr)
        return 130

"""The command-line arguments that several ``scoresde`` subcommands share, and how they resolve
to a config and a run directory (used by :mod:`scoresde.cli`, :mod:`scoresde.evaluate` and
:mod:`scoresde.compare`, so that none of them imports another)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from scoresde import distributed
from scoresde.build import data_shape, default_device, load_config, load_trained_classifier
from scoresde.conditional import classifier_free_guidance, classifier_guidance
from scoresde.config import Config, SampleConfig
from scoresde.samplers import GRIDS
from scoresde.samplers.budget import default_steps
from scoresde.shapes import batch_labels


def add_common(parser: argparse.ArgumentParser) -> None:
    """``--config --run-dir --device --set --no-progress`` and the distributed flags."""
    parser.add_argument("--config", help="YAML config (default: the run's config.yaml, else toy2d_vp)")
    parser.add_argument("--run-dir", help="run directory (default: runs/<config name>)")
    parser.add_argument("--device", default=default_device(), help="torch device, e.g. cpu, cuda:0")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.lr=1e-3 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    distributed.add_arguments(parser)


def checked_device(name: str) -> str:
    """``--device`` if torch can use it here: a bad name, or a CUDA device without CUDA (a CPU
    build of torch, or no GPU), is a ``ValueError`` that says so instead of a traceback later."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r} is not a torch device ({err})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no visible GPU"
            raise ValueError(f"--device {name}: CUDA is not available here (torch {torch.__version__}, "
                             f"{build}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return name


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


def sampler_steps(args: argparse.Namespace, cfg: SampleConfig) -> tuple[str, int | None]:
    """``--sampler`` and ``--steps`` over the config's ``sample`` section (``None`` steps: the
    sampler chooses, see :data:`scoresde.samplers.budget.OWN_STEPS`)."""
    sampler = args.sampler or cfg.sampler
    steps = None if args.steps is None else positive(args, "steps", cfg.steps)
    return sampler, default_steps(sampler, steps, cfg.steps)


def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """``--grid`` and ``--eps`` (``sample`` and ``evaluate``): the time grid and where it ends."""
    parser.add_argument("--grid", choices=tuple(GRIDS),
                        help="time grid (default: sample.grid, else the sampler's own)")
    parser.add_argument("--eps", type=float,
                        help="end time of the grid (default: sample.eps, else the SDE's sampling_eps)")


def grid_options(args: argparse.Namespace, cfg: SampleConfig) -> dict:
    """The ``grid`` and ``eps`` keywords of :func:`scoresde.sample` that ``--grid`` / ``--eps`` or
    the config's ``sample.grid`` / ``sample.eps`` set (``""`` / ``0``: the sampler's defaults)."""
    grid = args.grid or cfg.grid
    eps = cfg.eps if args.eps is None else args.eps
    if args.eps is not None and not 0 < eps < 1:
        raise ValueError(f"--eps must be in (0, 1); got {eps!r}")
    return {**({"grid": grid} if grid else {}), **({"eps": eps} if eps else {})}


def sampler_name(sampler: str, steps: int | None, grid: dict) -> str:
    """The file stem of a sampler's outputs: ``dpm++2m_20``, with ``_<grid>`` and ``_eps<eps>``
    when :func:`grid_options` set them (``unipc_7_karras_eps0.1``)."""
    name = f"{sampler}_{steps or 'auto'}"
    if "grid" in grid:
        name += f"_{grid['grid']}"
    if "eps" in grid:
        name += f"_eps{grid['eps']:g}"
    return name


GUIDANCE = 0.0
"""``--class``'s default guidance scale: the conditional model alone. On the 1,125-step
class-conditional MNIST run it put 92.4 % of 500 samples in the requested class at FD 7.8 (floor
3.4); w = 2 reached 100 % but FD 22 (``benchmarks/results/mnist_guided_w0.json``, ``_w2.json``)."""


CLASSIFIER_GUIDANCE = 1.0
"""``--classifier``'s default guidance scale: ``s(x) + ∇ log p_t(y | x)``, the exact conditional
score ``∇ log p_t(x | y)`` when the score and the classifier are exact (Bayes' rule)."""


def add_class_arguments(parser: argparse.ArgumentParser) -> None:
    """``--class K|all``, ``--guidance W`` and ``--classifier RUN`` (``sample`` and ``evaluate``)."""
    parser.add_argument("--class", dest="klass", metavar="K",
                        help="class-conditional model (or --classifier): sample class K, or 'all' "
                             "(sample i gets class i mod num_classes: one column per class in a "
                             "10-wide grid)")
    parser.add_argument("--guidance", type=float, metavar="W",
                        help=f"classifier-free guidance scale w of (1 + w) s(x|y) - w s(x|null) "
                             f"(default {GUIDANCE}; 0 is the conditional model alone); with "
                             f"--classifier the scale w of s(x) + w grad log p_t(y|x) (default "
                             f"{CLASSIFIER_GUIDANCE})")
    parser.add_argument("--classifier", type=Path, metavar="RUN",
                        help="classifier guidance: the run directory of a scoresde "
                             "train-classifier run on the same data and SDE")


def guidance_scale(scale: float | None, classifier: torch.nn.Module | None = None) -> float:
    """``--guidance`` if given, else :data:`CLASSIFIER_GUIDANCE` with a ``classifier``, else
    :data:`GUIDANCE`."""
    if scale is not None:
        return scale
    return GUIDANCE if classifier is None else CLASSIFIER_GUIDANCE


def guiding_classifier(args: argparse.Namespace, cfg: Config) -> torch.nn.Module | None:
    """The EMA classifier of ``--classifier RUN`` (``None`` without it); ``ValueError`` naming
    ``--classifier`` if it was trained on images of another shape or with another SDE than
    ``cfg``'s score model."""
    if args.classifier is None:
        return None
    if not (args.classifier / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"--classifier {args.classifier}: no checkpoint.pt there (train one "
                                f"with scoresde train-classifier --run-dir {args.classifier})")
    try:
        classifier, trained = load_trained_classifier(args.classifier, args.device)
    except ValueError as err:
        raise ValueError(f"--classifier {args.classifier}: {err}") from None
    ours, theirs = tuple(data_shape(cfg.data)), tuple(data_shape(trained.data))
    if ours != theirs:
        raise ValueError(f"--classifier {args.classifier} was trained on images of shape {theirs}; "
                         f"the score model's are {ours}")
    if trained.sde != cfg.sde:
        raise ValueError(f"--classifier {args.classifier} was trained on x_t of another SDE "
                         f"({trained.sde}); the score model's is {cfg.sde}")
    return classifier


def checkpoint_run_dir(args: argparse.Namespace) -> None:
    """``--checkpoint RUN`` as ``--run-dir RUN``; both given and different is a ``ValueError``."""
    if args.checkpoint:
        if args.run_dir and Path(args.run_dir) != Path(args.checkpoint):
            raise ValueError("give the run directory once: --checkpoint or --run-dir")
        args.run_dir = args.checkpoint


def class_score(model, klass: str | None, scale: float | None, classifier=None):
    """The score ``sample`` and ``evaluate`` draw from: the model's own, or, with ``--class``,
    classifier-free guidance toward that class (:func:`scoresde.classifier_free_guidance`), or
    with ``--classifier`` too, classifier guidance by that classifier's logits
    (:func:`scoresde.classifier_guidance`)."""
    if klass is None:
        for given, option in ((scale, "--guidance"), (classifier, "--classifier")):
            if given is not None:
                raise ValueError(f"{option} needs --class")
        return model
    k = guided_classes(model, classifier)
    w = guidance_scale(scale, classifier)
    if classifier is None:
        def guide(labels):
            return classifier_free_guidance(model, labels, w)
    else:
        def guide(labels):
            return classifier_guidance(model, classifier, labels, w)
    if klass == "all":
        def every_class(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return guide(torch.arange(x.shape[0], device=x.device) % k)(x, t)

        guide(0)  # checks the scale now, not at the first step
        return every_class
    if not klass.lstrip("-").isdigit():
        raise ValueError(f"--class must be a class index in [0, {k}) or 'all'; got {klass!r}")
    batch_labels(int(klass), 1, k, name="--class")
    return guide(int(klass))


def guided_classes(model, classifier=None) -> int:
    """The number of classes ``--class`` may name: the classifier's, else the class-conditional
    model's; ``ValueError`` for an unconditional model without a classifier."""
    if classifier is not None:
        return classifier.num_classes
    if not model.num_classes:
        raise ValueError("--class needs a class-conditional model (model.num_classes > 0) or "
                         "--classifier RUN; this run's model is unconditional")
    return model.num_classes


def requested_classes(klass: str, n: int, batch_size: int, k: int) -> torch.Tensor:
    """The class each of ``n`` samples drawn in blocks of ``batch_size`` was guided toward by
    ``class_score(model, klass, ...)``: ``klass`` itself, or ``i mod k`` within each block."""
    if klass != "all":
        return torch.full((n,), int(klass))
    return torch.cat([torch.arange(min(batch_size, n - lo)) % k for lo in range(0, n, batch_size)])

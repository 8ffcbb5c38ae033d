"""Assembly: a run configuration turned into its data, SDE, network, loss and trainer.

This is the one place that knows which name in a config stands for which class (the registries
below); the command line, ``compare``, the examples, the benchmarks and the tests all build
through it. It also loads a trained run directory back as a score model, and does the same for
the noise-conditional classifier of ``scoresde train-classifier`` (the config's ``classifier``
section, trained by the same :class:`Trainer` on :func:`scoresde.losses.classifier_loss`).

Two functions read a config: :func:`load_config` checks every key, type *and* named choice
(``sde.name``, ``sample.sampler``, ...) against the registries of the modules that implement
them; :func:`scoresde.config.load_config` checks keys and types only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from scoresde import config, distributed
from scoresde.config import Config, DataConfig, ModelConfig, SDEConfig
from scoresde.data import DATASETS, Dataset, TensorLoader, image_shape, load_dataset
from scoresde.likelihood import ADAPTIVE_METHODS, NORMS, TRACES
from scoresde.losses import LOSS_KINDS, TIME_DISTS, WEIGHTINGS, ClassifierLoss, Loss, make_loss
from scoresde.networks import MLP, NoiseClassifier, UNet
from scoresde.samplers import GRIDS, SAMPLERS
from scoresde.score import PARAMETERIZATIONS, ScoreModel
from scoresde.sde import SDE, VESDE, VPSDE, SubVPSDE
from scoresde.training import AUTOCAST, LR_SCHEDULES, Hook, Trainer, fingerprint_diff, read_checkpoint

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
"""The original MNIST files that ship beside the checkout (``data.name: mnist`` without a root)."""

SDES: dict[str, Callable[[SDEConfig], SDE]] = {
    "vp": lambda c: VPSDE(c.beta_min, c.beta_max),
    "subvp": lambda c: SubVPSDE(c.beta_min, c.beta_max),
    "ve": lambda c: VESDE(c.sigma_min, c.sigma_max),
}
NETWORKS = ("mlp", "unet")

CHOICES = {
    "sde.name": tuple(SDES),
    "data.name": DATASETS,
    "model.name": NETWORKS,
    "model.parameterization": PARAMETERIZATIONS,
    "loss.kind": LOSS_KINDS,
    "loss.weighting": WEIGHTINGS,
    "loss.time_dist": TIME_DISTS,
    "train.lr_schedule": LR_SCHEDULES,
    "train.autocast": AUTOCAST,
    "sample.sampler": (*SAMPLERS, "fast"),
    "sample.grid": ("", *GRIDS),
    "likelihood.trace": TRACES,
    "likelihood.method": ADAPTIVE_METHODS,  # the command line cannot give a fixed-step method its step size
    "likelihood.norm": NORMS,
}
"""The names each config key accepts, taken from the modules that implement them."""


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """:func:`scoresde.config.load_config` with every named choice checked against :data:`CHOICES`."""
    return config.load_config(path, overrides, choices=CHOICES)


def build_sde(cfg: SDEConfig) -> SDE:
    """The SDE named by ``sde.name`` (``vp``, ``subvp``, ``ve``) with its parameters."""
    if cfg.name not in SDES:
        raise ValueError(f"sde.name must be one of {tuple(SDES)}; got {cfg.name!r}")
    return SDES[cfg.name](cfg)


def data_root(cfg: DataConfig) -> Path | None:
    """``data.root``, else the MNIST files beside the checkout for ``mnist``, else ``None``."""
    return Path(cfg.root) if cfg.root else (DEFAULT_MNIST if cfg.name == "mnist" else None)


def data_shape(cfg: DataConfig) -> tuple[int, ...]:
    """Shape of one sample: ``(2,)`` for the toys, ``(c, h, w)`` for images (read from the files)."""
    return image_shape(cfg.name, data_root(cfg))


def load_data(cfg: DataConfig) -> Dataset:
    """The train / test data that ``cfg`` names."""
    return load_dataset(cfg.name, root=data_root(cfg), n_train=cfg.n_train, n_test=cfg.n_test,
                        seed=cfg.seed)


def build_net(cfg: ModelConfig, shape: tuple[int, ...]) -> nn.Module:
    """An :class:`MLP` for vectors or a :class:`UNet` for ``(c, s, s)`` images."""
    if cfg.name == "mlp":
        if cfg.num_classes:
            raise ValueError("model.num_classes needs model.name 'unet': the MLP takes no labels")
        if len(shape) != 1:
            raise ValueError(f"model.name 'mlp' needs vector data; data shape is {shape}")
        return MLP(shape[0], cfg.width, cfg.depth, cfg.embed_dim)
    if len(shape) != 3:
        raise ValueError(f"model.name 'unet' needs image data (c, h, w); data shape is {shape}")
    return UNet(shape[0], shape[1], cfg.channels, cfg.channel_mult, cfg.num_res_blocks,
                cfg.attn_resolutions, cfg.groups, cfg.num_classes)


def build_model(cfg: Config) -> ScoreModel:
    """``ScoreModel(net, sde, parameterization)`` from a config (seeded by ``train.seed``)."""
    torch.manual_seed(cfg.train.seed)
    net = build_net(cfg.model, data_shape(cfg.data))
    return ScoreModel(net, build_sde(cfg.sde), cfg.model.parameterization, cfg.model.sigma_data)


def build_loss(cfg: Config, sde: SDE) -> Loss:
    """The training loss of ``cfg.loss`` for ``sde`` (``sigma_data`` from ``cfg.model``)."""
    c = cfg.loss
    return make_loss(c.kind, sde, weighting_name=c.weighting, importance=c.importance, eps=c.eps,
                     n_steps=c.n_steps, time_dist=c.time_dist, p_mean=c.p_mean, p_std=c.p_std,
                     sigma_data=cfg.model.sigma_data)


def build_trainer(cfg: Config, run_dir: Path, device: str, data: Dataset,
                  progress: bool = True) -> Trainer:
    """A :class:`Trainer` for ``cfg`` writing to ``run_dir``, with a held-out-loss hook."""
    model = build_model(cfg)
    loss = build_loss(cfg, model.sde)
    t = cfg.train
    hooks = [Hook(t.eval_every, test_loss_hook(loss, data))] if t.eval_every > 0 else []
    loader = TensorLoader(data.train, t.batch_size, seed=t.seed, labels=training_labels(cfg, data))
    return Trainer(
        model, loss, loader, parallel=distributed.strategy(), run_dir=run_dir, lr=t.lr,
        warmup=t.warmup, lr_schedule=t.lr_schedule,
        lr_decay_steps=t.lr_decay_steps, lr_min_ratio=t.lr_min_ratio, grad_clip=t.grad_clip,
        ema_decay=t.ema_decay, accumulate=t.accumulate, autocast=t.autocast,
        label_dropout=t.label_dropout, device=device,
        seed=t.seed, log_every=t.log_every, ckpt_every=t.ckpt_every, hooks=hooks,
        fingerprint=run_fingerprint(cfg, data.shape), progress=progress)


def training_labels(cfg: Config, data: Dataset) -> torch.Tensor | None:
    """The training labels of a class-conditional model (``model.num_classes > 0``), else ``None``;
    ``ValueError`` if the data has no labels or more classes than the model."""
    k = cfg.model.num_classes
    if not k:
        if cfg.train.label_dropout:
            raise ValueError("train.label_dropout needs a class-conditional model (model.num_classes > 0)")
        return None
    if data.train_labels is None:
        raise ValueError(f"model.num_classes = {k} needs labelled data; data.name "
                         f"{cfg.data.name!r} has no labels")
    labels = torch.as_tensor(data.train_labels).long()
    if int(labels.max()) >= k:
        raise ValueError(f"model.num_classes = {k}, but the data has labels up to {int(labels.max())}")
    return labels


def run_fingerprint(cfg: Config, shape: tuple[int, ...]) -> dict:
    """The config's fingerprint and the shape of one sample (``data.root`` may name another set)."""
    return {**cfg.fingerprint(), "data_shape": list(shape)}


def test_loss_hook(loss: Loss, data: Dataset) -> Callable[[Trainer], dict]:
    """The EMA model's loss on (up to 2,000) held-out points with fixed noise."""

    def hook(trainer: Trainer) -> dict:
        x0 = data.test[:2000].to(trainer.device)
        gen = torch.Generator(trainer.device).manual_seed(0)
        with torch.no_grad():
            return {"test_loss": float(loss(trainer.ema, x0, gen))}

    return hook


def load_trained(run_dir: Path, cfg: Config, device: str, ema: bool = True) -> ScoreModel:
    """The trained score model of ``run_dir`` (EMA weights by default), in eval mode; refuses a
    checkpoint trained with another configuration or on images of another shape."""
    path = Path(run_dir) / "checkpoint.pt"
    state = read_checkpoint(path)
    trained, shape = state["fingerprint"].get("data_shape"), list(data_shape(cfg.data))
    if trained is not None and trained != shape:
        raise ValueError(f"{path} was trained on images of shape {tuple(trained)}; "
                         f"data.name / data.root now give {tuple(shape)}")
    differing = fingerprint_diff(state["fingerprint"], cfg.fingerprint())
    if differing:
        raise ValueError(f"{path} was not trained with this configuration; differing entries: {differing}")
    model = build_model(cfg)
    model.load_state_dict(state["ema" if ema else "model"])
    return model.to(device).eval().requires_grad_(False)


def build_classifier(cfg: Config) -> NoiseClassifier:
    """The :class:`NoiseClassifier` of ``cfg.classifier`` for ``cfg.data``'s images (seeded by
    ``train.seed``); ``ValueError`` for vector data."""
    shape = data_shape(cfg.data)
    if len(shape) != 3:
        raise ValueError(f"a classifier needs image data (c, h, w); data.name {cfg.data.name!r} "
                         f"has shape {shape}")
    c = cfg.classifier
    torch.manual_seed(cfg.train.seed)
    return NoiseClassifier(shape[0], shape[1], c.channels, c.channel_mult, c.num_res_blocks,
                           c.attn_resolutions, c.groups, c.num_classes)


def classifier_labels(cfg: Config, data: Dataset) -> torch.Tensor:
    """The training labels of a classifier run; ``ValueError`` if the data has none or more classes
    than ``classifier.num_classes``, or if ``train.label_dropout`` is set (a classifier needs every
    label)."""
    if cfg.train.label_dropout:
        raise ValueError("train.label_dropout must be 0 for a classifier (it needs every label)")
    k = cfg.classifier.num_classes
    if data.train_labels is None:
        raise ValueError(f"a classifier needs labelled data; data.name {cfg.data.name!r} has no labels")
    labels = torch.as_tensor(data.train_labels).long()
    if int(labels.max()) >= k:
        raise ValueError(f"classifier.num_classes = {k}, but the data has labels up to {int(labels.max())}")
    return labels


def build_classifier_trainer(cfg: Config, run_dir: Path, device: str, data: Dataset,
                             progress: bool = True) -> Trainer:
    """A :class:`Trainer` of ``cfg``'s classifier on :func:`scoresde.losses.classifier_loss` (t in
    ``[loss.eps, T]`` of ``cfg.sde``), with ``cfg.train``'s optimiser, EMA and checkpoints and a
    held-out-loss hook."""
    net = build_classifier(cfg)
    loss = ClassifierLoss(build_sde(cfg.sde), cfg.loss.eps)
    t = cfg.train
    labels = classifier_labels(cfg, data)
    hooks = [Hook(t.eval_every, classifier_test_hook(loss, data))] if t.eval_every > 0 else []
    return Trainer(
        net, loss, TensorLoader(data.train, t.batch_size, seed=t.seed, labels=labels),
        parallel=distributed.strategy(), run_dir=run_dir, lr=t.lr, warmup=t.warmup,
        lr_schedule=t.lr_schedule, lr_decay_steps=t.lr_decay_steps, lr_min_ratio=t.lr_min_ratio,
        grad_clip=t.grad_clip, ema_decay=t.ema_decay, accumulate=t.accumulate,
        autocast=t.autocast, device=device, seed=t.seed, log_every=t.log_every,
        ckpt_every=t.ckpt_every, hooks=hooks, progress=progress,
        fingerprint={**cfg.classifier_fingerprint(), "data_shape": list(data.shape)})


def classifier_test_hook(loss: ClassifierLoss, data: Dataset) -> Callable[[Trainer], dict]:
    """The EMA classifier's cross-entropy on (up to 2,000) held-out images with fixed noise."""

    def hook(trainer: Trainer) -> dict:
        x0 = data.test[:2000].to(trainer.device)
        y = data.test_labels[:2000].to(trainer.device)
        gen = torch.Generator(trainer.device).manual_seed(0)
        with torch.no_grad():
            return {"test_loss": float(loss(functools.partial(trainer.ema, y=y), x0, gen))}

    return hook


def load_trained_classifier(run_dir: Path, device: str, ema: bool = True) -> tuple[NoiseClassifier, Config]:
    """The trained classifier of ``run_dir`` (EMA weights by default), in eval mode, and the run's
    config (its ``config.yaml``); refuses a checkpoint that is not this config's classifier."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir / 'config.yaml'} not found: is {run_dir} a "
                                f"scoresde train-classifier run directory?")
    cfg = load_config(run_dir / "config.yaml")
    path = run_dir / "checkpoint.pt"
    state = read_checkpoint(path)
    expected = {**cfg.classifier_fingerprint(), "data_shape": list(data_shape(cfg.data))}
    differing = fingerprint_diff(state["fingerprint"], expected)
    if differing:
        raise ValueError(f"{path} is not the classifier of {run_dir / 'config.yaml'}; differing "
                         f"entries: {differing}")
    net = build_classifier(cfg)
    net.load_state_dict(state["ema" if ema else "model"])
    return net.to(device).eval().requires_grad_(False), cfg


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"

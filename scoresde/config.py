"""Run configurations: YAML files loaded into typed dataclasses, with ``key=value`` overrides.

A file holds up to eight sections (``sde``, ``data``, ``model``, ``loss``, ``train``, ``sample``,
``likelihood``, and ``classifier`` for ``scoresde train-classifier``) plus a ``name``; anything it
leaves out keeps its default. An unknown key or a value of the wrong type raises ``ValueError``
naming the key and the file. This module knows the schema only: which names a key accepts
(``sde.name: vp``) is passed in, by :func:`scoresde.build.load_config`, from the modules that
implement them.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

Choices = Mapping[str, tuple]
"""The names a key accepts, e.g. ``{"sde.name": ("vp", "subvp", "ve")}``."""


@dataclass(frozen=True)
class Interval:
    """The values a number key accepts: ``lo < v`` (``lo <= v`` if ``lo_closed``), likewise ``hi``."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_closed: bool = True
    hi_closed: bool = False

    def __contains__(self, value: float) -> bool:
        above = value >= self.lo if self.lo_closed else value > self.lo
        below = value <= self.hi if self.hi_closed else value < self.hi
        return above and below

    def __str__(self) -> str:
        if self.hi == math.inf:
            return f"{'>=' if self.lo_closed else '>'} {self.lo:g}"
        return f"in {'[' if self.lo_closed else '('}{self.lo:g}, {self.hi:g}{']' if self.hi_closed else ')'}"


COUNT, SIZE, POSITIVE = Interval(0), Interval(1), Interval(0, lo_closed=False)
UNIT = Interval(0, 1, lo_closed=False)  # (0, 1): a time eps, a decay rate
BOUNDS = {
    **dict.fromkeys(("sde.beta_min", "sde.beta_max", "sde.sigma_min", "sde.sigma_max",
                     "model.sigma_data", "loss.p_std", "train.lr", "likelihood.rtol",
                     "likelihood.atol"), POSITIVE),
    **dict.fromkeys(("data.n_train", "data.n_test", "model.width", "model.depth", "model.embed_dim",
                     "model.channels", "model.num_res_blocks", "model.groups", "loss.n_steps",
                     "train.batch_size", "train.accumulate", "train.log_every", "train.ckpt_every",
                     "sample.steps", "sample.n", "sample.batch_size", "likelihood.n",
                     "likelihood.batch_size", "classifier.channels", "classifier.num_res_blocks",
                     "classifier.groups"), SIZE),
    **dict.fromkeys(("train.steps", "train.warmup", "train.lr_decay_steps", "train.grad_clip",
                     "train.eval_every", "model.num_classes"), COUNT),
    "loss.eps": UNIT, "likelihood.eps": UNIT, "sample.eps": Interval(0, 1),
    "train.ema_decay": Interval(0, 1),
    "train.lr_min_ratio": Interval(0, 1, hi_closed=True),
    "train.label_dropout": Interval(0, 1),
    "classifier.num_classes": Interval(2),
}
"""The range of every number key (0 turns ``grad_clip`` and ``eval_every`` off; the cosine
schedule needs ``lr_decay_steps >= 1``, which the trainer checks)."""


ADDED_LATER = {"model.num_classes": 0, "train.label_dropout": 0.0}
"""Keys added after checkpoints were first written, and the value that keeps the behaviour of
before: at that value they are left out of the fingerprint, so those checkpoints still load."""


@dataclass
class SDEConfig:
    name: str = "vp"
    beta_min: float = 0.1
    beta_max: float = 20.0
    sigma_min: float = 0.01
    sigma_max: float = 50.0


@dataclass
class DataConfig:
    name: str = "mixture"
    root: str = ""
    n_train: int = 20_000
    n_test: int = 2_000
    seed: int = 0


@dataclass
class ModelConfig:
    name: str = "mlp"
    parameterization: str = "eps"
    width: int = 128
    depth: int = 3
    embed_dim: int = 64
    channels: int = 32
    channel_mult: list[int] = field(default_factory=lambda: [1, 2])
    num_res_blocks: int = 1
    attn_resolutions: list[int] = field(default_factory=lambda: [4])
    groups: int = 8
    sigma_data: float = 0.5
    num_classes: int = 0


@dataclass
class LossConfig:
    kind: str = "dsm"
    weighting: str = "sigma2"
    importance: bool = False
    eps: float = 1e-5
    n_steps: int = 1000
    time_dist: str = "uniform"
    p_mean: float = -1.2
    p_std: float = 1.2


@dataclass
class TrainConfig:
    steps: int = 4000
    batch_size: int = 256
    lr: float = 2e-3
    warmup: int = 100
    lr_schedule: str = "constant"
    lr_decay_steps: int = 0
    lr_min_ratio: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    accumulate: int = 1
    autocast: str = "none"
    label_dropout: float = 0.0
    seed: int = 0
    log_every: int = 100
    ckpt_every: int = 1000
    eval_every: int = 0


@dataclass
class SampleConfig:
    sampler: str = "reverse_diffusion"
    steps: int = 500
    grid: str = ""
    eps: float = 0.0
    n: int = 2000
    batch_size: int = 2000
    seed: int = 1
    ema: bool = True


@dataclass
class LikelihoodConfig:
    trace: str = "exact"
    method: str = "dopri5"
    rtol: float = 1e-5
    atol: float = 1e-5
    norm: str = "mixed"
    eps: float = 1e-5
    n: int = 1000
    batch_size: int = 1000
    seed: int = 2
    ema: bool = True


@dataclass
class ClassifierConfig:
    """The noise-conditional classifier of ``scoresde train-classifier``
    (:class:`scoresde.networks.NoiseClassifier`: the U-Net's downsampling half, pooled to logits)."""

    channels: int = 32
    channel_mult: list[int] = field(default_factory=lambda: [1, 2])
    num_res_blocks: int = 1
    attn_resolutions: list[int] = field(default_factory=list)
    groups: int = 8
    num_classes: int = 10


@dataclass
class Config:
    name: str = "toy2d_vp"
    sde: SDEConfig = field(default_factory=SDEConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    likelihood: LikelihoodConfig = field(default_factory=LikelihoodConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> dict:
        """Everything that decides the trained parameters (not the step budget, the outputs, nor
        where the data files are read from: ``data.root``)."""
        d = self.to_dict()
        for key in ("steps", "log_every", "ckpt_every", "eval_every"):
            d["train"].pop(key)
        d["data"].pop("root")
        for key, off in ADDED_LATER.items():
            section, name = key.split(".")
            if d[section][name] == off:
                d[section].pop(name)
        return {k: d[k] for k in ("sde", "data", "model", "loss", "train")}

    def classifier_fingerprint(self) -> dict:
        """Everything that decides a noise-conditional classifier's trained parameters: as
        :meth:`fingerprint`, with the ``classifier`` section in place of ``model`` and of the
        loss only ``loss.eps`` (the classifier's loss has no other option)."""
        d = self.fingerprint()
        del d["model"]
        d["loss"] = {"eps": self.loss.eps}
        return {**d, "classifier": asdict(self.classifier)}


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                choices: Choices | None = None) -> Config:
    """Read ``path`` (or the embedded default, toy2d_vp, if ``None``) and apply ``key=value`` overrides.

    An override's value is parsed as YAML (``train.lr=1e-3``, ``model.channel_mult=[1,2,2]``).
    ``choices`` lists the names a key accepts (:data:`scoresde.build.CHOICES`, which
    :func:`scoresde.build.load_config` passes); without it only keys and types are checked.
    """
    source = "<default>" if path is None else str(path)
    raw = {} if path is None else _read_yaml(Path(path))
    cfg = from_dict(raw, source, choices)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must have the form key=value")
        set_value(cfg, key.strip(), yaml.safe_load(value), "--set", choices)
    return cfg


def from_dict(raw: dict, source: str = "<dict>", choices: Choices | None = None) -> Config:
    """Build a :class:`Config` from nested dicts, checking every key and type against ``source``."""
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: the top level must be a mapping of sections")
    cfg = Config()
    for key, value in raw.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                set_value(cfg, f"{key}.{sub}", subvalue, source, choices)
        else:
            set_value(cfg, key, value, source, choices)
    return cfg


def set_value(cfg: Config, key: str, value, source: str, choices: Choices | None = None) -> None:
    """Set dotted ``key`` (``"train.lr"``) on ``cfg`` after checking it exists, its type and, if
    ``choices`` names the key, that the value is one of them."""
    target, parts = cfg, key.split(".")
    for depth, part in enumerate(parts):
        names = {f.name: f for f in dataclasses.fields(target)}
        if part not in names:
            where = ".".join(parts[:depth]) or "top level"
            raise ValueError(
                f"{source}: unknown key {key!r} (valid keys at {where}: {sorted(names)})"
            )
        if depth == len(parts) - 1:
            hint = typing.get_type_hints(type(target))[part]
            if dataclasses.is_dataclass(hint):
                raise ValueError(f"{source}: key {key!r} is a section; set its keys instead")
            value = _coerce(value, hint, key, source)
            if key in BOUNDS and value not in BOUNDS[key]:
                raise ValueError(f"{source}: key {key!r} must be {BOUNDS[key]}; got {value!r}")
            allowed = (choices or {}).get(key)
            if allowed is not None and value not in allowed:
                raise ValueError(f"{source}: key {key!r} must be one of {allowed}; got {value!r}")
            setattr(target, part, value)
        else:
            target = getattr(target, part)
            if not dataclasses.is_dataclass(target):
                raise ValueError(f"{source}: key {key!r}: {part!r} is not a section")


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as YAML (a file :func:`load_config` reads back to an equal config)."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def _coerce(value, hint, key: str, source: str):
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        (item,) = set(typing.get_args(hint))
        if not isinstance(value, list):
            raise ValueError(f"{source}: key {key!r} must be a list of {item.__name__}; got {value!r}")
        return [_coerce(v, item, key, source) for v in value]
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"config field {key!r} has an unsupported type {hint}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ValueError(
            f"{source}: key {key!r} must be of type {hint.__name__}; got {value!r} "
            f"({type(value).__name__})"
        )
    return value


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    with open(path) as f:
        raw = yaml.safe_load(f)
    return raw or {}

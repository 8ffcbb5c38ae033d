"""The models ``scoresde compare`` judges: one config per SDE, trained from scratch."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from torch import Tensor

from scoresde.build import build_trainer
from scoresde.compare.plan import CompareOptions
from scoresde.config import Config, save_config
from scoresde.data import Dataset
from scoresde.score import ScoreModel
from scoresde.shapes import flatten_batch


def sde_config(base: Config, name: str, data: Dataset) -> Config:
    """``base`` with ``sde.name = name``; switching to VE sets ``σ_max`` to the data's diameter."""
    cfg = copy.deepcopy(base)
    if name == "ve" and base.sde.name != "ve":
        cfg.sde.sigma_max = diameter(data.train)
    cfg.sde.name, cfg.name = name, f"{base.name}_{name}"
    return cfg


def diameter(x: Tensor, n: int = 2000) -> float:
    """The largest pairwise distance among the first ``n`` points, rounded up (σ_max for VE)."""
    sub = flatten_batch(x[:n]).double()
    return float(math.ceil(torch.cdist(sub, sub).max()))


def train(cfg: Config, data: Dataset, run_dir: Path, steps: int, opts: CompareOptions) -> ScoreModel:
    """Train ``cfg``'s model for ``steps`` steps from scratch in ``run_dir`` (a run directory
    ``scoresde sample`` can use) and return its EMA, frozen: warm-up capped at a tenth of the
    steps, a cosine schedule decaying over exactly ``steps``."""
    cfg.train.steps, cfg.train.seed = steps, opts.seed
    cfg.train.warmup = min(cfg.train.warmup, steps // 10)
    if cfg.train.lr_schedule == "cosine":
        cfg.train.lr_decay_steps = max(1, steps)
    cfg.train.ckpt_every = cfg.train.log_every = max(1, steps)
    for stale in ("checkpoint.pt", "metrics.jsonl"):
        (run_dir / stale).unlink(missing_ok=True)
    trainer = build_trainer(cfg, run_dir, opts.device, data, progress=opts.progress)
    save_config(cfg, run_dir / "config.yaml")
    trainer.fit(steps)
    return trainer.ema.eval().requires_grad_(False)

"""The training loop: Adam with warm-up, gradient clipping, EMA, accumulation, optional bf16.

One step draws ``accumulate`` mini-batches, back-propagates ``loss / accumulate`` for each,
sets the learning rate ``lr_k = lr · min(1, (k + 1) / warmup) · decay_k`` (``decay_k = 1`` for the
``"constant"`` schedule; ``(1 + cos(π min(k, K) / K)) / 2`` for ``"cosine"`` over ``K =
lr_decay_steps``, down to ``lr_min_ratio`` of ``lr``), clips the global gradient norm,
takes an Adam step and updates the exponential moving average ``θ_ema <- d_k θ_ema + (1 - d_k) θ``
with the warmed-up decay ``d_k = min(d, (1 + k) / (10 + k))`` (so short runs do not keep the
initial weights in the average).

Checkpoints hold the model, the EMA, the optimizer, the step and every random state (torch's
global CPU/CUDA states, the loss's noise generator, the data loader's generator and position),
and are written atomically (temporary file + ``os.replace``), so resuming continues exactly
where the run stopped. Metrics go to ``metrics.jsonl`` in the run directory.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from scoresde.data import TensorLoader

LossFn = Callable[[nn.Module, Tensor, torch.Generator], Tensor]
CHECKPOINT_FORMAT = "scoresde-checkpoint-v1"
CHECKPOINT_KEYS = ("format", "fingerprint", "step", "model", "ema", "optimizer", "loader", "rng")
AUTOCAST = ("none", "bf16")
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class Hook:
    """Call ``fn(trainer) -> dict`` every ``every`` steps; the dict is logged to the metrics."""

    every: int
    fn: Callable[[Trainer], dict]


class TrainingStopped(KeyboardInterrupt):
    """``Trainer.fit`` stopped by a signal at a step boundary, after writing a checkpoint."""


class Trainer:
    """Train ``model`` (a score function ``model(x, t)``) by minimising ``loss_fn(model, x0, gen)``.

    Args:
        model: the module to train, e.g. a :class:`scoresde.ScoreModel`.
        loss_fn: ``(model, x0, generator) -> scalar``, e.g. a :class:`scoresde.losses.Loss`.
        loader: the source of mini-batches ``x0``.
        run_dir: directory for ``checkpoint.pt`` and ``metrics.jsonl``.
        fingerprint: a JSON-able description of the run (its config); a checkpoint written
            under a different fingerprint is refused on load.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        loader: TensorLoader,
        *,
        run_dir: str | Path,
        lr: float = 2e-4,
        warmup: int = 0,
        lr_schedule: str = "constant",
        lr_decay_steps: int = 0,
        lr_min_ratio: float = 0.0,
        grad_clip: float = 1.0,
        ema_decay: float = 0.999,
        accumulate: int = 1,
        autocast: str = "none",
        device: torch.device | str = "cpu",
        seed: int = 0,
        log_every: int = 100,
        ckpt_every: int = 1000,
        hooks: Sequence[Hook] = (),
        fingerprint: dict | None = None,
        progress: bool = True,
    ):
        if autocast not in AUTOCAST:
            raise ValueError(f"autocast must be one of {AUTOCAST}; got {autocast!r}")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}; got {lr_schedule!r}")
        if lr_schedule == "cosine" and lr_decay_steps < 1:
            raise ValueError(f"lr_decay_steps must be >= 1 with lr_schedule 'cosine'; got {lr_decay_steps}")
        if not 0 <= lr_min_ratio <= 1:
            raise ValueError(f"lr_min_ratio must lie in [0, 1]; got {lr_min_ratio}")
        for name, value in (("accumulate", accumulate), ("log_every", log_every),
                            ("ckpt_every", ckpt_every)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1; got {value}")
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1); got {ema_decay}")
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.loss_fn, self.loader = loss_fn, loader
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.lr, self.warmup, self.grad_clip = lr, warmup, grad_clip
        self.lr_schedule, self.lr_decay_steps, self.lr_min_ratio = lr_schedule, lr_decay_steps, lr_min_ratio
        self.ema_decay, self.accumulate, self.autocast = ema_decay, accumulate, autocast
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.log_every, self.ckpt_every, self.hooks = log_every, ckpt_every, list(hooks)
        self.fingerprint = fingerprint or {}
        self.progress = progress
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.step = 0
        pairs = [(p, e) for p, e in zip(self.model.parameters(), self.ema.parameters(), strict=True)
                 if p.requires_grad]
        self._params, self._ema_params = [p for p, _ in pairs], [e for _, e in pairs]

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def lr_at(self, step: int) -> float:
        """``lr · min(1, (step + 1) / warmup) · decay(step)`` (see the module docstring)."""
        lr = self.lr * min(1.0, (step + 1) / self.warmup) if self.warmup > 0 else self.lr
        if self.lr_schedule == "cosine":
            frac = min(step, self.lr_decay_steps) / self.lr_decay_steps
            lr *= self.lr_min_ratio + (1 - self.lr_min_ratio) * (1 + math.cos(math.pi * frac)) / 2
        return lr

    def train_step(self) -> tuple[Tensor, Tensor]:
        """One optimiser step; returns the (detached) loss and the pre-clipping gradient norm."""
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for i in range(self.accumulate):
            x0 = self.loader.next().to(self.device, non_blocking=True)
            total += self._backward(x0, last=i == self.accumulate - 1)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        norm = nn.utils.clip_grad_norm_(
            self._params, self.grad_clip if self.grad_clip > 0 else float("inf"), foreach=True
        )
        self.optimizer.step()
        self._update_ema()
        self.step += 1
        return total, norm

    def fit(self, steps: int) -> None:
        """Train until ``self.step == steps``, logging, evaluating and checkpointing on the way.

        Ctrl-C (``SIGINT``) or ``SIGTERM`` (what schedulers and ``kill`` send) while ``fit`` runs in
        the main thread lets the current step finish, writes a checkpoint from which the run
        resumes exactly, then raises :class:`TrainingStopped` (a ``KeyboardInterrupt``); a second
        signal raises ``KeyboardInterrupt`` at once and keeps the last checkpoint written. A
        ``KeyboardInterrupt`` raised between steps (e.g. by a hook) also writes one.
        """
        self._signal, self._mid_step = None, False
        with self._signals_stop_at_step_end(), tqdm(
                total=steps, initial=self.step, disable=not self.progress, mininterval=1.0,
                desc="train") as bar:
            try:
                self._loop(steps, bar)
            except TrainingStopped:
                raise
            except KeyboardInterrupt:
                if not self._mid_step:
                    self.save()
                raise
        self.save()

    def _loop(self, steps: int, bar: tqdm) -> None:
        loss_sum, norm_sum, count, tic = 0.0, 0.0, 0, time.perf_counter()
        while self.step < steps:
            self._mid_step = True
            loss, norm = self.train_step()
            self._mid_step = False
            loss_sum, norm_sum, count = loss_sum + loss, norm_sum + norm, count + 1
            bar.update(1)
            if self.step % self.log_every == 0 or self.step == steps:
                rate = count / (time.perf_counter() - tic)
                record = {"kind": "train", "step": self.step, "loss": float(loss_sum / count),
                          "grad_norm": float(norm_sum / count), "lr": self.lr_at(self.step - 1),
                          "steps_per_s": rate}
                self.log(record)
                bar.set_postfix(loss=f"{record['loss']:.4g}")
                loss_sum, norm_sum, count, tic = 0.0, 0.0, 0, time.perf_counter()
            for hook in self.hooks:
                if self.step % hook.every == 0:
                    self.log({"kind": "eval", "step": self.step, **hook.fn(self)})
            if self.step % self.ckpt_every == 0:
                self.save()
            if self._stop_requested():
                self.save()
                raise TrainingStopped(f"{self._signal or 'a signal'} received: stopped after step "
                                      f"{self.step}, checkpoint written to {self.checkpoint_path}")

    def _stop_requested(self) -> bool:
        """Whether a stop signal arrived (the distributed trainer asks every rank)."""
        return self._signal is not None

    @contextlib.contextmanager
    def _signals_stop_at_step_end(self):
        """Within the block the first ``SIGINT``/``SIGTERM`` only records itself (the loop stops
        after the step); the second raises ``KeyboardInterrupt``. Main thread only (elsewhere
        Python cannot install handlers); the previous handlers are restored on exit."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            name = signal.Signals(signum).name
            if self._signal is not None:
                raise KeyboardInterrupt(f"second signal ({name}): stopped mid-step; the last "
                                        f"checkpoint written stays")
            self._signal = name
            print(f"\n{name}: finishing step {self.step + 1}, then writing a checkpoint "
                  f"(send it again to stop at once)", file=sys.stderr, flush=True)

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def log(self, record: dict) -> None:
        """Append one JSON record to ``metrics.jsonl``."""
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def state_dict(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "noise": self.generator.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": CHECKPOINT_FORMAT, "fingerprint": self.fingerprint, "step": self.step,
            "model": self.model.state_dict(), "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(), "loader": self.loader.state_dict(),
            "rng": rng,
        }

    def save(self, path: str | Path | None = None) -> Path:
        """Write the checkpoint atomically: a temporary file in the same directory, then rename."""
        path = Path(path) if path is not None else self.checkpoint_path
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(self.state_dict(), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path

    def load(self, path: str | Path | None = None) -> None:
        """Restore a checkpoint; every check runs before anything is copied into the trainer."""
        path = Path(path) if path is not None else self.checkpoint_path
        state = read_checkpoint(path)
        differing = fingerprint_diff(state["fingerprint"], self.fingerprint)
        if differing:
            raise ValueError(
                f"checkpoint {path} was written by another configuration; differing entries: {differing}"
            )
        _check_state(state["model"], self.model, f"{path}: model")
        _check_state(state["ema"], self.ema, f"{path}: ema")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.loader.load_state_dict(state["loader"])
        self.step = int(state["step"])
        self._restore_rng(state["rng"])
        self._truncate_metrics()

    def maybe_resume(self) -> bool:
        """Load ``checkpoint.pt`` from the run directory if there is one."""
        if not self.checkpoint_path.exists():
            return False
        self.load()
        return True

    def ema_decay_at(self, step: int) -> float:
        """``d_k = min(d, (1 + k) / (10 + k))``."""
        return min(self.ema_decay, (1 + step) / (10 + step))

    def _backward(self, x0: Tensor, last: bool) -> Tensor:
        """Back-propagate one micro-batch's share of the loss (``last``: the step's final one)."""
        with self._autocast():
            loss = self.loss_fn(self.model, x0, self.generator) / self.accumulate
        loss.backward()
        return loss.detach()

    def _restore_rng(self, rng: dict) -> None:
        """Restore torch's global (CPU, CUDA) random states and the loss's noise generator."""
        torch.set_rng_state(rng["torch"])
        self.generator.set_state(rng["noise"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def _update_ema(self) -> None:
        with torch.no_grad():
            torch._foreach_lerp_(self._ema_params, self._params, 1 - self.ema_decay_at(self.step))

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _truncate_metrics(self) -> None:
        """Drop records logged after the checkpoint's step (they will be logged again)."""
        if not self.metrics_path.exists():
            return
        lines = self.metrics_path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if json.loads(line)["step"] <= self.step]
        tmp = self.metrics_path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, self.metrics_path)


def read_checkpoint(path: str | Path) -> dict:
    """Load and validate a checkpoint file; ``ValueError`` if truncated, corrupt or foreign."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise ValueError(f"checkpoint {path} is truncated or corrupt: {err}") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks keys {missing}")
    return state


def _check_state(saved: dict, module: nn.Module, what: str) -> None:
    expected = module.state_dict()
    if saved.keys() != expected.keys():
        raise ValueError(
            f"{what} parameters differ: missing {sorted(expected.keys() - saved.keys())}, "
            f"unexpected {sorted(saved.keys() - expected.keys())}"
        )
    bad = [k for k in expected if saved[k].shape != expected[k].shape]
    if bad:
        raise ValueError(f"{what} parameter shapes differ for {bad}")


def fingerprint_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The entries of the current fingerprint ``b`` where the checkpoint's ``a`` differs, as
    ``"key: a (checkpoint) != b (now)"``. Entries only in ``a`` are ones the configuration no
    longer fingerprints (e.g. ``data.root``, dropped later) and are ignored."""
    out = []
    for key in sorted(b):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += fingerprint_diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} (checkpoint) != {vb!r} (now)")
    return out

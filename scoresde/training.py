"""The training loop: Adam with warm-up, gradient clipping, EMA, accumulation, optional bf16.

One step draws ``accumulate`` mini-batches, back-propagates ``loss / accumulate`` for each,
sets the learning rate ``lr_k`` (:mod:`scoresde.lr_schedule`: warm-up, then constant or cosine
decay), clips the global gradient norm, takes an Adam step and updates the exponential moving
average ``θ_ema <- d_k θ_ema + (1 - d_k) θ`` (:mod:`scoresde.ema`, decay warmed up as
``d_k = min(d, (1 + k) / (10 + k))``).

The loop's parts live beside it: checkpoint files in :mod:`scoresde.checkpoint` (model, EMA,
optimizer, step and every random state, written atomically with a checksum, so resuming
continues exactly where the run stopped), ``metrics.jsonl`` in :mod:`scoresde.runlog`, the
run directory's lock in :mod:`scoresde.runlock`, stopping on a signal in
:mod:`scoresde.stopping`, and whatever changes across processes in the hooks of a
:class:`~scoresde.parallel.Parallel` strategy.

A non-finite loss or gradient norm (checked where a ``"train"`` record brings them to the host)
or non-finite weights (checked before every checkpoint write, by one fused max-norm) stop
training with :class:`NonFiniteError`; the checkpoint on disk is then the last finite one.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from scoresde.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_KEYS,
    check_compatible,
    fingerprint_diff,
    read_checkpoint,
    write_checkpoint,
)
from scoresde.data import TensorLoader
from scoresde.ema import EMA, check_decay
from scoresde.lr_schedule import LR_SCHEDULES, LRSchedule
from scoresde.parallel import Parallel
from scoresde.runlock import RunDirLocked, RunLock
from scoresde.runlog import MetricsLog, Window
from scoresde.stopping import StoppedAtOnce, StopSignals, TrainingStopped

__all__ = ["AUTOCAST", "CHECKPOINT_FORMAT", "CHECKPOINT_KEYS", "LR_SCHEDULES", "Hook", "LossFn",
           "NonFiniteError", "RunDirLocked", "StoppedAtOnce", "Trainer", "TrainingStopped",
           "all_finite", "fingerprint_diff", "read_checkpoint"]

LossFn = Callable[[nn.Module, Tensor, torch.Generator], Tensor]
AUTOCAST = ("none", "bf16")


class NonFiniteError(FloatingPointError):
    """Training produced a non-finite loss, gradient norm or weight; nothing non-finite was saved."""


def all_finite(tensors: Sequence[Tensor]) -> bool:
    """Whether every entry is finite: ``max_i ||p_i||_∞ < ∞``, one fused reduction (a NaN
    propagates through the max, an infinity is the max)."""
    if not tensors:
        return True
    return bool(torch.stack(torch._foreach_norm(list(tensors), math.inf)).isfinite().all())


@dataclass
class Hook:
    """Call ``fn(trainer) -> dict`` every ``every`` steps; the dict is logged to the metrics."""

    every: int
    fn: Callable[[Trainer], dict]


def check_options(autocast: str, ema_decay: float, **counts: int) -> None:
    """``ValueError`` naming the first bad option: ``autocast`` not in :data:`AUTOCAST`, a count
    below 1, ``ema_decay`` outside ``[0, 1)``."""
    if autocast not in AUTOCAST:
        raise ValueError(f"autocast must be one of {AUTOCAST}; got {autocast!r}")
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1; got {value}")
    check_decay(ema_decay)


class Trainer:
    """Train ``model`` (a score function ``model(x, t)``) by minimising ``loss_fn(model, x0, gen)``.

    Args:
        model: the module to train, e.g. a :class:`scoresde.ScoreModel`.
        loss_fn: ``(model, x0, generator) -> scalar``, e.g. a :class:`scoresde.losses.Loss`.
        loader: the source of (global) mini-batches ``x0``, or ``(x0, y)`` with class labels
            for a class-conditional model (``model(x, t, y)``, ``model.num_classes = K``).
        label_dropout: the probability that a label is replaced by the null label ``K`` (so the
            one network also learns the unconditional score, for classifier-free guidance).
        run_dir: directory for ``checkpoint.pt`` and ``metrics.jsonl``.
        fingerprint: a JSON-able description of the run (its config); a checkpoint written
            under a different fingerprint is refused on load.
        parallel: how the run spreads over processes (default: one process);
            ``scoresde.distributed.strategy()`` picks the one the environment asks for.

    The run directory is locked (:attr:`lock`, ``train.lock``, :mod:`scoresde.runlock`) while
    :meth:`fit`, :meth:`load` or :meth:`save` runs, by the main process only; ``with
    trainer.lock:`` holds it across several calls (``scoresde train`` holds it from the resume
    to the end). Taking it removes the temporary files a killed write left.
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
        label_dropout: float = 0.0,
        device: torch.device | str = "cpu",
        seed: int = 0,
        log_every: int = 100,
        ckpt_every: int = 1000,
        hooks: Sequence[Hook] = (),
        fingerprint: dict | None = None,
        progress: bool = True,
        parallel: Parallel | None = None,
    ):
        check_options(autocast, ema_decay, accumulate=accumulate, log_every=log_every,
                      ckpt_every=ckpt_every)
        if not 0 <= label_dropout < 1:
            raise ValueError(f"label_dropout must lie in [0, 1); got {label_dropout}")
        self.schedule = LRSchedule(lr, warmup, lr_schedule, lr_decay_steps, lr_min_ratio)
        self.parallel = parallel or Parallel()
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(self.parallel.seed(seed))
        self.model = model.to(self.device)
        self.net = self.parallel.wrap_model(self.model)
        self.averager = EMA(self.model, ema_decay)
        self.ema = self.averager.module
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        self.loss_fn, self.loader = loss_fn, self.parallel.shard_loader(loader)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.grad_clip, self.accumulate, self.autocast = grad_clip, accumulate, autocast
        self.label_dropout = label_dropout
        self.log_every, self.ckpt_every, self.hooks = log_every, ckpt_every, list(hooks)
        self.fingerprint, self.progress = fingerprint or {}, progress and self.parallel.is_main
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(self.metrics_path, enabled=self.parallel.is_main)
        self.lock = RunLock(self.run_dir, enabled=self.parallel.is_main,
                            leftovers=(f"{name}*.tmp" for name in (self.checkpoint_path.name,
                                                                    self.metrics_path.name)))
        self.step = 0
        self._saved_step: int | None = None
        self._mid_step, self._signals = False, StopSignals(self._stop_plan)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def lr_at(self, step: int) -> float:
        """``lr · min(1, (step + 1) / warmup) · decay(step)`` (:mod:`scoresde.lr_schedule`)."""
        return self.schedule(step)

    def ema_decay_at(self, step: int) -> float:
        """``d_k = min(d, (1 + k) / (10 + k))``."""
        return self.averager.decay_at(step)

    # -- one step ---------------------------------------------------------------------------

    def train_step(self) -> tuple[Tensor, Tensor]:
        """One optimiser step; returns the (detached) loss and the pre-clipping gradient norm."""
        with self.parallel.collective(f"training step {self.step + 1}"):
            self.optimizer.zero_grad(set_to_none=True)
            total = torch.zeros((), device=self.device)
            for i in range(self.accumulate):
                total += self._backward(self.loader.next(), last=i == self.accumulate - 1)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(self.step)
            norm = nn.utils.clip_grad_norm_(
                self._params, self.grad_clip if self.grad_clip > 0 else float("inf"),
                foreach=True)
            self.optimizer.step()
            self.averager.update(self.step)
            self.step += 1
        return total, norm

    def _backward(self, batch: Tensor | tuple[Tensor, Tensor], last: bool) -> Tensor:
        """Back-propagate one micro-batch's share of the loss (``last``: the step's final one)."""
        x0, score_fn = self._score_of(batch)
        with self.parallel.micro_batch(last):
            with self._autocast():
                loss = self.loss_fn(score_fn, x0, self.generator) / self.accumulate
            loss.backward()
        return loss.detach()

    def _score_of(self, batch: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Callable]:
        """``(x0, score_fn)`` of a batch: the network itself, or for ``(x0, y)`` the network given
        ``y`` with each label replaced by the null label with probability ``label_dropout``."""
        if not isinstance(batch, tuple):
            return batch.to(self.device, non_blocking=True), self.net
        x0, y = (v.to(self.device, non_blocking=True) for v in batch)
        if self.label_dropout > 0:
            drop = torch.rand(y.shape, generator=self.generator, device=self.device) < self.label_dropout
            y = y.masked_fill(drop, self.model.num_classes)
        return x0, functools.partial(self.net, y=y)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- the loop ---------------------------------------------------------------------------

    def fit(self, steps: int) -> None:
        """Train until ``self.step == steps``, logging, evaluating and checkpointing on the way.

        Ctrl-C (``SIGINT``) or ``SIGTERM`` (what schedulers and ``kill`` send) while ``fit`` runs in
        the main thread lets the current step finish, writes a checkpoint from which the run
        resumes exactly, then raises :class:`TrainingStopped` (a ``KeyboardInterrupt``); a second
        signal raises :class:`StoppedAtOnce` at once, naming the step of the checkpoint kept,
        unless it arrives while a checkpoint is written: that write completes first. A
        ``KeyboardInterrupt`` raised between steps (e.g. by a hook) also writes one, without
        communicating (the ranks of a distributed run may then be at different points).

        ``metrics.jsonl`` records beyond the current step (a run whose checkpoint was deleted, or
        lost in a crash before the first one) are moved aside with a warning, not mixed in.
        Raises :class:`NonFiniteError` on a non-finite loss or weight, keeping the last good
        checkpoint, and :class:`~scoresde.runlock.RunDirLocked` if another process trains here.
        """
        self._mid_step = False
        with self.lock, self._signals, tqdm(total=steps, initial=self.step, mininterval=1.0,
                                            disable=not self.progress, desc="train") as bar:
            self._claim_metrics()
            try:
                self._loop(steps, bar)
            except TrainingStopped:
                raise
            except KeyboardInterrupt as err:
                if not self._mid_step:
                    self.save(alone=True)
                if isinstance(err, StoppedAtOnce):
                    where = f"in step {self.step + 1}" if self._mid_step else f"after step {self.step}"
                    raise StoppedAtOnce(f"{err} {where}; {self._kept()}") from None
                raise
            self.save()

    def _claim_metrics(self) -> None:
        """Make ``metrics.jsonl`` end at :attr:`step`: move a file with later records aside, drop
        a torn last line."""
        moved = self.metrics.claim(self.step)
        if moved is not None:
            why = (f"{self.checkpoint_path} was not loaded (maybe_resume() continues it)"
                   if self.checkpoint_path.exists() else f"there is no {self.checkpoint_path}")
            warnings.warn(f"{self.metrics_path} has records up to step {moved[0]} but training "
                          f"starts at step {self.step}, since {why}: moved it to {moved[1]}",
                          stacklevel=3)

    def _loop(self, steps: int, bar: tqdm) -> None:
        window = Window()
        while self.step < steps:
            self._mid_step = True
            loss, norm = self.train_step()
            self._mid_step = False
            window.add(loss, norm)
            bar.update(1)
            if self.step % self.log_every == 0 or self.step == steps:
                self._log_train(window, bar)
            self._after_step()

    def _log_train(self, window: Window, bar: tqdm) -> None:
        """Log the ``"train"`` record of the steps since the last one (the only host sync);
        :class:`NonFiniteError` if its loss or gradient norm is not finite."""
        count = window.count
        means, rate = window.summary()
        record = self.parallel.reduce_metrics({"kind": "train", "step": self.step, **means,
                                               "lr": self.lr_at(self.step - 1), "steps_per_s": rate})
        if not (math.isfinite(record["loss"]) and math.isfinite(record["grad_norm"])):
            mean = f", the mean over steps {self.step - count + 1}-{self.step}" if count > 1 else ""
            raise NonFiniteError(
                f"non-finite training loss {record['loss']} (gradient norm {record['grad_norm']}) "
                f"at step {self.step}{mean}: stopped; {self._kept()}; a lower learning rate may help")
        self.log(record)
        bar.set_postfix(loss=f"{record['loss']:.4g}")

    def _after_step(self) -> None:
        """Run the due hooks and checkpoint; stop (:class:`TrainingStopped`) if a rank was signalled."""
        for hook in self.hooks:
            if self.step % hook.every == 0:
                self.log({"kind": "eval", "step": self.step, **hook.fn(self)})
        if self.step % self.ckpt_every == 0:
            self.save()
        if self.parallel.any_rank(self._signals.received is not None):
            self.save()
            raise TrainingStopped(f"{self._signals.received or 'a signal'} received: stopped after "
                                  f"step {self.step}, checkpoint written to {self.checkpoint_path}")

    def _stop_plan(self) -> str:
        if self._mid_step:
            return f"finishing step {self.step + 1}, then writing a checkpoint"
        return f"writing a checkpoint at step {self.step}"

    def _kept(self) -> str:
        """Which checkpoint this run leaves in the run directory."""
        if self._saved_step is None:
            return "no checkpoint was written by this run"
        return f"{self.checkpoint_path} is at step {self._saved_step}"

    def log(self, record: dict) -> None:
        """Append one JSON record to ``metrics.jsonl`` (on the main process)."""
        self.metrics.append(record)

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self, *, alone: bool = False) -> dict:
        """The checkpoint's contents (:mod:`scoresde.checkpoint`); gathering the random states
        communicates across ranks unless ``alone``."""
        return {
            "format": CHECKPOINT_FORMAT, "fingerprint": self.fingerprint, "step": self.step,
            "model": self.model.state_dict(), "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(), "loader": self.loader.state_dict(),
            "rng": self.parallel.rng_state(self.generator, alone),
        }

    def save(self, path: str | Path | None = None, *, alone: bool = False) -> Path:
        """Write the checkpoint atomically (on the main process; every rank waits for it unless
        ``alone``, which communicates nothing). A second stop signal does not interrupt it;
        non-finite weights are never written (:class:`NonFiniteError`)."""
        path = Path(path) if path is not None else self.checkpoint_path
        if not all_finite([*self._params, *self.ema.parameters()]):
            raise NonFiniteError(f"non-finite weights after step {self.step}: not writing {path}; "
                                 f"{self._kept()}; a lower learning rate may help")
        with self.lock, self._signals.deferred():
            state = self.state_dict(alone=alone)
            if self.parallel.is_main:
                write_checkpoint(state, path)
            if path == self.checkpoint_path:
                self._saved_step = self.step
            if not alone:
                self.parallel.barrier()
        return path

    def load(self, path: str | Path | None = None) -> None:
        """Restore a checkpoint; every check runs before anything is copied into the trainer."""
        path = Path(path) if path is not None else self.checkpoint_path
        with self.lock:
            state = read_checkpoint(path)
            check_compatible(state, path, self.fingerprint, {"model": self.model, "ema": self.ema})
            self.model.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.loader.load_state_dict(state["loader"])
            self.step = int(state["step"])
            self.parallel.restore_rng(self.generator, state["rng"], self.step)
            self.metrics.truncate(self.step)
        if path == self.checkpoint_path:
            self._saved_step = self.step

    def maybe_resume(self) -> bool:
        """Load ``checkpoint.pt`` from the run directory if there is one."""
        if not self.checkpoint_path.exists():
            return False
        self.load()
        return True

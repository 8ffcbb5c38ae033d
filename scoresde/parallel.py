"""How a :class:`~scoresde.training.Trainer` runs across processes: the hooks it calls.

The trainer knows one process; everything that changes when several processes train one model
goes through the hooks of a :class:`Parallel` strategy, and nowhere else:

* placement: :meth:`~Parallel.seed` (this rank's noise seed), :meth:`~Parallel.wrap_model` (the
  module the loss is differentiated through), :meth:`~Parallel.shard_loader` (this rank's share
  of the batches);
* agreement: :meth:`~Parallel.micro_batch` (gradients synchronised after the step's last
  micro-batch only), :meth:`~Parallel.collective` (a failed collective named),
  :meth:`~Parallel.reduce_metrics`, :meth:`~Parallel.any_rank`, :meth:`~Parallel.barrier`;
* files: :attr:`~Parallel.is_main` (the process that writes and prints),
  :meth:`~Parallel.rng_state` / :meth:`~Parallel.restore_rng` (the random states a checkpoint
  keeps).

:class:`Parallel` itself is one process: every hook is the identity or does nothing.
``scoresde.distributed.DataParallel`` implements them on ``torch.distributed``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from scoresde import checkpoint
from scoresde.data import TensorLoader


class Parallel:
    """One process: rank 0 of 1, writes every file, communicates nothing."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes the checkpoint and the metrics and shows progress."""
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """The seed of this rank's loss noise, given the run's ``seed``."""
        return seed

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The module the loss calls and back-propagates through (``model`` already on its device)."""
        return model

    def shard_loader(self, loader: TensorLoader) -> TensorLoader:
        """This rank's share of the mini-batches ``loader`` draws."""
        return loader

    def micro_batch(self, last: bool) -> contextlib.AbstractContextManager:
        """The context of one micro-batch's forward and backward pass; ``last``: the step's final
        one, after which the gradients must agree across ranks."""
        return contextlib.nullcontext()

    def collective(self, what: str) -> contextlib.AbstractContextManager:
        """The context of a block that communicates; a failure in it names ``what``."""
        return contextlib.nullcontext()

    def reduce_metrics(self, record: dict) -> dict:
        """The ``"train"`` record as the run logs it, from this rank's ``record``."""
        return record

    def any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` holds on some rank (every rank gets the same answer)."""
        return flag

    def barrier(self) -> None:
        """Return when every rank has arrived here."""

    def rng_state(self, generator: torch.Generator, alone: bool) -> dict:
        """The random states a checkpoint keeps (``alone``: without communicating)."""
        return checkpoint.rng_state(generator)

    def restore_rng(self, generator: torch.Generator, rng: dict, step: int) -> None:
        """Restore this rank's random states from a checkpoint's ``rng`` written at ``step``."""
        checkpoint.restore_rng(generator, rng)

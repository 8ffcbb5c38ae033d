"""Distributed training and evaluation on ``torch.distributed`` (launched by ``torchrun``).

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init` joins that process group (``nccl`` on GPUs, ``gloo`` on CPU unless overridden), with
a timeout on every collective so that a dead rank fails the run instead of hanging it. Without
``torchrun`` (world size 1) nothing is initialised and every helper below runs as one process.

Training (:class:`DataParallel`, the :class:`~scoresde.parallel.Parallel` strategy a
:class:`~scoresde.training.Trainer` takes, and :class:`ShardedLoader`; :func:`strategy` picks
the strategy the environment asks for): ``batch_size`` is the *global*
batch; every rank draws the same shuffle and takes its own contiguous slice of each global batch,
so the ranks' slices never overlap within an epoch and together are exactly the batch a
one-process :class:`~scoresde.data.TensorLoader` would draw. DistributedDataParallel averages
the gradients, so every rank takes the same Adam step and updates its EMA identically. Rank 0
keeps the base seed (a one-process run is unchanged); rank ``r > 0`` seeds its loss noise with
:func:`rank_seed`. Only rank 0 writes the checkpoint and the metrics; the checkpoint holds every
rank's random states, so a resume on the same world size continues exactly.

Evaluation (:func:`sharded_sample`, :func:`sharded_log_likelihood`,
:func:`sharded_bits_per_dim`): the ``n`` samples are cut into blocks of ``batch_size``; block
``k`` is computed by rank ``k mod W`` with a generator seeded by ``derived_seed(seed, k)`` and
the blocks are gathered in order. A block's result does not depend on which rank computes it, so
the output is the same for every world size (it depends on ``seed`` and ``batch_size`` only).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
from collections.abc import Callable, Iterator
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from scoresde import checkpoint
from scoresde.data import TensorLoader
from scoresde.likelihood import BitsPerDim, bits_per_dim, log_likelihood
from scoresde.parallel import Parallel
from scoresde.samplers import sample
from scoresde.sde import SDE, ScoreFn
from scoresde.training import LossFn, Trainer

BACKENDS = ("auto", "nccl", "gloo")
DEFAULT_TIMEOUT = 600.0
"""Seconds a collective may wait for the other ranks before the run fails."""


class DistributedError(RuntimeError):
    """A collective failed: another rank died, or did not answer within the timeout."""


def launched() -> bool:
    """Whether ``torchrun`` (or an equivalent environment) asks for more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process is rank 0, the one that writes files and prints."""
    return rank() == 0


def resolve_backend(backend: str, device: torch.device) -> str:
    """``"auto"`` is ``nccl`` for CUDA devices and ``gloo`` otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    return backend


def local_device(device: str | torch.device) -> torch.device:
    """``device`` for this rank: a bare ``cuda`` becomes ``cuda:LOCAL_RANK`` (made current)."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def init(device: str | torch.device = "cpu", backend: str = "auto",
         timeout: float = DEFAULT_TIMEOUT) -> torch.device:
    """Join the process group described by the environment (if :func:`launched`).

    Returns this rank's device. ``timeout`` (seconds) bounds every collective.
    """
    if timeout <= 0:
        raise ValueError(f"timeout (--dist-timeout) must be positive; got {timeout}")
    dev = local_device(device)
    if launched() and not dist.is_initialized():
        dist.init_process_group(resolve_backend(backend, dev), init_method="env://",
                                timeout=timedelta(seconds=timeout))
    return dev


@contextlib.contextmanager
def session(args: argparse.Namespace) -> Iterator[None]:
    """Run a CLI command inside the process group (if launched); ``args.device`` is localised."""
    started = launched() and not dist.is_initialized()
    if hasattr(args, "device"):
        args.device = str(init(args.device, getattr(args, "backend", "auto"),
                               getattr(args, "dist_timeout", DEFAULT_TIMEOUT)))
    try:
        yield
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--backend`` and ``--dist-timeout`` options of the command line."""
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="torch.distributed backend under torchrun (auto: nccl on GPU, else gloo)")
    parser.add_argument("--dist-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="fail the run when a rank waits longer than this for the others")


def derived_seed(*keys: int) -> int:
    """A 63-bit seed hashed from non-negative integers (numpy's ``SeedSequence``)."""
    if any(not isinstance(k, int) or k < 0 for k in keys):
        raise ValueError(f"seed keys must be non-negative integers; got {keys}")
    return int(np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def rank_seed(seed: int, rank_: int) -> int:
    """Rank 0 keeps ``seed`` (so one process is unchanged); rank ``r > 0`` gets ``derived_seed(seed, r)``."""
    return seed if rank_ == 0 else derived_seed(seed, rank_)


@contextlib.contextmanager
def collective(what: str) -> Iterator[None]:
    """Turn a backend failure inside the block into a :class:`DistributedError` naming this rank."""
    try:
        yield
    except DistributedError:
        raise
    except RuntimeError as err:
        if world_size() == 1:
            raise
        raise DistributedError(
            f"rank {rank()} of {world_size()}: {what} failed; another rank died or did not "
            f"answer within the timeout (see its log): {err}"
        ) from err


def all_gather(obj: object) -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without a process group."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    with collective("all_gather_object"):
        dist.all_gather_object(out, obj)
    return out


class ShardedLoader(TensorLoader):
    """:class:`TensorLoader` of global batches of ``batch_size``; each rank gets its slice.

    All ranks hold the same shuffling generator, so they agree on each epoch's permutation and on
    each global batch; rank ``r`` takes rows ``[r b, (r + 1) b)`` of it, ``b = batch_size / W``.
    The state (generator, permutation, position) is the same on every rank and does not depend
    on the world size, so a checkpoint resumes on any number of ranks.
    """

    def __init__(self, data: Tensor, batch_size: int, seed: int = 0, *, labels: Tensor | None = None,
                 rank_: int | None = None, world: int | None = None):
        self.rank = rank() if rank_ is None else rank_
        self.world_size = world_size() if world is None else world
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must lie in [0, {self.world_size}); got {self.rank}")
        if batch_size % self.world_size:
            raise ValueError(f"batch_size ({batch_size}) must be a multiple of the world size "
                             f"({self.world_size}): it is the global batch, split over the ranks")
        super().__init__(data, batch_size, seed, labels)
        self.local_batch = batch_size // self.world_size

    @classmethod
    def of(cls, loader: TensorLoader, *, rank_: int | None = None,
           world: int | None = None) -> ShardedLoader:
        """This rank's slice of the global batches ``loader`` would draw, from its current state."""
        shard = cls(loader.data, loader.batch_size, labels=loader.labels, rank_=rank_, world=world)
        shard.load_state_dict(loader.state_dict())
        return shard

    def next(self) -> Tensor | tuple[Tensor, Tensor]:
        """This rank's ``batch_size / W`` rows of the next global batch (with their labels)."""
        if self.pos + self.batch_size > self.perm.shape[0]:
            self.perm = torch.randperm(self.data.shape[0], generator=self.generator)
            self.pos = 0
        start = self.pos + self.rank * self.local_batch
        self.pos += self.batch_size
        return self.rows(self.perm[start : start + self.local_batch])


class DataParallel(Parallel):
    """The :class:`~scoresde.parallel.Parallel` hooks on ``torch.distributed``.

    The model runs under DistributedDataParallel (rank 0's weights broadcast at the start, the
    gradients averaged after each step's last micro-batch), each rank draws its
    :class:`ShardedLoader` slice, rank ``r`` seeds its noise (and torch's global generators) with
    :func:`rank_seed`, only rank 0 writes, and the logged loss is the mean over ranks. A
    checkpoint holds every rank's random states; on resume with the same world size each rank
    restores its own, with another (or from a checkpoint written ``alone``) the noise is reseeded
    from ``derived_seed(seed, rank, step)``.
    """

    def __init__(self):
        self.rank, self.world_size = rank(), world_size()
        self.base_seed, self.device, self.ddp = 0, torch.device("cpu"), None

    def seed(self, seed: int) -> int:
        self.base_seed = seed
        own = rank_seed(seed, self.rank)
        torch.manual_seed(own)
        return own

    def wrap_model(self, model: nn.Module) -> nn.Module:
        self.device = next(model.parameters()).device
        ids = [self.device.index] if self.device.type == "cuda" else None
        with collective("DistributedDataParallel set-up"):
            self.ddp = DistributedDataParallel(model, device_ids=ids)
        return self.ddp

    def shard_loader(self, loader: TensorLoader) -> ShardedLoader:
        """``loader`` itself if it is this rank's :class:`ShardedLoader`, else its slice of a
        one-process :class:`~scoresde.data.TensorLoader`'s batches."""
        if not isinstance(loader, ShardedLoader):
            return ShardedLoader.of(loader, rank_=self.rank, world=self.world_size)
        require_shard(loader, self.rank, self.world_size)
        return loader

    def micro_batch(self, last: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext() if last else self.ddp.no_sync()

    def collective(self, what: str) -> contextlib.AbstractContextManager:
        return collective(what)

    def reduce_metrics(self, record: dict) -> dict:
        loss = torch.tensor(record["loss"], device=self.device)
        with collective("loss all-reduce"):
            dist.all_reduce(loss)
        return {**record, "loss": loss.item() / self.world_size, "world_size": self.world_size}

    def any_rank(self, flag: bool) -> bool:
        flag = torch.tensor(int(flag), device=self.device)
        with collective("stop-signal all-reduce"):
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag)

    def barrier(self) -> None:
        with collective("checkpoint barrier"):
            dist.barrier()

    def rng_state(self, generator: torch.Generator, alone: bool) -> dict:
        """Rank 0's states and, unless ``alone``, every rank's (``"ranks"``, in rank order)."""
        ranks = [] if alone else all_gather(
            {"torch": torch.get_rng_state(), "noise": generator.get_state()})
        return {**checkpoint.rng_state(generator), "ranks": ranks}

    def restore_rng(self, generator: torch.Generator, rng: dict, step: int) -> None:
        ranks = rng.get("ranks", [])
        if len(ranks) == self.world_size:
            checkpoint.restore_rng(generator, {**rng, **ranks[self.rank]})
            return
        seed = derived_seed(self.base_seed, self.rank, step)
        torch.manual_seed(seed)
        generator.manual_seed(seed)


def require_shard(loader: TensorLoader, rank_: int, world: int) -> None:
    """``ValueError`` unless ``loader`` is a :class:`ShardedLoader` for rank ``rank_`` of ``world``."""
    if not isinstance(loader, ShardedLoader) or (loader.rank, loader.world_size) != (rank_, world):
        raise ValueError(f"loader must be a ShardedLoader for rank {rank_} of {world}; got {loader!r}")


def strategy() -> Parallel:
    """:class:`DataParallel` in a process group of several ranks, else one process."""
    return DataParallel() if world_size() > 1 else Parallel()


class DistributedTrainer(Trainer):
    """:class:`~scoresde.training.Trainer` under :class:`DataParallel` (same arguments);
    ``loader`` must be a :class:`ShardedLoader` of this rank."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, loader: ShardedLoader, **kwargs):
        require_shard(loader, rank(), world_size())
        super().__init__(model, loss_fn, loader, parallel=DataParallel(), **kwargs)


BlockFn = Callable[[int, int, torch.Generator], tuple[Tensor, int]]


def block_generator(seed: int, block: int, device: torch.device | str | None = None
                    ) -> torch.Generator:
    """The generator of evaluation block ``block``: seeded by ``derived_seed(seed, block)``."""
    return torch.Generator(device or "cpu").manual_seed(derived_seed(seed, block))


def sharded_map(fn: BlockFn, n: int, batch_size: int, seed: int,
                device: torch.device | str | None = None) -> tuple[Tensor, int]:
    """``cat_k fn(lo_k, hi_k, gen_k)`` over blocks ``[k b, min(n, (k + 1) b))``, split over ranks.

    ``fn`` returns a tensor with one row per index and an NFE; block ``k`` runs on rank
    ``k mod W`` with :func:`block_generator` ``(seed, k)``. Returns the rows of all blocks in
    order (on the CPU, on every rank) and the NFE summed over blocks.
    """
    for name, value in (("n", n), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    local = []
    for k in range(rank(), math.ceil(n / batch_size), world_size()):
        lo, hi = k * batch_size, min(n, (k + 1) * batch_size)
        out, nfe = fn(lo, hi, block_generator(seed, k, device))
        local.append((k, out.detach().cpu(), nfe))
    blocks = sorted((b for part in all_gather(local) for b in part), key=lambda b: b[0])
    return torch.cat([out for _, out, _ in blocks]), sum(nfe for _, _, nfe in blocks)


def sharded_sample(score_fn: ScoreFn, sde: SDE, shape: tuple[int, ...], *, seed: int,
                   batch_size: int, device: torch.device | str | None = None,
                   **kwargs) -> tuple[Tensor, int]:
    """``shape[0]`` samples by :func:`scoresde.sample` (``kwargs``) in blocks; returns ``(x, nfe)``."""

    def block(lo: int, hi: int, gen: torch.Generator) -> tuple[Tensor, int]:
        x, info = sample(score_fn, sde, (hi - lo, *shape[1:]), generator=gen, device=device,
                         **kwargs)
        return x, info.nfe

    return sharded_map(block, shape[0], batch_size, seed, device)


def sharded_log_likelihood(score_fn: ScoreFn, sde: SDE, x: Tensor, *, seed: int, batch_size: int,
                           **kwargs) -> tuple[Tensor, int]:
    """``log p(x)`` per sample by :func:`scoresde.log_likelihood` in blocks; ``(logp, nfe)``."""

    def block(lo: int, hi: int, gen: torch.Generator) -> tuple[Tensor, int]:
        res = log_likelihood(score_fn, sde, x[lo:hi], generator=gen, **kwargs)
        return res.logp, res.nfe

    return sharded_map(block, x.shape[0], batch_size, seed, x.device)


def sharded_bits_per_dim(score_fn: ScoreFn, sde: SDE, data: Tensor, *, seed: int,
                         batch_size: int, **kwargs) -> BitsPerDim:
    """:func:`scoresde.bits_per_dim` (``kwargs``) computed block by block over the ranks."""

    def block(lo: int, hi: int, gen: torch.Generator) -> tuple[Tensor, int]:
        res = bits_per_dim(score_fn, sde, data[lo:hi], generator=gen, batch_size=hi - lo,
                           **kwargs)
        return res.bpd, res.nfe

    bpd, nfe = sharded_map(block, data.shape[0], batch_size, seed, data.device)
    stderr = bpd.std().item() / math.sqrt(len(bpd)) if len(bpd) > 1 else float("nan")
    return BitsPerDim(bpd=bpd, mean=bpd.mean().item(), stderr=stderr, nfe=nfe)

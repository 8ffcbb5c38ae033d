"""Distributed training and sharded evaluation: 2 CPU processes on gloo, tiny models, timeouts.

One module-scoped run of two spawned ranks trains, resumes and evaluates; the tests compare what
each rank saved with one-process references computed here. Every collective has a timeout and
every process a join timeout, so a failure cannot hang the suite.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import traceback
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import scoresde as ss
from scoresde import cli, distributed
from scoresde.data import TensorLoader, toy_2d
from scoresde.losses import make_loss
from scoresde.networks import MLP
from scoresde.training import Hook, Trainer, TrainingStopped, read_checkpoint

WORLD = 2
STEPS = 4
BATCH = 16  # global; 8 per rank
SEED = 3
COLLECTIVE_TIMEOUT = 20.0  # seconds, for init_process_group
JOIN_TIMEOUT = 90.0  # seconds, for each spawned process
BPD = {"n": 10, "batch_size": 3, "seed": 5}  # 4 blocks of 3, 3, 3, 1: ranks get 2 each
SAMPLE = {"n": 7, "batch_size": 2, "seed": 6}
CLI_SETS = ["model.width=16", "model.depth=1", "model.embed_dim=8", "data.n_train=256",
            "data.n_test=64", "train.batch_size=32", "train.log_every=2", "train.steps=2",
            "sample.batch_size=4", "likelihood.batch_size=3", "likelihood.rtol=1e-3",
            "likelihood.atol=1e-3"]


def _model() -> ss.ScoreModel:
    torch.manual_seed(0)
    return ss.ScoreModel(MLP(2, 16, 1, 8), ss.VPSDE())


def _data() -> torch.Tensor:
    return toy_2d("mixture", 128, torch.Generator().manual_seed(1))


def _trainer(cls, loader, run_dir: Path, loss_fn=None, **kw) -> Trainer:
    loss_fn = loss_fn or make_loss("dsm", ss.VPSDE())
    return cls(_model(), loss_fn, loader, run_dir=run_dir, lr=1e-2, warmup=2, ema_decay=0.9,
               accumulate=2, seed=SEED, log_every=2, ckpt_every=2, progress=False, **kw)


def _levels() -> torch.Tensor:
    return torch.randint(0, 256, (BPD["n"], 2), generator=torch.Generator().manual_seed(2))


def _oracle_bpd() -> ss.BitsPerDim:
    gm = ss.toy_mixture()
    return distributed.sharded_bits_per_dim(
        gm.score_fn(ss.VPSDE()), ss.VPSDE(), _levels(), seed=BPD["seed"],
        batch_size=BPD["batch_size"], trace="exact", rtol=1e-3, atol=1e-3, dtype=torch.float64)


def _oracle_samples() -> tuple[torch.Tensor, int]:
    gm = ss.toy_mixture()
    return distributed.sharded_sample(gm.score_fn(ss.VPSDE()), ss.VPSDE(), (SAMPLE["n"], 2),
                                      seed=SAMPLE["seed"], batch_size=SAMPLE["batch_size"],
                                      sampler="em", steps=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join_group(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    distributed.init("cpu", timeout=COLLECTIVE_TIMEOUT)


def _guarded(body, rank: int, port: int, out: Path) -> None:
    """Run ``body(rank, out)`` in the group; write a traceback to ``rank<r>.err`` on failure."""
    try:
        _join_group(rank, port)
        body(rank, out)
    except BaseException:
        (out / f"rank{rank}.err").write_text(traceback.format_exc())
        raise
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train_and_eval(rank: int, out: Path) -> None:
    cls, data = distributed.DistributedTrainer, _data()
    full = _trainer(cls, distributed.ShardedLoader(data, BATCH, SEED), out / "full")
    full.fit(STEPS)
    half = _trainer(cls, distributed.ShardedLoader(data, BATCH, SEED), out / "resumed")
    half.fit(STEPS // 2)
    resumed = _trainer(cls, distributed.ShardedLoader(data, BATCH, SEED), out / "resumed")
    assert resumed.maybe_resume()
    resumed.fit(STEPS)
    _cli(out / "cli", "train")
    _cli(out / "cli", "sample", "--sampler", "em", "--steps", "5", "--n", "10")
    _cli(out / "cli", "likelihood", "--n", "8")
    torch.save({"model": full.model.state_dict(), "ema": full.ema.state_dict(),
                "resumed": resumed.model.state_dict(), "resumed_ema": resumed.ema.state_dict(),
                "bpd": _oracle_bpd().bpd, "samples": _oracle_samples()}, out / f"rank{rank}.pt")


def _cli(run_dir: Path, *args: str) -> None:
    argv = [*args, "--run-dir", str(run_dir), "--device", "cpu", "--no-progress"]
    for item in CLI_SETS:
        argv += ["--set", item]
    assert cli.main(argv) == 0


def _die_at_step_two(rank: int, out: Path) -> None:
    loss, calls = make_loss("dsm", ss.VPSDE()), [0]

    def loss_fn(model, x0, gen):
        calls[0] += 1
        if rank == 1 and calls[0] == 3:  # the first micro-batch of step 2
            os._exit(3)
        return loss(model, x0, gen)

    trainer = _trainer(distributed.DistributedTrainer,
                       distributed.ShardedLoader(_data(), BATCH, SEED), out / "run", loss_fn)
    trainer.fit(STEPS)


def _entry(body, rank: int, port: int, out: str) -> None:
    _guarded(body, rank, port, Path(out))


def _spawn(body, out: Path) -> list[int | None]:
    """Start ``WORLD`` processes running ``body``; exit codes (``None``: killed at the timeout)."""
    ctx, port = mp.get_context("spawn"), _free_port()
    procs = [ctx.Process(target=_entry, args=(body, r, port, str(out))) for r in range(WORLD)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(JOIN_TIMEOUT)
        return [p.exitcode for p in procs]
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    codes = _spawn(_train_and_eval, out)
    errors = "".join(p.read_text() for p in out.glob("rank*.err"))
    assert codes == [0] * WORLD, f"exit codes {codes}\n{errors}"
    return out


def _ranks(run: Path) -> list[dict]:
    return [torch.load(run / f"rank{r}.pt") for r in range(WORLD)]


def _two_rank_loss():
    """One process, concatenated batch: each half gets the loss noise of the rank it came from."""
    loss = make_loss("dsm", ss.VPSDE())
    gens = [torch.Generator().manual_seed(distributed.rank_seed(SEED, r)) for r in range(WORLD)]

    def loss_fn(model, x0, _generator):
        return sum(loss(model, part, g) for part, g in zip(x0.chunk(WORLD), gens, strict=True)) / WORLD

    return loss_fn


def test_ddp_matches_one_process_on_concatenated_batch(run, tmp_path):
    ref = _trainer(Trainer, TensorLoader(_data(), BATCH, SEED), tmp_path, _two_rank_loss())
    ref.fit(STEPS)
    saved = _ranks(run)[0]
    for key, value in ref.model.state_dict().items():
        torch.testing.assert_close(saved["model"][key], value, atol=1e-6, rtol=0)
    for key, value in ref.ema.state_dict().items():
        torch.testing.assert_close(saved["ema"][key], value, atol=1e-6, rtol=0)


def test_ranks_hold_identical_model_and_ema(run):
    a, b = _ranks(run)
    for part in ("model", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])


def test_only_rank_zero_writes_once(run):
    metrics = [line for line in (run / "full" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == STEPS // 2 and all('"world_size": 2' in line for line in metrics)
    assert {p.name for p in (run / "full").iterdir()} == {"checkpoint.pt", "metrics.jsonl"}
    state = read_checkpoint(run / "full" / "checkpoint.pt")
    assert state["step"] == STEPS and len(state["rng"]["ranks"]) == WORLD


def test_resume_under_ddp_is_exact(run):
    for saved in _ranks(run):
        for part, resumed in (("model", "resumed"), ("ema", "resumed_ema")):
            assert all(torch.equal(saved[part][k], saved[resumed][k]) for k in saved[part])


def test_resume_on_one_process(run, tmp_path):
    """A 2-rank checkpoint loads into a one-process trainer (weights, EMA, step) and trains on."""
    run_dir = tmp_path / "single"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes((run / "full" / "checkpoint.pt").read_bytes())
    trainer = _trainer(Trainer, TensorLoader(_data(), BATCH, SEED), run_dir)
    assert trainer.maybe_resume() and trainer.step == STEPS
    saved = _ranks(run)[0]
    assert all(torch.equal(v, saved["model"][k]) for k, v in trainer.model.state_dict().items())
    trainer.fit(STEPS + 2)
    assert trainer.step == STEPS + 2


def test_sharded_evaluation_equals_one_process(run):
    bpd, (x, nfe) = _oracle_bpd(), _oracle_samples()
    assert nfe == 4 * 11  # 4 blocks of 10 EM steps + the denoising step
    for saved in _ranks(run):
        assert torch.equal(saved["bpd"], bpd.bpd)
        assert torch.equal(saved["samples"][0], x) and saved["samples"][1] == nfe


def test_cli_under_two_ranks(run, tmp_path):
    """``scoresde train / sample / likelihood`` in the group: rank 0 writes, results as one process."""
    run_dir = run / "cli"
    metrics = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 1 and '"world_size": 2' in metrics[0]
    two = torch.load(run_dir / "samples" / "em_5.pt"), (run_dir / "likelihood.json").read_text()
    _cli(run_dir, "sample", "--sampler", "em", "--steps", "5", "--n", "10",
         "--out", str(tmp_path / "one.png"))
    _cli(run_dir, "likelihood", "--n", "8")
    assert torch.equal(torch.load(tmp_path / "one.pt"), two[0])
    assert (run_dir / "likelihood.json").read_text() == two[1]


def test_sharded_bpd_is_bits_per_dim_block_by_block():
    """The blocks are ordinary ``ss.bits_per_dim`` calls with generators from (seed, block)."""
    gm, sde, levels, b = ss.toy_mixture(), ss.VPSDE(), _levels(), BPD["batch_size"]
    expected = torch.cat([
        ss.bits_per_dim(gm.score_fn(sde), sde, levels[k * b:(k + 1) * b], trace="exact",
                        generator=distributed.block_generator(BPD["seed"], k), rtol=1e-3,
                        atol=1e-3, dtype=torch.float64).bpd
        for k in range(4)
    ])
    assert torch.equal(_oracle_bpd().bpd, expected)


def test_dead_rank_fails_the_run_with_a_clear_error(tmp_path):
    codes = _spawn(_die_at_step_two, tmp_path)
    assert codes[1] == 3
    assert codes[0] not in (0, None), "rank 0 should fail, not hang or succeed"
    error = (tmp_path / "rank0.err").read_text()
    assert "DistributedError: rank 0 of 2: training step 2 failed" in error


@contextlib.contextmanager
def _one_rank_group(tmp_path):
    """A gloo process group of this process alone, destroyed on exit."""
    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1,
                                         timeout=timedelta(seconds=COLLECTIVE_TIMEOUT))
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def _loss_calling(action, call: int):
    """The DSM loss, doing ``action()`` at its ``call``-th evaluation (5: step 3's first micro-batch)."""
    loss, calls = make_loss("dsm", ss.VPSDE()), [0]

    def loss_fn(model, x0, gen):
        calls[0] += 1
        if calls[0] == call:
            action()
        return loss(model, x0, gen)

    return loss_fn


def test_signal_stops_every_rank_after_the_step_with_a_full_checkpoint(tmp_path):
    """SIGTERM mid-step: the ranks agree (all-reduce) to stop after that step and write a full
    collective checkpoint, every rank's random states included."""
    with _one_rank_group(tmp_path):
        trainer = _trainer(distributed.DistributedTrainer, distributed.ShardedLoader(_data(), BATCH, SEED),
                           tmp_path, _loss_calling(lambda: os.kill(os.getpid(), signal.SIGTERM), 5))
        with pytest.raises(TrainingStopped):
            trainer.fit(STEPS)
        state = read_checkpoint(trainer.checkpoint_path)
        assert state["step"] == 3 and len(state["rng"]["ranks"]) == 1


def test_interrupt_mid_step_keeps_the_last_full_checkpoint(tmp_path):
    """A ``KeyboardInterrupt`` raised inside a step (a second Ctrl-C) writes nothing: the step's
    state is torn, so the last periodic checkpoint (step 2) stays."""
    with _one_rank_group(tmp_path):
        def interrupt():
            raise KeyboardInterrupt

        trainer = _trainer(distributed.DistributedTrainer, distributed.ShardedLoader(_data(), BATCH, SEED),
                           tmp_path, _loss_calling(interrupt, 5))
        with pytest.raises(KeyboardInterrupt):
            trainer.fit(STEPS)
        state = read_checkpoint(trainer.checkpoint_path)
        assert state["step"] == 2 and len(state["rng"]["ranks"]) == 1


def test_interrupt_between_steps_saves_rank_zero_state_without_collectives(tmp_path):
    """A ``KeyboardInterrupt`` from a hook after step 3 (the ranks may be at different points):
    rank 0 writes its state alone, without the ranks' random states; resuming reseeds the noise."""
    with _one_rank_group(tmp_path):
        def stop(trainer):
            raise KeyboardInterrupt

        trainer = _trainer(distributed.DistributedTrainer, distributed.ShardedLoader(_data(), BATCH, SEED),
                           tmp_path, hooks=[Hook(3, stop)])
        with pytest.raises(KeyboardInterrupt):
            trainer.fit(STEPS)
        state = read_checkpoint(trainer.checkpoint_path)
        assert state["step"] == 3 and state["rng"]["ranks"] == []
        resumed = _trainer(distributed.DistributedTrainer,
                           distributed.ShardedLoader(_data(), BATCH, SEED), tmp_path)
        assert resumed.maybe_resume() and resumed.step == 3
        expected = torch.Generator().manual_seed(distributed.derived_seed(SEED, 0, 3))
        assert torch.equal(resumed.generator.get_state(), expected.get_state())


@pytest.mark.parametrize("world", [1, 2, 3])
def test_sharded_loader_partitions_each_global_batch(world):
    data = torch.arange(40.0)[:, None]
    loaders = [distributed.ShardedLoader(data, 6, seed=4, rank_=r, world=world)
               for r in range(world)]
    single = TensorLoader(data, 6, seed=4)
    seen = []
    for _ in range(13):  # two epochs of six global batches, and a seventh
        parts = [loader.next() for loader in loaders]
        assert torch.equal(torch.cat(parts), single.next())
        seen.append(torch.cat(parts))
    epoch = torch.cat(seen[:6]).flatten()
    assert len(epoch.unique()) == len(epoch) == 36


def test_argument_errors():
    with pytest.raises(ValueError, match="batch_size \\(6\\) must be a multiple"):
        distributed.ShardedLoader(torch.zeros(10, 2), 6, rank_=0, world=4)
    with pytest.raises(ValueError, match="backend must be one of"):
        distributed.resolve_backend("mpi", torch.device("cpu"))
    with pytest.raises(ValueError, match="timeout \\(--dist-timeout\\) must be positive"):
        distributed.init("cpu", timeout=0)
    with pytest.raises(ValueError, match="loader must be a ShardedLoader for rank 0 of 1"):
        distributed.DistributedTrainer(_model(), make_loss("dsm", ss.VPSDE()),
                                       TensorLoader(_data(), BATCH), run_dir="unused")
    assert distributed.resolve_backend("auto", torch.device("cpu")) == "gloo"
    assert distributed.resolve_backend("auto", torch.device("cuda", 0)) == "nccl"
    assert distributed.rank_seed(7, 0) == 7 and distributed.rank_seed(7, 1) != 7

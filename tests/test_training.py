"""Trainer: exact resume, safe checkpoints, schedule, accumulation, EMA, logging."""

from __future__ import annotations

import json
import os
import re
import signal
import socket

import pytest
import torch

import scoresde as ss
from scoresde import training
from scoresde.data import TensorLoader, toy_2d
from scoresde.losses import make_loss
from scoresde.networks import MLP
from scoresde.runlock import LOCK_NAME
from scoresde.score import ScoreModel
from scoresde.training import (
    Hook,
    NonFiniteError,
    RunDirLocked,
    StoppedAtOnce,
    Trainer,
    TrainingStopped,
    all_finite,
    read_checkpoint,
)


def _trainer(run_dir, *, fingerprint=None, width=16, batch=32, accumulate=1, loss=None, **kw):
    torch.manual_seed(0)
    sde = ss.VPSDE()
    model = ScoreModel(MLP(2, width, 1, 8), sde)
    data = toy_2d("mixture", 256, torch.Generator().manual_seed(0))
    opts = {"warmup": 3, "ema_decay": 0.9, "grad_clip": 0.5, "log_every": 2,
            "ckpt_every": 1000, "progress": False, **kw}
    return Trainer(model, loss or make_loss("dsm", sde), TensorLoader(data, batch, seed=1),
                   run_dir=run_dir, fingerprint=fingerprint or {"width": width},
                   accumulate=accumulate, **opts)


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_is_bit_identical(tmp_path):
    """N steps straight == N/2 steps, a new process-like Trainer loading the checkpoint, N/2 more.

    The run crosses an epoch boundary (256 rows / 32 per batch = 8 steps) so the loader's
    reshuffling state is exercised, and accumulation and warm-up are on.
    """
    straight = _trainer(tmp_path / "a", accumulate=2)
    straight.fit(12)
    first = _trainer(tmp_path / "b", accumulate=2)
    first.fit(6)
    torch.manual_seed(1234)  # the global RNG is restored from the checkpoint too
    resumed = _trainer(tmp_path / "b", accumulate=2)
    assert resumed.maybe_resume() and resumed.step == 6
    resumed.fit(12)
    assert _state_equal(straight.model.state_dict(), resumed.model.state_dict())
    assert _state_equal(straight.ema.state_dict(), resumed.ema.state_dict())
    assert torch.equal(straight.generator.get_state(), resumed.generator.get_state())
    steps = [json.loads(line)["step"] for line in open(tmp_path / "b" / "metrics.jsonl")]
    assert steps == [2, 4, 6, 8, 10, 12]


def test_truncated_checkpoint_is_refused(tmp_path):
    tr = _trainer(tmp_path)
    tr.fit(2)
    raw = tr.checkpoint_path.read_bytes()
    tr.checkpoint_path.write_bytes(raw[: len(raw) // 2])
    fresh = _trainer(tmp_path)
    before = {k: v.clone() for k, v in fresh.model.state_dict().items()}
    with pytest.raises(ValueError, match="truncated or corrupt"):
        fresh.load()
    assert _state_equal(before, fresh.model.state_dict()) and fresh.step == 0


def test_checkpoint_from_another_config_is_refused(tmp_path):
    _trainer(tmp_path, fingerprint={"width": 16, "lr": 1}).fit(2)
    other = _trainer(tmp_path, fingerprint={"width": 16, "lr": 2})
    with pytest.raises(ValueError, match=r"another configuration.*lr"):
        other.load()
    assert other.step == 0


def test_shape_mismatch_is_refused_before_any_copy(tmp_path):
    _trainer(tmp_path, fingerprint={"same": 1}).fit(1)
    wider = _trainer(tmp_path, fingerprint={"same": 1}, width=32)
    before = {k: v.clone() for k, v in wider.model.state_dict().items()}
    with pytest.raises(ValueError, match="shapes differ"):
        wider.load()
    assert _state_equal(before, wider.model.state_dict())


def test_checkpoint_contents_and_atomic_write(tmp_path):
    tr = _trainer(tmp_path)
    tr.fit(3)
    state = read_checkpoint(tr.checkpoint_path)
    assert state["step"] == 3 and set(state["rng"]) >= {"torch", "noise"}
    assert set(state["loader"]) == {"generator", "perm", "pos"}
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
    with pytest.raises(ValueError, match="not a scoresde"):
        torch.save({"format": "x"}, tmp_path / "bad.pt")
        read_checkpoint(tmp_path / "bad.pt")


def test_interrupt_writes_checkpoint(tmp_path):
    def stop(trainer):
        raise KeyboardInterrupt

    tr = _trainer(tmp_path, hooks=[Hook(3, stop)])
    with pytest.raises(KeyboardInterrupt):
        tr.fit(10)
    assert read_checkpoint(tr.checkpoint_path)["step"] == 3


def _signal_at_call(signum, call: int):
    """A DSM loss that sends ``signum`` to this process during its ``call``-th evaluation, i.e.
    in the middle of a training step."""
    dsm, calls = make_loss("dsm", ss.VPSDE()), []

    def loss(model, x0, gen):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), signum)
        return dsm(model, x0, gen)

    return loss


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_step_finishes_the_step_and_resumes_exactly(tmp_path, signum):
    """A signal inside step 5 lets it finish, checkpoints at 5 and raises ``TrainingStopped``;
    resuming to 9 equals an uninterrupted run to 9, bit for bit; the handlers are restored."""
    before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    straight = _trainer(tmp_path / "a")
    straight.fit(9)
    stopped = _trainer(tmp_path / "b", loss=_signal_at_call(signum, 5))
    with pytest.raises(TrainingStopped, match=signal.Signals(signum).name):
        stopped.fit(9)
    assert stopped.step == 5 and read_checkpoint(stopped.checkpoint_path)["step"] == 5
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == before
    resumed = _trainer(tmp_path / "b")
    assert resumed.maybe_resume() and resumed.step == 5
    resumed.fit(9)
    assert _state_equal(straight.model.state_dict(), resumed.model.state_dict())
    assert _state_equal(straight.ema.state_dict(), resumed.ema.state_dict())


def test_second_signal_stops_at_once_and_keeps_the_last_checkpoint(tmp_path):
    """Two signals in one step: ``KeyboardInterrupt`` mid-step, and the torn state is not saved."""
    dsm, calls = make_loss("dsm", ss.VPSDE()), []

    def loss(model, x0, gen):
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        return dsm(model, x0, gen)

    tr = _trainer(tmp_path, loss=loss, ckpt_every=2)
    with pytest.raises(KeyboardInterrupt, match="second signal") as info:
        tr.fit(9)
    assert not isinstance(info.value, TrainingStopped)
    assert read_checkpoint(tr.checkpoint_path)["step"] == 2


def test_accumulation_equals_one_big_batch(tmp_path):
    """With a noise-free loss, two accumulated batches of b == one batch of 2b (same rows)."""

    def loss(model, x0, gen):
        return (model(x0, 0.5) + x0).pow(2).sum(1).mean()

    a = _trainer(tmp_path / "a", batch=16, accumulate=2, loss=loss, grad_clip=0)
    b = _trainer(tmp_path / "b", batch=32, accumulate=1, loss=loss, grad_clip=0)
    a.train_step()
    b.train_step()
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_warmup_clipping_and_ema(tmp_path):
    tr = _trainer(tmp_path, lr=1e-2, warmup=4, ema_decay=0.5)
    assert [tr.lr_at(k) for k in range(5)] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2])
    assert tr.ema_decay_at(0) == pytest.approx(0.1) and tr.ema_decay_at(100) == 0.5
    ema0 = [p.clone() for p in tr.ema.parameters()]
    _, norm = tr.train_step()
    assert float(norm) > 0.5  # pre-clipping norm is reported; the step used the clipped gradient
    d = tr.ema_decay_at(0)
    for e0, e, p in zip(ema0, tr.ema.parameters(), tr.model.parameters(), strict=True):
        torch.testing.assert_close(e, d * e0 + (1 - d) * p)


def test_bf16_autocast_and_eval_hook(tmp_path):
    tr = _trainer(tmp_path, autocast="bf16", hooks=[Hook(2, lambda t: {"probe": t.step})])
    tr.fit(4)
    records = [json.loads(line) for line in open(tr.metrics_path)]
    assert {r["probe"] for r in records if r["kind"] == "eval"} == {2, 4}
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records if r["kind"] == "train")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="autocast"):
        _trainer(tmp_path, autocast="fp8")
    with pytest.raises(ValueError, match="accumulate"):
        _trainer(tmp_path, accumulate=0)
    with pytest.raises(ValueError, match="ema_decay"):
        _trainer(tmp_path, ema_decay=1.0)
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pt")


def test_fingerprint_entries_no_longer_fingerprinted_are_ignored(tmp_path):
    """A checkpoint whose fingerprint has an entry the configuration has since dropped (as
    ``data.root`` was) still loads; a changed or a new entry is refused."""
    _trainer(tmp_path, fingerprint={"data": {"name": "toy", "root": "/old"}}).fit(1)
    assert _trainer(tmp_path, fingerprint={"data": {"name": "toy"}}).maybe_resume()
    with pytest.raises(ValueError, match=r"data\.seed: None \(checkpoint\) != 1 \(now\)"):
        _trainer(tmp_path, fingerprint={"data": {"name": "toy", "seed": 1}}).load()


# -- faults: the run directory's lock, integrity, metrics, signals, non-finite values -------


def test_a_second_trainer_on_the_run_directory_is_refused_naming_the_holder(tmp_path):
    """While one trainer holds the lock (``with trainer.lock``, as ``scoresde train`` does) a
    second one, even in this process, is refused naming its pid and host; the lock is released
    when the block ends, also by an exception, and the lock file goes with it."""
    first = _trainer(tmp_path)
    with first.lock:
        first.fit(2)
        with pytest.raises(RunDirLocked, match=rf"in use: pid {os.getpid()} on host "
                                               rf"{re.escape(socket.gethostname())}, started 20"):
            _trainer(tmp_path).fit(4)
        assert first.lock.held
    assert not first.lock.held and not (tmp_path / LOCK_NAME).exists()

    def boom(trainer):
        raise RuntimeError("hook failed")

    failing = _trainer(tmp_path, hooks=[Hook(1, boom)])
    assert failing.maybe_resume()
    with pytest.raises(RuntimeError, match="hook failed"):
        failing.fit(4)
    assert not (tmp_path / LOCK_NAME).exists()
    resumed = _trainer(tmp_path)
    assert resumed.maybe_resume() and resumed.step == 2


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path):
    """A lock file whose writer died (its identity left, no process holding the flock) is taken
    over with a warning naming that writer."""
    (tmp_path / LOCK_NAME).write_text(json.dumps(
        {"pid": 999999, "host": "gone", "started": "2020-01-01T00:00:00", "command": "x"}))
    tr = _trainer(tmp_path)
    with pytest.warns(UserWarning, match=r"taking over the lock of pid 999999 on host gone.*killed"):
        tr.fit(2)
    assert read_checkpoint(tr.checkpoint_path)["step"] == 2


def test_leftover_temporary_files_are_removed_when_the_run_starts(tmp_path):
    """A killed checkpoint write leaves ``checkpoint.pt<random>.tmp`` (each a full checkpoint);
    a killed metrics rewrite ``metrics.jsonl.tmp``; taking the lock removes both, nothing else."""
    for name in ("checkpoint.ptk1x2y3z.tmp", "checkpoint.pt.123.abcd.tmp", "metrics.jsonl.tmp",
                 "likelihood.json.tmp"):
        (tmp_path / name).write_bytes(b"partial")
    _trainer(tmp_path).fit(1)
    assert sorted(p.name for p in tmp_path.glob("*.tmp")) == ["likelihood.json.tmp"]


def _flip_in(path, tensor: torch.Tensor) -> None:
    """Flip one byte of ``tensor``'s data inside the checkpoint file ``path``."""
    raw = bytearray(path.read_bytes())
    at = raw.find(tensor.numpy().tobytes())
    assert at > 0
    raw[at + 1] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_flipped_bytes_in_a_tensor_are_refused_naming_the_file(tmp_path):
    """One flipped byte in a weight used to load silently (the zip's CRC is not checked); the
    checksum makes it an error naming the file, for resuming and for ``load_trained`` alike."""
    tr = _trainer(tmp_path)
    tr.fit(2)
    _flip_in(tr.checkpoint_path, tr.model.state_dict()["net.out.2.weight"])
    with pytest.raises(ValueError, match=rf"checkpoint {tr.checkpoint_path} is corrupt: the sha256"):
        read_checkpoint(tr.checkpoint_path)
    fresh = _trainer(tmp_path)
    with pytest.raises(ValueError, match="is corrupt"):
        fresh.maybe_resume()
    assert fresh.step == 0


def test_a_checkpoint_without_a_checksum_loads_with_a_warning(tmp_path):
    """Files written before checksums existed still resume, unverified, with a warning."""
    tr = _trainer(tmp_path)
    tr.fit(2)
    state = torch.load(tr.checkpoint_path, weights_only=True)
    del state["checksum"]
    torch.save(state, tr.checkpoint_path)
    resumed = _trainer(tmp_path)
    with pytest.warns(UserWarning, match="has no checksum"):
        assert resumed.maybe_resume() and resumed.step == 2


def test_checkpoints_follow_the_umask(tmp_path):
    """mkstemp's 0600 is gone: the file gets 0666 less the umask, as any new file."""
    old = os.umask(0o027)
    try:
        tr = _trainer(tmp_path)
        tr.fit(1)
    finally:
        os.umask(old)
    assert tr.checkpoint_path.stat().st_mode & 0o777 == 0o640


def test_metrics_without_their_checkpoint_are_moved_aside_not_appended_to(tmp_path):
    """A deleted checkpoint (or a crash before the first one) used to restart at step 0 and
    append duplicate steps; the old records now move to ``metrics.orphaned-1.jsonl``, with a
    warning naming both files."""
    _trainer(tmp_path).fit(4)
    old = (tmp_path / "metrics.jsonl").read_text()
    (tmp_path / "checkpoint.pt").unlink()
    with pytest.warns(UserWarning, match=r"metrics.jsonl has records up to step 4 but training "
                                         r"starts at step 0, since there is no .*checkpoint.pt"):
        _trainer(tmp_path).fit(2)
    assert (tmp_path / "metrics.orphaned-1.jsonl").read_text() == old
    steps = [json.loads(line)["step"] for line in open(tmp_path / "metrics.jsonl")]
    assert steps == [2]


def test_a_torn_last_metrics_line_is_dropped_with_a_warning_on_resume(tmp_path):
    """A crash in the middle of appending a record leaves a torn last line: resume drops it,
    warning with the file's name; a bad line before the last is an error naming file and line."""
    tr = _trainer(tmp_path)
    tr.fit(4)
    with open(tr.metrics_path, "a") as f:
        f.write('{"kind": "train", "st')
    resumed = _trainer(tmp_path)
    with pytest.warns(UserWarning, match=rf"{tr.metrics_path}: dropping its torn last line"):
        assert resumed.maybe_resume()
    resumed.fit(6)
    steps = [json.loads(line)["step"] for line in open(tr.metrics_path)]
    assert steps == [2, 4, 6]
    lines = tr.metrics_path.read_text().splitlines()
    tr.metrics_path.write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=rf"{tr.metrics_path}, line 2: not a metrics record"):
        _trainer(tmp_path).maybe_resume()


def test_a_second_signal_during_the_final_save_is_deferred(tmp_path, monkeypatch):
    """The graceful stop promises a checkpoint after the step the signal arrived in; a second
    signal during that checkpoint's write used to tear it off. Now the write completes and the
    checkpoint is at the promised step."""
    write = training.write_checkpoint

    def write_signalled(state, path):
        if state["step"] == 5:  # the graceful stop's own save
            os.kill(os.getpid(), signal.SIGTERM)
        return write(state, path)

    monkeypatch.setattr(training, "write_checkpoint", write_signalled)
    tr = _trainer(tmp_path, loss=_signal_at_call(signal.SIGTERM, 5))
    with pytest.raises(TrainingStopped, match="stopped after step 5"):
        tr.fit(9)
    assert read_checkpoint(tr.checkpoint_path)["step"] == 5


def test_a_second_signal_mid_step_names_the_step_of_the_checkpoint_kept(tmp_path):
    dsm, calls = make_loss("dsm", ss.VPSDE()), []

    def loss(model, x0, gen):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        return dsm(model, x0, gen)

    tr = _trainer(tmp_path, loss=loss, ckpt_every=2)
    with pytest.raises(StoppedAtOnce, match=rf"in step 5; {tr.checkpoint_path} is at step 4$"):
        tr.fit(9)
    assert read_checkpoint(tr.checkpoint_path)["step"] == 4


def _nan_from_call(call: int):
    """A DSM loss that is NaN from its ``call``-th evaluation on (so the weights turn NaN)."""
    dsm, calls = make_loss("dsm", ss.VPSDE()), []

    def loss(model, x0, gen):
        calls.append(1)
        return dsm(model, x0, gen) * (float("nan") if len(calls) >= call else 1.0)

    return loss


def test_a_non_finite_loss_stops_training_keeping_the_last_good_checkpoint(tmp_path):
    """NaN from step 5: the record at step 6 (the mean over 5-6) stops the run before the
    checkpoint due at 6, naming the step; the checkpoint stays at step 4, finite."""
    tr = _trainer(tmp_path, loss=_nan_from_call(5), log_every=2, ckpt_every=2)
    with pytest.raises(NonFiniteError, match=r"loss nan .* at step 6, the mean over steps 5-6: "
                                             r"stopped; .*checkpoint.pt is at step 4"):
        tr.fit(10)
    state = read_checkpoint(tr.checkpoint_path)
    assert state["step"] == 4 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert [json.loads(line)["step"] for line in open(tr.metrics_path)] == [2, 4]


def test_non_finite_weights_are_never_written(tmp_path):
    """With no log point before the checkpoint, the weights' check before the write stops it."""
    tr = _trainer(tmp_path, loss=_nan_from_call(3), log_every=100, ckpt_every=2)
    with pytest.raises(NonFiniteError, match=r"non-finite weights after step 4: not writing"):
        tr.fit(10)
    state = read_checkpoint(tr.checkpoint_path)
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["ema"].values())
    assert all_finite([torch.ones(3), torch.zeros(())])
    assert not all_finite([torch.ones(3), torch.tensor([1.0, float("inf")])])
    assert not all_finite([torch.tensor([float("nan"), 1.0])])

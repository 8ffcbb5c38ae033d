"""Trainer: exact resume, safe checkpoints, schedule, accumulation, EMA, logging."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

import scoresde as ss
from scoresde.data import TensorLoader, toy_2d
from scoresde.losses import make_loss
from scoresde.networks import MLP
from scoresde.score import ScoreModel
from scoresde.training import Hook, Trainer, TrainingStopped, read_checkpoint


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

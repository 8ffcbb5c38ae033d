"""Faults of ``scoresde train`` in real processes: two trainers on one run directory, SIGKILL
then resume, a second SIGTERM during the graceful stop, and corrupted run directories (flipped
bytes in a checkpoint, a torn last metrics line, leftover temporary files); plus the CLI side of
a diverging run and of lost checkpoints (in-process, as they need no second process).

Each subprocess is ``python -m scoresde train`` on a tiny toy run (an MLP of width 16, 256
points), so a process costs its start-up (~4 s of imports here) and little else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from scoresde import cli
from scoresde.runlock import LOCK_NAME
from scoresde.training import read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.width=16", "model.depth=1", "model.embed_dim=8", "data.n_train=256",
        "data.n_test=64", "train.batch_size=32", "train.log_every=1"]
FOREVER = 100_000
"""``train.steps`` of a run that goes on until it is signalled."""


def _argv(run: Path, steps: int, *sets: str) -> list[str]:
    argv = ["train", "--run-dir", str(run), "--device", "cpu", "--no-progress"]
    for item in [*TINY, f"train.steps={steps}", *sets]:
        argv += ["--set", item]
    return argv


def _spawn(run: Path, steps: int, *sets: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "scoresde", *_argv(run, steps, *sets)],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _wait_for_records(run: Path, proc: subprocess.Popen, n: int, timeout: float = 90) -> None:
    """Until ``metrics.jsonl`` has ``n`` complete records (the run is inside its loop)."""
    deadline = time.monotonic() + timeout
    path = run / "metrics.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no {n} records within {timeout} s: {proc.communicate()[1]}")


@pytest.fixture
def running():
    """``running(run, *sets)``: a ``train`` process that runs until signalled (killed after
    120 s by a watchdog, so that a blocked read cannot hang the suite, and at teardown)."""
    procs, watchdogs = [], []

    def start(run: Path, *sets: str) -> subprocess.Popen:
        procs.append(_spawn(run, FOREVER, *sets))
        watchdogs.append(threading.Timer(120, procs[-1].kill))
        watchdogs[-1].start()
        return procs[-1]

    yield start
    for proc, watchdog in zip(procs, watchdogs, strict=True):
        watchdog.cancel()
        proc.kill()
        proc.wait()
        proc.stderr.close()


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A finished 6-step run (records every 2 steps, checkpoint at 6), built in-process."""
    run = tmp_path_factory.mktemp("faults") / "base"
    assert cli.main(_argv(run, 6, "train.log_every=2")) == 0
    return run


def _copy(base: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(base, run)
    return run


def test_a_second_train_on_the_same_run_directory_stops_naming_the_holder(tmp_path, running,
                                                                          capsys):
    """While a ``train`` process runs, a second ``train`` (this test's process) on its run
    directory stops at once, status 5, one line naming the first one's pid, host and start time,
    without touching the run; the first, stopped by SIGTERM, releases the lock (its file is
    gone) and its metrics hold each step once."""
    run = tmp_path / "run"
    first = running(run, "train.ckpt_every=5")
    _wait_for_records(run, first, 3)
    assert cli.main(_argv(run, 50)) == 5
    err = capsys.readouterr().err
    holder = rf"in use: pid {first.pid} on host {re.escape(socket.gethostname())}, started 20\d\d-"
    assert re.search(holder, err) and err.count("\n") == 1, err
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    step = read_checkpoint(run / "checkpoint.pt")["step"]
    assert _steps(run) == list(range(1, step + 1))
    assert not (run / LOCK_NAME).exists()


def test_sigkill_mid_training_then_resume(tmp_path, running, capsys):
    """SIGKILL leaves the lock file with the dead holder's identity, records logged after the
    last checkpoint and maybe a half-written temporary checkpoint: the next ``train`` takes the
    lock over with a warning naming the dead pid, drops those records, removes the leftovers and
    ends with each step logged once."""
    run = tmp_path / "run"
    victim = running(run, "train.ckpt_every=5")
    _wait_for_records(run, victim, 12)
    victim.kill()
    victim.communicate()
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == victim.pid
    step = read_checkpoint(run / "checkpoint.pt")["step"]
    assert step >= 10 and (run / "metrics.jsonl").read_text().count("\n") >= step  # may be torn
    with pytest.warns(UserWarning, match=f"taking over the lock of pid {victim.pid} on host"):
        assert cli.main(_argv(run, step + 3, "train.ckpt_every=5")) == 0
    assert f"resumed {run} at step {step}" in capsys.readouterr().out
    assert _steps(run) == list(range(1, step + 4))
    assert read_checkpoint(run / "checkpoint.pt")["step"] == step + 3
    assert not list(run.glob("*.tmp")) and not (run / LOCK_NAME).exists()


def test_a_second_sigterm_during_the_graceful_stop_keeps_the_checkpoint_it_names(tmp_path, running):
    """SIGTERM, then (once the process has printed its plan, "finishing step k, then writing a
    checkpoint") SIGTERM again. Wherever the second one lands, the checkpoint on disk is whole
    and at the step the process reported, and the run resumes from it: mid-step, status 130 and
    a last line naming the step of the checkpoint kept; during the stop's checkpoint write, the
    write completes (status 130, "stopped after step k"); after the stop, once the handlers
    are restored, the signal ends the process (status -SIGTERM) with the promised checkpoint."""
    run = tmp_path / "run"
    proc = running(run, "train.ckpt_every=3")
    _wait_for_records(run, proc, 4)
    proc.send_signal(signal.SIGTERM)
    seen = []
    while not any(line.startswith("SIGTERM:") for line in seen):
        line = proc.stderr.readline()
        assert line, f"no stop plan printed: {seen}"
        seen.append(line)
    promised = int(re.search(r"step (\d+)", seen[-1]).group(1))
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=60)
    step = read_checkpoint(run / "checkpoint.pt")["step"]
    if proc.returncode == -signal.SIGTERM:
        assert step == promised, rest
    else:
        assert proc.returncode == 130, rest
        last = rest.strip().splitlines()[-1]
        said = re.search(r"stopped after step (\d+), checkpoint written|is at step (\d+);", last)
        assert said and int(said.group(1) or said.group(2)) == step, last
        assert said.group(1) is None or step == promised, last
    assert cli.main(_argv(run, step + 2, "train.ckpt_every=3")) == 0
    assert _steps(run) == list(range(1, step + 3))


def _flip_a_weight_byte(run: Path) -> bytes:
    """Flip one byte of a weight in the checkpoint; return the file's new bytes."""
    weight = read_checkpoint(run / "checkpoint.pt")["model"]["net.out.2.weight"]
    raw = bytearray((run / "checkpoint.pt").read_bytes())
    at = raw.find(weight.numpy().tobytes())
    assert at > 0
    raw[at + 1] ^= 0xFF
    (run / "checkpoint.pt").write_bytes(bytes(raw))
    return bytes(raw)


def _tear_the_last_record(run: Path) -> None:
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "step": 7, "lo')


def _leave_temporary_files(run: Path) -> None:
    (run / "checkpoint.pt.4242.deadbeef.tmp").write_bytes(os.urandom(50_000))
    (run / "metrics.jsonl.tmp").write_text('{"kind": "train"')
    (run / "likelihood.json.tmp").write_text("{")


CORRUPTIONS = {"flipped": _flip_a_weight_byte, "torn": _tear_the_last_record,
               "leftovers": _leave_temporary_files}


@dataclass
class Outcome:
    run: Path
    before: object  # what the corruption returned
    metrics: str  # metrics.jsonl before the train
    code: int
    err: str


@pytest.fixture(scope="module")
def corrupted(base_run, tmp_path_factory) -> dict[str, Outcome]:
    """Each of :data:`CORRUPTIONS` applied to a copy of ``base_run``, then ``train`` to step 8
    on each copy, the three processes started together (their start-up is most of their time)."""
    runs, before, metrics, procs = {}, {}, {}, {}
    for name, corrupt in CORRUPTIONS.items():
        runs[name] = tmp_path_factory.mktemp(name) / "run"
        shutil.copytree(base_run, runs[name])
        before[name] = corrupt(runs[name])
        metrics[name] = (runs[name] / "metrics.jsonl").read_text()
        procs[name] = _spawn(runs[name], 8, "train.log_every=2")
    out = {}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        out[name] = Outcome(runs[name], before[name], metrics[name], proc.returncode, err)
    return out


def test_flipped_bytes_in_a_checkpoint_are_refused_naming_the_file(corrupted):
    """One flipped byte in a weight: ``train`` stops (status 2) with one line naming the file,
    and leaves the checkpoint and the metrics as they were."""
    case = corrupted["flipped"]
    assert case.code == 2, case.err
    assert f"checkpoint {case.run / 'checkpoint.pt'} is corrupt" in case.err
    assert case.err.count("\n") == 1
    assert (case.run / "checkpoint.pt").read_bytes() == case.before
    assert (case.run / "metrics.jsonl").read_text() == case.metrics


def test_a_torn_last_metrics_line_is_dropped_on_resume(corrupted):
    """A record half-written by a killed process: resume warns naming ``metrics.jsonl``, drops
    the torn line and appends whole records after the others."""
    case = corrupted["torn"]
    assert case.code == 0, case.err
    assert f"{case.run / 'metrics.jsonl'}: dropping its torn last line" in case.err
    assert _steps(case.run) == [2, 4, 6, 8]


def test_leftover_temporary_files_are_removed_when_train_starts(corrupted):
    """Temporary files of killed writes (a checkpoint's, a metrics rewrite's) go when ``train``
    takes the run directory; files of other commands stay."""
    case = corrupted["leftovers"]
    assert case.code == 0, case.err
    assert [p.name for p in case.run.glob("*.tmp")] == ["likelihood.json.tmp"]
    assert read_checkpoint(case.run / "checkpoint.pt")["step"] == 8


def test_a_diverging_run_exits_4_naming_the_step_and_keeps_a_finite_checkpoint(tmp_path, capsys):
    """``train.lr=1e6`` turns the toy run's weights to NaN at its second step; it used to write
    them and exit 0. Now: status 4, one line naming the step, the checkpoint of step 1 kept."""
    run = tmp_path / "run"
    code = cli.main(_argv(run, 40, "train.lr=1e6", "train.warmup=1", "train.ckpt_every=1"))
    err = capsys.readouterr().err
    assert code == 4 and err.count("\n") == 1, err
    assert re.search(r"NonFiniteError: non-finite training loss nan .* at step 2\b", err), err
    state = read_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_train_after_the_checkpoint_was_deleted_keeps_the_old_metrics_apart(tmp_path, base_run):
    """A run directory with metrics up to step 6 and no checkpoint: ``train`` starts over at 0
    with a warning, the old records moved to ``metrics.orphaned-1.jsonl``, no step twice."""
    run = _copy(base_run, tmp_path)
    old = (run / "metrics.jsonl").read_text()
    (run / "checkpoint.pt").unlink()
    with pytest.warns(UserWarning, match="has records up to step 6 but training starts at step 0"):
        assert cli.main(_argv(run, 4, "train.log_every=2")) == 0
    assert (run / "metrics.orphaned-1.jsonl").read_text() == old
    assert _steps(run) == [2, 4]

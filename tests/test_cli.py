"""The command line end to end on tiny runs: train (and resume), sample, likelihood, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from scoresde import cli
from scoresde.training import read_checkpoint

TINY_TOY = ["model.width=16", "model.depth=1", "model.embed_dim=8", "data.n_train=256",
            "data.n_test=64", "train.batch_size=32", "train.log_every=2"]
TINY_DIGITS = ["model.channels=8", "model.channel_mult=[1, 2]", "model.attn_resolutions=[4]",
               "train.batch_size=8", "train.log_every=1"]


def _run(*args: str, sets: list[str] = ()) -> int:
    argv = [*args, "--device", "cpu", "--no-progress"]
    for item in sets:
        argv += ["--set", item]
    return cli.main(argv)


def test_toy_train_resume_sample_likelihood(tmp_path, capsys):
    run = str(tmp_path / "toy")
    assert _run("train", "--run-dir", run, sets=[*TINY_TOY, "train.steps=4"]) == 0
    assert {p.name for p in (tmp_path / "toy").iterdir()} >= {"config.yaml", "checkpoint.pt",
                                                              "metrics.jsonl"}
    assert _run("train", "--run-dir", run, sets=["train.steps=6"]) == 0
    assert "resumed" in capsys.readouterr().out
    assert _run("train", "--run-dir", run, sets=["train.steps=5"]) == 0  # behind the checkpoint
    assert "at step 6 >= train.steps = 5: nothing to train" in capsys.readouterr().out
    assert "steps: 6" in (tmp_path / "toy" / "config.yaml").read_text()
    assert _run("train", "--run-dir", run, "--fresh") == 2
    assert "--fresh given but" in capsys.readouterr().err
    steps = [json.loads(x)["step"] for x in open(tmp_path / "toy" / "metrics.jsonl")]
    assert steps == [2, 4, 6]
    assert _run("sample", "--run-dir", run, "--sampler", "em", "--steps", "10", "--n", "50") == 0
    samples = torch.load(tmp_path / "toy" / "samples" / "em_10.pt")
    assert samples.shape == (50, 2) and (tmp_path / "toy" / "samples" / "em_10.png").stat().st_size
    assert json.loads((tmp_path / "toy" / "samples" / "em_10.json").read_text())["nfe"] == 11
    assert _run("sample", "--run-dir", run, "--sampler", "fast", "--n", "20") == 0  # its own steps
    assert json.loads((tmp_path / "toy" / "samples" / "fast_auto.json").read_text())["nfe"] == 15
    assert _run("likelihood", "--run-dir", run, "--n", "16",
                sets=["likelihood.rtol=1e-3", "likelihood.atol=1e-3"]) == 0
    record = json.loads((tmp_path / "toy" / "likelihood.json").read_text())
    assert record["unit"] == "nats" and record["n"] == 16 and record["sem"] > 0


def test_digits_image_path(tmp_path):
    run = str(tmp_path / "digits")
    config = str(Path(__file__).resolve().parents[1] / "configs" / "digits_vp.yaml")
    assert _run("train", "--config", config, "--run-dir", run,
                sets=[*TINY_DIGITS, "train.steps=2"]) == 0
    assert _run("sample", "--run-dir", run, "--sampler", "ddim", "--steps", "3", "--n", "4") == 0
    assert torch.load(tmp_path / "digits" / "samples" / "ddim_3.pt").shape == (4, 1, 8, 8)
    assert _run("likelihood", "--run-dir", run, "--n", "4",
                sets=["likelihood.rtol=1e-2", "likelihood.atol=1e-2"]) == 0
    record = json.loads((tmp_path / "digits" / "likelihood.json").read_text())
    assert record["unit"] == "bits/dim" and record["mean"] > 0


def test_errors_name_the_problem(tmp_path, capsys):
    assert _run("train", "--run-dir", str(tmp_path), sets=["train.lrate=1"]) == 2
    assert "unknown key 'train.lrate'" in capsys.readouterr().err
    run = str(tmp_path / "r")
    assert _run("train", "--run-dir", run, sets=[*TINY_TOY, "train.steps=1"]) == 0
    assert _run("train", "--run-dir", run, sets=["model.width=32"]) == 2
    assert "another configuration" in capsys.readouterr().err
    assert _run("sample", "--run-dir", str(tmp_path / "none")) == 2
    assert "checkpoint" in capsys.readouterr().err


def test_subcommand_registry():
    def configure(parser):
        parser.add_argument("--runs", nargs="+")

    cli.register("toy-extra", cli.Command("compare runs", configure, lambda args: 7))
    try:
        assert cli.main(["toy-extra", "--runs", "a", "b"]) == 7
    finally:
        del cli.COMMANDS["toy-extra"]


def test_python_dash_m_help():
    out = subprocess.run([sys.executable, "-m", "scoresde", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert all(name in out for name in ("train", "sample", "likelihood"))


def test_sigterm_stops_train_after_a_step_with_a_checkpoint_and_exit_130(tmp_path):
    """``kill -TERM`` on ``scoresde train``: status 130, a one-line message (no traceback), a
    checkpoint at a step boundary, and ``train`` again resumes from it to the end."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "scoresde", "train", "--run-dir", str(run), "--no-progress",
           "--set", "train.steps=100000", "--set", "train.log_every=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "SIGTERM received: stopped after step" in err and "Traceback" not in err
    step = read_checkpoint(run / "checkpoint.pt")["step"]
    assert step >= 1
    assert cli.main(["train", "--run-dir", str(run), "--no-progress",
                     "--set", f"train.steps={step + 2}", "--set", "train.log_every=1"]) == 0
    assert read_checkpoint(run / "checkpoint.pt")["step"] == step + 2


def test_sample_refusal_names_the_differing_config_entries(tmp_path, capsys):
    run = str(tmp_path / "toy")
    assert _run("train", "--run-dir", run, sets=[*TINY_TOY, "train.steps=1"]) == 0
    assert _run("sample", "--run-dir", run, "--n", "4", sets=["model.width=32"]) == 2
    assert "model.width: 16 (checkpoint) != 32 (now)" in capsys.readouterr().err


def test_zero_or_negative_counts_are_errors_not_the_config_value(tmp_path, capsys):
    """``--n 0`` used to fall back to ``sample.n`` (``args.n or cfg.n``) and ``--n -3`` to slice
    off three points; each is now refused, naming the option, before any model is loaded."""
    run = str(tmp_path / "none")
    for argv in (("sample", "--n", "0"), ("sample", "--steps", "0"), ("likelihood", "--n", "-3")):
        assert _run(*argv, "--run-dir", run) == 2
        option = argv[1]
        assert f"{option} must be >= 1" in capsys.readouterr().err


def test_every_failure_is_one_line_with_the_exit_code_of_its_kind(tmp_path, capsys):
    """A YAML syntax error and a bad value are bad input (2), a run directory that is a file is a
    file-system error (3), a CUDA device on this CPU build is bad input naming ``--device``; each
    prints exactly one line; ``--debug`` re-raises the error with its traceback."""
    import pytest

    broken = tmp_path / "broken.yaml"
    broken.write_text("train: {steps: [1,\n")
    assert cli.main(["train", "--config", str(broken), "--run-dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "broken.yaml" in err and err.count("\n") == 1
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = cli.main(["train", "--run-dir", str(blocker / "run"), "--no-progress", "--set",
                     "train.steps=1", "--set", "train.batch_size=8", "--set", "data.n_train=16"])
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1 and "error:" in err
    if not torch.cuda.is_available():
        assert cli.main(["sample", "--device", "cuda", "--run-dir", str(tmp_path / "b")]) == 2
        err = capsys.readouterr().err
        assert "--device cuda" in err and err.count("\n") == 1
    with pytest.raises(ValueError, match="must be one of"):
        cli.main(["train", "--debug", "--run-dir", str(tmp_path / "c"), "--set", "sde.name=bogus"])
    assert len(set(cli.EXIT_CODES.values())) == len(cli.EXIT_CODES)


def test_warnings_are_one_line_naming_the_command(tmp_path):
    """A warning raised while a command runs (here: metrics of a run whose checkpoint is gone are
    moved aside) prints as one ``scoresde train: warning: ...`` line, without Python's file/line
    (in a subprocess: pytest records warnings instead of printing them)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"kind": "train", "step": 5, "loss": 1.0}\n')
    proc = subprocess.run([sys.executable, "-m", "scoresde", "train", "--run-dir", str(run),
                           "--set", "train.steps=2", "--device", "cpu", "--no-progress"],
                          capture_output=True, text=True, timeout=120, check=False)
    warned = [line for line in proc.stderr.splitlines() if "warning" in line.lower()]
    assert proc.returncode == 0 and len(warned) == 1, proc.stderr
    assert warned[0].startswith("scoresde train: warning: ") and "orphaned" in warned[0]
    assert "UserWarning" not in proc.stderr


def test_sample_grid_and_eps_reach_the_sampler(tmp_path, capsys):
    """``--grid`` / ``--eps`` and ``sample.grid`` / ``sample.eps`` are the same request: both give
    the identical tensor, named after the grid and end time, and it differs from the sampler's
    default grid (so the options reach it); out-of-range values are errors naming the option."""
    run = str(tmp_path / "digits")
    config = str(Path(__file__).resolve().parents[1] / "configs" / "digits_vp.yaml")
    assert _run("train", "--config", config, "--run-dir", run,
                sets=[*TINY_DIGITS, "train.steps=1"]) == 0
    samples = tmp_path / "digits" / "samples"
    assert _run("sample", "--run-dir", run, "--sampler", "unipc", "--steps", "3", "--n", "4") == 0
    assert _run("sample", "--run-dir", run, "--sampler", "unipc", "--steps", "3", "--n", "4",
                "--grid", "karras", "--eps", "0.1") == 0
    flags = torch.load(samples / "unipc_3_karras_eps0.1.pt")
    record = json.loads((samples / "unipc_3_karras_eps0.1.json").read_text())
    assert (record["grid"], record["eps"], record["nfe"]) == ("karras", 0.1, 4)
    assert not torch.equal(flags, torch.load(samples / "unipc_3.pt"))
    out = str(tmp_path / "set.png")
    assert _run("sample", "--run-dir", run, "--sampler", "unipc", "--steps", "3", "--n", "4",
                "--out", out, sets=["sample.grid=karras", "sample.eps=0.1"]) == 0
    assert torch.equal(torch.load(tmp_path / "set.pt"), flags)
    capsys.readouterr()
    assert _run("sample", "--run-dir", run, "--eps", "1.5") == 2
    assert "--eps must be in (0, 1)" in capsys.readouterr().err
    assert _run("sample", "--run-dir", run, sets=["sample.grid=spiral"]) == 2
    assert "'sample.grid' must be one of" in capsys.readouterr().err

"""``scoresde evaluate`` end to end on a tiny digits run: draw, judge, table and JSON; saved
samples judged the same way; and the errors a user meets (bad counts, wrong image shapes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from scoresde import cli
from scoresde.data import from_model_range, load_dataset

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "digits_vp.yaml")
TINY = ["model.channels=8", "model.channel_mult=[1, 2]", "model.attn_resolutions=[4]",
        "train.batch_size=8", "train.steps=2"]


def _run(*args: str, sets: list[str] = ()) -> int:
    argv = [*args, "--device", "cpu", "--no-progress"]
    for item in sets:
        argv += ["--set", item]
    return cli.main(argv)


def test_evaluate_draws_judges_and_writes_json(tmp_path, capsys):
    """A 2-step model draws noise-like images: FD far above the floor of real digits, which is
    itself small; the class shares sum to one. Real held-out digits saved as ``.npy`` levels score
    near the floor (FD within 3x of it: same distribution, only the subset differs)."""
    run, cache = str(tmp_path / "digits"), str(tmp_path / "cache")
    assert _run("train", "--config", CONFIG, "--run-dir", run, sets=TINY) == 0
    assert _run("evaluate", "--checkpoint", run, "--n", "150", "--sampler", "ddim", "--steps", "5",
                "--cache-dir", cache, sets=["sample.batch_size=150"]) == 0  # one block: NFE 5 + 1
    out = capsys.readouterr().out
    assert "| FD |" in out and "data floor" in out
    record = json.loads((tmp_path / "digits" / "evaluate" / "ddim_5_n150.json").read_text())
    assert record["n"] == 150 and record["nfe"] == 6 and abs(sum(record["class_hist"]) - 1) < 1e-9
    assert record["fd"] > 3 * record["fd_floor"] and record["classifier"]["test_accuracy"] > 0.8
    real = load_dataset("digits").test_levels[:150, 0].numpy()
    np.save(tmp_path / "real.npy", real)
    assert _run("evaluate", "--checkpoint", run, "--samples", str(tmp_path / "real.npy"),
                "--cache-dir", cache) == 0
    judged = json.loads((tmp_path / "digits" / "evaluate" / "real.json").read_text())
    assert judged["classifier"]["cached"] and judged["fd"] < 3 * judged["fd_floor"] + 1e-6


def test_evaluate_errors_name_the_problem(tmp_path, capsys):
    run, cache = str(tmp_path / "digits"), str(tmp_path / "cache")
    assert _run("train", "--config", CONFIG, "--run-dir", run, sets=TINY) == 0
    assert _run("evaluate", "--checkpoint", run, "--n", "0") == 2
    assert "--n must be >= 1" in capsys.readouterr().err
    wrong = from_model_range(torch.zeros(160, 1, 9, 9), 17)[:, 0].numpy()
    np.save(tmp_path / "wrong.npy", wrong)
    assert _run("evaluate", "--checkpoint", run, "--samples", str(tmp_path / "wrong.npy"),
                "--cache-dir", cache) == 2
    assert "holds images of shape (1, 9, 9); the data set's are (1, 8, 8)" in capsys.readouterr().err
    assert _run("evaluate", "--checkpoint", run, "--n", "150", sets=["data.name=mnist"]) == 2
    assert "was trained on images of shape (1, 8, 8)" in capsys.readouterr().err
    assert _run("evaluate", "--checkpoint", run, "--n", "20", "--steps", "2",
                "--cache-dir", cache) == 2
    assert "FD needs more samples than feature dimensions" in capsys.readouterr().err

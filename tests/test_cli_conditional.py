"""``scoresde sample --class/--guidance`` and ``scoresde inpaint`` end to end on tiny 8x8-digit
runs, and the errors a user meets (a class on an unconditional model, a class out of range, a
guidance scale without a class, an unknown mask)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scoresde import cli
from scoresde.arguments import GUIDANCE, class_score, requested_classes
from scoresde.build import load_config, load_data
from scoresde.conditional.masks import named_mask
from scoresde.evaluate import class_match

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "digits_vp.yaml")
TINY = ["model.channels=8", "model.channel_mult=[1, 2]", "model.attn_resolutions=[4]",
        "train.batch_size=8", "train.log_every=1", "train.steps=2"]


def _run(*args: str, sets: list[str] = ()) -> int:
    argv = [*args, "--device", "cpu", "--no-progress"]
    for item in sets:
        argv += ["--set", item]
    return cli.main(argv)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cond")
    paths = {"cond": str(root / "cond"), "plain": str(root / "plain")}
    assert _run("train", "--config", CONFIG, "--run-dir", paths["cond"],
                sets=[*TINY, "model.num_classes=10", "train.label_dropout=0.2"]) == 0
    assert _run("train", "--config", CONFIG, "--run-dir", paths["plain"], sets=TINY) == 0
    return paths


def test_sample_class_writes_guided_samples(runs):
    run = Path(runs["cond"])
    assert _run("sample", "--run-dir", str(run), "--sampler", "ddim", "--steps", "3", "--n", "6",
                "--class", "3", "--guidance", "2") == 0
    record = json.loads((run / "samples" / "ddim_3_class3.json").read_text())
    assert record == {"sampler": "ddim", "steps": 3, "n": 6, "nfe": 4, "class": "3", "guidance": 2.0}
    assert torch.load(run / "samples" / "ddim_3_class3.pt").shape == (6, 1, 8, 8)
    assert _run("sample", "--run-dir", str(run), "--sampler", "ddim", "--steps", "3", "--n", "20",
                "--class", "all") == 0
    record = json.loads((run / "samples" / "ddim_3_classall.json").read_text())
    assert record["guidance"] == GUIDANCE and record["nfe"] == 4


def test_every_class_labels_sample_i_with_class_i_mod_k(runs):
    """``--class all`` gives sample ``i`` of a block the label ``i mod K``: the model sees exactly
    those labels (and the null label for the unconditional half of the guided batch)."""
    seen = []

    class Recorder(torch.nn.Module):
        num_classes = 10

        def forward(self, x, t, y=None):
            seen.append(y.clone())
            return torch.zeros_like(x)

    score = class_score(Recorder(), "all", 1.5)
    score(torch.zeros(13, 1, 8, 8), torch.full((13,), 0.5))
    expected = torch.arange(13) % 10
    assert torch.equal(seen[0], torch.cat([expected, torch.full((13,), 10)]))


@pytest.mark.parametrize(("args", "message"), [
    (("--class", "3"), "--class needs a class-conditional model"),
    (("--guidance", "2"), "--guidance needs --class"),
])
def test_sample_class_errors_on_unconditional_model(runs, capsys, args, message):
    assert _run("sample", "--run-dir", runs["plain"], "--n", "2", *args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (("--class", "10"), "--class must lie in [0, 10)"),
    (("--class", "three"), "--class must be a class index in [0, 10) or 'all'"),
    (("--class", "1", "--guidance", "nan"), "scale must be a finite number"),
])
def test_sample_class_errors_on_bad_values(runs, capsys, args, message):
    assert _run("sample", "--run-dir", runs["cond"], "--n", "2", *args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("method", ["replacement", "smc"])
def test_inpaint_keeps_known_pixels_and_writes_the_grid(runs, method):
    run = Path(runs["plain"])
    extra = ("--steps", "4") if method == "smc" else ("--sampler", "em", "--steps", "4")
    assert _run("inpaint", "--checkpoint", str(run), "--mask", "lower-half", "--n", "4",
                "--method", method, *extra) == 0
    out = run / "inpaint" / f"lower-half_{method}"
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["method"] == method and record["n"] == 4 and record["steps"] == 4
    assert record["mse_unknown"] > 0 and record["mse_mean_image"] > 0
    assert out.with_suffix(".png").stat().st_size > 0
    x = torch.load(out.with_suffix(".pt"))
    cfg = load_config(CONFIG, TINY)
    test = load_data(cfg.data).test
    gen = torch.Generator().manual_seed(0)
    named_mask("lower-half", (1, 8, 8), gen)
    original = test[torch.randperm(len(test), generator=gen)[:4]]
    assert torch.equal(x[:, :, :4], original[:, :, :4].clamp(-1, 1))  # the known upper half
    assert not torch.equal(x[:, :, 4:], original[:, :, 4:])


@pytest.mark.parametrize(("args", "message"), [
    (("--mask", "diagonal"), "mask must be one of"),
    (("--mask", "random:1.5"), "mask must be one of"),
    (("--n", "0"), "--n must be >= 1"),
    (("--method", "smc", "--sampler", "em"), "method 'smc' steps with its own kernel"),
])
def test_inpaint_errors(runs, capsys, args, message):
    assert _run("inpaint", "--checkpoint", runs["plain"], *args) == 2
    assert message in capsys.readouterr().err


def test_named_masks():
    lower = named_mask("lower-half", (3, 6, 4))
    assert lower.shape == (1, 6, 4) and lower[0, :3].all() and not lower[0, 3:].any()
    assert named_mask("left-half", (1, 4, 6))[0, :, 3:].all()
    assert not named_mask("upper-half", (1, 4, 4))[0, :2].any()
    assert not named_mask("right-half", (1, 4, 4))[0, :, 2:].any()
    share = named_mask("random:0.3", (1, 100, 100), torch.Generator().manual_seed(0)).double().mean()
    assert abs(share - 0.3) < 4 * (0.3 * 0.7 / 1e4) ** 0.5  # 4 binomial standard errors


def test_evaluate_guided_reports_the_class_match(runs, tmp_path, capsys):
    run = Path(runs["cond"])
    assert _run("evaluate", "--checkpoint", str(run), "--n", "150", "--sampler", "ddim", "--steps", "3",
                "--class", "all", "--guidance", "1", "--cache-dir", str(tmp_path / "cache"),
                sets=["sample.batch_size=150"]) == 0
    assert "assigned to the requested class" in capsys.readouterr().out
    record = json.loads((run / "evaluate" / "ddim_3_n150_classall_w1.json").read_text())
    assert record["class"] == "all" and record["guidance"] == 1.0 and 0 <= record["class_match"] <= 1
    assert "classes" not in record
    assert _run("evaluate", "--checkpoint", str(run), "--samples", str(tmp_path / "x.npy"),
                "--class", "1") == 2
    assert "do not apply to --samples" in capsys.readouterr().err


def test_class_match_counts_the_judges_argmax_against_the_requested_classes():
    """Six samples whose judged class is known: the share is counted exactly."""

    class Judge:
        def outputs(self, x, name):
            return None, torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 1])]

    requested = requested_classes("all", 6, 3, 3)
    assert requested.tolist() == [0, 1, 2, 0, 1, 2]
    assert requested_classes("all", 7, 4, 3).tolist() == [0, 1, 2, 0, 0, 1, 2]
    assert requested_classes("2", 3, 2, 3).tolist() == [2, 2, 2]
    assert class_match(Judge(), torch.zeros(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])) == 5 / 6
    assert class_match(Judge(), torch.zeros(6, 1, 2, 2), torch.tensor([0, 0, 0, 0, 0, 0])) == 2 / 6

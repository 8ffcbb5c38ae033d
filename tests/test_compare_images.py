"""``scoresde compare`` on images: every sampler on one trained image model (a tiny digits run,
``--checkpoint``), judged by the feature-classifier metrics beside the data's floor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scoresde import cli
from scoresde.build import load_config, load_trained
from scoresde.compare.images import draw
from scoresde.compare.plan import IMAGE_DEFAULTS, CompareOptions, plan_runs

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "digits_vp.yaml")
TINY = ["model.channels=8", "model.channel_mult=[1, 2]", "model.attn_resolutions=[4]",
        "train.batch_size=8", "train.steps=2", "sample.batch_size=100"]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A 2-step digits model, then ``compare --checkpoint`` on it: ddim and em at 5 NFE, the
    adaptive ODE at the two image tolerances, 150 images per run (FD needs more than 128)."""
    root = tmp_path_factory.mktemp("compare_images")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCORESDE_CACHE", str(root / "cache"))
        run = root / "digits"
        argv = ["train", "--config", CONFIG, "--run-dir", str(run), "--device", "cpu", "--no-progress"]
        for item in TINY:
            argv += ["--set", item]
        assert cli.main(argv) == 0
        out = root / "compare"
        assert cli.main(["compare", "--checkpoint", str(run), "--run-dir", str(out), "--nfe", "5",
                         "--samplers", "ddim,em,ode", "--n-samples", "150", "--device", "cpu",
                         "--no-progress"]) == 0
    return run, out


def test_image_compare_records_every_run(image_run):
    """One record per sampler and budget with the fields the issue names; an untrained model's
    FD lies far above the real images' floor (which is itself finite and positive)."""
    _, out = image_run
    result = json.loads((out / "results.json").read_text())
    runs = result["runs"]
    assert [(r["sampler"], r["budget"]) for r in runs] == [("ddim", 5), ("em", 5), ("ode", 0), ("ode", 1)]
    fields = {"sde", "sampler", "nfe", "fd", "kd", "kd_se", "confident", "seconds"}
    assert all(fields <= r.keys() for r in runs)
    assert [r["nfe"] for r in runs[:2]] == [5, 5]
    floor = result["floor"]["fd"]
    assert 0 < floor and all(r["fd"] > 3 * floor for r in runs)
    assert result["n"] == 150 and result["checkpoint"].endswith("digits")
    assert result["likelihood"] == []  # images skip the likelihood unless --n-likelihood


def test_image_compare_errors_name_the_problem(image_run, tmp_path, capsys):
    run, _ = image_run
    code = cli.main(["compare", "--checkpoint", str(run), "--config", CONFIG, "--run-dir",
                     str(tmp_path), "--no-progress"])
    assert code == 2 and "not both" in capsys.readouterr().err
    code = cli.main(["compare", "--checkpoint", str(tmp_path / "nowhere"), "--run-dir",
                     str(tmp_path), "--no-progress"])
    assert code != 0 and "nowhere" in capsys.readouterr().err


def test_image_compare_writes_table_and_figures(image_run):
    _, out = image_run
    report = (out / "report.md").read_text()
    assert "| data floor (real images) |" in report and "| ddim (uniform) | 5 |" in report
    for name in ("fd_vs_nfe", "samples_ddim", "samples_em", "samples_ode"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_every_sampler_starts_from_the_same_prior_noise(image_run):
    """A one-step DDIM from t = 1 is a deterministic function of the prior draw, so two runs of
    it agree exactly, while a draw with another seed differs: the noise is the seed's, per block."""
    run, _ = image_run
    cfg = load_config(run / "config.yaml")
    model = load_trained(run, cfg, "cpu")
    opts = CompareOptions(seed=3)
    a, nfe = draw(model, (6, 1, 8, 8), 4, opts, sampler="ddim", steps=1)
    b, _ = draw(model, (6, 1, 8, 8), 4, opts, sampler="ddim", steps=1)
    c, _ = draw(model, (6, 1, 8, 8), 4, CompareOptions(seed=4), sampler="ddim", steps=1)
    assert nfe == 2 and torch.equal(a, b) and not torch.allclose(a, c)


def test_image_plan_gives_stochastic_samplers_more_steps():
    plan = plan_runs("vp", 64, IMAGE_DEFAULTS, ("em", "dpm++2m"))
    budgets = {s: sorted(b for lab, _, b, _, _ in plan if lab == s) for s in ("em", "dpm++2m")}
    assert budgets == {"em": [50, 100, 250], "dpm++2m": [5, 10, 20, 50]}

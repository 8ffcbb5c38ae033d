"""``scoresde compare --quick``: the main job end to end on the embedded 2-D mixture."""

from __future__ import annotations

import json
import math

import pytest

from scoresde import cli
from scoresde.samplers import steps_for


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("compare")
    code = cli.main(["compare", "--quick", "--run-dir", str(run_dir), "--device", "cpu",
                     "--no-progress"])
    assert code == 0
    return run_dir


def test_compare_writes_table_and_figures(quick_run):
    report = (quick_run / "report.md").read_text()
    assert "| sampler | SDE | NFE | sliced W2 trained | sliced W2 exact | ratio |" in report
    assert "PF-ODE NLL (model)" in report
    for name in ("quality_vs_nfe", "samples_pc", "samples_ode", "samples_ancestral"):
        png = quick_run / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_compare_training_dirs_are_run_dirs(quick_run):
    """Each ``train_<sde>/`` holds its config, so ``scoresde sample`` works on it."""
    run = quick_run / "train_vp"
    assert cli.main(["sample", "--run-dir", str(run), "--sampler", "ddim", "--steps", "5", "--n", "8",
                     "--device", "cpu", "--no-progress"]) == 0
    assert (run / "samples" / "ddim_5.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_values_are_sane(quick_run):
    result = json.loads((quick_run / "results.json").read_text())
    runs = result["runs"]
    assert {r["sde"] for r in runs} == {"vp", "subvp", "ve"}
    assert not any(r["sampler"] == "ancestral" and r["sde"] == "subvp" for r in runs)
    assert all(r["nfe"] >= 1 and r["seconds"] > 0 and r["sliced_w2"] > 0 for r in runs)
    assert all(math.isfinite(r["chi2"]) for r in runs if math.isfinite(r["sliced_w2"]))
    for rec in result["likelihood"]:
        # the exact NLL of the held-out points, and the ODE with the exact score close to it
        assert 2.0 < rec["exact"] < 3.5 and abs(rec["oracle_ode"] - rec["exact"]) < 0.05
        assert math.isfinite(rec["model"]) and rec["nfe"] > 0
    assert 0 < min(result["floor_sliced_w2"]) <= max(result["floor_sliced_w2"]) < 1


def test_compare_pairs_every_run_with_the_exact_score(quick_run):
    """Every trained run has an exact-score twin (same sampler, SDE, budget) started from the
    same prior noise; on a fixed grid the twin spends the same NFE, and with the exact score the
    10-NFE multistep solvers land near the truth (sliced W2 below 1, where 300 exact points
    score 0.3-0.4 and a wrong score gives 2 and more, the mixture's spread; Heun's 4 steps on
    the Karras grid do not get there, 2.5-2.9 even with the exact score)."""
    runs = json.loads((quick_run / "results.json").read_text())["runs"]
    keys = {s: {(r["sampler"], r["sde"], r["budget"]) for r in runs if r["score"] == s}
            for s in ("trained", "oracle")}
    assert keys["trained"] == keys["oracle"] and len(keys["trained"]) > 20
    fields = {"sde", "sampler", "nfe", "score", "sliced_w2", "chi2", "max_abs_z", "seconds"}
    assert all(fields <= r.keys() for r in runs)
    for r in runs:
        if r["sampler"] != "ode":
            twin = next(o for o in runs if o["score"] == "oracle"
                        and (o["sampler"], o["sde"], o["budget"]) == (r["sampler"], r["sde"], r["budget"]))
            assert twin["nfe"] == r["nfe"]
    exact = [r["sliced_w2"] for r in runs if r["score"] == "oracle"
             and r["sampler"] in ("dpm++2m", "dpm++3m", "unipc")]
    assert len(exact) == 9 and max(exact) < 1.0


@pytest.mark.parametrize(("sampler", "nfe", "steps"),
                         [("em", 10, 9), ("heun", 11, 5), ("pc", 21, 10), ("ode_rk4", 9, 2)])
def test_steps_for_budget(sampler, nfe, steps):
    assert steps_for(sampler, nfe)[0] == steps


def test_compare_rejects_unknown_sde(tmp_path, capsys):
    code = cli.main(["compare", "--quick", "--sdes", "vp,bogus", "--run-dir", str(tmp_path),
                     "--no-progress"])
    assert code == 2 and "sdes" in capsys.readouterr().err


def test_worker_processes_give_the_serial_results(quick_run, tmp_path):
    """One process per SDE (``--workers 3``, one torch thread each, as the default full run on a
    multi-core CPU) records exactly what the serial run records, wall times aside: the SDEs share
    nothing but the reference, and each is seeded the same wherever it runs."""
    assert cli.main(["compare", "--quick", "--run-dir", str(tmp_path), "--device", "cpu",
                     "--no-progress", "--workers", "3", "--threads", "1"]) == 0
    serial, parallel = (json.loads((d / "results.json").read_text()) for d in (quick_run, tmp_path))
    drop = lambda runs: [{k: v for k, v in r.items() if k != "seconds"} for r in runs]  # noqa: E731
    assert drop(parallel["runs"]) == drop(serial["runs"])
    assert drop(parallel["likelihood"]) == drop(serial["likelihood"])
    assert parallel["floor_sliced_w2"] == serial["floor_sliced_w2"]


def test_negative_workers_is_an_error(tmp_path, capsys):
    assert cli.main(["compare", "--quick", "--run-dir", str(tmp_path), "--workers", "-1"]) == 2
    assert "workers must be >= 0" in capsys.readouterr().err

"""Classifier guidance on images: the noise-conditional classifier (``NoiseClassifier``), its
cross-entropy loss at forward-diffused ``x_t`` (against a hand computation), its training with the
score model's Trainer (learns, resumes bit-identically), ``scoresde train-classifier`` and
``scoresde sample --classifier`` end to end on tiny 8x8-digit runs, and the errors a user meets."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from scoresde import cli
from scoresde.arguments import class_score
from scoresde.build import (
    build_classifier_trainer,
    load_config,
    load_data,
    load_trained,
    load_trained_classifier,
)
from scoresde.data import Dataset
from scoresde.losses import ClassifierLoss
from scoresde.networks import NoiseClassifier
from scoresde.sde import VESDE, VPSDE

ROOT = Path(__file__).resolve().parents[1]
CLASSIFIER = str(ROOT / "configs" / "digits_classifier.yaml")
SCORE = str(ROOT / "configs" / "digits_vp.yaml")
TINY = ["classifier.channels=8", "train.batch_size=8", "train.log_every=1", "train.eval_every=0",
        "train.warmup=0"]


def _run(*args: str, sets: list[str] = ()) -> int:
    argv = [*args, "--device", "cpu", "--no-progress"]
    for item in sets:
        argv += ["--set", item]
    return cli.main(argv)


def _tiny_net(num_classes: int = 4) -> NoiseClassifier:
    torch.manual_seed(0)
    return NoiseClassifier(1, 8, channels=8, channel_mult=(1, 2), attn_resolutions=(4,), groups=4,
                           num_classes=num_classes).double()


def test_network_logits_log_probabilities_and_time_conditioning():
    """``(x, t) -> (batch, K)`` logits; with ``y``, ``log_softmax(logits)[y]``; the logits depend on
    ``t`` (the time embedding reaches the output)."""
    net = _tiny_net()
    x, y = torch.randn(5, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 3, 1, 2, 3])
    logits = net(x, torch.full((5,), 0.3, dtype=torch.float64))
    assert logits.shape == (5, 4)
    expected = logits.log_softmax(1)[torch.arange(5), y]
    torch.testing.assert_close(net(x, 0.3, y), expected, rtol=0, atol=1e-12)
    assert not torch.allclose(net(x, 0.9), logits)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, \*\(1, 8, 8\)\)"):
        net(torch.randn(2, 1, 4, 4, dtype=torch.float64), 0.5)
    with pytest.raises(ValueError, match="y must lie in"):
        net(x, 0.3, 4)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        NoiseClassifier(num_classes=1)


@pytest.mark.parametrize("sde", [VPSDE(0.1, 20.0), VESDE(0.01, 50.0)], ids=["vp", "ve"])
def test_loss_is_cross_entropy_at_forward_diffused_x_t(sde):
    """With the generator seeded, the loss equals ``F.cross_entropy`` of the logits at
    ``x_t = m(t) x_0 + s(t) z`` computed by hand from DESIGN.md's table (VP: ``m = exp(-B/2)``,
    ``s = sqrt(1 - exp(-B))``; VE: ``m = 1``, ``s = σmin (σmax/σmin)^t``), ``t = eps + (T - eps) u``
    and ``z`` drawn in that order."""
    net, eps = _tiny_net(), 1e-3
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=g)
    got = ClassifierLoss(sde, eps)(functools.partial(net, y=y), x0, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    t = eps + (1 - eps) * torch.rand(6, generator=g, dtype=torch.float64)
    z = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    if isinstance(sde, VPSDE):
        b = 0.1 * t + t**2 * (20.0 - 0.1) / 2
        m, s = torch.exp(-b / 2), torch.sqrt(1 - torch.exp(-b))
    else:
        m, s = torch.ones_like(t), 0.01 * (50.0 / 0.01) ** t
    x_t = m.view(-1, 1, 1, 1) * x0 + s.view(-1, 1, 1, 1) * z
    torch.testing.assert_close(got, F.cross_entropy(net(x_t, t), y), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="are the labels bound"):
        ClassifierLoss(sde)(net, x0)


def _trainer(run_dir: Path, steps: int = 6, sets: tuple[str, ...] = ()):
    cfg = load_config(CLASSIFIER, [*TINY, f"train.steps={steps}", "train.ckpt_every=1000", *sets])
    return build_classifier_trainer(cfg, run_dir, "cpu", load_data(cfg.data), progress=False)


def test_resume_is_bit_identical(tmp_path):
    """6 steps straight equal 3 steps, a resume, and 3 more: model, EMA and optimizer state."""
    straight = _trainer(tmp_path / "a")
    straight.fit(6)
    first = _trainer(tmp_path / "b")
    first.fit(3)
    resumed = _trainer(tmp_path / "b")
    assert resumed.maybe_resume() and resumed.step == 3
    resumed.fit(6)
    for key in ("model", "ema"):
        a, b = straight.state_dict()[key], resumed.state_dict()[key]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="another configuration"):
        _trainer(tmp_path / "b", sets=("classifier.channels=16",)).load()


def test_classifier_learns_the_digits_from_noisy_inputs(tmp_path):
    """150 steps (about 3 s) at batch 64: held-out accuracy at t = 0.01 on the 180 test digits
    (measured 0.61) must exceed chance 0.1 by 5 binomial standard deviations of a chance-level
    classifier, sqrt(0.1 * 0.9 / 180) = 0.022: a threshold of 0.21. Seeds fixed by the config."""
    trainer = _trainer(tmp_path, sets=("train.batch_size=64", "train.ema_decay=0.9",
                                       "train.log_every=50"))
    trainer.fit(150)
    data = load_data(load_config(CLASSIFIER).data)
    n = len(data.test)
    with torch.no_grad():
        pred = trainer.ema(data.test, torch.full((n,), 0.01)).argmax(1)
    accuracy = float((pred == data.test_labels).double().mean())
    assert accuracy > 0.1 + 5 * math.sqrt(0.1 * 0.9 / n)


def test_config_errors_name_the_field(tmp_path):
    images = torch.randn(20, 1, 8, 8)
    with pytest.raises(ValueError, match=r"classifier\.num_classes' must be >= 2"):
        load_config(CLASSIFIER, ["classifier.num_classes=1"])
    with pytest.raises(ValueError, match=r"unknown key 'classifier\.width'"):
        load_config(CLASSIFIER, ["classifier.width=3"])
    cfg = load_config(CLASSIFIER, [*TINY, "classifier.num_classes=3"])
    labelled = Dataset(images, images[:4], 17, train_labels=torch.arange(20) % 5)
    with pytest.raises(ValueError, match=r"classifier.num_classes = 3, but the data has labels up to 4"):
        build_classifier_trainer(cfg, tmp_path, "cpu", labelled, progress=False)
    with pytest.raises(ValueError, match="needs labelled data"):
        build_classifier_trainer(cfg, tmp_path, "cpu", Dataset(images, images[:4], 17), progress=False)
    cfg = load_config(CLASSIFIER, [*TINY, "train.label_dropout=0.1"])
    with pytest.raises(ValueError, match=r"train\.label_dropout must be 0 for a classifier"):
        build_classifier_trainer(cfg, tmp_path, "cpu", labelled, progress=False)
    with pytest.raises(ValueError, match="needs image data"):
        build_classifier_trainer(load_config(None), tmp_path, "cpu", labelled, progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("guided")
    paths = {k: str(root / k) for k in ("score", "classifier", "ve_classifier")}
    assert _run("train", "--config", SCORE, "--run-dir", paths["score"],
                sets=["model.channels=8", "train.batch_size=8", "train.steps=2"]) == 0
    assert _run("train-classifier", "--config", CLASSIFIER, "--run-dir", paths["classifier"],
                sets=[*TINY, "train.steps=4"]) == 0
    assert _run("train-classifier", "--config", CLASSIFIER, "--run-dir", paths["ve_classifier"],
                sets=[*TINY, "train.steps=1", "sde.name=ve"]) == 0
    return paths


def test_train_classifier_writes_and_resumes_a_run_directory(runs, capsys):
    run = Path(runs["classifier"])
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "checkpoint.pt", "metrics.jsonl"}
    assert _run("train-classifier", "--run-dir", str(run), sets=["train.steps=6"]) == 0
    assert f"resumed {run} at step 4" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in open(run / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert _run("train-classifier", "--run-dir", str(run), "--fresh") == 2
    assert "--fresh given but" in capsys.readouterr().err


def test_guided_score_adds_the_classifiers_gradient(runs):
    """``class_score`` with a classifier is ``s(x, t) + w ∇_x log_softmax(classifier(x, t))[k]``,
    the gradient taken here by hand."""
    cfg = load_config(str(Path(runs["score"]) / "config.yaml"))
    model = load_trained(Path(runs["score"]), cfg, "cpu")
    classifier, _ = load_trained_classifier(Path(runs["classifier"]), "cpu")
    x, t = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.full((4,), 0.4)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(classifier(xg, t).log_softmax(1)[:, 3].sum(), xg)
    got = class_score(model, "3", 2.5, classifier)(x, t)
    torch.testing.assert_close(got, model(x, t) + 2.5 * grad)


def test_sample_with_classifier_guidance(runs):
    """``sample --checkpoint RUN --classifier CLF --class K``: the record names the classifier and
    the default scale 1; scale 0 reproduces the unguided samples exactly, scale 3 does not."""
    run = Path(runs["score"])
    common = ("sample", "--checkpoint", str(run), "--sampler", "ddim", "--steps", "3", "--n", "6")
    assert _run(*common, "--classifier", runs["classifier"], "--class", "3") == 0
    record = json.loads((run / "samples" / "ddim_3_class3_classifier.json").read_text())
    assert record == {"sampler": "ddim", "steps": 3, "n": 6, "nfe": 4, "class": "3",
                      "guidance": 1.0, "guidance_classifier": runs["classifier"]}
    assert _run(*common) == 0
    plain = torch.load(run / "samples" / "ddim_3.pt")
    for w, same in (("0", True), ("3", False)):
        assert _run(*common, "--classifier", runs["classifier"], "--class", "all", "--guidance", w) == 0
        guided = torch.load(run / "samples" / "ddim_3_classall_classifier.pt")
        assert guided.shape == (6, 1, 8, 8) and torch.equal(guided, plain) == same


@pytest.mark.parametrize(("args", "message"), [
    (("--classifier", "CLF", "--class", "10"), "--class must lie in [0, 10)"),
    (("--classifier", "CLF"), "--classifier needs --class"),
    (("--classifier", "VE", "--class", "1"), "was trained on x_t of another SDE"),
    (("--classifier", "SCORE", "--class", "1"),
     "--classifier SCORE: SCORE/checkpoint.pt is not the classifier"),
    (("--classifier", "MISSING", "--class", "1"), "--classifier MISSING: no checkpoint.pt there"),
])
def test_sample_classifier_errors_name_the_argument(runs, capsys, args, message):
    where = {"CLF": runs["classifier"], "VE": runs["ve_classifier"], "SCORE": runs["score"],
             "MISSING": runs["score"] + "_missing"}
    args = tuple(where.get(a, a) for a in args)
    assert _run("sample", "--checkpoint", runs["score"], "--n", "2", *args) == 2
    for key, path in where.items():
        message = message.replace(key, path)
    assert message in capsys.readouterr().err


def test_classifier_of_another_image_shape_is_refused(runs, tmp_path, capsys):
    """A classifier run whose config names 16x16 images (an IDX set written here) is refused by
    ``--classifier`` with both shapes named."""
    from scoresde.config import save_config

    cfg = load_config(str(Path(runs["classifier"]) / "config.yaml"))
    root = tmp_path / "idx"
    root.mkdir()
    _write_idx(root, 16)
    cfg.data.name, cfg.data.root = "idx", str(root)
    clf = tmp_path / "clf16"
    assert _run("train-classifier", "--config", _saved(cfg, tmp_path, save_config), "--run-dir",
                str(clf), sets=["train.steps=1"]) == 0
    assert _run("sample", "--checkpoint", runs["score"], "--n", "2", "--classifier", str(clf),
                "--class", "1") == 2
    err = capsys.readouterr().err
    assert "trained on images of shape (1, 16, 16); the score model's are (1, 8, 8)" in err


def _saved(cfg, tmp_path: Path, save_config) -> str:
    path = tmp_path / "clf16.yaml"
    save_config(cfg, path)
    return str(path)


def _write_idx(root: Path, side: int) -> None:
    """Tiny uncompressed IDX train/test files: 16 images of ``side x side`` and their labels."""
    import numpy as np

    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (16, side, side), dtype=np.uint8)
        labels = (np.arange(16) % 10).astype(np.uint8)
        header = np.array([2051, 16, side, side], dtype=">i4").tobytes()
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(
            np.array([2049, 16], dtype=">i4").tobytes() + labels.tobytes())

"""Class-conditional models and classifier-free guidance.

On the oracle (``GaussianMixture.class_score_model``: the exact ``∇ log p_t(x | k)`` with the
components as classes, ``k = K`` the unconditional score), classifier-free guidance at scale ``w``
is an identity away from classifier guidance at scale ``1 + w`` with the exact classifier
(``s(x | k) - s(x) = ∇ log p_t(k | x)``), to float64 precision, and at ``w = 0`` it samples
component ``k`` alone. Then the pieces a trained model needs: the U-Net's label embedding with
its null label, ``ScoreModel(x, t, y)``, labelled batches with label dropout in the Trainer
(exact resume included), and the config checks.
"""

from __future__ import annotations

import pytest
import torch
from conftest import SDES
from scipy import stats

import scoresde as ss
from scoresde.build import build_trainer, load_config
from scoresde.data import Dataset, TensorLoader
from scoresde.losses import make_loss
from scoresde.networks import UNet
from scoresde.score import ScoreModel
from scoresde.training import Trainer

TIMES = [1e-5, 1e-3, 0.1, 0.5, 1.0]


def points(n: int = 64, seed: int = 0) -> torch.Tensor:
    return 4 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("sde_name", SDES)
@pytest.mark.parametrize("w", [0.0, 1.0, 3.5])
def test_cfg_is_classifier_guidance_at_one_plus_w(sde_name, w):
    """``(1 + w) s(x | k) - w s(x) = s(x) + (1 + w) ∇ log p_t(k | x)`` pointwise, per-sample
    labels, at every ``t``: both built from the oracle's exact pieces."""
    sde, gm = SDES[sde_name], ss.toy_mixture()
    y = torch.tensor([0, 1, 2, 1] * 16)
    cfg = ss.classifier_free_guidance(gm.class_score_model(sde), y, w)
    cg = ss.classifier_guidance(gm.score_fn(sde), gm.class_logits_fn(sde), y, scale=1 + w)
    x = points()
    for t in TIMES:
        tt = torch.full((64,), t, dtype=torch.float64)
        expected = cg(x, tt)
        torch.testing.assert_close(cfg(x, tt), expected, rtol=1e-9, atol=1e-9 * float(expected.abs().max()))


def test_class_logits_are_the_noisy_responsibilities():
    """``log_softmax`` of ``class_logits_fn`` is ``log p_t(k | x)``: the responsibilities of the
    noisy mixture ``gm.at(t, sde)``, an independent route through ``at``."""
    sde, gm = SDES["vp"], ss.toy_mixture()
    x = points()
    for t in (0.01, 0.4):
        got = gm.class_logits_fn(sde)(x, torch.full((64,), t, dtype=torch.float64)).log_softmax(1)
        torch.testing.assert_close(got.exp(), gm.at(t, sde).responsibilities(x), rtol=1e-9, atol=1e-12)


def test_one_batched_forward_pass_per_evaluation():
    """Each guided evaluation calls the model once, on the doubled batch with labels ``(y, ∅)``;
    at scale 0 once on the batch itself."""
    gm, sde = ss.toy_mixture(), SDES["vp"]
    exact, calls = gm.class_score_model(sde), []

    def model(x, t, y):
        calls.append((x.shape[0], y.tolist()))
        return exact(x, t, y)

    model.num_classes = 3
    x, t = points(4), torch.full((4,), 0.5, dtype=torch.float64)
    ss.classifier_free_guidance(model, 2, 1.5)(x, t)
    ss.classifier_free_guidance(model, torch.tensor([0, 1, 2, 0]), 0.0)(x, t)
    assert calls == [(8, [2, 2, 2, 2, 3, 3, 3, 3]), (4, [0, 1, 2, 0])]


def test_guidance_at_zero_samples_the_component_alone():
    """``w = 0`` with the exact class scores samples component ``k``: n = 2,000 DPM-Solver++
    samples are all assigned to ``k`` (the components are 6+ stds apart, so a wrong assignment
    means a wrong sample) and their mean and std per axis are within the Bonferroni bound
    ``Φ⁻¹(1 - 1e-3 / 8)`` (3.66 for 4 z-scores) of component ``k``'s (``mixture_stats`` against the
    one-component oracle)."""
    sde, gm, k, n = SDES["vp"], ss.toy_mixture(), 1, 2000
    score = ss.classifier_free_guidance(gm.class_score_model(sde), k, 0.0)
    x, _ = ss.sample(score, sde, (n, 2), "dpm++2m", 40, generator=torch.Generator().manual_seed(3),
                     dtype=torch.float64)
    assert bool((gm.assign(x) == k).all())
    st = ss.mixture_stats(gm.component(k), x)
    assert float(st.max_abs_z) <= stats.norm.isf(1e-3 / 8)


def test_guidance_bad_input():
    gm, sde = ss.toy_mixture(), SDES["vp"]
    x, t = points(4), torch.full((4,), 0.5, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs a class-conditional model"):
        ss.classifier_free_guidance(gm.score_fn(sde), 0, 1.0)
    with pytest.raises(ValueError, match="scale must be a finite number"):
        ss.classifier_free_guidance(gm.class_score_model(sde), 0, float("nan"))
    with pytest.raises(ValueError, match=r"y must lie in \[0, 3\)"):
        ss.classifier_free_guidance(gm.class_score_model(sde), 3, 1.0)(x, t)


def test_condition_is_the_joint_density_up_to_a_constant():
    """``condition(mask, v)`` on a 3-D full-covariance mixture: its log density at ``x_u`` minus
    the joint log density at ``(x_u, v)`` is the same constant for every ``x_u`` (Bayes: the
    conditional is the joint over ``p(v)``), to float64 precision."""
    g = torch.Generator().manual_seed(5)
    a = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    gm = ss.GaussianMixture(torch.randn(2, 3, generator=g, dtype=torch.float64),
                            a @ a.transpose(1, 2) + 0.3 * torch.eye(3, dtype=torch.float64), [0.3, 0.7])
    mask, v = torch.tensor([False, True, False]), torch.tensor([0.4], dtype=torch.float64)
    cond = gm.condition(mask, v)
    xu = torch.randn(50, 2, generator=g, dtype=torch.float64)
    joint = torch.stack([xu[:, 0], v.expand(50), xu[:, 1]], 1)
    diff = cond.log_prob(xu) - gm.log_prob(joint)
    assert cond.dim == 2 and float(diff.max() - diff.min()) < 1e-9
    with pytest.raises(ValueError, match="some True"):
        gm.condition([True, True, True], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="one value per known coordinate"):
        gm.condition(mask, [0.0, 1.0])


def test_unet_label_embedding_and_null_label():
    """Labels change the output; no label is the null label ``K``; an unconditional U-Net refuses
    labels; out-of-range labels are named."""
    torch.manual_seed(0)
    net = UNet(1, 8, 8, (1, 2), 1, (), 4, num_classes=3)
    torch.nn.init.normal_(net.label.weight)
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    out = {k: net(x, t, torch.tensor([k, k])) for k in range(4)}
    assert not torch.allclose(out[0], out[1])
    torch.testing.assert_close(net(x, t), out[3], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"y must lie in \[0, 4\) \(3 classes, 3 the null label\)"):
        net(x, t, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="unconditional"):
        UNet(1, 8, 8, (1, 2), 1, (), 4)(x, t, torch.tensor([0, 1]))
    model = ScoreModel(net, ss.VPSDE(), "edm")
    assert model.num_classes == 3
    assert not torch.allclose(model(x, 0.5, 0), model(x, 0.5))
    with pytest.raises(ValueError, match="unconditional"):
        ScoreModel(UNet(1, 8, 8, (1, 2), 1, (), 4), ss.VPSDE(), "edm")(x, 0.5, 1)


def _labelled_trainer(run_dir, label_dropout=0.5, seen=None):
    torch.manual_seed(0)
    net = UNet(1, 8, 8, (1, 2), 1, (), 4, num_classes=3)
    model = ScoreModel(net, ss.VPSDE(), "edm")
    if seen is not None:
        net.register_forward_pre_hook(lambda _m, args: seen.append(args[2].clone()))
    g = torch.Generator().manual_seed(0)
    data, labels = torch.randn(48, 1, 8, 8, generator=g), torch.randint(0, 3, (48,), generator=g)
    return Trainer(model, make_loss("dsm", model.sde), TensorLoader(data, 16, seed=1, labels=labels),
                   run_dir=run_dir, label_dropout=label_dropout, log_every=2, ckpt_every=1000,
                   progress=False), labels


def test_label_dropout_rate_and_labels_follow_their_rows(tmp_path):
    """The network sees each batch's own labels with each replaced by the null label 3 at rate
    ``label_dropout``: over 30 steps x 16 labels the null count is within 4 binomial standard
    deviations of ``0.5 n``, and every label that is not null is its row's label."""
    seen = []
    trainer, labels = _labelled_trainer(tmp_path, 0.5, seen)
    trainer.fit(30)
    y = torch.cat(seen)
    n, nulls = y.numel(), int((y == 3).sum())
    assert abs(nulls - 0.5 * n) <= 4 * (0.25 * n) ** 0.5
    assert set(y.unique().tolist()) <= {0, 1, 2, 3}
    loader = TensorLoader(torch.randn(48, 1, 8, 8), 16, seed=1, labels=labels)
    for step in range(3):
        _, expected = loader.next()
        kept = seen[step] != 3
        assert torch.equal(seen[step][kept], expected[kept])


def test_labelled_resume_is_bit_identical(tmp_path):
    """Label dropout draws from the trainer's checkpointed generator: 6 steps straight equal
    3 steps, a resume, and 3 more (the 48 rows / 16 per batch cross an epoch boundary)."""
    straight, _ = _labelled_trainer(tmp_path / "a")
    straight.fit(6)
    first, _ = _labelled_trainer(tmp_path / "b")
    first.fit(3)
    resumed, _ = _labelled_trainer(tmp_path / "b")
    assert resumed.maybe_resume() and resumed.step == 3
    resumed.fit(6)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_config_checks(tmp_path):
    """``model.num_classes`` needs labels, enough classes and a U-Net; ``train.label_dropout``
    needs a class-conditional model and lies in [0, 1); the loader's labels need one per row."""
    images = torch.randn(20, 1, 8, 8)
    labelled = Dataset(images, images[:4], 256, train_labels=torch.arange(20) % 5)
    base = ["data.name=digits", "model.name=unet", "model.channels=8", "model.groups=4",
            "model.attn_resolutions=[]"]
    cfg = load_config(None, [*base, "model.num_classes=3"])
    with pytest.raises(ValueError, match="the data has labels up to 4"):
        build_trainer(cfg, tmp_path / "a", "cpu", labelled, progress=False)
    with pytest.raises(ValueError, match="needs labelled data"):
        build_trainer(cfg, tmp_path / "b", "cpu", Dataset(images, images[:4], 256), progress=False)
    with pytest.raises(ValueError, match="needs a class-conditional model"):
        build_trainer(load_config(None, [*base, "train.label_dropout=0.1"]), tmp_path / "c", "cpu",
                      labelled, progress=False)
    with pytest.raises(ValueError, match=r"needs model\.name 'unet'"):
        build_trainer(load_config(None, ["model.num_classes=3"]), tmp_path / "d", "cpu", labelled,
                      progress=False)
    with pytest.raises(ValueError, match="label_dropout"):
        load_config(None, ["train.label_dropout=1.0"])
    with pytest.raises(ValueError, match=r"labels must have shape \(20,\)"):
        TensorLoader(images, 4, labels=torch.zeros(3))

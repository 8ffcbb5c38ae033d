"""Configs: every shipped file loads, errors name the key and file, overrides are typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoresde.build import load_config
from scoresde.config import Config, save_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
EXPECTED = {f"{d}_{s}" for d, ss in (("toy2d", ("vp", "subvp", "ve")), ("digits", ("vp", "ve")),
                                     ("mnist", ("vp", "subvp", "ve"))) for s in ss} | {
    "mnist_quick", "mnist_quick_subvp", "mnist_quick_ve", "digits_classifier", "mnist_classifier"}
CLASSIFIER_SDES = {"digits_classifier": "vp", "mnist_classifier": "vp"}


def test_all_configs_ship_and_load():
    assert {p.stem for p in CONFIGS} == EXPECTED
    for path in CONFIGS:
        cfg = load_config(path)
        sde = {"mnist_quick": "vp", **CLASSIFIER_SDES}.get(path.stem, path.stem.split("_")[-1])
        assert cfg.name == path.stem and cfg.sde.name == sde


def test_default_is_toy2d_vp():
    assert load_config(None) == Config()
    assert load_config(Path(CONFIGS[0]).parent / "toy2d_vp.yaml") == Config()


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lrate: 0.1\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: unknown key 'train\.lrate'.*'lr'"):
        load_config(path)
    path.write_text("trian:\n  lr: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown key 'trian\.lr'"):
        load_config(path)


def test_mistyped_value_names_key_and_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("train:\n  steps: many\n")
    with pytest.raises(ValueError, match=r"typo\.yaml: key 'train\.steps' must be of type int"):
        load_config(path)
    path.write_text("model:\n  channel_mult: 2\n")
    with pytest.raises(ValueError, match="must be a list of int"):
        load_config(path)
    path.write_text("sde:\n  name: vpp\n")
    with pytest.raises(ValueError, match=r"'sde\.name' must be one of \('vp', 'subvp', 've'\)"):
        load_config(path)
    for key, bad in [("likelihood.method", "rk4"), ("likelihood.trace", "hutch"),
                     ("sample.sampler", "dpm++")]:
        section, name = key.split(".")
        path.write_text(f"{section}:\n  {name}: {bad}\n")
        with pytest.raises(ValueError, match=rf"'{key}' must be one of"):
            load_config(path)



def test_schema_alone_checks_keys_and_types_not_names(tmp_path):
    """``scoresde.config.load_config`` knows the schema only: without ``choices`` an unknown name
    passes (the builder refuses it later), an unknown key or a wrong type does not."""
    from scoresde import config

    assert config.load_config(None, ["sde.name=bogus"]).sde.name == "bogus"
    with pytest.raises(ValueError, match=r"'sde\.name' must be one of"):
        config.load_config(None, ["sde.name=bogus"], choices={"sde.name": ("vp",)})
    with pytest.raises(ValueError, match="unknown key"):
        config.load_config(None, ["sde.bogus=1"])
    with pytest.raises(ValueError, match="must be of type float"):
        config.load_config(None, ["train.lr=[1]"])

def test_overrides():
    cfg = load_config(None, ["train.lr=1e-3", "model.channel_mult=[1, 2, 2]", "loss.importance=true"])
    assert cfg.train.lr == 1e-3 and cfg.model.channel_mult == [1, 2, 2] and cfg.loss.importance
    with pytest.raises(ValueError, match=r"--set: unknown key 'train\.speed'"):
        load_config(None, ["train.speed=3"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["train.lr"])
    with pytest.raises(ValueError, match="is a section"):
        load_config(None, ["train=3"])


def test_save_round_trip_and_fingerprint(tmp_path):
    cfg = load_config(None, ["train.steps=7", "model.width=32"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    longer = load_config(None, ["train.steps=70", "model.width=32"])
    assert longer.fingerprint() == cfg.fingerprint()  # a longer run may resume
    moved = load_config(None, ["train.steps=7", "model.width=32", "data.root=/elsewhere"])
    assert moved.fingerprint() == cfg.fingerprint()  # so may one whose data files moved
    assert load_config(None, ["model.width=64"]).fingerprint() != cfg.fingerprint()


@pytest.mark.parametrize("override, message", [
    ("train.steps=-5", "'train.steps' must be >= 0; got -5"),
    ("train.warmup=-10", "'train.warmup' must be >= 0; got -10"),
    ("train.batch_size=0", "'train.batch_size' must be >= 1; got 0"),
    ("train.lr=.nan", "'train.lr' must be > 0; got nan"),
    ("likelihood.rtol=-1", "'likelihood.rtol' must be > 0; got -1.0"),
    ("train.ema_decay=1", r"'train.ema_decay' must be in \[0, 1\); got 1.0"),
    ("loss.eps=0", r"'loss.eps' must be in \(0, 1\); got 0.0"),
    ("sde.sigma_min=-0.01", "'sde.sigma_min' must be > 0"),
])
def test_numbers_out_of_range_are_refused_by_name(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_range_edges_are_accepted():
    cfg = load_config(None, ["train.steps=0", "train.grad_clip=0", "train.lr_min_ratio=1",
                             "train.ema_decay=0", "train.eval_every=0"])
    assert cfg.train.steps == 0 and cfg.train.lr_min_ratio == 1.0

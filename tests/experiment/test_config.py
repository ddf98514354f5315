"""Typed configs: validation errors name the bad key and list the valid ones."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from binlearn.experiment import ConfigError, load_config
from binlearn.experiment.config import (
    QUICKSTART,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    default_config,
    read_config_file,
    to_toml,
)
from binlearn.experiment.learners.ste import MLPConfig

ROOT = Path(__file__).resolve().parents[2]


def test_no_config_is_the_local_binary_quickstart():
    config = load_config(None)
    assert config.data.dataset == "digits" and config_to_dict(config)["rule"]["name"] == "local_binary"
    # the configs/ file with its comments is the same experiment, key for key
    assert read_config_file(ROOT / "configs/quickstart/digits-local-binary.toml") == QUICKSTART
    assert load_config(ROOT / "configs/quickstart/digits-local-binary.toml") == config


def test_defaults_are_an_ste_mlp_on_digits():
    config = default_config()
    assert config.data.dataset == "digits" and isinstance(config.model, MLPConfig)
    assert config.model.weights == "binary" and config_to_dict(config)["rule"]["name"] == "ste"


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as info:
        config_from_dict({"data": {"datset": "mnist"}})
    message = str(info.value)
    assert "data.datset" in message and "dataset" in message and "train_size" in message


@pytest.mark.parametrize("raw, match", [
    ({"train": {"epochs": "ten"}}, "train.epochs: expected an integer"),
    ({"train": {"epochs": 2.5}}, "train.epochs: expected an integer"),
    ({"model": {"kind": "mlp", "hidden": 5}}, "model.hidden: expected a list"),
    ({"model": {"kind": "mlp", "hidden": [10, "x"]}}, r"model.hidden\[1\]"),
    ({"model": {"kind": "nope"}}, "unknown model.kind 'nope'; valid kinds:"),
    ({"rule": {"name": "nope"}}, "unknown rule.name 'nope'; valid rules:"),
    ({"model": {"kind": "mlp", "weights": "ternary"}}, "must be one of 'float', 'binary'"),
    ({"rule": {"name": "ste"}, "optimizer": {"lr": -1}}, "optimizer.lr must be > 0"),
    ({"rule": {"name": "ste", "lr": 0.1}}, r"unknown key rule.lr \(it is now optimizer.lr\)"),
    ({"epochs": 3}, "valid top-level keys"),
    ({"data": {"train_size": True}}, "expected"),
])
def test_bad_values_are_one_line_errors(raw, match):
    with pytest.raises(ConfigError, match=match) as info:
        config_from_dict(raw)
    assert "\n" not in str(info.value)


def test_overrides_parse_toml_values():
    raw = apply_overrides({}, ["train.epochs=3", "model.hidden=[32, 16]", "data.dataset=mnist",
                              "data.threshold=median", "seed=7"])
    config = config_from_dict(raw)
    assert config.train.epochs == 3 and config.model.hidden == [32, 16]
    assert config.data.dataset == "mnist" and config.data.threshold == "median" and config.seed == 7
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides({}, ["epochs"])


def test_resolved_config_round_trips_through_toml():
    config = default_config(["train.epochs=4", "model.hidden=[8]"])
    text = to_toml(config_to_dict(config))
    assert config_from_dict(tomllib.loads(text)) == config


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[data\nx=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_every_shipped_config_loads():
    from pathlib import Path

    files = sorted(Path(__file__).parents[2].joinpath("configs").rglob("*.toml"))
    assert files
    for path in files:
        load_config(path)


def test_the_resume_policy_is_declared_on_the_fields():
    """What ``--resume`` may change is read off each field's ``setting(resume=...)``: refused
    unless declared; an evaluation key is free; a key no field declares is refused."""
    from binlearn.experiment import config as settings

    config = load_config(ROOT / "configs/laydevant2021/fc-binary-weights.toml")
    expected = {"train.epochs": settings.RESUME_EPOCHS, "train.device": settings.RESUME_FREE,
                "train.shuffle": settings.RESUME_REFUSED, "data.data_dir": settings.RESUME_FREE,
                "data.dataset": settings.RESUME_REFUSED, "rule.eval_steps": settings.RESUME_FREE,
                "rule.beta": settings.RESUME_REFUSED, "optimizer.gamma": settings.RESUME_NEXT_EPOCH,
                "optimizer.flip_on_equal": settings.RESUME_NEXT_EPOCH,
                "optimizer.name": settings.RESUME_REFUSED, "schedule.anneal_flips": settings.RESUME_SCHEDULE,
                "model.hidden": settings.RESUME_REFUSED, "model.kind": settings.RESUME_REFUSED,
                "name": settings.RESUME_FREE, "seed": settings.RESUME_REFUSED}
    assert {key: settings.resume_policy(key, config) for key in expected} == expected
    with pytest.raises(ValueError, match="resume='sometimes'"):
        settings.setting(1, resume="sometimes")

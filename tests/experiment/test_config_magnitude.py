"""Finite but huge values are refused where the config is read (issue 25, defect 3: X18b,
X20, X35b, X39): every float setting must fit the float32 arithmetic it enters, and the
settings whose arithmetic is narrower declare it (model.gain, rule.robustness)."""

from __future__ import annotations

from pathlib import Path

import pytest

from binlearn.experiment import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
EP = ROOT / "configs/laydevant2021/fc-binary-weights.toml"
LOCAL = ROOT / "configs/quickstart/digits-local-binary.toml"
STE = ROOT / "configs/baselines/digits-ste-binary-mlp.toml"


@pytest.mark.parametrize("config,item,message", [
    (STE, "optimizer.weight_decay=1e300", "optimizer.weight_decay is too large for the float32"),
    (EP, "optimizer.weight_decay=1e300", "optimizer.weight_decay is too large for the float32"),
    (EP, "model.gain=1e300", "model.gain is too large"),
    (EP, "model.gain=1e30", "model.gain must be <= 1e+06"),
    (EP, "optimizer.scale_learning_rate=1e308", "optimizer.scale_learning_rate is too large"),
    (LOCAL, "rule.robustness=1e300", "rule.robustness is too large"),
    (LOCAL, "rule.robustness=1e5", "rule.robustness must be <= 10000"),
    (EP, "optimizer.learning_rates=[1e300]", "optimizer.learning_rates is too large"),
])
def test_huge_values_are_one_line(config, item, message):
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")) as error:
        load_config(config, [item])
    assert "\n" not in str(error.value)


def test_values_within_float32_still_load():
    assert load_config(EP, ["model.gain=1e6"]).model.gain == 1e6
    assert load_config(LOCAL, ["rule.robustness=1e4"]).rule.robustness == 1e4


@pytest.mark.parametrize("items,message", [
    (["model.init_std=1e9"], "saturates the int16 hidden weights"),
    (["model.init_std=20000"], "give at most 10,922"),
    (["model.init_std=1e9", "model.hidden_dtype=\"int32\""], "saturates the int32 hidden weights"),
])
def test_an_initial_spread_that_saturates_the_hidden_weights_is_refused(items, message):
    """Issue 25 (X36b): init_std beyond the hidden dtype's range clipped every weight to ±max and
    the run ended at chance without a word."""
    with pytest.raises(ConfigError, match=message):
        load_config(LOCAL, items)
    wide = load_config(LOCAL, ["model.init_std=20000", "model.hidden_dtype=\"int32\""])
    assert wide.model.init_std == 20000

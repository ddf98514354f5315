"""A run that trains at chance says so (issue 25, X03–X05, X29): one warning line per epoch
naming the setting far from its default, ``"warnings": ["chance"]`` in the epoch's record, and
with ``train.stop_on_collapse`` a one-line error after the epoch's checkpoint."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from binlearn.cli import main
from binlearn.experiment.collapse import CollapseWarning, at_chance, chance_level, culprits
from binlearn.experiment.config import load_config

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
STE_DIGITS = str(CONFIGS / "baselines/digits-ste-binary-mlp.toml")
EP_FC = str(CONFIGS / "laydevant2021/fc-binary-weights.toml")


def test_chance_is_three_binomial_deviations_above_the_commonest_class():
    assert chance_level(torch.tensor([0, 1, 1, 2])) == 0.5
    # 10 balanced classes, 1437 samples: 3 deviations = 0.0237
    assert at_chance(0.12, 0.1, 1437)
    assert not at_chance(0.13, 0.1, 1437)
    assert at_chance(0.0, 0.1, 1437)  # below chance (a net answering one rare class) too


def test_too_few_samples_never_count_as_chance():
    """20 samples of 2 classes: three deviations (0.34) are more than half the way to 1."""
    assert not at_chance(0.5, 0.5, 20)
    assert not at_chance(0.0, 0.0, 1000)  # one class: nothing to guess


@pytest.mark.parametrize(("overrides", "named"), [
    (["optimizer.lr=1e-320"], "optimizer.lr (1e-320)"),
])
def test_the_culprit_is_the_setting_far_from_its_default(overrides, named):
    assert culprits(load_config(STE_DIGITS, overrides)) == [named]


@pytest.mark.parametrize(("overrides", "named"), [
    (["rule.beta=1e6"], "rule.beta (1000000.0)"),
    (["optimizer.bias_learning_rates=[1e30,1e30]"], "optimizer.bias_learning_rates ([1e+30, 1e+30])"),
    ([], None),
])
def test_energy_culprits(overrides, named):
    assert culprits(load_config(EP_FC, overrides)) == ([named] if named else [])


def _train(tmp_path: Path, *overrides: str) -> int:
    return main(["train", STE_DIGITS, "--quiet", "--run-dir", str(tmp_path / "run"),
                 *(arg for key in overrides for arg in ("--set", key))])


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_vanishing_learning_rate_warns_in_one_line_and_in_the_record(tmp_path, capsys):
    with warnings.catch_warnings():  # as outside pytest (which turns warnings into errors)
        warnings.simplefilter("default", CollapseWarning)
        assert _train(tmp_path, "optimizer.lr=1e-320", "train.epochs=1", "model.hidden=[16]") == 0
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if line.startswith("binlearn: warning: ")]
    assert len(warned) == 1, err
    assert "epoch 1: training accuracy" in warned[0] and "at chance" in warned[0]
    assert "check optimizer.lr (1e-320)" in warned[0]
    assert _records(tmp_path / "run")[0]["warnings"] == ["chance"]


def test_the_unmodified_baseline_does_not_warn(tmp_path):
    """A false alarm fails here (the suite only shows CollapseWarning: pyproject.toml)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        assert _train(tmp_path, "train.epochs=3") == 0
    assert all("warnings" not in record for record in _records(tmp_path / "run"))


def test_stop_on_collapse_stops_after_the_checkpoint(tmp_path, capsys):
    code = _train(tmp_path, "optimizer.lr=1e-320", "train.epochs=3", "model.hidden=[16]",
                  "train.stop_on_collapse=true")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("binlearn: error: stopped (train.stop_on_collapse): epoch 1: ")
    assert "the checkpoint of epoch 1 is kept" in err[0]
    run = tmp_path / "run"
    assert (run / "checkpoint.pt").is_file() and len(_records(run)) == 1


EP_QUICK = ['data.dataset="digits"', "model.hidden=[16]", "rule.free_steps=5", "rule.nudged_steps=3",
            "train.epochs=4", "train.threads=1"]


@pytest.mark.parametrize(("overrides", "last_at_chance"), [
    (["rule.beta=1e6"], True),
    ([], False),  # this small, short-relaxed net needs a few epochs to leave chance
])
def test_an_energy_net_nudged_with_a_huge_beta_stays_at_chance(tmp_path, overrides, last_at_chance):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        assert main(["train", EP_FC, "--quiet", "--run-dir", str(tmp_path / "run"),
                     *(arg for key in EP_QUICK + overrides for arg in ("--set", key))]) == 0
    records = _records(tmp_path / "run")
    assert len(records) == 4
    assert ("warnings" in records[-1]) == last_at_chance, [r["train_accuracy"] for r in records]

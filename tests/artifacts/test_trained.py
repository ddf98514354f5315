"""load_trained: one typed entry to a trained run for eval, export and convert, with one-line
errors for a run directory or checkpoint that cannot be used."""

from __future__ import annotations

import pytest
import torch

from binlearn.artifacts import TrainedRun, evaluate_run, load_trained
from binlearn.data import DataError, Dataset, raw_split, split_bounds
from binlearn.experiment import CheckpointError, ConfigError, RunError, train
from binlearn.experiment.config import default_config
from binlearn.experiment.learners.gradient import GradientLearner

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    train(default_config(["model.hidden=[16]", "train.epochs=1", "train.threads=1"]), run, quiet=True)
    return run


def test_load_trained_gives_config_learner_and_data(run_dir):
    trained = load_trained(run_dir, device="cpu", quiet=True)
    assert isinstance(trained, TrainedRun) and isinstance(trained.learner, GradientLearner)
    assert isinstance(trained.data, Dataset) and trained.data.num_classes == 10
    assert trained.epoch == 1 and trained.device == torch.device("cpu")
    assert (trained.model_kind, trained.rule_name) == ("mlp", "ste")
    # the same accuracy eval reports, from the same learner
    correct = int((trained.learner.predict(trained.data.x_test) == trained.data.y_test).sum())
    assert evaluate_run(run_dir, quiet=True)["accuracy"] == correct / len(trained.data.y_test)


def _one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message and all(f in message for f in fragments), message


def test_unusable_run_directories_are_one_line(run_dir, tmp_path):
    with pytest.raises(RunError) as error:
        load_trained(tmp_path / "nothing")
    _one_line(error, "not found")
    with pytest.raises(RunError) as error:
        load_trained(tmp_path)
    _one_line(error, "no config.toml")
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "config.toml").write_text((run_dir / "config.toml").read_text())
    with pytest.raises(RunError) as error:
        load_trained(copy)
    _one_line(error, "no checkpoint.pt")
    (copy / "checkpoint.pt").write_bytes((run_dir / "checkpoint.pt").read_bytes()[:100])
    with pytest.raises(CheckpointError) as error:
        load_trained(copy)
    _one_line(error, "truncated")
    torch.save({"format": 1}, copy / "checkpoint.pt")  # a torch file without binlearn's keys
    with pytest.raises(CheckpointError) as error:
        load_trained(copy)
    _one_line(error, "checkpoint.pt")
    with pytest.raises(ConfigError) as error:
        load_trained(run_dir, overrides=["optimizer.lr=1.0"])
    _one_line(error, "optimizer.lr")


def test_one_split_rule():
    assert split_bounds("digits", 100, None, 0) == (100, 100)
    assert split_bounds("digits", 100, 30, 20) == (30, 80)
    for train_size, validation_size in ((81, 20), (0, 0), (None, 100), (None, -1)):
        with pytest.raises(DataError):
            split_bounds("digits", 100, train_size, validation_size)
    # the raw images of a split are the images load_dataset encodes for it
    from binlearn.data import load_dataset

    data = load_dataset("digits", train_size=500, validation_size=200)
    for split, x in (("train", data.x_train), ("validation", data.x_val), ("test", data.x_test)):
        images, _ = raw_split("digits", split, 500, 200)
        assert torch.equal(torch.from_numpy(images).float().div(255), x), split
    with pytest.raises(DataError, match="valid: test, train, validation"):
        raw_split("digits", "t10k")

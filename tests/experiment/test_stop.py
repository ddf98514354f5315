"""A SIGTERM is never lost: when the exception its handler raises is swallowed (the handler
ran inside a weakref callback or a __del__, where Python only prints "Exception ignored"),
the recorded request stops the training at its next batch, as the raise would have."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

from binlearn import stop
from binlearn.cli import main
from binlearn.experiment import load_config, train

ROOT = Path(__file__).resolve().parents[2]
STE_DIGITS = ROOT / "configs/baselines/digits-ste-binary-mlp.toml"


class _HandlerInDel:
    def __del__(self):
        stop.request_termination()  # raises Terminated, which Python ignores here


@pytest.fixture()
def swallowed(monkeypatch):
    """A termination requested where its exception is lost (as in a signal handler run inside
    a finaliser); the unraisable hook keeps pytest from reporting the ignored exception."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    _HandlerInDel()
    gc.collect()
    assert seen and isinstance(seen[0].exc_value, stop.Terminated)
    yield
    stop.clear()


def test_a_swallowed_termination_still_stops_training_at_the_next_batch(tmp_path, swallowed):
    assert stop.requested()
    with pytest.raises(stop.Terminated):
        train(load_config(STE_DIGITS, ["train.epochs=1"]), tmp_path / "run", quiet=True)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_the_cli_reports_it_as_terminated_and_forgets_it_after(tmp_path, swallowed, capsys):
    code = main(["train", str(STE_DIGITS), "--set", "train.epochs=1", "--run-dir", str(tmp_path / "run"),
                 "--quiet"])
    assert code == 143
    assert "terminated" in capsys.readouterr().err
    assert not stop.requested()  # the next command in this process is not stopped by it

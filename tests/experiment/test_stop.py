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


@pytest.fixture()
def sigterm_handler():
    import signal

    previous = signal.signal(signal.SIGTERM, stop.request_termination)
    yield
    signal.signal(signal.SIGTERM, previous)
    stop.clear()


def _module_signalled_while_imported(tmp_path: Path, monkeypatch, name: str) -> None:
    """A module whose initialisation receives SIGTERM inside a callback from C (``sorted`` calls
    the key), as a C extension's initialisation calling back into Python would."""
    (tmp_path / f"{name}.py").write_text(
        "import os, signal\n"
        "order = sorted([3, 1, 2], key=lambda v: (os.kill(os.getpid(), signal.SIGTERM), v)[1])\n"
        "finished = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_sigterm_during_an_import_lets_the_import_finish_and_stops_at_the_next_check(
        tmp_path, monkeypatch, sigterm_handler):
    import importlib

    _module_signalled_while_imported(tmp_path, monkeypatch, "binlearn_test_signalled_a")
    module = importlib.import_module("binlearn_test_signalled_a")
    assert module.finished and module.order == [1, 2, 3]
    assert stop.requested()
    with pytest.raises(stop.Terminated):
        stop.check()


def test_a_sigterm_outside_an_import_still_raises_at_once(sigterm_handler):
    import os
    import signal

    with pytest.raises(stop.Terminated):
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(10))  # the handler runs between two bytecodes of this frame


def test_a_command_that_returns_after_a_deferred_sigterm_ends_as_terminated(tmp_path, monkeypatch, capsys):
    import argparse
    import importlib

    from binlearn.cli import _main

    _module_signalled_while_imported(tmp_path, monkeypatch, "binlearn_test_signalled_b")
    args = argparse.Namespace(command="export",
                              func=lambda _: bool(importlib.import_module("binlearn_test_signalled_b")) - 1)
    assert _main(args) == 143
    assert capsys.readouterr().err.strip() == "binlearn: terminated"
    assert not stop.requested()

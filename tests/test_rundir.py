"""The run directory as a record that loses nothing and ignores nothing (issue 17): a resumed
checkpoint equal to the uninterrupted one in every tensor and dtype, one process per run
directory, torn metrics lines, stale temporaries, and resume/branch settings that take effect
or are refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from binlearn.experiment import load_config, train
from binlearn.experiment.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

EP_CONFIG = Path(__file__).parents[1] / "configs" / "laydevant2021" / "fc-binary-weights.toml"
EP_QUICK = ["data.dataset=\"digits\"", "model.hidden=[16]", "rule.free_steps=5", "rule.nudged_steps=3",
            "train.threads=1"]
STE_QUICK = ["model.hidden=[16]", "data.batch_size=128", "train.threads=1"]
TIMES = {"train_seconds"}  # wall-clock figures: the only checkpoint entries two runs may differ in


def _run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "binlearn", *args], capture_output=True, text=True,
                          env=os.environ.copy(), cwd=cwd, timeout=300)


def _leaves(state, prefix=""):
    if isinstance(state, dict):
        for key, value in state.items():
            yield from _leaves(value, f"{prefix}/{key}")
    elif isinstance(state, list | tuple):
        for index, value in enumerate(state):
            yield from _leaves(value, f"{prefix}/{index}")
    else:
        yield prefix, state


def _assert_same_checkpoint(first: Path, second: Path) -> None:
    """The whole checkpoint: every tensor equal with its dtype, every other entry equal."""
    pair = [dict(_leaves({k: v for k, v in load_checkpoint(run / "checkpoint.pt").items() if k not in TIMES}))
            for run in (first, second)]
    assert pair[0].keys() == pair[1].keys()
    for key, value in pair[0].items():
        other = pair[1][key]
        if isinstance(value, torch.Tensor):
            assert value.dtype == other.dtype, f"{key}: {value.dtype} != {other.dtype}"
            assert torch.equal(value, other), key
        else:
            assert value == other, key


def test_resumed_bop_checkpoint_is_the_uninterrupted_one_in_every_tensor_and_dtype(tmp_path):
    train(load_config(EP_CONFIG, [*EP_QUICK, "train.epochs=3"]), tmp_path / "full", quiet=True)
    train(load_config(EP_CONFIG, [*EP_QUICK, "train.epochs=2"]), tmp_path / "cut", quiet=True)
    train(load_config(EP_CONFIG, [*EP_QUICK, "train.epochs=3"]), tmp_path / "cut", resume=True, quiet=True)
    resumed = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    flips = [value for key, value in _leaves(resumed) if key.endswith("/flips")]
    assert flips and all(v.dtype == torch.int64 for v in flips)
    _assert_same_checkpoint(tmp_path / "full", tmp_path / "cut")


def test_bop_state_round_trip_keeps_every_dtype():
    from binlearn.rules import Bop

    weight = torch.nn.Parameter(torch.ones(4, 3))
    optimizer = Bop([weight], gamma=0.5, threshold=0.0)
    weight.grad = -torch.ones(4, 3)
    optimizer.step()
    again = Bop([torch.nn.Parameter(torch.ones(4, 3))], gamma=0.5, threshold=0.0)
    again.load_state_dict(optimizer.state_dict())
    state = next(iter(again.state.values()))
    assert state["flips"].dtype == torch.int64 and state["momentum"].dtype == torch.float32
    assert int(state["flips"]) == int(next(iter(optimizer.state.values()))["flips"])

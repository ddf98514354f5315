"""One-line messages that said the wrong thing or nothing (issue 25, item 7): an out-of-memory
line, the per-layer values of a one-layer EP net, and a packed manifest's relaxation steps
bounded as training bounds rule.free_steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from binlearn.binary.packed_dynamics import MAX_STEPS, validate_dynamics
from binlearn.binary.packed_format import PackedFormatError
from binlearn.cli import _out_of_memory
from binlearn.experiment import ConfigError, load_config
from binlearn.experiment.registry import build_learner

ROOT = Path(__file__).resolve().parents[1]


def test_the_out_of_memory_line_says_more():
    line = _out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                                       "751619276 bytes."))
    assert line is not None and "tried to allocate 0.7 GiB more than is available" in line


def test_a_one_layer_ep_net_asks_for_one_value():
    config = load_config(ROOT / "configs/laydevant2021/fc-float.toml",
                         ["model.readout=\"cross_entropy\"", "optimizer.learning_rates=[0.1, 0.2]"])
    with pytest.raises(ConfigError, match=r"has 1 layer of weights \(give 1 value\)"):
        build_learner(config, (1, 28, 28), 10, torch.device("cpu"))


def test_a_manifest_s_relaxation_steps_are_bounded():
    with pytest.raises(PackedFormatError, match=f"dynamics.steps must be <= {MAX_STEPS:,}"):
        validate_dynamics({"kind": "ep_binary_relaxation", "steps": 10**9}, 784, "binary", 10, lambda n: n,
                          lambda *a, **k: None, "m.npz")

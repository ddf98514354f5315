"""The rule protocols of binlearn.rules.base: which rules implement which, and that the
local rules' ``step`` objects are exactly their step functions."""

from __future__ import annotations

import copy

import pytest
import torch

from binlearn.data import load_dataset
from binlearn.rules import BPTT, EP, STE, GradientRule, LocalRule
from binlearn.rules.cpr import CPR, CommitteeParameters, cpr_step, init_committee
from binlearn.rules.local_binary import (
    LocalBinary,
    LocalBinaryParameters,
    init_layers,
    input_signs,
    local_binary_step,
    probability_numerator,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_gradient_rules_and_local_rules():
    for rule in (EP(4, 2, 0.5), BPTT(4), STE()):
        assert isinstance(rule, GradientRule) and not isinstance(rule, LocalRule), rule
    for rule in (LocalBinary(LocalBinaryParameters(group_size=8)), CPR(CommitteeParameters())):
        assert isinstance(rule, LocalRule) and not isinstance(rule, GradientRule), rule


def _digits_signs() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("digits", encoding="binarize")
    return input_signs(data.x_train[:64]), data.y_train[:64]


def test_local_binary_step_object_is_the_step_function():
    x, y = _digits_signs()
    layers = init_layers([64, 32, 16], 10, generator=torch.Generator().manual_seed(0))
    for layer in layers:
        layer.reinforcement_numerator = probability_numerator(0.05, 16)
    twin = copy.deepcopy(layers)
    params = LocalBinaryParameters(group_size=8)
    got = LocalBinary(params).step(layers, x, y, seed=7)
    want = local_binary_step(twin, x, y, params, 7)
    assert got == want and sum(got.updates) > 0
    for a, b in zip(layers, twin, strict=True):
        assert torch.equal(a.hidden, b.hidden)


def test_cpr_step_object_is_the_step_function():
    x, y = _digits_signs()
    machine = init_committee(64, 30, 3, 10, generator=torch.Generator().manual_seed(0))
    twin = copy.deepcopy(machine)
    params = CommitteeParameters()
    got = CPR(params).step(machine, x, y, seed=3)
    assert got == cpr_step(twin, x, y, params, 3)
    assert torch.equal(machine.layer.hidden, twin.layer.hidden)

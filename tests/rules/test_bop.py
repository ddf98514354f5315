"""Bop: the flip rule's semantics, the fused numba kernel against the torch reference,
per-layer γ/threshold, flip counts, α-scaled thresholds and a bit-identical state round trip."""

from __future__ import annotations

import copy

import pytest
import torch

from binlearn.rules import Bop
from binlearn.rules.bop import bop_update, bop_update_reference


def test_flip_rule_semantics():
    weight = torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0])
    momentum = torch.zeros(5)
    gradient = torch.tensor([2.0, -2.0, -2.0, 2.0, 0.5])  # descent wants w ← w − lr·g
    flips = bop_update_reference(weight, momentum, gradient, gamma=0.5, threshold=0.4)
    # m = [1, −1, −1, 1, 0.25]; flip where m·w > 0.4: w=+1 with g>0, w=−1 with g<0
    assert weight.tolist() == [-1.0, 1.0, 1.0, -1.0, 1.0]
    assert int(flips) == 2
    torch.testing.assert_close(momentum, torch.tensor([1.0, -1.0, -1.0, 1.0, 0.25]))
    # m is not reset after a flip: it now disagrees with the new sign, so no flip back
    flips = bop_update_reference(weight, momentum, torch.zeros(5), gamma=0.5, threshold=0.4)
    assert int(flips) == 0


def test_flip_on_equal_and_zero_threshold():
    weight, momentum = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])
    bop_update_reference(weight, momentum, torch.tensor([0.0, 1.0]), 1.0, 0.0)
    assert weight.tolist() == [1.0, -1.0]  # m·w = 0 does not flip with >
    weight, momentum = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])
    bop_update_reference(weight, momentum, torch.tensor([0.0, 1.0]), 1.0, 0.0, flip_on_equal=True)
    assert weight.tolist() == [-1.0, -1.0]


@pytest.mark.parametrize("scale", [None, "layer", "rows"])
@pytest.mark.parametrize("flip_on_equal", [False, True])
def test_numba_kernel_equals_torch_reference(scale, flip_on_equal):
    generator = torch.Generator().manual_seed(0)
    shape = (37, 5, 3, 3)
    weight = torch.where(torch.rand(shape, generator=generator) > 0.5, 1.0, -1.0)
    momentum = torch.randn(shape, generator=generator) * 1e-3
    alpha = {None: None, "layer": torch.tensor([0.3]),
             "rows": torch.rand(37, generator=generator) + 0.1}[scale]
    fast_w, fast_m = weight.clone(), momentum.clone()
    slow_w, slow_m = weight.clone(), momentum.clone()
    for step in range(5):
        gradient = torch.randn(shape, generator=generator) * 1e-2
        fast = bop_update(fast_w, fast_m, gradient, 1e-2, 2e-5, flip_on_equal, alpha)
        slow = bop_update_reference(slow_w, slow_m, gradient, 1e-2, 2e-5, flip_on_equal, alpha)
        assert int(fast) == int(slow), step
        assert int(fast) > 0
        torch.testing.assert_close(fast_m, slow_m, atol=1e-9, rtol=1e-6)
        assert torch.equal(fast_w, slow_w)


def test_optimizer_per_layer_groups_counts_and_state_round_trip():
    torch.manual_seed(0)
    first = torch.nn.Parameter(torch.where(torch.rand(20, 8) > 0.5, 1.0, -1.0), requires_grad=False)
    second = torch.nn.Parameter(torch.where(torch.rand(4, 20) > 0.5, 1.0, -1.0), requires_grad=False)
    optimizer = Bop([{"params": [first], "gamma": 0.5, "threshold": 1e-3},
                     {"params": [second], "gamma": 1e-3, "threshold": 10.0}])
    for _ in range(3):
        first.grad, second.grad = torch.randn(20, 8), torch.randn(4, 20)
        optimizer.step()
    counts = optimizer.flip_counts(reset=False)
    assert counts[0] > 0 and counts[1] == 0  # the second layer's threshold is out of reach
    assert optimizer.flip_counts() == counts and optimizer.flip_counts() == [0, 0]
    assert set(first.unique().tolist()) <= {-1.0, 1.0}

    saved = copy.deepcopy(optimizer.state_dict())  # as through torch.save / torch.load
    clone_first, clone_second = first.detach().clone(), second.detach().clone()
    twin = Bop([{"params": [clone_first], "gamma": 0.5, "threshold": 1e-3},
                {"params": [clone_second], "gamma": 1e-3, "threshold": 10.0}])
    twin.load_state_dict(saved)
    gradient = torch.randn(20, 8)
    first.grad, clone_first.grad = gradient, gradient.clone()
    optimizer.step()
    twin.step()
    assert torch.equal(first, clone_first)


def test_scaled_threshold_compares_the_effective_weight():
    alpha = torch.tensor([0.01])
    weight = torch.nn.Parameter(torch.ones(3), requires_grad=False)
    optimizer = Bop([weight], gamma=1.0, threshold=1e-3, scales=[alpha])
    weight.grad = torch.tensor([0.05, 0.2, -1.0])  # m·w·α = [5e-4, 2e-3, −1e-2]
    optimizer.step()
    assert weight.tolist() == [1.0, -1.0, 1.0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(gamma=0.0), "gamma"), (dict(gamma=1.5), "gamma"), (dict(threshold=-1.0), "threshold"),
])
def test_bad_hyper_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Bop([torch.nn.Parameter(torch.ones(2))], **kwargs)

"""binlearn.energy.plan: every drive strategy the plan can choose reproduces relax_step (which
uses each family's reference strategy) bit for bit, and the plan picks them as documented."""

from __future__ import annotations

import pytest
import torch

from binlearn.binary.schedules import EVEN_ODD_SCHEDULE, SYNCHRONOUS_SCHEDULE, relaxation_schedule
from binlearn.energy import (
    BinaryAccumulator,
    BinaryWeights,
    Nudge,
    StateNudge,
    convolutional,
    fully_connected,
    prepare,
    relax,
    relax_step,
)

pytestmark = pytest.mark.usefixtures("one_thread")

BINARY = dict(neuron=BinaryAccumulator(), weight=BinaryWeights())


def _cases():
    """name -> (network, sparse_products, the plan's strategies)."""
    torch.manual_seed(12)
    return {
        "fc_float": (fully_connected((1, 6, 6), [20, 15], 4, gain=2.0), True, ("fused", "fused", "fused")),
        "fc_binary_ordered": (fully_connected((1, 6, 6), [40, 24], 3, group_size=4, **BINARY), False,
                              ("ordered", "ordered", "ordered")),
        "fc_binary_row_adds": (fully_connected((1, 6, 6), [40, 24], 3, group_size=4, **BINARY), True,
                               ("ordered", "row adds", "row adds")),
        "conv_float": (convolutional((1, 10, 10), [3, 4], 3, kernel_size=3, padding=1, pool=2, gain=2.0),
                       True, ("conv float", "conv float", "fused")),
        "conv_binary_ordered": (convolutional((1, 12, 12), [5, 6], 3, kernel_size=3, padding=[1, 1],
                                              pool=[2, 3], group_size=3, **BINARY), False,
                                ("conv float", "conv ordered", "ordered")),
        "conv_binary_events": (convolutional((1, 12, 12), [5, 6], 3, kernel_size=3, padding=[1, 1],
                                             pool=[2, 3], group_size=3, **BINARY), True,
                               ("conv float", "conv events", "events")),
    }


def test_the_cases_cover_every_strategy():
    names = {name for _, _, strategies in _cases().values() for name in strategies}
    assert names == {"fused", "ordered", "row adds", "events", "conv float", "conv ordered", "conv events"}


@pytest.mark.parametrize("schedule", [SYNCHRONOUS_SCHEDULE, EVEN_ODD_SCHEDULE], ids=lambda s: s.name)
@pytest.mark.parametrize("name", list(_cases()))
def test_every_strategy_equals_relax_step_bit_for_bit(monkeypatch, name, schedule):
    import binlearn.binary.kernels.sparse as sparse_kernels

    monkeypatch.setattr(sparse_kernels, "SPARSE_DENSITY", 1.0)  # row adds whatever the activity
    net, sparse, strategies = _cases()[name]
    torch.manual_seed(13)
    batch = 5
    x = torch.rand(batch, *net.input_shape)
    target = net.output_cost.target(torch.arange(batch) % net.output_cost.num_classes)
    with torch.no_grad():
        context = prepare(net, x, sparse_products=sparse)
        assert context.plan.names == strategies
        assert context.plan.current() == context.plan.strategies
        with torch.enable_grad():
            assert context.plan.current() == context.plan.reference
        free = relax(net, x, net.initial_state(batch), 8, schedule=schedule, context=context)
        stepped = net.initial_state(batch)
        for _ in range(8):
            stepped = relax_step(net, x, stepped, schedule=schedule, context=context)
        for a, b in zip(free.layers, stepped.layers, strict=True):
            assert torch.equal(a, b), "free phase"
        nudge = Nudge(target, 0.6, StateNudge())
        nudged = relax(net, x, free, 4, nudge, schedule, context, step_offset=8)
        stepped = free
        for _ in range(4):
            stepped = relax_step(net, x, stepped, nudge, schedule, context=context, start=free)
        for a, b in zip(nudged.layers, stepped.layers, strict=True):
            assert torch.equal(a, b), "nudged phase"


@pytest.mark.parametrize("name", list(_cases()))
def test_each_strategy_drives_equal_its_reference_on_random_binary_layers(monkeypatch, name):
    """Up- and down-drives one by one, on activations the relaxation did not produce."""
    import binlearn.binary.kernels.sparse as sparse_kernels

    monkeypatch.setattr(sparse_kernels, "SPARSE_DENSITY", 1.0)
    net, sparse, _ = _cases()[name]
    torch.manual_seed(14)
    x = torch.rand(3, *net.input_shape)
    shapes = (net.input_shape, *net.layer_shapes)
    with torch.no_grad():
        plan = prepare(net, x, sparse_products=sparse).plan
        for index in range(1, net.num_layers):
            fast, reference = plan.strategies[index], plan.reference[index]
            for _ in range(3):  # the event trackers keep their products between calls
                bottom = (torch.rand(3, *shapes[index]) < 0.3).float()
                top = (torch.rand(3, *shapes[index + 1]) < 0.3).float()
                up, cache = fast.up(bottom)
                expected_up, expected_cache = reference.up(bottom)
                assert torch.equal(up, expected_up)
                base = torch.rand(3, *shapes[index])
                assert torch.equal(fast.down(top, cache, base), reference.down(top, expected_cache, base))
                out = torch.empty_like(base)
                assert fast.down(top, cache, base, out=out) is out and torch.equal(
                    out, reference.down(top, expected_cache, base))


def test_schedules_are_data_shared_with_the_packed_relaxation():
    from binlearn.binary.packed_dynamics import SCHEDULES as PACKED_SCHEDULES

    assert SYNCHRONOUS_SCHEDULE.groups(3) == ((0, 1, 2),)
    assert EVEN_ODD_SCHEDULE.groups(5) == ((0, 2, 4), (1, 3))
    assert relaxation_schedule("even_odd") is EVEN_ODD_SCHEDULE
    assert relaxation_schedule(SYNCHRONOUS_SCHEDULE) is SYNCHRONOUS_SCHEDULE
    assert PACKED_SCHEDULES == ("synchronous", "even_odd")
    with pytest.raises(ValueError, match="schedule 'random'; valid: synchronous, even_odd"):
        relaxation_schedule("random")
    net = fully_connected((1, 4, 4), [6, 5], 3)
    x = torch.rand(2, 1, 4, 4)
    with torch.no_grad():  # the value and its name relax the same way
        by_value = relax(net, x, net.initial_state(2), 5, schedule=EVEN_ODD_SCHEDULE)
        by_name = relax(net, x, net.initial_state(2), 5, schedule="even_odd")
    for a, b in zip(by_value.layers, by_name.layers, strict=True):
        assert torch.equal(a, b)

"""The convnet relaxation levers: the optional convergence test (``relax_until``, EP's
``free_tolerance``) and the event-driven integer convolutions of binary-activation convnets,
each against the plain relaxation it must reproduce."""

from __future__ import annotations

import pytest
import torch

from binlearn.energy import (
    BinaryAccumulator,
    BinaryWeights,
    Nudge,
    convolutional,
    prepare,
    relax,
    relax_until,
)
from binlearn.rules import EP

pytestmark = pytest.mark.usefixtures("one_thread")


def _float_convnet():
    torch.manual_seed(5)
    return convolutional((1, 10, 10), [3, 4], 3, kernel_size=3, padding=1, pool=2,
                         weight=BinaryWeights())


def _largest_change(before, after) -> float:
    return max(float((a - b).abs().max()) for a, b in zip(before.layers, after.layers, strict=True))


@pytest.mark.parametrize("schedule", ["synchronous", "even_odd"])
def test_relax_until_stops_at_the_first_step_below_the_tolerance_with_the_same_state(schedule):
    net = _float_convnet()
    x = torch.rand(4, *net.input_shape)
    with torch.no_grad():
        context = prepare(net, x)
        start = net.initial_state(4)
        whole, run = relax_until(net, x, start, 60, None, schedule=schedule, context=context)
        assert run == 60
        for a, b in zip(whole.layers, relax(net, x, start, 60, schedule=schedule, context=context).layers,
                        strict=True):
            assert torch.equal(a, b)
        tolerance = 1e-3
        stopped, run = relax_until(net, x, start, 60, tolerance, schedule=schedule, context=context)
        assert 1 < run < 60
        before = relax(net, x, start, run - 1, schedule=schedule, context=context)
        at = relax(net, x, start, run, schedule=schedule, context=context)
        for a, b in zip(stopped.layers, at.layers, strict=True):
            assert torch.equal(a, b)  # the same steps, bit for bit, stopped early
        assert _largest_change(before, at) < tolerance
        for step in range(1, run):  # and no earlier step met the test
            previous = relax(net, x, start, step - 1, schedule=schedule, context=context)
            current = relax(net, x, start, step, schedule=schedule, context=context)
            assert _largest_change(previous, current) >= tolerance
        with pytest.raises(ValueError, match="tolerance must be > 0"):
            relax_until(net, x, start, 5, 0.0)


def test_ep_free_tolerance_runs_fewer_free_steps_and_reports_them():
    net = _float_convnet()
    x = torch.rand(6, *net.input_shape)
    y = torch.arange(6) % 3
    full = EP(80, 4, 0.5).estimate(net, x, y)
    assert full.free_steps == 80
    early = EP(80, 4, 0.5, free_tolerance=1e-4).estimate(net, x, y)
    assert 1 < early.free_steps < 80
    with torch.no_grad():
        reference = relax(net, x, net.initial_state(6), early.free_steps, context=prepare(net, x))
    for a, b in zip(early.free_state.layers, reference.layers, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(early.free_state.layers, full.free_state.layers, strict=True):
        assert torch.allclose(a, b, atol=1e-3)  # close to the T-step free state, not equal
    with pytest.raises(ValueError, match="free_tolerance must be > 0"):
        EP(10, 2, 0.5, free_tolerance=-1.0)


def _binary_convnet(seed: int = 2):
    torch.manual_seed(seed)
    return convolutional((1, 12, 12), [5, 6], 3, kernel_size=3, padding=[1, 1], pool=[2, 3],
                         neuron=BinaryAccumulator(), weight=BinaryWeights(), group_size=3)


@pytest.mark.parametrize("schedule", ["synchronous", "even_odd"])
def test_event_driven_binary_convolutions_equal_the_dense_ordered_relaxation_bit_for_bit(
        monkeypatch, schedule):
    """Free phase and every nudge placement: the event-driven drives (row adds of ±1 and
    float64 α ⊙ s kernels at the units that changed) against relax_step's dense drives."""
    import binlearn.energy.events as events
    from binlearn.energy import DriveNudge, FreeDriveNudge, StateNudge, relax_step

    net = _binary_convnet()
    assert prepare(net, torch.rand(1, *net.input_shape)).plan.ordered == (False, True, True)
    counted: dict[str, list[int]] = {}
    def counting(name, original):
        def counted_kernel(*args):
            counted.setdefault(name, []).append(original(*args))
            return counted[name][-1]
        return counted_kernel

    for name in ("scatter_changes", "scatter_pooled_changes", "scatter_row_changes"):
        monkeypatch.setattr(events, name, counting(name, getattr(events, name)))
    torch.manual_seed(3)
    batch = 5
    x = torch.rand(batch, *net.input_shape)
    target = net.output_cost.target(torch.arange(batch) % 3)
    with torch.no_grad():
        context = prepare(net, x)
        dense_context = prepare(net, x, sparse_products=False)
        assert context.plan.names == ("conv float", "conv events", "events")
        assert dense_context.plan.names == ("conv float", "conv ordered", "ordered")
        free = relax(net, x, net.initial_state(batch), 15, schedule=schedule, context=context)
        # the event paths ran and saw changes: the convolution's up- and down-drives, the dense layer's
        assert all(sum(counted.get(name, [])) > 0 for name in
                   ("scatter_changes", "scatter_pooled_changes", "scatter_row_changes")), counted
        stepped = net.initial_state(batch)
        for _ in range(15):
            stepped = relax_step(net, x, stepped, schedule=schedule, context=dense_context)
        dense = relax(net, x, net.initial_state(batch), 15, schedule=schedule, context=dense_context)
        for a, b, c in zip(free.layers, stepped.layers, dense.layers, strict=True):
            assert torch.equal(a, b) and torch.equal(a, c)
        for placement in (DriveNudge(), StateNudge(), FreeDriveNudge()):
            nudge = Nudge(target, 0.8, placement)
            fused = relax(net, x, free, 6, nudge=nudge, schedule=schedule, context=context)
            stepped = free
            for _ in range(6):
                stepped = relax_step(net, x, stepped, nudge, schedule, context=dense_context, start=free)
            for a, b in zip(fused.layers, stepped.layers, strict=True):
                assert torch.equal(a, b), repr(placement)


def test_ordered_convolution_drives_are_exact_and_a_wide_spread_of_scales_is_refused():
    net = _binary_convnet()
    conv = net.couplings[1]
    torch.manual_seed(4)
    bottom = (torch.rand(3, 5, 6, 6) < 0.4).float()
    integers = conv.ordered_conv(bottom)
    assert torch.equal(integers, integers.round()) and conv.ordered_exact()
    exact = torch.nn.functional.conv2d(bottom.double(), conv.weight.double(), padding=1)
    assert torch.equal(integers.double(), exact)
    conv.scale.data[0] = 2.0 ** -60  # sums of such α no longer fit 53 bits: not ordered
    assert not conv.ordered_exact()
    assert prepare(net, torch.rand(1, *net.input_shape)).plan.ordered == (False, False, True)


def test_event_driven_relaxation_from_a_random_state_and_a_fresh_context_is_bit_identical():
    """Not the free phase's constant start: every sample's own first products (and the dense
    recomputation when many units change at once)."""
    from binlearn.energy import EnergyState, relax_step

    net = _binary_convnet(seed=6)
    torch.manual_seed(8)
    x = torch.rand(4, *net.input_shape)
    start = EnergyState(tuple(torch.rand(4, *shape) for shape in net.layer_shapes))
    with torch.no_grad():
        fused = relax(net, x, start, 7, context=prepare(net, x))
        stepped = start
        for _ in range(7):
            stepped = relax_step(net, x, stepped, context=prepare(net, x, sparse_products=False))
    for a, b in zip(fused.layers, stepped.layers, strict=True):
        assert torch.equal(a, b)


def test_rule_free_tolerance_is_a_bounded_setting_and_its_steps_are_in_the_epoch_metrics():
    from pathlib import Path

    from binlearn.experiment import ConfigError, load_config
    from binlearn.experiment.learner import LocalReducer
    from binlearn.experiment.registry import build_learner

    path = Path(__file__).resolve().parents[2] / "configs" / "laydevant2021" / "conv-mnist-float.toml"
    small = ["model.channels=[3,4]", "rule.free_steps=60", "rule.nudged_steps=2"]
    for bad in ("0", "2.0"):
        with pytest.raises(ConfigError, match="free_tolerance"):
            load_config(path, [*small, f"rule.free_tolerance={bad}"])
    metrics = {}
    for tolerance in (None, 1e-3):
        config = load_config(path, small + ([f"rule.free_tolerance={tolerance}"] if tolerance else []))
        torch.manual_seed(0)
        learner = build_learner(config, (1, 28, 28), 10, torch.device("cpu"))
        x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
        learner.train_step(x, y, LocalReducer())
        learner.predict(x)
        metrics[tolerance] = learner.end_epoch(1, 0.5, LocalReducer())
    assert "free_steps_mean" not in metrics[None]
    assert 1 <= metrics[1e-3]["free_steps_mean"] < 60


def test_integer_derivative_difference_equals_the_dense_weight_derivatives_exactly():
    from binlearn.energy.events import integer_derivative_difference
    from binlearn.energy.plan import ConvOrdered

    net = _binary_convnet(seed=9)
    conv = net.couplings[1]
    ordered = ConvOrdered(conv, conv.weight, conv.bias, 1.0)
    torch.manual_seed(10)
    bottoms = [(torch.rand(3, 5, 6, 6) < 0.5).float() for _ in range(2)]
    bottoms[1] = torch.where(torch.rand(3, 5, 6, 6) < 0.1, 1 - bottoms[0], bottoms[0])  # a few differ
    tops, caches = [], []
    for bottom in bottoms:
        pooled, cache = ordered.up(bottom)
        tops.append((torch.rand_like(pooled) < 0.5).float())
        caches.append(cache)
    weight, bias = integer_derivative_difference(conv, bottoms[0], tops[0], caches[0],
                                                 bottoms[1], tops[1], caches[1])
    dense = [conv.derivatives(b.double(), t.double(), c)
             for b, t, c in zip(bottoms, tops, caches, strict=True)]
    assert torch.equal(weight.double(), dense[0][0] - dense[1][0])
    assert torch.equal(bias.double(), dense[0][1] - dense[1][1])
    assert float(weight.abs().sum()) > 0

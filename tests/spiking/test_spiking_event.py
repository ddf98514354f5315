"""The event-driven (row-add) simulator gives the dense simulator's spikes exactly."""

from __future__ import annotations

import pytest
import torch

from binlearn.experiment.learners.ste import MLPConfig, build_mlp
from binlearn.spiking import simulate
from binlearn.spiking.convert import convert
from binlearn.spiking.event import simulate_events

pytestmark = pytest.mark.usefixtures("one_thread")


def _network():
    torch.manual_seed(0)
    model = build_mlp(MLPConfig(hidden=[96, 80, 64], weights="binary", weight_scale="unit",
                                binary_first_layer=False, binary_last_layer=False), (1, 6, 6), 10)
    x = torch.rand(200, 1, 6, 6)
    model.train()
    model(x)
    for module in model:
        if isinstance(module, torch.nn.BatchNorm1d) and module.affine:
            module.weight.data.uniform_(-1.5, 1.5)  # negative γ: rows with negated ±1 weights
            module.bias.data.normal_(0, 0.3)
    return convert(model.eval(), x, percentile=99.0), x


@pytest.mark.parametrize("delay,init,reset", [(True, "zero", "subtract"), (False, "half", "subtract"),
                                              (False, "zero", "zero")])
def test_event_driven_spikes_equal_dense(delay, init, reset):
    network, x = _network()
    for layer in network.layers[:-1]:
        layer.neuron.reset = reset
    assert [layer.binary for layer in network.layers] == [False, True, True, False]
    dense = simulate(network, x, 24, delay=delay, init=init, backend="dense")
    events = simulate_events(network, x, 24, delay=delay, init=init, mode="rows")
    for a, b in zip(dense.spike_counts, events.spike_counts, strict=True):
        assert torch.equal(a, b)
    assert float(dense.spike_counts[1].mean()) > 0.5  # the deeper layers do spike
    torch.testing.assert_close(dense.outputs, events.outputs, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("delay,init,reset", [(True, "zero", "subtract"), (False, "half", "subtract"),
                                              (False, "zero", "zero"), (True, "half", "zero")])
def test_packed_spikes_and_outputs_equal_dense(delay, init, reset):
    network, x = _network()
    for layer in network.layers[:-1]:
        layer.neuron.reset = reset
    dense = simulate(network, x, 24, delay=delay, init=init, backend="dense")
    packed = simulate_events(network, x, 24, delay=delay, init=init, mode="packed")
    assert len(dense.spike_counts) == len(packed.spike_counts) == 3
    for a, b in zip(dense.spike_counts, packed.spike_counts, strict=True):
        assert torch.equal(a, b)
    assert float(packed.spike_counts[2].mean()) > 0.5  # the last hidden layer does spike
    assert torch.equal(dense.outputs, packed.outputs)  # the same output op: bit for bit


def test_unknown_mode_refused():
    network, x = _network()
    with pytest.raises(ValueError, match="mode="):
        simulate_events(network, x, 4, mode="fast")


def test_simulate_chooses_the_event_driven_backend_where_it_applies():
    """simulate(backend="auto") runs the packed event-driven simulator for a CPU network of ±1
    hidden layers fed a constant current, with the dense loop's spikes and outputs bit for bit;
    the dense loop elsewhere (a Poisson input), and "events" is refused where it cannot run."""
    from binlearn.spiking import Poisson
    from binlearn.spiking.simulate import events_apply

    network, x = _network()
    dense = simulate(network, x, 12, delay=False, backend="dense")
    auto = simulate(network, x, 12, delay=False)
    assert (dense.backend, auto.backend) == ("dense", "events") and events_apply(network)
    assert torch.equal(dense.outputs, auto.outputs)
    for a, b in zip(dense.spike_counts, auto.spike_counts, strict=True):
        assert torch.equal(a, b)
    rate = simulate(network, x, 4, encoding=Poisson(0))
    assert rate.backend == "dense" and not events_apply(network, Poisson(0))
    with pytest.raises(ValueError, match="event-driven simulator runs"):
        simulate(network, x, 4, encoding=Poisson(0), backend="events")
    with pytest.raises(ValueError, match="backend='fast'"):
        simulate(network, x, 4, backend="fast")

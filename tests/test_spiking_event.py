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
    dense = simulate(network, x, 24, delay=delay, init=init)
    events = simulate_events(network, x, 24, delay=delay, init=init)
    for a, b in zip(dense.spike_counts, events.spike_counts, strict=True):
        assert torch.equal(a, b)
    assert float(dense.spike_counts[1].mean()) > 0.5  # the deeper layers do spike
    torch.testing.assert_close(dense.outputs, events.outputs, rtol=1e-5, atol=1e-4)

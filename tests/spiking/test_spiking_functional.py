"""The IF primitives, the network representation and the simulator, on hand-made networks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from binlearn.spiking import (
    IF,
    Direct,
    IFParameters,
    Integrator,
    Poisson,
    SpikingLayer,
    SpikingNetwork,
    if_step,
    initial_membrane,
    simulate,
)


def _run_constant(current: float, threshold: float, steps: int, reset: str = "subtract"):
    membrane = torch.zeros(1)
    params = IFParameters(torch.tensor(threshold), reset)
    spikes = []
    for _ in range(steps):
        membrane, s = if_step(membrane, torch.tensor([current]), params)
        spikes.append(float(s))
    return spikes, float(membrane)


@pytest.mark.parametrize("current,threshold",
                         [(0.375, 1.0), (0.25, 1.0), (0.625, 2.0), (1.0, 1.0), (0.8125, 0.5)])
def test_constant_current_fires_at_the_predicted_rate(current, threshold):
    # v > θ is strict: after t steps the neuron has fired ceil(t·I/θ) − 1 times (t·I > 0),
    # at most once per step. Dyadic currents keep the float arithmetic exact.
    steps = 40
    spikes, _ = _run_constant(current, threshold, steps)
    for t in range(1, steps + 1):
        ratio = t * current / threshold
        expected = min(math.ceil(ratio) - 1, t)
        assert sum(spikes[:t]) == expected, (t, spikes[:t])
    assert abs(sum(spikes) / steps - min(current / threshold, 1.0)) <= 1 / steps + 1e-12


def test_spike_condition_is_strict_at_threshold():
    membrane, spikes = if_step(torch.zeros(3), torch.tensor([0.5, 0.5 + 1e-6, 0.4999]), IFParameters(0.5))
    assert spikes.tolist() == [0.0, 1.0, 0.0]


def test_reset_by_subtraction_keeps_the_residue_and_zero_forgets_it():
    membrane, spikes = if_step(torch.tensor([0.6]), torch.tensor([0.9]), IFParameters(1.0, "subtract"))
    assert float(spikes) == 1.0 and float(membrane) == pytest.approx(0.5)
    membrane, spikes = if_step(torch.tensor([0.6]), torch.tensor([0.9]), IFParameters(1.0, "zero"))
    assert float(spikes) == 1.0 and float(membrane) == 0.0
    # reset to zero loses the residue: a constant 0.625 fires every second step (rate 1/2,
    # not 0.625); subtraction keeps it and fires ceil(100·0.625) − 1 = 62 times in 100 steps
    zero, _ = _run_constant(0.625, 1.0, 100, "zero")
    subtract, residue = _run_constant(0.625, 1.0, 100, "subtract")
    assert sum(zero) == 50 and sum(subtract) == 62
    assert residue == 100 * 0.625 - 62  # the membrane holds exactly what was not spent


def test_per_unit_thresholds_and_half_init():
    threshold = torch.tensor([1.0, 2.0, 4.0])
    membrane = initial_membrane((2, 3), threshold, "half")
    assert membrane[1].tolist() == [0.5, 1.0, 2.0]
    membrane, spikes = if_step(membrane, torch.full((2, 3), 0.75), IFParameters(threshold))
    assert spikes[0].tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="valid: subtract, zero"):
        if_step(membrane, membrane, IFParameters(threshold, "hold"))
    with pytest.raises(ValueError, match="valid: zero, half"):
        initial_membrane((1,), 1.0, "full")


def test_module_matches_the_function():
    neuron = IF(torch.tensor([0.5, 1.0]), reset="zero")
    spikes, membrane = neuron(torch.tensor([[0.6, 0.6]]))
    assert spikes.tolist() == [[1.0, 0.0]] and membrane.tolist() == [[0.0, pytest.approx(0.6)]]


def _two_layer_network(weight_hidden, weight_out, threshold):
    hidden = nn.Linear(weight_hidden.shape[1], weight_hidden.shape[0], bias=False)
    hidden.weight.data = weight_hidden
    out = nn.Linear(weight_out.shape[1], weight_out.shape[0], bias=False)
    out.weight.data = weight_out
    return SpikingNetwork([
        SpikingLayer("fc1", nn.Sequential(hidden), IF(threshold)),
        SpikingLayer("output", nn.Sequential(out), Integrator()),
    ], (weight_hidden.shape[1],))


def test_simulator_delay_and_rates():
    net = _two_layer_network(torch.eye(2), torch.eye(2), torch.ones(2))
    x = torch.tensor([[0.5625, 0.25]])
    one_step = simulate(net, x, 20, delay=False)
    delayed = simulate(net, x, 20, delay=True)
    assert one_step.spike_counts[0].tolist() == [[11.0, 4.0]]  # ceil(20·0.5625) − 1, ceil(20·0.25) − 1
    # the delay shifts the output by one step: its accumulation lags the one-step run by one
    assert torch.equal(delayed.outputs[1:], one_step.outputs[:-1])
    assert delayed.outputs[0].abs().sum() == 0
    assert one_step.input_spikes is None


def test_simulator_rejects_nonbinary_binary_layers_and_bad_steps():
    with pytest.raises(ValueError, match="±1"):
        SpikingLayer("fc", nn.Sequential(nn.Linear(2, 2, bias=False)), IF(), binary=True)
    net = _two_layer_network(torch.eye(2), torch.eye(2), torch.ones(2))
    with pytest.raises(ValueError, match="steps"):
        simulate(net, torch.zeros(1, 2), 0)
    with pytest.raises(ValueError, match="last integrates"):
        SpikingNetwork([net.layers[1], net.layers[0]], (2,))


def test_poisson_encoding_rate_and_seed():
    x = torch.full((4, 1000), 0.3)
    a = torch.stack(list(Poisson(seed=3).steps(x, 50)))
    b = torch.stack(list(Poisson(seed=3).steps(x, 50)))
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(a.mean()) - 0.3) < 0.01
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        next(Poisson().steps(-x, 1))
    assert list(Direct().steps(x, 2))[1] is x

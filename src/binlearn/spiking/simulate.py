"""Batched time-stepped simulation of a :class:`~binlearn.spiking.network.SpikingNetwork`.

For t = 1..T and every layer l (input x_t from the encoding)::

    delay = False ("one-step"):  in_l(t) = s_{l−1}(t)      all layers in the same step
    delay = True  (default):     in_l(t) = s_{l−1}(t − 1)  one step per layer, s(0) = 0
    I_l(t) = synapse_l(in_l(t)) + bias_l
    (s_l(t), v_l) = IF_l(I_l(t), v_l)    — the output layer integrates: v_L += I_L(t)

with v_l(0) = 0 (``init="zero"``) or θ_l/2 (``init="half"``). The prediction after step t is
argmax v_L(t). With the delay, the output first sees a hidden spike at step L (the number
of layers); step counts are reported with the setting that produced them.

Runs on the network's device (CPU or CUDA), in float32, without autograd; the direct
encoding's first current is computed once per batch (it is constant).
"""

from __future__ import annotations

import torch

from binlearn.spiking.encode import Direct, Poisson
from binlearn.spiking.event import simulate_events, supports_events
from binlearn.spiking.functional import check_init, if_step
from binlearn.spiking.network import SimulationResult, SpikingNetwork
from binlearn.spiking.neurons import IF

__all__ = ["SimulationResult", "simulate", "BACKENDS", "events_apply"]

BACKENDS = ("auto", "dense", "events")
"""``simulate(backend=...)``: choose, the dense float32 loop, or the event-driven simulator."""


def events_apply(network: SpikingNetwork, encoding: Direct | Poisson | None = None) -> bool:
    """Whether the event-driven simulator (:func:`~binlearn.spiking.event.simulate_events`,
    packed spikes) runs ``network`` with ``encoding``: a CPU network of a first layer, ±1
    hidden layers and an output, with Flatten/Linear synapses and one reset, fed the direct
    encoding (a constant current)."""
    if encoding is not None and not encoding.constant:
        return False
    if network.device.type != "cpu" or not supports_events(network):
        return False
    return len({layer.neuron.reset for layer in list(network)[:-1] if isinstance(layer.neuron, IF)}) == 1


@torch.no_grad()
def simulate(network: SpikingNetwork, x: torch.Tensor, steps: int, *,
             encoding: Direct | Poisson | None = None, delay: bool = True, init: str = "zero",
             backend: str = "auto") -> SimulationResult:
    """Run ``network`` on a batch for ``steps`` time steps (see the module docstring).

    Args:
        network: the converted network (on the device to run on).
        x: (batch, *network.input_shape) images (moved to the network's device).
        steps: T ≥ 1.
        encoding: :class:`~binlearn.spiking.encode.Direct` (default) or ``Poisson(seed)``.
        delay: one step of delay per layer (True) or all layers in the same step (False).
        init: membrane at t = 0: ``"zero"`` | ``"half"`` (θ/2) — the output integrator
            always starts at 0.
        backend: ``"auto"`` (default: the event-driven simulator where :func:`events_apply`,
            else the dense loop), ``"dense"`` (the loop below, the reference) or ``"events"``
            (refused where it does not apply). Both give the same spikes and, for the
            event-driven ``"packed"`` path, the same outputs bit for bit (tested).
    Returns:
        :class:`SimulationResult` (its ``backend`` says which ran).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; valid: {', '.join(BACKENDS)}")
    check_init(init)
    events = backend != "dense" and events_apply(network, encoding)
    if backend == "events" and not events:
        raise ValueError("the event-driven simulator runs CPU networks of a first layer, ±1 hidden "
                         "layers and an output (Flatten/Linear synapses, one reset) with the direct "
                         "encoding")
    if events:
        return simulate_events(network, x.to(network.device), steps, delay=delay, init=init)
    encoding = encoding or Direct()
    device = network.device
    x = x.to(device=device, dtype=torch.float32)
    batch = x.shape[0]
    layers = list(network)
    shapes = network.shapes()
    membranes = [layer.neuron.initial_state((batch, *shape), init if layer.spiking else "zero")
                 .to(device) for layer, shape in zip(layers, shapes[1:], strict=True)]
    counts = [torch.zeros((batch, *shape), device=device) for layer, shape
              in zip(layers, shapes[1:], strict=True) if layer.spiking]
    previous = [torch.zeros((batch, *shape), device=device) for shape in shapes[1:-1]]
    input_spikes = None if encoding.constant else torch.zeros_like(x)
    first_current = layers[0].current(x) if encoding.constant else None
    outputs = []
    for step_input in encoding.steps(x, steps):
        if input_spikes is not None:
            input_spikes += step_input
        emitted: list[torch.Tensor] = []
        for index, layer in enumerate(layers):
            if index == 0:
                current = first_current if first_current is not None else layer.current(step_input)
            else:
                current = layer.current(previous[index - 1] if delay else emitted[-1])
            if isinstance(layer.neuron, IF):  # layer.spiking
                membranes[index], spikes = if_step(membranes[index], current, layer.neuron.if_parameters())
                counts[index] += spikes
                emitted.append(spikes)
            else:
                membranes[index] = membranes[index] + current
        previous = emitted
        outputs.append(membranes[-1].clone())
    return SimulationResult(torch.stack(outputs), counts, input_spikes)

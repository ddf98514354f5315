"""The converted-network representation: a feed-forward stack of spiking layers.

A :class:`SpikingLayer` is::

    I_t = synapse(x_t) + bias          synaptic current of step t (x_t: the input spikes,
                                       or the encoded image for the first layer)
    (s_t, v) = neuron(I_t, v)          IF neurons (spikes 0/1, fire when v > θ) — or, for
                                       the output layer, a non-spiking Integrator (v ← v + I)

* ``synapse`` is an ``nn.Sequential`` of *linear* ops only, no bias, applied in order:
  ``nn.Flatten``, ``nn.Linear(bias=False)``, ``nn.Conv2d(bias=False)``, ``nn.AvgPool2d``.
  The first weighted op carries the layer's weights. For a **binary** layer
  (``binary = True``) those weights are exactly ±1 (a source's α·sign(w) with α, its batch
  norm and the threshold-balancing scale moved into ``bias`` and θ): the current is then an
  integer sum of ±1 rows over the input spikes, which the row-add and XNOR-popcount kernels
  compute exactly.
* ``bias``: a constant current per output unit added every step, or None. Shape (features,)
  for a dense layer, (channels, 1, 1) for a convolutional one (broadcast over the map).
* ``neuron``: :class:`~binlearn.spiking.neurons.IF` with one threshold θ per output unit
  (same shapes as ``bias``) and the reset (subtract | zero); or
  :class:`~binlearn.spiking.neurons.Integrator` for the output layer.
* ``spike_value``: the source activation one spike stands for (λ of the layer: the
  balancing percentile, QCFS's trained λ, 1 for a Heaviside unit) — the rate of a unit
  times ``spike_value`` approximates the source's activation. Used for checks and plots;
  the simulation never reads it (it is already folded into the next layer's weights/θ).

A :class:`SpikingNetwork` is the list of layers (only the last one is an Integrator) and the
input shape of one sample (no batch axis). The prediction after t steps is the argmax of
the last layer's accumulated current. Simulation options that are not properties of the
network (layer delay, membrane init, encoding, T) are arguments of
:func:`binlearn.spiking.simulate.simulate`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import nn

from binlearn.spiking.neurons import IF, Integrator

__all__ = ["SpikingLayer", "SpikingNetwork", "SYNAPSE_OPS", "weighted_op", "SimulationResult"]

SYNAPSE_OPS = (nn.Flatten, nn.Linear, nn.Conv2d, nn.AvgPool2d)


def weighted_op(synapse: nn.Sequential) -> nn.Linear | nn.Conv2d:
    """The layer's weighted op (its Linear or Conv2d)."""
    for op in synapse:
        if isinstance(op, nn.Linear | nn.Conv2d):
            return op
    raise ValueError("a spiking layer's synapse needs one Linear or Conv2d")


class SpikingLayer(nn.Module):
    """One layer: synapse ops + constant bias current + IF neurons (or the output Integrator).

    Args:
        name: a short name for reports ("fc1", "conv2", "output").
        synapse: ``nn.Sequential`` of Flatten / Linear(bias=False) / Conv2d(bias=False) /
            AvgPool2d, with exactly one weighted op.
        neuron: ``IF(threshold, reset)`` or ``Integrator()``.
        bias: constant current per output unit, (features,) or (channels, 1, 1), or None.
        binary: the weighted op's weights are ±1 (checked).
        spike_value: the source activation one spike stands for (see the module docstring).
    """

    synapse: nn.Sequential
    neuron: IF | Integrator
    bias: torch.Tensor | None  # a buffer

    def __init__(self, name: str, synapse: nn.Sequential, neuron: IF | Integrator, *,
                 bias: torch.Tensor | None = None, binary: bool = False, spike_value: float = 1.0) -> None:
        super().__init__()
        for op in synapse:
            if not isinstance(op, SYNAPSE_OPS):
                raise ValueError(f"{type(op).__name__} is not a synapse op; valid: "
                                 + ", ".join(o.__name__ for o in SYNAPSE_OPS))
            if isinstance(op, nn.Linear | nn.Conv2d) and op.bias is not None:
                raise ValueError("synapse ops carry no bias: give it as the layer's bias")
        weights = weighted_op(synapse).weight
        if binary and not bool(((weights == 1) | (weights == -1)).all()):
            raise ValueError(f"layer {name}: binary=True needs ±1 weights")
        self.name, self.synapse, self.neuron = name, synapse, neuron
        self.binary, self.spike_value = binary, float(spike_value)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        for parameter in self.parameters():
            parameter.requires_grad_(False)  # a converted network is not trained

    @property
    def spiking(self) -> bool:
        return self.neuron.spiking

    def current(self, inputs: torch.Tensor) -> torch.Tensor:
        """I = synapse(inputs) + bias; inputs: (batch, *input_shape) → (batch, *units)."""
        current = self.synapse(inputs)
        return current if self.bias is None else current + self.bias

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one sample's units (no batch axis)."""
        with torch.no_grad():
            probe = torch.zeros((1, *input_shape), device=weighted_op(self.synapse).weight.device)
            return tuple(self.synapse(probe).shape[1:])

    def extra_repr(self) -> str:
        return f"name={self.name!r}, binary={self.binary}, spike_value={self.spike_value:.4g}"


class SpikingNetwork(nn.Module):
    """A feed-forward spiking network: hidden :class:`SpikingLayer` s with IF neurons, then
    one output layer with an Integrator.

    Args:
        layers: the layers in order; every one but the last spikes, the last integrates.
        input_shape: one sample's shape, e.g. (1, 28, 28) (no batch axis).
    """

    layers: nn.ModuleList

    def __init__(self, layers: list[SpikingLayer], input_shape: tuple[int, ...]) -> None:
        super().__init__()
        if not layers:
            raise ValueError("a spiking network needs at least one layer")
        if any(not layer.spiking for layer in layers[:-1]) or layers[-1].spiking:
            raise ValueError("every layer but the last must spike (IF); the last integrates")
        self.layers = nn.ModuleList(layers)
        self.input_shape = tuple(input_shape)

    def __iter__(self) -> Iterator[SpikingLayer]:
        return iter(self.layers)  # type: ignore[arg-type]  # ModuleList holds SpikingLayers

    def __len__(self) -> int:
        return len(self.layers)

    def shapes(self) -> list[tuple[int, ...]]:
        """Each layer's unit shape (no batch axis), input first: [input, layer 1, ..., output]."""
        shapes = [self.input_shape]
        for layer in self:
            shapes.append(layer.output_shape(shapes[-1]))
        return shapes

    def units(self) -> list[int]:
        return [math.prod(shape) for shape in self.shapes()[1:]]

    @property
    def device(self) -> torch.device:
        return weighted_op(next(iter(self)).synapse).weight.device


class SimulationResult(NamedTuple):
    """What a simulation recorded.

    Fields:
        outputs: (T, batch, classes), the output layer's accumulated current after each step.
        spike_counts: one tensor per spiking layer, (batch, *units): spikes over the T steps.
        input_spikes: (batch, *input_shape) input spikes over the T steps (rate coding), or
            None for the direct encoding (the input is a current, not spikes).
        backend: which simulator ran: ``"dense"`` (float32 products over all inputs each
            step) or ``"events"`` (packed spikes and XNOR-popcounts, :mod:`binlearn.spiking.event`).
    """

    outputs: torch.Tensor
    spike_counts: list[torch.Tensor]
    input_spikes: torch.Tensor | None
    backend: str = "dense"

    def predictions(self) -> torch.Tensor:
        """(T, batch): argmax of the accumulated output after each step."""
        return self.outputs.argmax(-1)

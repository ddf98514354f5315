"""A network trained by the local binary rule (Colombo et al. 2024) as a spiking network.

The source (:mod:`binlearn.rules.local_binary`) is a stack of ±1 sign layers: layer l computes
``pre = W_l x`` with ``W_l = sign(H_l)`` (sign(0) = +1) on ±1 inputs x and emits
``sign(pre)`` (+1 when pre ≥ 0); the prediction is the argmax of the last layer's class scores
``P x_L``. With 0/1 spikes ``b = (x + 1) / 2`` in place of ±1 values,
``pre = 2 (W b) − S`` with ``S = W·1`` (each row's sum), so the unit is +1 iff
``W b ≥ S / 2`` iff ``W b > ⌈S / 2⌉ − 1`` — an integrate-and-fire neuron with ±1 synapses and
the integer threshold ``θ = ⌈S/2⌉ − 1`` (firing when v > θ, as every IF neuron of
:mod:`binlearn.spiking` does), exactly the unit at T = 1 with membranes starting at 0 and no
layer delay. The class scores become a non-spiking Integrator with the ±1 synapses P and the
constant current ``−S_P / 2``: its value after t steps is t·score/2 when the spikes repeat the
source's activations, so its argmax (first index on ties, as the source's) is the source's
prediction. The input spikes are the data's bits (x > 0), every step.

For T > 1 the IF dynamics are the network's own: an off unit with 0 < W b ≤ θ charges up and
fires at a rate of about W b / θ, so the accuracy after T steps measures how far the IF
network drifts from the binary one (``binlearn convert`` reports it per step).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from binlearn.nn.fold import FoldedLayer, sign_layer, unit_signs
from binlearn.spiking.network import SpikingLayer, SpikingNetwork
from binlearn.spiking.neurons import IF, Integrator

__all__ = ["convert_sign_mlp", "input_spikes", "if_threshold"]


def if_threshold(layer: FoldedLayer) -> torch.Tensor:
    """The IF threshold θ (fires when v > θ) of a folded layer fed 0/1 spikes, exact at T = 1.

    ``reads = "binary"``: m = W b ≥ t ⟺ W b > t − 1. ``reads = "signed"`` (±1 inputs given as
    spikes b = (x + 1)/2): m = 2 W b − S ≥ t ⟺ W b ≥ (t + S)/2 ⟺ W b > ⌈(t + S)/2⌉ − 1, with S
    each row's sum. A unit that fires below its threshold (flip) has no IF form here.
    """
    if layer.flip.any():
        raise ValueError("a unit that is on below its threshold (flip) has no IF form with these synapses")
    threshold = torch.from_numpy(layer.threshold.astype(np.float32))
    if layer.reads == "binary":
        return threshold - 1
    return torch.ceil((threshold + layer.signs.sum(1)) / 2) - 1


def _linear(weights: torch.Tensor, flatten: bool) -> nn.Sequential:
    op = nn.Linear(weights.shape[1], weights.shape[0], bias=False)
    with torch.no_grad():
        op.weight.copy_(weights)
    return nn.Sequential(nn.Flatten(), op) if flatten else nn.Sequential(op)


def convert_sign_mlp(hidden: list[torch.Tensor], classifier: torch.Tensor, input_shape: tuple[int, ...], *,
                     reset: str = "subtract") -> SpikingNetwork:
    """The spiking network of a ±1 sign MLP such as a local-binary-rule model (module docstring).

    Args:
        hidden: each layer's weights, (out, in), input layer first; their signs are the
            synapses (≥ 0 → +1: the integer hidden weights H of the local rule, or ±1 weights).
        classifier: (classes, last width) ±1 class-score weights of the last layer.
        input_shape: one sample's shape as the data gives it, e.g. (64,) or (1, 28, 28);
            its number of elements is the first layer's fan-in.
        reset: the IF neurons' reset, ``"subtract"`` | ``"zero"``.
    Returns:
        the spiking network on the CPU: one IF layer per hidden layer, then the classifier as
        the output Integrator.
    """
    if not hidden:
        raise ValueError("a sign MLP needs at least one layer")
    features = 1
    for size in input_shape:
        features *= int(size)
    if features != hidden[0].shape[1]:
        raise ValueError(f"input shape {tuple(input_shape)} has {features} features; the first layer "
                         f"takes {hidden[0].shape[1]}")
    for before, after in zip(hidden[:-1], hidden[1:], strict=True):
        if after.shape[1] != before.shape[0]:
            raise ValueError(f"a layer of {before.shape[0]} units feeds one of fan-in {after.shape[1]}")
    if classifier.shape[1] != hidden[-1].shape[0]:
        raise ValueError(f"the classifier's fan-in {classifier.shape[1]} is not the last width "
                         f"{hidden[-1].shape[0]}")
    spiking: list[SpikingLayer] = []
    for index, weights in enumerate(hidden):
        folded = sign_layer(weights)  # bit = (x · sign(H) >= 0) on ±1 inputs
        spiking.append(SpikingLayer(f"fc{index + 1}", _linear(folded.signs, index == 0),
                                    IF(if_threshold(folded), reset), binary=True))
    scores = unit_signs(classifier)
    spiking.append(SpikingLayer("output", _linear(scores, len(hidden) == 0), Integrator(),
                                bias=-scores.sum(1) / 2, binary=True))
    return SpikingNetwork(spiking, tuple(int(s) for s in input_shape))


def input_spikes(x: torch.Tensor) -> torch.Tensor:
    """The input spikes of a sample batch: 1.0 where the data's bit is on (x > 0: a 1 of
    "binarize"/"thermometer" data, a +1 of signed data), 0.0 elsewhere — the rule's own reading
    of its inputs (:func:`binlearn.rules.local_binary.input_signs`)."""
    return (x > 0).float()

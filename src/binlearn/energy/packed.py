"""Conversion of a binary energy network's free phase to the packed format's ``dynamics``
section (:mod:`binlearn.binary.packed_dynamics`): the packed signs, α and bias of every
coupling, the number of steps, the schedule, the neuron and the output groups.

    s_l ← clamp(γ·(α_l·n_l + b_l + α_{l+1}·n'_l) + (1 − γ)·s_l, 0, 1),    a_l = [s_l > θ]

with n, n' exact popcount products; only networks whose relaxation the packed engine
reproduces bit for bit are converted (:func:`unpackable` says why not, in one line).
"""

from __future__ import annotations

import math
from typing import cast

import torch

from binlearn.binary.packed_dynamics import PackedCoupling, PackedDynamics
from binlearn.binary.packed_manifest import PackedFormatError
from binlearn.binary.packing import pack_signs, to_numpy_words
from binlearn.energy.costs import SquaredError
from binlearn.energy.couplings import Dense
from binlearn.energy.network import EnergyNet
from binlearn.energy.neurons import BinaryAccumulator

__all__ = ["energy_to_packed", "unpackable"]


def energy_to_packed(net: EnergyNet, steps: int, schedule: str, signed_inputs: bool) -> PackedDynamics:
    """The free phase of ``net`` as a packed ``ep_binary_relaxation``.

    Args:
        net: a fully connected EnergyNet with binary (±1·α) couplings, binary accumulator
            neurons (one kind) and output groups (any device).
        steps: free-phase steps T of inference (the run's eval steps).
        schedule: "synchronous" | "even_odd", as the network is relaxed.
        signed_inputs: the first coupling reads ±1 inputs (data.signed) rather than {0, 1}.
    Raises:
        PackedFormatError: one line, when the packed relaxation cannot reproduce ``net``'s.
    """
    problem = unpackable(net)
    if problem:
        raise PackedFormatError(problem)
    couplings = []
    for index, coupling in enumerate(cast(list[Dense], net.couplings)):  # checked by unpackable
        reads = ("signed" if signed_inputs else "binary") if index == 0 else "binary"
        weight = coupling.weight.detach().cpu()
        scale = cast(torch.Tensor, coupling.scale)  # binary weights have one
        couplings.append(PackedCoupling(
            f"coupling{index}", to_numpy_words(pack_signs(weight)), coupling.in_features, reads,
            float(scale.detach().cpu()[0]), coupling.bias.detach().cpu().numpy()))
    neuron, cost = cast(BinaryAccumulator, net.neurons[0]), cast(SquaredError, net.output_cost)
    return PackedDynamics(couplings, steps, schedule, neuron.gamma, neuron.threshold, neuron.initial_value,
                          cost.group_size, cost.tie_break)


def unpackable(net: EnergyNet) -> str | None:
    """Why ``net``'s relaxation cannot be packed bit-exactly (one line), or None."""
    if not all(isinstance(c, Dense) for c in net.couplings):
        return ("convolutional energy networks cannot be packed: only fully connected ones "
                "(model.architecture = \"fc\") with binary weights and binary neurons")
    if not all(c.binary_weights for c in net.couplings):
        return ("model.weights = \"float\": float couplings cannot be packed; only binary weights "
                "(model.weights = \"binary\", α·sign) can")
    if not all(isinstance(n, BinaryAccumulator) for n in net.neurons):
        return ("model.neuron = \"hard_sigmoid\" relaxes float activations, which XNOR-popcount "
                "products cannot carry; only binary neurons (model.neuron = \"binary\") can be packed")
    if net.output_cost.readout:
        return ("model.readout = \"cross_entropy\" has a float readout layer; only output groups "
                "(model.readout = \"mse\") can be packed")
    neurons = cast(tuple[BinaryAccumulator, ...], net.neurons)
    neuron = neurons[0]
    if any((n.gamma, n.threshold, n.initial_value) != (neuron.gamma, neuron.threshold, neuron.initial_value)
           for n in neurons):
        return "the layers' binary neurons differ (γ, θ or s0); a packed relaxation has one neuron kind"
    keep = 1.0 - neuron.gamma
    if keep != 0 and math.frexp(keep)[0] != 0.5:
        return (f"model.neuron_gamma = {neuron.gamma}: the accumulator update s·(1 − γ) is reproduced "
                "bit-exactly only when 1 − γ is 0 or a power of two (γ = 0.5, 0.75, 1, …)")
    for index, coupling in enumerate(net.couplings):
        if not bool((coupling.weight.abs() == 1).all()):
            return f"coupling {index}'s binary weights are not all ±1; nothing to pack"
    return None

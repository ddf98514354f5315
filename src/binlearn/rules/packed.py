"""Conversion of the local rules' models to the packed format
(:mod:`binlearn.binary.packed_format`): their weights are signs already, so only the
layout changes. Inputs are read as ±1 (:func:`binlearn.rules.local_binary.input_signs`).

    local_binary   hidden bit_u = (x · s_u >= 0)  (sign(0) = +1);  score_c = a_L · c_c
    cpr            hidden bit_u = (x · s_u >= 0);  vote_g = (Σ_{u ∈ g} s_u >= 0);
                   score_c = Σ_m R[c, m]·v_m ("reference") or Σ_{g ∈ c} v_g ("class_committees")

first argmax either way, as :func:`~binlearn.rules.local_binary.predict` and
:func:`~binlearn.rules.cpr.committee_predict` decide.
"""

from __future__ import annotations

import numpy as np
import torch

from binlearn.binary.packed_format import PackedLayer
from binlearn.binary.packing import pack_bits, pack_signs, to_numpy_words
from binlearn.nn.fold import sign_layer
from binlearn.rules.cpr import CommitteeMachine
from binlearn.rules.local_binary import BinaryLayer

__all__ = ["local_binary_to_packed", "committee_to_packed"]


def local_binary_to_packed(layers: list[BinaryLayer]) -> list[PackedLayer]:
    """Hidden layers: the packed sign(H) with bit = (m >= 0) (sign(0) = +1); output: the
    last layer's frozen classifier, scores = popcount dot, first argmax (as
    :func:`~binlearn.rules.local_binary.predict`)."""
    packed = []
    for index, layer in enumerate(layers):
        folded = sign_layer(layer.hidden)  # the one fold: threshold 0, no flip (binlearn.nn.fold)
        packed.append(PackedLayer.hidden(f"hidden{index + 1}", to_numpy_words(layer.weight_words),
                                         layer.in_features, folded.threshold, folded.flip, "signed",
                                         "signed"))
    last = layers[-1]
    packed.append(PackedLayer.output("classifier", to_numpy_words(last.classifier_words),
                                     last.out_features, "signed"))
    return packed


def committee_to_packed(machine: CommitteeMachine) -> list[PackedLayer]:
    """Hidden: the packed sign(H), bit = (m >= 0); votes: a masked layer of +1 weights over
    each committee, bit = (Σ s >= 0) (odd committees never tie); output, "reference": the
    frozen readout as a dense ±1 layer, score = Σ_m R[c, m]·v_m (the popcount dot);
    "class_committees": a masked layer of +1 weights over each class's committees, score =
    Σ votes; first argmax either way (as :func:`~binlearn.rules.cpr.committee_predict`)."""
    layer = machine.layer
    committees = machine.committees

    def groups(count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(+1 weights, mask of consecutive groups): row g covers inputs [g·size, (g+1)·size)."""
        member = torch.arange(count * size) // size == torch.arange(count)[:, None]
        return to_numpy_words(pack_bits(torch.ones_like(member))), to_numpy_words(pack_bits(member))

    zeros = np.zeros(layer.out_features, np.int32)
    vote_weights, vote_mask = groups(committees, machine.committee_size)
    if machine.readout is not None:
        readout = to_numpy_words(pack_signs(machine.readout))
        output = PackedLayer.output("readout", readout, committees, "signed")
    else:
        class_weights, class_mask = groups(machine.num_classes, machine.committees_per_class)
        output = PackedLayer.output("classes", class_weights, committees, "signed", mask=class_mask)
    return [PackedLayer.hidden("hidden1", to_numpy_words(layer.weight_words), layer.in_features, zeros,
                               zeros, "signed", "signed"),
            PackedLayer.hidden("votes", vote_weights, layer.out_features, zeros[:committees],
                               zeros[:committees], "signed", "signed", mask=vote_mask),
            output]

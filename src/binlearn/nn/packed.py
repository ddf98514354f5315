"""Conversion of a feed-forward binary network (:func:`~binlearn.nn.mlp`) to the packed
format (:mod:`binlearn.binary.packed_format`): every layer folded to integers.

    hidden  bit_u = (m_u >= threshold_u) XOR flip_u        m_u = x · sign(w_u) ∈ [−K, K]
    output  score_c = rank_table[c, m_c + K]
"""

from __future__ import annotations

import torch
from torch import nn

from binlearn.binary.packed_format import PackedFormatError, PackedLayer, rank_table
from binlearn.binary.packing import pack_signs, to_numpy_words
from binlearn.binary.quantizers import BinarySign, Heaviside, Sign
from binlearn.nn.fold import fold_bits, tail_bits, tail_values, unit_signs
from binlearn.nn.layers import BinaryLinear

__all__ = ["mlp_to_packed"]

_PACKED_ACTIVATIONS = {Sign: "signed", Heaviside: "binary"}


@torch.no_grad()
def mlp_to_packed(model: nn.Sequential, signed_inputs: bool) -> list[PackedLayer]:
    """An :func:`~binlearn.nn.mlp` with binary weights and sign/Heaviside activations as
    :class:`~binlearn.binary.packed_format.PackedLayer` s, folded to integers.

    Each layer's float tail (α, bias, eval-mode batch norm, activation) is evaluated by the
    model's own modules on every integer pre-activation m = x · sign(w) in [−K, K], as
    h = α·m (+ bias) in float32 (:func:`binlearn.nn.fold.tail_values`): hidden layers become
    the integer step bit = (m >= threshold) XOR flip (:func:`binlearn.nn.fold.fold_bits`);
    the output layer becomes a rank table whose first argmax is the first argmax of the
    model's scores.

    Args:
        model: a Sequential as :func:`~binlearn.nn.mlp` builds it (any device).
        signed_inputs: inputs are ±1 (data.signed) rather than {0, 1}.
    Raises:
        PackedFormatError: float weights, float activations or modules the format lacks.
    """
    model.eval()
    blocks: list[tuple[BinaryLinear, list[nn.Module]]] = []
    for module in model:
        if isinstance(module, BinaryLinear):
            blocks.append((module, []))
        elif blocks:
            if not isinstance(module, nn.Dropout):  # identity at inference
                blocks[-1][1].append(module)
        elif not isinstance(module, nn.Flatten):
            raise PackedFormatError(f"cannot pack a {type(module).__name__} before the first layer")
    reads, layers = "signed" if signed_inputs else "binary", []
    for index, (linear, tail) in enumerate(blocks):
        last = index == len(blocks) - 1
        where = f"layer {index + 1} ({linear.in_features} -> {linear.out_features})"
        if not isinstance(linear.weight_quantizer, BinarySign):
            raise PackedFormatError(f"{where} has float weights (model.weights = \"float\", or "
                                    "binary_first_layer / binary_last_layer = false); only binary-weight "
                                    "models can be packed")
        activation = tail[-1] if tail and type(tail[-1]) in _PACKED_ACTIVATIONS else None
        if not last and activation is None:
            found = type(tail[-1]).__name__ if tail else "no"
            raise PackedFormatError(f"{where} has {found} activation: float activations cannot be packed; "
                                    "use model.activations = \"sign\" or \"heaviside\"")
        unsupported = [m for m in tail if not isinstance(m, nn.BatchNorm1d) and m is not activation]
        if unsupported:
            raise PackedFormatError(f"{where}: {type(unsupported[0]).__name__} cannot be packed")
        weight = linear.weight.detach()
        alpha = linear.weight_quantizer.alpha(weight).reshape(-1)  # one per layer or per unit
        scale = alpha.expand(linear.out_features)
        features = linear.in_features
        signs = unit_signs(weight)  # sign(0) = +1
        weights = to_numpy_words(pack_signs(signs))
        name = "output" if last else f"hidden{index + 1}"
        if last:
            table = tail_values(tail, scale, linear.bias, features)  # (2K + 1, out): the scores
            layers.append(PackedLayer.output(name, weights, features, reads, rank_table(table.T.numpy())))
            break
        assert activation is not None  # refused above for every hidden layer
        written = _PACKED_ACTIVATIONS[type(activation)]
        folded = fold_bits(signs, tail_bits(tail, scale, linear.bias, features), reads)
        layers.append(PackedLayer.hidden(name, weights, features, folded.threshold, folded.flip, reads,
                                         written))
        reads = written
    return layers

"""One fold of a binary network's blocks into ±1 signs and per-unit integer thresholds.

A block with binary weights reads binary inputs (0/1 bits, or ±1 signs) and computes, per
output unit u, the integer pre-activation

    m_u = x · s_u ∈ [−K, K],    s_u = sign(w_u) ∈ {−1, +1}^K (sign(0) = +1),   K = fan-in

followed by a float tail (α, bias, eval-mode batch norm, a Sign or Heaviside activation).
Because m takes only 2K + 1 values, the tail is evaluated by the block's own modules on every
one of them (:func:`tail_values`), and a monotone tail is one integer step per unit
(:class:`FoldedLayer`):

    bit_u = (m_u >= threshold_u) XOR flip_u

The packed export (:func:`binlearn.nn.packed.mlp_to_packed`, :mod:`binlearn.rules.packed`) and
the spiking conversions (:mod:`binlearn.spiking.convert` and :mod:`binlearn.spiking.local`)
take their integer thresholds from this one fold; the local binary rule's layers fold with
threshold 0 (bit = m >= 0, sign(0) = +1) by :func:`sign_layer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from binlearn.binary.packed_format import step_thresholds

__all__ = ["FoldedLayer", "tail_values", "tail_bits", "integer_step", "fold_bits", "sign_layer", "unit_signs"]

_CHUNK_ELEMENTS = 1 << 22  # candidates × units evaluated at once (16 MiB of float32)


@dataclass(frozen=True)
class FoldedLayer:
    """A binary layer as integers: bit_u = (x · signs_u >= threshold_u) XOR flip_u.

    signs: (out, in) float32 in {−1, +1}; threshold: (out,) int32 in [−K, K + 1] (−K: always
    on, K + 1: never on); flip: (out,) uint8; reads: ``"binary"`` (inputs x ∈ {0, 1}) or
    ``"signed"`` (x ∈ {−1, +1}).
    """

    signs: torch.Tensor
    threshold: np.ndarray
    flip: np.ndarray
    reads: str

    @property
    def fan_in(self) -> int:
        return int(self.signs.shape[1])


def unit_signs(weight: torch.Tensor) -> torch.Tensor:
    """±1 float32 signs of integer or float weights, one row per unit: +1 where w >= 0
    (binlearn's convention, sign(0) = +1)."""
    return torch.where(weight.detach().cpu() >= 0, 1.0, -1.0).reshape(weight.shape[0], -1)


@torch.no_grad()
def tail_values(tail: Sequence[nn.Module], scale: torch.Tensor, bias: torch.Tensor | None, fan_in: int,
                *, conv: bool = False) -> torch.Tensor:
    """The tail at every integer pre-activation: ``tail(m · scale + bias)`` for m = −K … K.

    Args:
        tail: the modules after the weighted op, in order (batch norm, activation ...), in
            eval mode; each must act on one unit at a time (element-wise per unit).
        scale: (out,) float32, each unit's factor on m (α, times a unit's ±1 orientation).
        bias: (out,) float32 or None.
        fan_in: K.
        conv: the units are a convolution's channels (the tail sees (n, out, 1, 1)).
    Returns:
        (2K + 1, out) float32 on the CPU; row i is m = i − K. Computed on ``scale``'s device
        (the tail's).
    """
    scale = scale.detach().float().reshape(-1)
    out = scale.shape[0]
    candidates = torch.arange(-fan_in, fan_in + 1, dtype=torch.float32, device=scale.device)
    shift = None if bias is None else bias.detach().float().reshape(-1)
    rows = []
    for chunk in candidates.split(max(1, _CHUNK_ELEMENTS // out)):
        h = chunk[:, None] * scale
        if shift is not None:
            h = h + shift
        if conv:
            h = h.reshape(len(chunk), out, 1, 1)
        for module in tail:
            h = module(h)
        rows.append(h.reshape(len(chunk), out).cpu())
    return torch.cat(rows)


def tail_bits(tail: Sequence[nn.Module], scale: torch.Tensor, bias: torch.Tensor | None, fan_in: int,
              *, conv: bool = False) -> np.ndarray:
    """(2K + 1, out) bool: does each unit's tail give a positive value (the bit is on) at each
    m = −K … K (:func:`tail_values` > 0; a Sign activation's +1, a Heaviside's 1)."""
    return (tail_values(tail, scale, bias, fan_in, conv=conv) > 0).numpy()


def integer_step(bits: np.ndarray, fan_in: int) -> tuple[np.ndarray, np.ndarray]:
    """(threshold, flip) of each unit with bit(m) = (m >= threshold) XOR flip, from its bits at
    m = −K … K (:func:`tail_bits`): increasing 0…01…1 → the first m on, flip 0; decreasing
    1…10…0 → the first m off, flip 1; constant → −K (always on) or K + 1 (never), flip 0.

    Raises:
        PackedFormatError: a unit's bit changes more than once (not a step function of m).
    """
    return step_thresholds(bits, -int(fan_in))


def fold_bits(signs: torch.Tensor, bits: np.ndarray, reads: str) -> FoldedLayer:
    """The layer ``signs`` whose units have ``bits`` over m = −K … K, as integer steps
    (:func:`integer_step`)."""
    threshold, flip = integer_step(bits, int(signs.shape[1]))
    return FoldedLayer(signs.float(), threshold, flip, reads)


def sign_layer(weights: torch.Tensor, reads: str = "signed") -> FoldedLayer:
    """A ±1 sign unit (the local binary rule's layers: integer hidden weights H, synapses
    sign(H)): bit = (x · sign(H) >= 0), threshold 0, no flip."""
    signs = unit_signs(weights)
    zeros = np.zeros(signs.shape[0], np.int32)
    return FoldedLayer(signs, zeros, zeros.astype(np.uint8), reads)

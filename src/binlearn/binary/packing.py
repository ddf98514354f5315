"""Bit packing: the one place where ±1 / {0, 1} values become 64-bit words and back.

The convention (DESIGN.md rule 8), stated once:

* **bit 1 ↔ +1, bit 0 ↔ −1**; a real value v is packed as bit ``v >= 0``, so sign(0) = +1.
  A {0, 1} tensor packs as itself (Heaviside(0) = 0: the value 0 is bit 0).
* Packing runs along the **last** axis: ``n`` features become ``words = ceil(n / 64)``
  words, feature ``f`` lands in word ``f // 64``.
* **Bit order within a word**: ``"little"`` (the default) puts feature ``64·w + i`` at bit
  ``i`` (bit 0 is the least significant); ``"big"`` puts it at bit ``63 − i``.
* **Padding**: the ``words·64 − n`` unused bits of the last word are 0, in inputs and in
  weights alike, so they XOR to 0 and never count. Hence for packed ±1 vectors
  ``dot(x, w) = n − 2·popcount(x XOR w) = 2·popcount(xnor(x, w)) − n`` with the true ``n``.
* **Word type**: in torch the words are ``int64`` tensors holding the same 64 bits as an
  ``uint64`` (torch's uint64 lacks shifts); :func:`to_numpy_words` reinterprets them as
  numpy ``uint64`` without a copy, :func:`from_numpy_words` goes back.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "WORD_BITS",
    "BIT_ORDERS",
    "words_for",
    "pack_bits",
    "unpack_bits",
    "pack_signs",
    "unpack_signs",
    "to_numpy_words",
    "from_numpy_words",
]

WORD_BITS = 64
BIT_ORDERS = ("little", "big")


def words_for(features: int) -> int:
    """words = ceil(features / 64), the packed length of ``features`` bits."""
    if features < 0:
        raise ValueError(f"features must be >= 0, got {features}")
    return (features + WORD_BITS - 1) // WORD_BITS


def _shifts(bit_order: str, device: torch.device) -> torch.Tensor:
    if bit_order not in BIT_ORDERS:
        raise ValueError(f"bit_order={bit_order!r}; valid: {', '.join(BIT_ORDERS)}")
    shifts = torch.arange(WORD_BITS, dtype=torch.int64, device=device)
    return shifts if bit_order == "little" else WORD_BITS - 1 - shifts


def pack_bits(bits: torch.Tensor, bit_order: str = "little") -> torch.Tensor:
    """word[..., w] = Σ_i bits[..., 64·w + i] · 2^(i or 63−i), padding bits 0.

    Args:
        bits: (..., features), values in {0, 1} (bool or any integer/float dtype; any
            non-zero value counts as 1).
        bit_order: "little" | "big" (see the module docstring).
    Returns:
        (..., words) int64, the 64 bits of each uint64 word.
    """
    shifts = _shifts(bit_order, bits.device)
    features = bits.shape[-1]
    words = words_for(features)
    ones = (bits != 0).to(torch.int64)
    padding = words * WORD_BITS - features
    if padding:
        ones = torch.nn.functional.pad(ones, (0, padding))
    ones = ones.reshape(*bits.shape[:-1], words, WORD_BITS)
    # Distinct powers of two never carry, so the int64 sum is the bitwise OR (bit 63 adds
    # −2^63, which two's complement turns into exactly that bit).
    return (ones << shifts).sum(dim=-1)


def unpack_bits(words: torch.Tensor, features: int, bit_order: str = "little") -> torch.Tensor:
    """bits[..., f] = (word[..., f // 64] >> position(f)) & 1; the inverse of :func:`pack_bits`.

    Args:
        words: (..., words) int64 (or uint8/int32 viewed as int64 words is not supported:
            pass the int64 tensor from :func:`pack_bits`).
        features: number of features to return, ``<= words·64``.
    Returns:
        (..., features) bool.
    """
    if words.dtype != torch.int64:
        raise TypeError(f"packed words must be an int64 tensor, got {words.dtype}")
    if features > words.shape[-1] * WORD_BITS:
        raise ValueError(f"{features} features do not fit in {words.shape[-1]} words")
    shifts = _shifts(bit_order, words.device)
    bits = (words.unsqueeze(-1) >> shifts) & 1  # arithmetic shift is fine: bit 0 is masked
    return bits.reshape(*words.shape[:-1], -1)[..., :features].bool()


def pack_signs(values: torch.Tensor, bit_order: str = "little") -> torch.Tensor:
    """Pack sign(values) with bit 1 ↔ +1: bit = (values >= 0), so sign(0) = +1.

    Args:
        values: (..., features), any real dtype (±1 tensors, pre-activations, hidden weights).
    Returns:
        (..., words) int64.
    """
    return pack_bits(values >= 0, bit_order)


def unpack_signs(words: torch.Tensor, features: int, bit_order: str = "little",
                 dtype: torch.dtype = torch.int8) -> torch.Tensor:
    """±1 values from packed words: value = 2·bit − 1. Returns (..., features) ``dtype``."""
    return unpack_bits(words, features, bit_order).to(dtype) * 2 - 1


def to_numpy_words(words: torch.Tensor) -> np.ndarray:
    """The same bits as a C-contiguous numpy ``uint64`` array (no copy for contiguous CPU input)."""
    if words.dtype != torch.int64:
        raise TypeError(f"packed words must be an int64 tensor, got {words.dtype}")
    return np.ascontiguousarray(words.detach().cpu().numpy()).view(np.uint64)


def from_numpy_words(words: np.ndarray) -> torch.Tensor:
    """A numpy ``uint64`` (or int64) word array as the int64 tensor holding the same bits."""
    if words.dtype not in (np.uint64, np.int64):
        raise TypeError(f"packed words must be uint64, got {words.dtype}")
    return torch.from_numpy(np.ascontiguousarray(words).view(np.int64))

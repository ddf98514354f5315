"""The slow, obviously-correct oracle every fast kernel is tested against (DESIGN.md rule 9).

out[b, n] = Σ_k x[b, k] · w[n, k] with x, w in {−1, +1}, computed as an exact int64 matmul
on the unpacked values — no bits, no popcount.
"""

from __future__ import annotations

import torch

from binlearn.binary.packing import unpack_signs

__all__ = ["dense_sign_matmul", "packed_dense_reference"]


def dense_sign_matmul(x_signs: torch.Tensor, w_signs: torch.Tensor) -> torch.Tensor:
    """out = x · wᵀ, exact in int64.

    Args:
        x_signs: (batch, in_features), values in {−1, +1}.
        w_signs: (out_features, in_features), values in {−1, +1}.
    Returns:
        (batch, out_features) int64.
    """
    return x_signs.to(torch.int64).cpu() @ w_signs.to(torch.int64).cpu().T


def packed_dense_reference(x_words: torch.Tensor, w_words: torch.Tensor, in_features: int,
                           bit_order: str = "little") -> torch.Tensor:
    """The packed layer computed the slow way: unpack both operands to ±1, then
    :func:`dense_sign_matmul`. Same arguments as :func:`binlearn.binary.kernels.binary_dense`."""
    x = unpack_signs(x_words, in_features, bit_order, torch.int64)
    w = unpack_signs(w_words, in_features, bit_order, torch.int64)
    return dense_sign_matmul(x, w)

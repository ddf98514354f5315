"""XNOR-popcount in plain torch: no numba, runs on any device (CUDA included).

out[b, n] = K − 2·popcount(x[b] XOR w[n]); popcount is the SWAR bit trick on int64 words
(torch has no popcount), and the (batch, out_features, words) XOR is formed in chunks of
the batch to bound memory.
"""

from __future__ import annotations

import torch

__all__ = ["popcount_int64", "xnor_popcount_dense_torch"]

_M1 = 0x5555555555555555
_M2 = 0x3333333333333333
_M4 = 0x0F0F0F0F0F0F0F0F
_H01 = 0x0101010101010101


def popcount_int64(words: torch.Tensor) -> torch.Tensor:
    """Number of set bits of each int64 word (its 64 bits read as unsigned), as int64.

    The right shifts are arithmetic on int64; every shifted term is masked with a constant
    whose top bits are 0, so the sign extension never reaches the result. The final
    multiply wraps modulo 2^64 and its top byte is the byte sum (≤ 64, so never negative).
    """
    x = words - ((words >> 1) & _M1)
    x = (x & _M2) + ((x >> 2) & _M2)
    x = (x + (x >> 4)) & _M4
    return ((x * _H01) >> 56) & 0x7F


def xnor_popcount_dense_torch(x_words: torch.Tensor, w_words: torch.Tensor, in_features: int,
                              max_chunk_bytes: int = 64 << 20) -> torch.Tensor:
    """out[b, n] = in_features − 2·popcount(x[b] XOR w[n]).

    Args:
        x_words: (batch, words) int64 packed inputs; w_words: (out_features, words) int64.
        in_features: K, the number of valid bits per row.
        max_chunk_bytes: bound on the temporary (chunk, out_features, words) XOR tensor.
    Returns:
        (batch, out_features) int32 on the inputs' device.
    """
    batch, words = x_words.shape
    out = torch.empty((batch, w_words.shape[0]), dtype=torch.int32, device=x_words.device)
    chunk = max(1, max_chunk_bytes // max(1, 8 * w_words.shape[0] * words))
    for start in range(0, batch, chunk):
        xor = x_words[start:start + chunk, None, :] ^ w_words[None, :, :]
        counts = popcount_int64(xor).sum(dim=-1)
        out[start:start + chunk] = (in_features - 2 * counts).to(torch.int32)
    return out

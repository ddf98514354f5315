"""XNOR-popcount kernels and their dispatch.

``binary_dense(x_words, w_words, K)`` computes out = K − 2·popcount(x XOR w) = x·wᵀ for ±1
rows packed by :mod:`binlearn.binary.packing`. Backends: ``"numba"`` (CPU, the fast one),
``"torch"`` (no numba needed, any device), ``"reference"`` (unpack + int64 matmul; the
oracle). ``"auto"`` picks numba for CPU tensors, torch otherwise.
"""

from __future__ import annotations

import torch

from binlearn.binary.kernels.reference import dense_sign_matmul, packed_dense_reference
from binlearn.binary.kernels.torch_fallback import popcount_int64, xnor_popcount_dense_torch
from binlearn.binary.packing import to_numpy_words, words_for

__all__ = ["binary_dense", "BACKENDS", "dense_sign_matmul",
           "packed_dense_reference", "popcount_int64", "xnor_popcount_dense_torch"]

BACKENDS = ("auto", "numba", "torch", "reference")


def binary_dense(x_words: torch.Tensor, w_words: torch.Tensor, in_features: int,
                 backend: str = "auto") -> torch.Tensor:
    """out[b, n] = K − 2·popcount(x[b] XOR w[n]) = Σ_k x[b, k]·w[n, k].

    Args:
        x_words: (batch, words) int64, packed ±1 inputs (padding bits 0).
        w_words: (out_features, words) int64, packed ±1 weights (padding bits 0).
        in_features: K; ``words`` must equal ceil(K / 64).
        backend: auto | numba | torch | reference.
    Returns:
        (batch, out_features) int32 on the inputs' device (int64 for "reference").
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; valid: {', '.join(BACKENDS)}")
    if x_words.dtype != torch.int64 or w_words.dtype != torch.int64:
        raise TypeError(f"packed words must be int64 tensors, got {x_words.dtype} and {w_words.dtype}")
    if x_words.ndim != 2 or w_words.ndim != 2 or x_words.shape[1] != w_words.shape[1]:
        raise ValueError(f"expected (batch, words) and (out_features, words), got "
                         f"{tuple(x_words.shape)} and {tuple(w_words.shape)}")
    if x_words.shape[1] != words_for(in_features):
        raise ValueError(f"{in_features} features need {words_for(in_features)} words, "
                         f"got {x_words.shape[1]}")
    if backend == "auto":
        backend = "numba" if x_words.device.type == "cpu" else "torch"
    if backend == "reference":
        return packed_dense_reference(x_words, w_words, in_features)
    if backend == "torch":
        return xnor_popcount_dense_torch(x_words, w_words, in_features)
    if x_words.device.type != "cpu":
        raise ValueError("the numba backend runs on CPU tensors; use backend='torch' on "
                         f"{x_words.device.type}")
    from binlearn.binary.kernels.numba_cpu import xnor_popcount_dense

    out = xnor_popcount_dense(to_numpy_words(x_words), to_numpy_words(w_words), in_features)
    return torch.from_numpy(out)

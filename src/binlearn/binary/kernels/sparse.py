"""Products of sparse binary activations with a ±1 matrix, as row adds.

    (v R)[b] = Σ_{i : v[b, i] ≠ 0} v[b, i] · R[i],   v ∈ {−1, 0, +1}^(B×K),  R ∈ {−1, +1}^(K×N)

A binary EP layer is mostly silent, so one vectorised row add of R per active input
(numba, :func:`~binlearn.binary.kernels.numba_cpu.signed_rows_sum`) does a fraction of a
dense GEMM's work. Every partial sum is an integer below 2^24, so the float32 result
equals the GEMM's exactly, whatever either's summation order.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["SPARSE_DENSITY", "sparse_binary_product"]

SPARSE_DENSITY = 0.25
"""Largest fraction of non-zero activations for which row adds beat the GEMM (a speed
choice only: the result is the same either way)."""


@functools.cache
def _rows_kernel():
    """The numba row-add kernel, imported on first use (numba loads slowly) and once."""
    from binlearn.binary.kernels.numba_cpu import signed_rows_sum

    return signed_rows_sum


def sparse_binary_product(values: torch.Tensor, rows, out: torch.Tensor | None = None
                          ) -> torch.Tensor | None:
    """values @ R by row adds, or None when the caller should keep its GEMM.

    Args:
        values: (B, K) float32 on the CPU, entries in {−1, 0, +1}, few of them non-zero.
        rows: R (K, N) float32 ±1, C-contiguous, or a callable returning it (called only
            when the row adds are used, so callers can defer building a transposed copy).
        out: optional (B, N) float32 contiguous buffer to write into.
    Returns:
        (B, N) float32 equal to ``values @ R`` bit for bit; None off the CPU, for other
        dtypes, tensors that need gradients, values denser than :data:`SPARSE_DENSITY`, or
        values outside {−1, 0, +1}.
    """
    if (values.device.type != "cpu" or values.dtype != torch.float32
            or values.requires_grad or values.dim() != 2):
        return None
    sample = values[:16]  # the density estimate only picks the faster path; results are exact either way
    if int(torch.count_nonzero(sample)) > SPARSE_DENSITY * sample.numel():
        return None
    rows = rows() if callable(rows) else rows
    if rows.dtype != torch.float32 or rows.requires_grad or not rows.is_contiguous():
        return None
    shape = (values.shape[0], rows.shape[1])
    if out is None or tuple(out.shape) != shape or not out.is_contiguous() or out.dtype != torch.float32:
        out = torch.empty(shape, dtype=torch.float32)
    if not _rows_kernel()(values.contiguous().numpy(), rows.numpy(), out.numpy()):
        return None
    return out

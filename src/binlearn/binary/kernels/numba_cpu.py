"""XNOR-popcount kernels for the CPU, compiled by numba.

out[b, n] = K − 2·popcount(x[b] XOR w[n]) = Σ_k x[b, k]·w[n, k] for ±1 vectors packed with
the convention of :mod:`binlearn.binary.packing` (padding bits 0 in both operands).

Layout: inputs (batch, words) and weights (out_features, words), both C-contiguous uint64,
so one output is a dot over two contiguous rows. The serial kernel takes four input rows
at a time so that every weight word loaded is used four times; LLVM vectorises the word
loop and lowers ``ctpop`` to the CPU's popcount (AVX-512 VPOPCNTQ where present). The
parallel kernel splits the output features into tiles of 64 rows of weights (tile ×
words × 8 bytes stays in L1/L2) across numba's threads. Small problems run serially:
thread start-up costs more than they do, and on a loaded machine a parallel region waits
for its slowest thread.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

__all__ = ["popcount64", "trailing_zeros64", "xnor_popcount_dense", "pack_sign_rows", "signed_rows_sum",
           "pack_sign_matrix", "PARALLEL_MIN_WORD_OPS"]

PARALLEL_MIN_WORD_OPS = 1 << 24
"""batch · out_features · words from which :func:`xnor_popcount_dense` uses threads."""


@intrinsic
def popcount64(typingctx, word):
    """popcount(word) for a uint64, as LLVM's ``ctpop`` (one instruction on x86-64 with POPCNT)."""
    signature = types.uint64(types.uint64)

    def codegen(context, builder, sig, args):
        return builder.ctpop(args[0])

    return signature, codegen


@intrinsic
def trailing_zeros64(typingctx, word):
    """Number of trailing zero bits of a non-zero uint64 (LLVM ``cttz``)."""
    signature = types.uint64(types.uint64)

    def codegen(context, builder, sig, args):
        return builder.cttz(args[0], context.get_constant(types.boolean, False))

    return signature, codegen


@njit(fastmath=True, cache=True, inline="always")
def _rows(x, w, in_features, out, b_start, b_stop, n_start, n_stop):
    b = b_start
    while b + 4 <= b_stop:
        for n in range(n_start, n_stop):
            s0 = 0
            s1 = 0
            s2 = 0
            s3 = 0
            for j in range(x.shape[1]):
                wv = w[n, j]
                s0 += popcount64(x[b, j] ^ wv)
                s1 += popcount64(x[b + 1, j] ^ wv)
                s2 += popcount64(x[b + 2, j] ^ wv)
                s3 += popcount64(x[b + 3, j] ^ wv)
            out[b, n] = in_features - 2 * np.int64(s0)
            out[b + 1, n] = in_features - 2 * np.int64(s1)
            out[b + 2, n] = in_features - 2 * np.int64(s2)
            out[b + 3, n] = in_features - 2 * np.int64(s3)
        b += 4
    while b < b_stop:
        for n in range(n_start, n_stop):
            s = 0
            for j in range(x.shape[1]):
                s += popcount64(x[b, j] ^ w[n, j])
            out[b, n] = in_features - 2 * np.int64(s)
        b += 1


@njit(fastmath=True, cache=True)
def _dense_serial(x, w, in_features, out):
    _rows(x, w, in_features, out, 0, x.shape[0], 0, w.shape[0])


@njit(parallel=True, fastmath=True, cache=True)
def _dense_parallel(x, w, in_features, out):
    tile = 64
    tiles = (w.shape[0] + tile - 1) // tile
    for t in prange(tiles):
        _rows(x, w, in_features, out, 0, x.shape[0], t * tile, min(w.shape[0], (t + 1) * tile))


def xnor_popcount_dense(x_words: np.ndarray, w_words: np.ndarray, in_features: int,
                        out: np.ndarray | None = None, parallel: bool | None = None) -> np.ndarray:
    """out[b, n] = in_features − 2·popcount(x[b] XOR w[n]).

    Args:
        x_words: (batch, words) uint64, packed ±1 inputs, padding bits 0.
        w_words: (out_features, words) uint64, packed ±1 weights, padding bits 0.
        in_features: K, the number of valid bits per row (``words == ceil(K / 64)``).
        out: optional (batch, out_features) int32 buffer to write into.
        parallel: force threads on/off (None: threads from PARALLEL_MIN_WORD_OPS on).
    Returns:
        (batch, out_features) int32, values in [−K, K] with the parity of K.
    """
    if x_words.dtype != np.uint64 or w_words.dtype != np.uint64:
        raise TypeError(f"packed words must be uint64, got {x_words.dtype} and {w_words.dtype}")
    if x_words.ndim != 2 or w_words.ndim != 2 or x_words.shape[1] != w_words.shape[1]:
        raise ValueError(f"expected (batch, words) and (out_features, words), got "
                         f"{x_words.shape} and {w_words.shape}")
    if x_words.shape[1] != (in_features + 63) // 64:
        raise ValueError(f"{in_features} features need {(in_features + 63) // 64} words, "
                         f"got {x_words.shape[1]}")
    x_words = np.ascontiguousarray(x_words)
    w_words = np.ascontiguousarray(w_words)
    if out is None:
        out = np.empty((x_words.shape[0], w_words.shape[0]), dtype=np.int32)
    if parallel is None:
        parallel = x_words.shape[0] * w_words.shape[0] * x_words.shape[1] >= PARALLEL_MIN_WORD_OPS
    (_dense_parallel if parallel else _dense_serial)(x_words, w_words, np.int64(in_features), out)
    return out


@njit(fastmath=True, cache=True)
def pack_sign_rows(values, rows, out):
    """out[r] = packed (values[r] >= 0) for r in ``rows``, little bit order, padding 0.

    Args:
        values: (R, K) integer array (hidden weights, pre-activations).
        rows: (M,) int64 indices of the rows to (re)pack.
        out: (R, ceil(K / 64)) uint64, updated in place.
    """
    features = values.shape[1]
    for i in range(rows.shape[0]):
        r = rows[i]
        for word in range(out.shape[1]):
            acc = np.uint64(0)
            start = word * 64
            stop = min(features, start + 64)
            for f in range(start, stop):
                if values[r, f] >= 0:
                    acc |= np.uint64(1) << np.uint64(f - start)
            out[r, word] = acc


@njit(fastmath=True, cache=True)
def _pack_all_rows(values, out):
    features = values.shape[1]
    for r in range(values.shape[0]):
        for word in range(out.shape[1]):
            acc = np.uint64(0)
            start = word * 64
            stop = min(features, start + 64)
            for f in range(start, stop):
                acc |= np.uint64(values[r, f] >= 0) << np.uint64(f - start)
            out[r, word] = acc


def pack_sign_matrix(values: np.ndarray) -> np.ndarray:
    """words[r] = packed (values[r] >= 0), little bit order, padding 0 — the numba twin of
    :func:`binlearn.binary.packing.pack_signs` for a 2-D array.

    Args:
        values: (rows, features) real or integer array.
    Returns:
        (rows, ceil(features / 64)) uint64.
    """
    if values.ndim != 2:
        raise ValueError(f"expected a (rows, features) array, got shape {values.shape}")
    out = np.empty((values.shape[0], (values.shape[1] + 63) // 64), np.uint64)
    _pack_all_rows(np.ascontiguousarray(values), out)
    return out


@njit(cache=True)
def signed_rows_sum(x, rows, out):
    """out[b] = Σ_i x[b, i] · rows[i] for x with entries in {−1, 0, +1}, skipping zeros.

    The product of binary activations ({0, 1} or ±1, mostly 0 in a binary EP layer) with a
    ±1 matrix given row-wise (``rows``: (K, N) C-contiguous): one vectorised row add per
    non-zero input instead of a dense GEMM. With ±1 rows every partial sum is an integer, so
    the float32 result equals any other summation order's exactly (|sum| < 2**24). Returns
    False, leaving ``out`` undefined, at the first entry of ``x`` outside {−1, 0, +1}.
    """
    batch, features = x.shape
    width = rows.shape[1]
    for b in range(batch):
        target = out[b]
        for n in range(width):
            target[n] = 0.0
        for i in range(features):
            value = x[b, i]
            if value == 0.0:
                continue
            row = rows[i]
            if value == 1.0:
                for n in range(width):
                    target[n] += row[n]
            elif value == -1.0:
                for n in range(width):
                    target[n] -= row[n]
            else:
                return False
    return True

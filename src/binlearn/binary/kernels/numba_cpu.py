"""XNOR-popcount kernels for the CPU, compiled by numba.

out[b, n] = K − 2·popcount(x[b] XOR w[n]) = Σ_k x[b, k]·w[n, k] for ±1 vectors packed with
the convention of :mod:`binlearn.binary.packing` (padding bits 0 in both operands).

Layout: inputs (batch, words) and weights (out_features, words), both C-contiguous uint64,
so one output is a dot over two contiguous rows. The dense kernel walks the weights in
tiles of about 32 KiB of rows (:func:`tile_rows`), transposes each tile once (word j of 32
weight rows side by side) and computes it in register blocks of 4 input rows × 32 weight
rows (:mod:`~binlearn.binary.kernels.popcount_blocks`: 512-bit vectors written out, so LLVM
emits VPOPCNTQ zmm on CPUs with AVX512_VPOPCNTDQ): each step broadcasts an input word
against eight weight rows, so every output has its own lane — no horizontal sums, no tail
step for rows that are not a multiple of 8 words — and every loaded word serves 4 or 32
popcounts. Batches below :data:`OUTER_MIN_BATCH` (batch 1: each weight word is used once)
run 1 × 8 dot blocks on the untransposed rows instead; the last N mod 8 outputs are scalar
popcounts. The parallel kernel splits the tiles across numba's threads; it is used only when numba has
more than one thread and the problem is large: thread start-up costs more than small
problems do, and on a loaded machine a parallel region waits for its slowest thread.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from binlearn.binary.kernels.popcount_blocks import LANES, xor_popcount_block, xor_popcount_outer_block

__all__ = ["popcount64", "trailing_zeros64", "xnor_popcount_dense", "pack_sign_rows", "signed_rows_sum",
           "pack_sign_matrix", "PARALLEL_MIN_WORD_OPS", "OUTER_MIN_BATCH", "BLOCK_ROWS", "BLOCK_VECTORS",
           "outer_block", "outer_tile", "dot_rows", "tile_rows"]

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


BLOCK_ROWS, BLOCK_VECTORS = 4, 4
"""Outer-product block: 4 input rows × 4 vectors of 8 weight rows = 16 accumulators, 4
weight vectors and a broadcast input word in the 32 vector registers of AVX-512."""
_COLUMNS = BLOCK_VECTORS * LANES
outer_block = xor_popcount_outer_block(BLOCK_ROWS, BLOCK_VECTORS)
"""The main block, ``outer_block(x, tile, out, b, column, n, K)`` (numba intrinsic)."""
_outer_rows_8 = xor_popcount_outer_block(BLOCK_ROWS, 1)
_outer_row = xor_popcount_outer_block(1, BLOCK_VECTORS)
_outer_row_8 = xor_popcount_outer_block(1, 1)
_block_row = xor_popcount_block(1, LANES)
OUTER_MIN_BATCH = 4
"""Batches from this size run the outer-product blocks on transposed weight tiles (a tile
is transposed once and used by every input row); smaller ones run dot blocks on the
weight rows as they are (batch 1 uses each weight word once: a transposed copy would
double the memory traffic)."""
_TILE_WORDS = 4096
"""Weight words per tile (32 KiB): a tile stays in L1 while every input row passes over it."""


@njit(cache=True)
def tile_rows(words):
    """Weight rows per tile: a multiple of 32, about _TILE_WORDS words."""
    return max(_COLUMNS, (_TILE_WORDS // max(words, 1)) // _COLUMNS * _COLUMNS)


@njit(cache=True)
def outer_tile(x, w, features, out, n_start, n_stop, tile):
    """out[:, n_start:n_stop] (a multiple of 8 columns, at most tile.shape[1]) from the
    transposed weight rows tile[j, i] = w[n_start + i, j], in 4 × 32 blocks, then the
    edges in 4 × 8, 1 × 32 and 1 × 8 blocks."""
    batch, words = x.shape
    columns = n_stop - n_start
    for i in range(columns):
        for j in range(words):
            tile[j, i] = w[n_start + i, j]
    full_rows = batch - batch % BLOCK_ROWS
    full_columns = columns - columns % _COLUMNS
    for b in range(0, full_rows, BLOCK_ROWS):
        for c in range(0, full_columns, _COLUMNS):
            outer_block(x, tile, out, b, c, n_start + c, features)
        for c in range(full_columns, columns, LANES):
            _outer_rows_8(x, tile, out, b, c, n_start + c, features)
    for b in range(full_rows, batch):
        for c in range(0, full_columns, _COLUMNS):
            _outer_row(x, tile, out, b, c, n_start + c, features)
        for c in range(full_columns, columns, LANES):
            _outer_row_8(x, tile, out, b, c, n_start + c, features)


@njit(cache=True)
def dot_rows(x, w, features, out, n_start, n_stop):
    """out[:, n_start:n_stop] (a multiple of 8 columns) in 1 × 8 dot blocks (rows of >= 8 words)."""
    for b in range(x.shape[0]):
        for n in range(n_start, n_stop, LANES):
            _block_row(x, w, out, b, n, features)


@njit(cache=True)
def _edge(x, w, features, out, n_start):
    """The last N mod 8 outputs of every row, one scalar popcount at a time."""
    for b in range(x.shape[0]):
        for n in range(n_start, w.shape[0]):
            total = 0
            for j in range(x.shape[1]):
                total += popcount64(x[b, j] ^ w[n, j])
            out[b, n] = features - 2 * np.int64(total)


@njit(cache=True)
def _dense_serial(x, w, features, out):
    columns = w.shape[0] - w.shape[0] % LANES
    if x.shape[0] >= OUTER_MIN_BATCH:
        size = tile_rows(x.shape[1])
        tile = np.empty((x.shape[1], size), np.uint64)
        for start in range(0, columns, size):
            outer_tile(x, w, features, out, start, min(columns, start + size), tile)
    else:
        dot_rows(x, w, features, out, 0, columns)
    _edge(x, w, features, out, columns)


@njit(parallel=True, cache=True)
def _dense_parallel(x, w, features, out):
    columns = w.shape[0] - w.shape[0] % LANES
    size = tile_rows(x.shape[1])
    tiles = (columns + size - 1) // size
    outer = x.shape[0] >= OUTER_MIN_BATCH
    for t in prange(tiles):
        stop = min(columns, (t + 1) * size)
        if outer:
            outer_tile(x, w, features, out, t * size, stop, np.empty((x.shape[1], size), np.uint64))
        else:
            dot_rows(x, w, features, out, t * size, stop)
    _edge(x, w, features, out, columns)


def _padded(words: np.ndarray) -> np.ndarray:
    """Rows of fewer than 8 words, zero-padded to 8 (zero words add nothing to a popcount)."""
    padded = np.zeros((words.shape[0], LANES), np.uint64)
    padded[:, :words.shape[1]] = words
    return padded


def xnor_popcount_dense(x_words: np.ndarray, w_words: np.ndarray, in_features: int,
                        out: np.ndarray | None = None, parallel: bool | None = None) -> np.ndarray:
    """out[b, n] = in_features − 2·popcount(x[b] XOR w[n]).

    Args:
        x_words: (batch, words) uint64, packed ±1 inputs, padding bits 0.
        w_words: (out_features, words) uint64, packed ±1 weights, padding bits 0.
        in_features: K, the number of valid bits per row (``words == ceil(K / 64)``).
        out: optional (batch, out_features) int32 buffer to write into.
        parallel: force threads on/off (None: numba's threads, when it has more than one,
            from PARALLEL_MIN_WORD_OPS on).
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
    if x_words.shape[1] < LANES and x_words.shape[0] < OUTER_MIN_BATCH:
        x_words, w_words = _padded(x_words), _padded(w_words)  # the dot blocks read 8 words a step
    shape = (x_words.shape[0], w_words.shape[0])
    if out is None:
        out = np.empty(shape, dtype=np.int32)
    elif out.shape != shape or out.dtype != np.int32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous int32 array of shape {shape}, got "
                         f"{out.dtype} {out.shape}")
    if 0 in shape:
        return out
    if parallel is None:
        parallel = (numba.get_num_threads() > 1
                    and x_words.shape[0] * w_words.shape[0] * x_words.shape[1] >= PARALLEL_MIN_WORD_OPS)
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
            if value != 1.0 and value != -1.0:
                return False
            add_scaled_row(target, rows[i], value)
    return True


@njit(cache=True, inline="always")
def add_scaled_row(target, row, value):
    """target += value · row, as a plain add or subtract for value = ±1 (the row adds of
    binary activations: no multiply, and integer rows stay exact)."""
    if value == 1.0:
        for n in range(target.shape[0]):
            target[n] += row[n]
    elif value == -1.0:
        for n in range(target.shape[0]):
            target[n] -= row[n]
    else:
        for n in range(target.shape[0]):
            target[n] += value * row[n]

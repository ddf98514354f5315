"""Event-driven (scatter) products: the change of a convolution's (or a matrix product's)
output when a few input units change, one vectorised add per changed unit.

    out[b, p + j − q, :] += Δ[b, c, p] · table[c, j, :]     for every Δ[b, c, p] ≠ 0, j ∈ K×K

``out`` is channels-last (batch, height, width, channels), so the K kernel columns of one
kernel row reach one contiguous run of ``out`` (K · channels numbers) and an event costs
K vectorised adds. With ``table[c, j] = W[:, c, K−1−j]`` and ``q = K−1−padding`` this is
the change of ``conv2d(x, W, padding)`` for a change Δ of x; with ``table[c, j] = W[c, :, j]``
and ``q = padding`` the change of ``conv_transpose2d(x, W, padding)``. The kernels compare
the new input with the one ``out`` was computed from (``old``, updated in place), so no
change map is written. For Δ ∈ {−1, 0, +1} and ±1 tables every partial sum is an integer
(exact in float32 below 2^24); float64 tables of float32 values stay exact while the sums fit
in 53 bits, so the result equals a dense product's whatever either's summation order
(:mod:`binlearn.energy.events` states the conditions it checks).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from binlearn.binary.kernels.numba_cpu import add_scaled_row

__all__ = ["scatter_changes", "scatter_pooled_changes", "scatter_row_changes", "add_rounded",
           "forward_table", "transposed_table", "weight_change_from_top", "weight_change_from_bottom"]


@njit(cache=True, inline="always")
def _row_views(table, out):
    """The scatter kernels' 3-D views: table (channels, K, K, depth) as rows (channels, K,
    K·depth), out (batch, height, width, depth) as lines (batch, height, width·depth)."""
    size, depth = table.shape[1], table.shape[3]
    return (table.reshape(table.shape[0], size, size * depth),
            out.reshape(out.shape[0], out.shape[1], out.shape[2] * depth))


@njit(cache=True, inline="always")
def _scatter_one(lines, rows, scales, b, c, y, x, value, shift):
    """lines[b, y + jy − shift, (x − shift + jx)·depth + n]
    += value · scales[c] · rows[c, jy, jx·depth + n]."""
    size = rows.shape[1]
    depth = rows.shape[2] // size
    out_height = lines.shape[1]
    out_width = lines.shape[2] // depth
    first = x - shift  # output column of kernel column 0
    low = max(0, -first)
    high = min(size, out_width - first)
    if low >= high:
        return
    length = (high - low) * depth
    source = low * depth
    start = (first + low) * depth
    factor = scales[c] * value  # in the scales' (and out's) precision
    for jy in range(size):
        oy = y + jy - shift
        if oy < 0 or oy >= out_height:
            continue
        row = rows[c, jy, source:source + length]
        target = lines[b, oy, start:start + length]
        for n in range(length):
            target[n] += factor * row[n]


@njit(cache=True)
def scatter_changes(new, old, table, scales, out, shift):
    """out += the change of its convolution for Δ = new − old (then old ← new); returns
    the number of changed entries (events).

    Args:
        new, old: (batch, channels, height, width) float32, C-contiguous.
        table: (channels, K, K, out_channels) int8 signs ±1, C-contiguous; the kernel row of
            channel c is ``scales[c] · table[c]``.
        scales: (channels,) float32 or float64, the dtype of ``out``.
        out: (batch, out_height, out_width, out_channels) float32 or float64, C-contiguous.
        shift: q above (``K − 1 − padding`` for a convolution, ``padding`` for its transpose).
    """
    batch, channels, height, width = new.shape
    rows, lines = _row_views(table, out)
    events = 0
    for b in range(batch):
        for c in range(channels):
            for y in range(height):
                for x in range(width):
                    value = new[b, c, y, x] - old[b, c, y, x]
                    if value == 0.0:
                        continue
                    events += 1
                    old[b, c, y, x] = new[b, c, y, x]
                    _scatter_one(lines, rows, scales, b, c, y, x, value, shift)
    return events


@njit(cache=True)
def scatter_pooled_changes(new, indices, old, old_indices, table, scales, out, shift, conv_width, touched):
    """The same for Δ = unpool(new, indices) − unpool(old, old_indices) without writing
    either map: each pooled unit whose value or maximum's position changed removes its old
    value at the old position and adds its new one at the new position (then old ← new).

    Args:
        new, old: (batch, channels, pooled_height, pooled_width) float32, C-contiguous.
        indices, old_indices: int64, same shape: flat positions y · conv_width + x of the
            maxima in the convolution's (height, conv_width) map (``max_pool2d``'s indices).
        table, out, shift: as in :func:`scatter_changes`.
        touched: (batch,) uint8, set to 1 for every sample with an event.
    """
    batch, channels, height, width = new.shape
    rows, lines = _row_views(table, out)
    events = 0
    for b in range(batch):
        for c in range(channels):
            for y in range(height):
                for x in range(width):
                    value, where = new[b, c, y, x], indices[b, c, y, x]
                    before, was = old[b, c, y, x], old_indices[b, c, y, x]
                    if value == before and (where == was or value == 0.0):
                        continue
                    events += 1
                    touched[b] = 1
                    if before != 0.0:
                        _scatter_one(lines, rows, scales, b, c, was // conv_width, was % conv_width,
                                     -before, shift)
                    if value != 0.0:
                        _scatter_one(lines, rows, scales, b, c, where // conv_width, where % conv_width,
                                     value, shift)
                    old[b, c, y, x] = value
                    old_indices[b, c, y, x] = where
    return events


@njit(cache=True)
def scatter_row_changes(new, old, rows, out):
    """out[b] += Σ_i (new − old)[b, i] · rows[i] (then old ← new); returns the events.

    new, old: (batch, K) float32; rows: (K, N) float32, C-contiguous; out: (batch, N) float32.
    """
    batch, features = new.shape
    events = 0
    for b in range(batch):
        target = out[b]
        for i in range(features):
            value = new[b, i] - old[b, i]
            if value == 0.0:
                continue
            events += 1
            old[b, i] = new[b, i]
            add_scaled_row(target, rows[i], value)
    return events


@njit(cache=True)
def add_rounded(base, total, out, samples):
    """out[b, c, y, x] = base[b, c, y, x] + float32(total[b, y, x, c]) for the samples b with
    ``samples[b] ≠ 0``: the channels-last float64 sum rounded once to float32, then added
    (two roundings, as fl(fl(d) + base))."""
    batch, channels, height, width = base.shape
    for b in range(batch):
        if samples[b] == 0:
            continue
        for y in range(height):
            for x in range(width):
                row = total[b, y, x]
                for c in range(channels):
                    out[b, c, y, x] = base[b, c, y, x] + np.float32(row[c])


@njit(cache=True)
def weight_change_from_top(change, bottom, out, padding):
    """out[co, ky, kx, :] += Σ change[b, co, oy, ox] · bottom[b, oy + ky − p, ox + kx − p, :]
    over the non-zero ``change``: a convolution's weight derivative for a sparse change of
    its (unpooled) top; returns the events.

    change: (batch, out_channels, Ho, Wo) float32; bottom: (batch, H, W, in_channels)
    float32 channels-last; out: (out_channels, K, K, in_channels) float32.
    """
    batch, channels, out_height, out_width = change.shape
    height, width, depth = bottom.shape[1], bottom.shape[2], bottom.shape[3]
    size = out.shape[1]
    source_lines = bottom.reshape(batch, height, width * depth)
    target_lines = out.reshape(channels, size, size * depth)
    events = 0
    for b in range(batch):
        for c in range(channels):
            for oy in range(out_height):
                for ox in range(out_width):
                    value = change[b, c, oy, ox]
                    if value == 0.0:
                        continue
                    events += 1
                    first = ox - padding  # bottom column of kernel column 0
                    low = max(0, -first)
                    high = min(size, width - first)
                    if low >= high:
                        continue
                    length = (high - low) * depth
                    for ky in range(size):
                        y = oy + ky - padding
                        if y < 0 or y >= height:
                            continue
                        source = source_lines[b, y, (first + low) * depth:(first + high) * depth]
                        target = target_lines[c, ky, low * depth:low * depth + length]
                        for n in range(length):
                            target[n] += value * source[n]
    return events


@njit(cache=True)
def weight_change_from_bottom(change, top, out, padding):
    """out[ci, ky, kx, :] += Σ change[b, ci, y, x] · top[b, y − ky + p, x − kx + p, :] over the
    non-zero ``change``: the weight derivative for a sparse change of the bottom; returns
    the events.

    change: (batch, in_channels, H, W) float32; top: (batch, Ho, Wo, out_channels) float32
    channels-last (the unpooled top); out: (in_channels, K, K, out_channels) float32.
    """
    batch, channels, height, width = change.shape
    out_height, out_width = top.shape[1], top.shape[2]
    size = out.shape[1]
    events = 0
    for b in range(batch):
        for c in range(channels):
            for y in range(height):
                for x in range(width):
                    value = change[b, c, y, x]
                    if value == 0.0:
                        continue
                    events += 1
                    for ky in range(size):
                        oy = y - ky + padding
                        if oy < 0 or oy >= out_height:
                            continue
                        for kx in range(size):
                            ox = x - kx + padding
                            if ox < 0 or ox >= out_width:
                                continue
                            source = top[b, oy, ox]
                            target = out[c, ky, kx]
                            for n in range(source.shape[0]):
                                target[n] += value * source[n]
    return events


def forward_table(sign: np.ndarray) -> np.ndarray:
    """int8 table of ``conv2d`` with ±1 weights for the scatter kernels: (in, K, K, out),
    kernel flipped (scales: ones)."""
    return np.ascontiguousarray(sign[:, :, ::-1, ::-1].transpose(1, 2, 3, 0)).astype(np.int8)


def transposed_table(sign: np.ndarray) -> np.ndarray:
    """int8 table of ``conv_transpose2d`` with ±1 weights for the scatter kernels:
    (out, K, K, in) (scales: one per output channel, e.g. α)."""
    return np.ascontiguousarray(sign.transpose(0, 2, 3, 1)).astype(np.int8)

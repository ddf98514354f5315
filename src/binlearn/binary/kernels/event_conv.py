"""Event-driven (scatter) convolutions: the change of a convolution's output when a few
input units change, one vectorised kernel-row add per changed unit.

    out[b, p + j − q, :] += Δ[b, c, p] · table[c, j, :]     for every Δ[b, c, p] ≠ 0, j ∈ K×K

``out`` is channels-last (batch, height, width, channels), so each add is a contiguous
vector. With ``table[c, j] = W[:, c, K−1−j]`` and ``q = K−1−padding`` this is the change of
``conv2d(x, W, padding)`` for a change Δ of x; with ``table[c, j] = W[c, :, j]`` and
``q = padding`` the change of ``conv_transpose2d(x, W, padding)``. For Δ ∈ {−1, 0, +1} and
±1 tables every partial sum is an integer (exact in float32 below 2^24); float64 tables of
float32 values stay exact while the sums fit in 53 bits, so the result equals a dense
convolution's whatever either's summation order (:mod:`binlearn.energy.events` states the
conditions it checks).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["scatter_events", "forward_table", "transposed_table"]


@njit(cache=True)
def scatter_events(delta, table, out, shift):
    """out[b, y + jy − shift, x + jx − shift, :] += delta[b, c, y, x] · table[c, jy, jx, :]
    for every non-zero ``delta`` (positions outside ``out`` are dropped); returns the number
    of non-zero entries (events).

    Args:
        delta: (batch, channels, height, width) float32, C-contiguous.
        table: (channels, K, K, out_channels) float32 or float64, C-contiguous.
        out: (batch, out_height, out_width, out_channels), the table's dtype, C-contiguous.
        shift: q above (``K − 1 − padding`` for a convolution, ``padding`` for its transpose).
    """
    batch, channels, height, width = delta.shape
    size = table.shape[1]
    out_height, out_width, width_out = out.shape[1], out.shape[2], out.shape[3]
    events = 0
    for b in range(batch):
        for c in range(channels):
            for y in range(height):
                for x in range(width):
                    value = delta[b, c, y, x]
                    if value == 0.0:
                        continue
                    events += 1
                    for jy in range(size):
                        oy = y + jy - shift
                        if oy < 0 or oy >= out_height:
                            continue
                        for jx in range(size):
                            ox = x + jx - shift
                            if ox < 0 or ox >= out_width:
                                continue
                            row = table[c, jy, jx]
                            target = out[b, oy, ox]
                            if value == 1.0:
                                for n in range(width_out):
                                    target[n] += row[n]
                            elif value == -1.0:
                                for n in range(width_out):
                                    target[n] -= row[n]
                            else:
                                for n in range(width_out):
                                    target[n] += value * row[n]
    return events


def forward_table(weight: np.ndarray) -> np.ndarray:
    """Table of ``conv2d`` for :func:`scatter_events`: (in, K, K, out), kernel flipped."""
    return np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 2, 3, 0))


def transposed_table(weight: np.ndarray) -> np.ndarray:
    """Table of ``conv_transpose2d`` for :func:`scatter_events`: (out, K, K, in)."""
    return np.ascontiguousarray(weight.transpose(0, 2, 3, 1))

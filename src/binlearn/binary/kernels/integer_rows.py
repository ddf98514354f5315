"""Integer products of {0, 1} activations with ±1 weights, from the units that changed.

    out[b] += Σ_i (new − old)[b, i] · rows[i]          (then old ← new)       add_row_changes
    out    += Σ_b t₁[b]ᵀ u₁[b] − t₂[b]ᵀ u₂[b]                                 outer_difference

``new``/``old``/``t``/``u``: uint8 values in {0, 1}; ``rows``: int8 ±1, C-contiguous; ``out``:
int16 (a sum of at most 2^15 − 1 terms ±1 fits, and halves the memory traffic) or int32.
Every operation is an integer add: no float is formed, so the sums are exact (they stay
far below 2^31 for any layer of fewer than 2^31 units). A binary EP layer flips a fraction of
its units per relaxation step, so a product kept from the last step and updated with the rows
of the units that changed does a fraction of the GEMM's work. The difference of outer
products is written

    Σ_b (t₁ − t₂)[b]ᵀ u₁[b] + t₂[b]ᵀ (u₁ − u₂)[b]

so its cost is (changed top units) · (bottom size) + (active top units) · (changed bottom
units): two equilibria of the same batch differ in few units. :func:`accumulate` is the accumulator
neuron's step with its drive assembled, one pass per layer. Serial numba loops (on a shared
two-core machine a second thread only waits); the references are plain integer matmuls
(tested equal).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["add_row_changes", "outer_difference", "accumulate"]


@njit(cache=True)
def add_row_changes(new, old, rows, out):  # pragma: no cover - compiled
    """out[b] += Σ_i (new − old)[b, i] · rows[i], then old ← new; returns the events (changes).

    new, old: (batch, K) uint8 in {0, 1}; rows: (K, N) int8; out: (batch, N) int32.
    """
    batch, features = new.shape
    width = rows.shape[1]
    events = 0
    for b in range(batch):
        target = out[b]
        for i in range(features):
            if new[b, i] == old[b, i]:
                continue
            events += 1
            row = rows[i]
            if new[b, i] > old[b, i]:
                for j in range(width):
                    target[j] += row[j]
            else:
                for j in range(width):
                    target[j] -= row[j]
            old[b, i] = new[b, i]
    return events


@njit(cache=True)
def outer_difference(first_top, first_bottom, second_top, second_bottom, out, factor=1):  # pragma: no cover
    """out += factor · Σ_b first_top[b]ᵀ first_bottom[b] − second_top[b]ᵀ second_bottom[b].

    first_top, second_top: (batch, M) uint8; first_bottom, second_bottom: (batch, K) uint8;
    out: (M, K) int16 or int32 (|out| ≤ batch: int16 below 2^15 samples); factor: ±1.
    Returns the number of row and element adds done.
    """
    batch, tops = first_top.shape
    bottoms = first_bottom.shape[1]
    changed = np.empty(bottoms, np.int64)
    signs = np.empty(bottoms, np.int32)
    work = 0
    for b in range(batch):
        count = 0
        for j in range(bottoms):
            if first_bottom[b, j] != second_bottom[b, j]:
                changed[count] = j
                signs[count] = np.int32(first_bottom[b, j]) - np.int32(second_bottom[b, j])
                count += 1
        bottom = first_bottom[b]
        for i in range(tops):
            row = out[i]
            if first_top[b, i] != second_top[b, i]:  # (t₁ − t₂)[b, i] · u₁[b]
                work += bottoms
                if (first_top[b, i] > second_top[b, i]) == (factor > 0):
                    for j in range(bottoms):
                        row[j] += bottom[j]
                else:
                    for j in range(bottoms):
                        row[j] -= bottom[j]
            if second_top[b, i] != 0:  # t₂[b, i] · (u₁ − u₂)[b]
                work += count
                for k in range(count):
                    row[changed[k]] += factor * signs[k]
    return work


@njit(cache=True)
def accumulate(up, up_scale, bias, down, down_scale, extra, state, shift, top, threshold,
               new_state, activation):  # pragma: no cover
    """One accumulator step of a layer, fused (the integer EP step's):

        U = up_scale · up + bias + down_scale · down + extra
        new_state = clamp(state + ((U − state) >> shift), 0, top),  activation = [new_state > threshold]

    up: (batch, N) int16/int32; bias: (N,) int32; down, extra: (batch, N) or empty (absent);
    state, new_state: (batch, N) int32; activation: (batch, N) uint8. Returns nothing.
    """
    batch, width = state.shape
    has_down = down.shape[0] > 0
    has_extra = extra.shape[0] > 0
    for b in range(batch):
        for j in range(width):
            u = np.int32(up_scale * up[b, j] + bias[j])
            if has_down:
                u += np.int32(down_scale * down[b, j])
            if has_extra:
                u += extra[b, j]
            s = state[b, j]
            s = s + ((u - s) >> shift)
            s = min(max(s, 0), top)
            new_state[b, j] = s
            activation[b, j] = 1 if s > threshold else 0

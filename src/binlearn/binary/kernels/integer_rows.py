"""Integer products of {0, 1} activations with ±1 weights, from the units that changed.

    out[b] += Σ_i (new − old)[b, i] · rows[i]          (then old ← new)       add_row_changes
    out    += Σ_b t₁[b]ᵀ u₁[b] − t₂[b]ᵀ u₂[b]                                 outer_difference

``new``/``old``/``t``/``u``: uint8 values in {0, 1}; ``rows``: int8 ±1, C-contiguous; ``out``:
int32. Every operation is an integer add: no float is formed, so the sums are exact (they stay
far below 2^31 for any layer of fewer than 2^31 units). A binary EP layer flips a fraction of
its units per relaxation step, so a product kept from the last step and updated with the rows
of the units that changed does a fraction of the GEMM's work. The difference of outer
products is written

    Σ_b (t₁ − t₂)[b]ᵀ u₁[b] + t₂[b]ᵀ (u₁ − u₂)[b]

so its cost is (changed top units) · (bottom size) + (active top units) · (changed bottom
units): two equilibria of the same batch differ in few units. Serial numba loops (on a shared
two-core machine a second thread only waits); the references are plain integer matmuls
(tested equal).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["add_row_changes", "outer_difference"]


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
def outer_difference(first_top, first_bottom, second_top, second_bottom, out):  # pragma: no cover
    """out += Σ_b first_top[b]ᵀ first_bottom[b] − second_top[b]ᵀ second_bottom[b].

    first_top, second_top: (batch, M) uint8; first_bottom, second_bottom: (batch, K) uint8;
    out: (M, K) int32. Returns the number of row and element adds done.
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
                if first_top[b, i] > second_top[b, i]:
                    for j in range(bottoms):
                        row[j] += bottom[j]
                else:
                    for j in range(bottoms):
                        row[j] -= bottom[j]
            if second_top[b, i] != 0:  # t₂[b, i] · (u₁ − u₂)[b]
                work += count
                for k in range(count):
                    row[changed[k]] += signs[k]
    return work

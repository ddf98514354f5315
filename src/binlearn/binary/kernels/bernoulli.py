"""Bernoulli(p) bit masks from a counter-based splitmix64 stream, compiled by numba.

    P(bit = 1) = p = numerator / 2^bits,   bit order and padding of :mod:`binlearn.binary.packing`

Per 64-bit word, from the least significant binary digit d_i of p up,

    X ← d_i ? (r_i | X) : (r_i & X),   r_i a fresh uniformly random word,

so every bit of X is 1 with probability exactly p (Σ_i d_i 2^(i − bits)), with no float
formed. The random words are splitmix64 outputs of a counter: word w, digit i of a row
uses output number w·bits + i + 1 from the row's seed, a function of the counter only, so
one digit's words for a whole row are one vectorisable loop.

Used by the binary-native local rule (:mod:`binlearn.rules.local_binary`) to draw its
reinforcement masks, and (:func:`stochastic_round`, one uniform per value from the same
counter stream) by the integer-synapse optimizers (:mod:`binlearn.rules.integer_synapse`), and
(:func:`stochastic_shift`, the same words as integers) by the integer EP step
(:mod:`binlearn.rules.integer_ep`);
the kernels are primitives and know nothing of the rules.

Reference: G. Steele, D. Lea, C. Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014 (splitmix64).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["GOLDEN_GAMMA", "splitmix64_mix", "splitmix64_next", "mix_seed", "row_masks",
           "probability_digits", "bernoulli_mask_words", "stochastic_round", "stochastic_shift"]

GOLDEN_GAMMA = 0x9E3779B97F4A7C15
"""splitmix64's increment (the odd integer closest to 2^64 / φ)."""


@njit(cache=True, inline="always")
def splitmix64_mix(z):
    """splitmix64's output function of a counter value z (uint64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def splitmix64_next(state):
    """(state + γ, mix(state + γ)): one step of the splitmix64 stream."""
    state = state + np.uint64(GOLDEN_GAMMA)
    return state, splitmix64_mix(state)


@njit(cache=True)
def mix_seed(seed, stream):
    """A well-mixed 64-bit seed for ``stream`` (e.g. layer, row) from a step seed (uint64s)."""
    state = np.uint64(seed) ^ (np.uint64(stream) * np.uint64(0xD1B54A32D192ED03))
    state, z = splitmix64_next(state)
    return z


@njit(cache=True, inline="always")
def row_masks(state, digits, features, masks):
    """masks[w] = 64 independent Bernoulli(p) bits for features 64·w … 64·w + 63 (padding
    bits 0), p = Σ_i digits[i]·2^(i − bits).

    Args:
        state: the row's seed (uint64, e.g. from :func:`mix_seed`).
        digits: (bits + 1,) uint8, the binary digits of p·2^bits, least significant first
            (:func:`probability_digits`); digits[bits] = 1 is p = 1, every bit set. uint8 so
            that no uint64/int64 mix makes numba go through float.
        features: valid bits in the row.
        masks: (ceil(features / 64),) uint64, written.
    """
    bits = digits.shape[0] - 1
    words = masks.shape[0]
    if digits[bits]:
        masks[:] = ~np.uint64(0)
    else:
        masks[:] = 0
        for i in range(bits):
            if digits[i]:
                for w in range(words):
                    masks[w] |= splitmix64_mix(state + np.uint64(w * bits + i + 1) * np.uint64(GOLDEN_GAMMA))
            else:
                for w in range(words):
                    masks[w] &= splitmix64_mix(state + np.uint64(w * bits + i + 1) * np.uint64(GOLDEN_GAMMA))
    valid = features - (words - 1) * 64
    if valid < 64:
        masks[words - 1] &= (np.uint64(1) << np.uint64(valid)) - np.uint64(1)


def probability_digits(numerator: int, bits: int) -> np.ndarray:
    """The bits + 1 binary digits of numerator ∈ [0, 2^bits], least significant first, uint8."""
    if not 0 <= numerator <= 1 << bits:
        raise ValueError(f"reinforcement numerator {numerator} is not in [0, 2^{bits}]")
    return np.array([(numerator >> i) & 1 for i in range(bits + 1)], np.uint8)


@njit(cache=True)
def _mask_rows(seed, rows, features, digits, out):
    for j in range(rows):
        row_masks(mix_seed(seed, j), digits, features, out[j])


def bernoulli_mask_words(seed: int, rows: int, features: int, numerator: int, bits: int) -> np.ndarray:
    """(rows, ceil(features / 64)) uint64: row j's bits are Bernoulli(numerator / 2^bits),
    drawn by :func:`row_masks` from the row seed ``mix_seed(seed, j)``; little bit order,
    padding 0.

    Args:
        seed: the stream's seed, an integer in [0, 2^64).
        rows, features: the mask's shape in bits.
        numerator, bits: p = numerator / 2^bits, numerator ∈ [0, 2^bits].
    """
    out = np.empty((rows, (features + 63) // 64), np.uint64)
    _mask_rows(np.uint64(seed), rows, features, probability_digits(numerator, bits), out)
    return out


_UNIFORM_BITS = 53
"""Random bits per uniform of :func:`stochastic_round` (a float64 holds them exactly)."""


@njit(cache=True)
def _stochastic_round(seed, values, out):
    scale = 1.0 / float(np.uint64(1) << np.uint64(_UNIFORM_BITS))
    for i in range(values.size):
        low = np.floor(values[i])
        word = splitmix64_mix(seed + np.uint64(i + 1) * np.uint64(GOLDEN_GAMMA))
        uniform = float(word >> np.uint64(64 - _UNIFORM_BITS)) * scale  # in [0, 1)
        out[i] = np.int64(low) + (1 if uniform < values[i] - low else 0)


def stochastic_round(values: np.ndarray, seed: int) -> np.ndarray:
    """⌊v⌋ + [r < v − ⌊v⌋] per value, r uniform in [0, 1): an unbiased integer (E = v).

    r_i is the top 53 bits of splitmix64 output number i + 1 from ``seed`` (a counter, as
    :func:`row_masks` draws its words), over 2^53; the result is a function of (seed, i, v_i)
    only.

    Args:
        values: float64 array, finite, |v| < 2^62 (the caller clips).
        seed: the stream's seed, an integer in [0, 2^64) (e.g. :func:`mix_seed` of a step).

    Returns:
        int64 array of the shape of ``values``.
    """
    flat = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    out = np.empty(flat.shape, np.int64)
    _stochastic_round(np.uint64(seed), flat, out)
    return out.reshape(np.shape(values))


@njit(cache=True)
def _stochastic_shift(seed, values, shift, out):
    for i in range(values.size):
        word = splitmix64_mix(seed + np.uint64(i + 1) * np.uint64(GOLDEN_GAMMA))
        r = np.int64(word >> np.uint64(64 - shift))  # uniform in [0, 2^shift)
        out[i] = (values[i] + r) >> shift


def stochastic_shift(values: np.ndarray, shift: int, seed: int) -> np.ndarray:
    """(v + r) >> q per value, r uniform in [0, 2^q): ⌊v / 2^q⌋ + [r < v mod 2^q], an unbiased
    integer division by 2^q (E = v / 2^q) with no float formed.

    r_i is the top q bits of splitmix64 output number i + 1 from ``seed`` (the counter stream of
    :func:`stochastic_round`); the result is a function of (seed, i, v_i) only.

    Args:
        values: int64 array, |v| < 2^62.
        shift: q in [1, 62].
        seed: the stream's seed, an integer in [0, 2^64).

    Returns:
        int64 array of the shape of ``values``.
    """
    if not 1 <= shift <= 62:
        raise ValueError(f"stochastic_shift needs a shift in [1, 62], got {shift}")
    flat = np.ascontiguousarray(values, dtype=np.int64).reshape(-1)
    out = np.empty(flat.shape, np.int64)
    _stochastic_shift(np.uint64(seed), flat, np.int64(shift), out)
    return out.reshape(np.shape(values))

"""Bit packing: round trips for any shape and bit order, and the convention at zero."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from binlearn.binary.packing import (
    from_numpy_words,
    pack_bits,
    pack_signs,
    to_numpy_words,
    unpack_bits,
    unpack_signs,
    words_for,
)

shapes = st.lists(st.integers(1, 4), min_size=0, max_size=2).flatmap(
    lambda lead: st.integers(1, 200).map(lambda n: (*lead, n)))


@settings(max_examples=60, deadline=None)
@given(shape=shapes, bit_order=st.sampled_from(["little", "big"]), seed=st.integers(0, 2**31))
def test_pack_unpack_round_trip(shape, bit_order, seed):
    generator = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, shape, generator=generator).bool()
    words = pack_bits(bits, bit_order)
    assert words.dtype == torch.int64 and words.shape == (*shape[:-1], words_for(shape[-1]))
    assert torch.equal(unpack_bits(words, shape[-1], bit_order), bits)
    signs = bits.to(torch.int8) * 2 - 1
    assert torch.equal(pack_signs(signs, bit_order), words)
    assert torch.equal(unpack_signs(words, shape[-1], bit_order), signs)
    # numpy view round trip keeps the bits
    assert torch.equal(from_numpy_words(to_numpy_words(words)), words)


def test_bit_positions_and_padding_are_documented_ones():
    bits = torch.zeros(70, dtype=torch.bool)
    bits[0] = bits[63] = bits[64] = True
    little = to_numpy_words(pack_bits(bits, "little"))
    assert little[0] == np.uint64(1) | (np.uint64(1) << np.uint64(63))
    assert little[1] == np.uint64(1)  # feature 64 is bit 0 of word 1; padding bits are 0
    big = to_numpy_words(pack_bits(bits, "big"))
    assert big[0] == np.uint64(1) | (np.uint64(1) << np.uint64(63))
    assert big[1] == np.uint64(1) << np.uint64(63)


def test_sign_of_zero_is_plus_one_and_heaviside_of_zero_is_zero():
    values = torch.tensor([0.0, -0.0, -1.0, 2.0, -3.0])
    assert unpack_signs(pack_signs(values), 5).tolist() == [1, 1, -1, 1, -1]
    assert unpack_bits(pack_bits(torch.tensor([0, 1, 0])), 3).tolist() == [False, True, False]


def test_bad_arguments_raise_one_line_errors():
    with pytest.raises(ValueError, match="bit_order"):
        pack_bits(torch.ones(3), "middle")
    with pytest.raises(ValueError, match="do not fit"):
        unpack_bits(torch.zeros(1, dtype=torch.int64), 65)
    with pytest.raises(TypeError, match="int64"):
        unpack_bits(torch.zeros(1, dtype=torch.int32), 3)

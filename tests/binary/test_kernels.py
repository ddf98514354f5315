"""Every fast XNOR-popcount kernel equals the dense ±1 integer matmul (DESIGN.md rule 9)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from binlearn.binary.conv import binary_conv2d, pack_conv_weight
from binlearn.binary.kernels import binary_dense, dense_sign_matmul, popcount_int64
from binlearn.binary.kernels.numba_cpu import pack_sign_rows, xnor_popcount_dense
from binlearn.binary.packing import pack_signs, to_numpy_words


def _signs(shape, generator):
    return torch.randint(0, 2, shape, generator=generator, dtype=torch.int64) * 2 - 1


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 9), features=st.integers(1, 300), outputs=st.integers(1, 11),
       seed=st.integers(0, 2**31))
def test_packed_dense_equals_sign_matmul(batch, features, outputs, seed):
    generator = torch.Generator().manual_seed(seed)
    x, w = _signs((batch, features), generator), _signs((outputs, features), generator)
    expected = dense_sign_matmul(x, w)
    xw, ww = pack_signs(x), pack_signs(w)
    for backend in ("numba", "torch", "reference"):
        assert torch.equal(binary_dense(xw, ww, features, backend).long(), expected), backend


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("batch,features,outputs", [(1, 1, 1), (1, 4097, 1), (7, 64, 130), (13, 200, 67)])
def test_numba_serial_and_parallel_paths(parallel, batch, features, outputs):
    generator = torch.Generator().manual_seed(batch * features)
    x, w = _signs((batch, features), generator), _signs((outputs, features), generator)
    out = xnor_popcount_dense(to_numpy_words(pack_signs(x)), to_numpy_words(pack_signs(w)),
                              features, parallel=parallel)
    assert out.dtype == np.int32
    assert np.array_equal(out, dense_sign_matmul(x, w).numpy())


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("batch,features,outputs", [
    (4, 1, 8),        # the outer-product path with a 1-word row (no padding needed)
    (3, 5, 9),        # the dot path on rows of < 8 words (padded) and one scalar edge column
    (5, 63, 31),      # a batch remainder row, 3 column vectors of 8 and 7 edge columns
    (6, 449, 40),     # 8 words: one full step; 32 + 8 columns
    (7, 520, 33),     # 9 words: a masked tail step for the dot path, none for the outer one
    (9, 784, 600),    # 13 words, three weight tiles (288 rows each), the last one partial
    (2, 4096, 72),    # the dot path, several 1 x 8 blocks
    (11, 4160, 130),  # 65 words: tiles of 32 rows, remainders everywhere
])
def test_every_blocking_path_of_the_numba_kernel_is_exact(parallel, batch, features, outputs):
    generator = torch.Generator().manual_seed(features + outputs)
    x, w = _signs((batch, features), generator), _signs((outputs, features), generator)
    x_words, w_words = to_numpy_words(pack_signs(x)), to_numpy_words(pack_signs(w))
    expected = dense_sign_matmul(x, w).numpy()
    assert np.array_equal(xnor_popcount_dense(x_words, w_words, features, parallel=parallel), expected)
    out = np.full((batch, outputs), 12345, np.int32)
    assert xnor_popcount_dense(x_words, w_words, features, out=out, parallel=parallel) is out
    assert np.array_equal(out, expected)
    with pytest.raises(ValueError, match="C-contiguous int32"):
        xnor_popcount_dense(x_words, w_words, features, out=np.empty((batch, outputs), np.int64))


def test_all_zero_inputs_are_plus_one():
    # sign(0) = +1: a zero input against an all-(+1) weight gives +K, against −1 gives −K.
    x = torch.zeros(2, 70)
    w = torch.stack([torch.ones(70), -torch.ones(70)])
    out = binary_dense(pack_signs(x), pack_signs(w), 70)
    assert out.tolist() == [[70, -70], [70, -70]]


def test_popcount_int64_matches_python():
    values = torch.tensor([0, 1, -1, 2**62, -(2**63), 0x5555555555555555, 12345678901234], dtype=torch.int64)
    expected = [bin(v & (2**64 - 1)).count("1") for v in values.tolist()]
    assert popcount_int64(values).tolist() == expected


def test_pack_sign_rows_matches_pack_signs():
    generator = torch.Generator().manual_seed(0)
    values = torch.randint(-3, 3, (5, 130), generator=generator, dtype=torch.int16)
    out = np.zeros((5, 3), np.uint64)
    pack_sign_rows(values.numpy(), np.array([0, 2, 4], np.int64), out)
    expected = to_numpy_words(pack_signs(values))
    assert np.array_equal(out[[0, 2, 4]], expected[[0, 2, 4]]) and not out[[1, 3]].any()


def test_mismatched_words_are_refused():
    with pytest.raises(ValueError, match="need 2 words"):
        binary_dense(torch.zeros(1, 1, dtype=torch.int64), torch.zeros(1, 1, dtype=torch.int64), 100)
    with pytest.raises(ValueError, match="backend"):
        binary_dense(torch.zeros(1, 1, dtype=torch.int64), torch.zeros(1, 1, dtype=torch.int64), 10, "gpu")


@settings(max_examples=15, deadline=None)
@given(channels=st.integers(1, 5), size=st.integers(3, 8), kernel=st.integers(1, 3),
       stride=st.integers(1, 2), padding=st.integers(0, 1), pad_value=st.sampled_from([-1, 1]),
       seed=st.integers(0, 2**31))
def test_binary_conv2d_equals_float_conv(channels, size, kernel, stride, padding, pad_value, seed):
    generator = torch.Generator().manual_seed(seed)
    x = _signs((2, channels, size, size + 1), generator).float()
    w = _signs((3, channels, kernel, kernel), generator).float()
    padded = F.pad(x, (padding,) * 4, value=float(pad_value))
    expected = F.conv2d(padded, w, stride=stride)  # exact: small integers in float32
    out = binary_conv2d(x, pack_conv_weight(w), (kernel, kernel), stride, padding, pad_value)
    assert out.dtype == torch.int32 and torch.equal(out.float(), expected)


def test_pack_sign_matrix_matches_pack_signs():
    from binlearn.binary.kernels.numba_cpu import pack_sign_matrix

    values = torch.randn(6, 200, generator=torch.Generator().manual_seed(1))
    values[0, :5] = 0.0
    assert np.array_equal(pack_sign_matrix(values.numpy()), to_numpy_words(pack_signs(values)))


def test_bernoulli_masks_have_exact_extremes_zero_padding_and_depend_on_the_seed():
    from binlearn.binary.kernels.bernoulli import bernoulli_mask_words

    rows, features, bits = 5, 130, 8  # 130 = 2 words + 2 bits: 62 padding bits in the last word
    none = bernoulli_mask_words(3, rows, features, 0, bits)
    every = bernoulli_mask_words(3, rows, features, 1 << bits, bits)
    assert none.shape == (rows, 3) and not none.any()
    assert (every[:, :2] == np.uint64(0xFFFFFFFFFFFFFFFF)).all() and (every[:, 2] == np.uint64(3)).all()
    half = bernoulli_mask_words(3, rows, features, 1 << (bits - 1), bits)
    assert (half[:, 2] >> np.uint64(2) == 0).all()  # padding stays 0 at any p
    ones = sum(bin(int(word)).count("1") for word in half.ravel())
    assert 0.35 < ones / (rows * features) < 0.65
    assert not np.array_equal(half, bernoulli_mask_words(4, rows, features, 1 << (bits - 1), bits))
    with pytest.raises(ValueError, match="numerator"):
        bernoulli_mask_words(3, rows, features, (1 << bits) + 1, bits)

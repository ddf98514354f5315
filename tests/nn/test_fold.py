"""The one fold (binlearn.nn.fold): a binary block's float tail as one integer step per unit,
checked against the block itself at every reachable pre-activation, and shared by the packed
export and the spiking conversions (their thresholds agree unit by unit)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from binlearn.binary.packed_format import PackedFormatError
from binlearn.binary.quantizers import BinarySign, Heaviside
from binlearn.nn import mlp
from binlearn.nn.fold import fold_bits, integer_step, sign_layer, tail_bits, tail_values, unit_signs
from binlearn.nn.packed import mlp_to_packed
from binlearn.spiking.convert import convert
from binlearn.spiking.local import convert_sign_mlp, if_threshold


def _batch_norm(width: int, generator: torch.Generator) -> nn.BatchNorm1d:
    norm = nn.BatchNorm1d(width)
    norm.running_mean.normal_(0, 3, generator=generator)
    norm.running_var.uniform_(0.2, 4, generator=generator)
    norm.weight.data.normal_(0, 1, generator=generator)  # negative γ: decreasing units (flip)
    norm.bias.data.normal_(0, 1, generator=generator)
    return norm.eval()


def test_the_fold_is_the_block_at_every_reachable_pre_activation():
    generator = torch.Generator().manual_seed(3)
    fan_in, width = 37, 29
    norm = _batch_norm(width, generator)
    tail = [norm, Heaviside()]
    scale = torch.full((width,), 0.031)
    bits = tail_bits(tail, scale, None, fan_in)
    signs = unit_signs(torch.randn(width, fan_in, generator=generator))
    folded = fold_bits(signs, bits, "binary")
    m = np.arange(-fan_in, fan_in + 1)[:, None]
    rebuilt = (m >= folded.threshold[None, :]) ^ folded.flip[None, :].astype(bool)
    assert np.array_equal(rebuilt, bits)
    assert folded.flip.any() and not folded.flip.all(), "both orientations are exercised"
    direct = (norm(torch.arange(-fan_in, fan_in + 1, dtype=torch.float32)[:, None] * scale) > 0).numpy()
    assert np.array_equal(direct, bits)
    values = tail_values([norm], scale, None, fan_in)
    assert values.shape == (2 * fan_in + 1, width)


def test_a_tail_that_is_not_a_step_has_no_integer_threshold():
    bits = np.array([[1], [0], [1]], dtype=bool)
    with pytest.raises(PackedFormatError, match="not a step function"):
        integer_step(bits, 1)  # on, off, on: two changes


def test_packed_export_and_spiking_conversion_fold_to_the_same_thresholds():
    """A Heaviside MLP with binary weights: hidden layers after the first read 0/1 bits in
    both forms; the IF threshold (fires when v > θ) is the packed threshold − 1 wherever the
    unit is increasing in m, and the unit's row is negated where the packed unit flips."""
    torch.manual_seed(0)
    model = mlp(20, [31, 23], 5, weight_quantizer=BinarySign, activation=Heaviside).eval()
    generator = torch.Generator().manual_seed(1)
    for module in model:
        if isinstance(module, nn.BatchNorm1d):
            module.running_mean.normal_(0, 2, generator=generator)
            module.running_var.uniform_(0.5, 2, generator=generator)
            if module.affine:
                module.weight.data.normal_(0, 1, generator=generator)
    packed = mlp_to_packed(model, signed_inputs=False)
    spiking = convert(model, torch.rand(64, 20))
    second_packed, second_spiking = packed[1], spiking.layers[1]
    threshold = second_spiking.neuron.threshold.reshape(-1).numpy()
    flip = second_packed.flip.astype(bool)
    assert threshold.shape == second_packed.threshold.shape
    increasing = ~flip
    assert increasing.any()
    assert np.array_equal(threshold[increasing], second_packed.threshold[increasing] - 1)


@pytest.mark.parametrize("fan_in", [1, 5, 8])
def test_a_sign_layer_folds_to_an_if_neuron_exact_on_every_input(fan_in):
    """bit = (x · sign(H) >= 0) on ±1 inputs, and the IF neuron fed b = (x + 1)/2 fires at
    T = 1 exactly when the sign unit is +1, on every one of the 2^K inputs."""
    hidden = torch.randint(-3, 4, (7, fan_in), generator=torch.Generator().manual_seed(fan_in))
    folded = sign_layer(hidden)
    assert not folded.threshold.any() and not folded.flip.any()
    theta = if_threshold(folded)
    inputs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=fan_in)))
    unit = (inputs @ folded.signs.T) >= 0
    spikes = (inputs + 1) / 2
    assert torch.equal((spikes @ folded.signs.T) > theta, unit)
    network = convert_sign_mlp([hidden], torch.ones(2, 7), (fan_in,))
    assert torch.equal(network.layers[0].neuron.threshold.reshape(-1), theta)

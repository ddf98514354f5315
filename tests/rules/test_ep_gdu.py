"""The GDU property (Ernoult et al. 2019): with small β and symmetric nudging, the EP
update after K nudged steps equals the BPTT gradient through the last K free steps of the
same dynamics; one-sided nudging is visibly more biased at larger β."""

from __future__ import annotations

import pytest
import torch

from binlearn.energy import BinaryWeights, convolutional, fully_connected
from binlearn.rules import BPTT, EP

FREE_STEPS, NUDGED_STEPS = 60, 10
BETA = 0.005  # small enough that no unit crosses a clamp boundary between the phases


pytestmark = pytest.mark.usefixtures("one_thread")


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a.flatten() @ b.flatten() / (a.norm() * b.norm()))


def _relative_error(estimate: dict, reference: dict) -> float:
    num = sum(float((estimate[k] - reference[k]).pow(2).sum()) for k in reference)
    den = sum(float(reference[k].pow(2).sum()) for k in reference)
    return (num / den) ** 0.5


def _case(name: str):
    torch.manual_seed(5)
    if name == "fc":
        net = fully_connected((1, 6, 6), [24, 16], 4, gain=0.6)
    elif name == "fc_binary_weights_readout":
        net = fully_connected((1, 6, 6), [24, 16], 4, gain=0.6, weight=BinaryWeights(True),
                              readout="cross_entropy")
    else:
        net = convolutional((1, 10, 10), [3, 5], 3, kernel_size=3, padding=1, pool=2)
    x = torch.rand(8, *net.input_shape)
    y = torch.randint(0, 3, (8,))
    return net, x, y


@pytest.mark.parametrize("name", ["fc", "conv", "fc_binary_weights_readout"])
def test_symmetric_ep_matches_bptt_per_layer(name):
    net, x, y = _case(name)
    reference = BPTT(FREE_STEPS, NUDGED_STEPS).gradients(net, x, y)
    estimate = EP(FREE_STEPS, NUDGED_STEPS, BETA, symmetric=True).gradients(net, x, y)
    assert list(estimate) == list(reference)  # same names, same order
    for key in reference:
        assert estimate[key].shape == reference[key].shape
        assert reference[key].norm() > 0, key
        assert _cosine(estimate[key], reference[key]) > 0.99, key


@pytest.mark.parametrize("name", ["fc", "conv", "fc_binary_weights_readout"])
def test_one_sided_nudging_is_more_biased(name):
    net, x, y = _case(name)
    reference = BPTT(FREE_STEPS, NUDGED_STEPS).gradients(net, x, y)
    beta = BETA  # one-sided bias is O(β), symmetric O(β²)
    one_sided = EP(FREE_STEPS, NUDGED_STEPS, beta).gradients(net, x, y)
    symmetric = EP(FREE_STEPS, NUDGED_STEPS, beta, symmetric=True).gradients(net, x, y)
    one_error = _relative_error(one_sided, reference)
    symmetric_error = _relative_error(symmetric, reference)
    assert one_error > 2 * symmetric_error, (one_error, symmetric_error)


def test_random_sign_draws_both_signs_from_torch_generator():
    net, x, y = _case("fc")
    rule = EP(20, 4, 0.5, random_sign=True)
    torch.manual_seed(0)
    signs = {rule.estimate(net, x, y).beta > 0 for _ in range(12)}
    assert signs == {True, False}
    torch.manual_seed(0)
    first = [rule.estimate(net, x, y).beta for _ in range(4)]
    torch.manual_seed(0)
    assert [rule.estimate(net, x, y).beta for _ in range(4)] == first


@pytest.mark.parametrize("kwargs, message", [
    (dict(free_steps=0, nudged_steps=5, beta=0.1), "free_steps"),
    (dict(free_steps=5, nudged_steps=0, beta=0.1), "nudged_steps"),
    (dict(free_steps=5, nudged_steps=5, beta=0.0), "beta"),
    (dict(free_steps=5, nudged_steps=5, beta=0.1, schedule="chaotic"), "schedule"),
    (dict(free_steps=5, nudged_steps=5, beta=0.1, nudge_placement="output"), "placement"),
])
def test_bad_ep_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EP(**kwargs)


def test_bad_bptt_arguments():
    with pytest.raises(ValueError, match="truncation"):
        BPTT(5, truncation=6)
    with pytest.raises(ValueError, match="free_steps"):
        BPTT(0)

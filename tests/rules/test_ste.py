"""Binary quantizers (the convention at zero, the STE gradient) and the STE baseline."""

from __future__ import annotations

import torch

from binlearn.binary import BinarySign, heaviside, heaviside_ste, sign, sign_ste
from binlearn.experiment.learner import LocalReducer
from binlearn.experiment.learners.ste import MLPConfig, STEConfig, STEOptimizerConfig, build_ste_learner
from binlearn.nn import BinaryLinear, summary


def test_convention_at_zero():
    x = torch.tensor([-2.0, -0.0, 0.0, 1e-9, 3.0])
    assert sign(x).tolist() == [-1, 1, 1, 1, 1]
    assert heaviside(x).tolist() == [0, 0, 0, 1, 1]


def test_straight_through_gradients():
    x = torch.tensor([-1.5, -0.5, 0.0, 0.9, 2.0], requires_grad=True)
    sign_ste(x).sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 0]
    x.grad = None
    heaviside_ste(x).sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 0, 0]


def test_binary_weights_are_scaled_signs():
    layer = BinaryLinear(6, 3, weight_quantizer=BinarySign("mean"))
    w = layer.effective_weight()
    alpha = layer.weight.abs().mean()
    assert torch.allclose(w.abs(), alpha.expand_as(w))
    assert torch.equal(torch.sign(w), sign(layer.weight))
    rows = summary(torch.nn.Sequential(layer))
    assert rows[0]["binary"] and rows[0]["memory_bytes"] == (18 + 7) // 8 + 4


def test_ste_learner_learns_real_digits():
    from binlearn.data import load_dataset

    torch.manual_seed(0)
    data = load_dataset("digits")
    learner = build_ste_learner(MLPConfig(hidden=[64], activations="sign"), STEConfig(),
                                data.input_shape, 10, torch.device("cpu"), STEOptimizerConfig(lr=3e-3))
    before = (learner.predict(data.x_test) == data.y_test).float().mean()
    for _ in range(5):
        for i in range(0, len(data.x_train), 64):
            learner.train_step(data.x_train[i:i + 64], data.y_train[i:i + 64], LocalReducer())
    after = (learner.predict(data.x_test) == data.y_test).float().mean()
    assert before < 0.3 and after > 0.85
    for module in learner.model.modules():  # latent weights stay clipped
        if isinstance(module, BinaryLinear):
            assert module.weight.abs().max() <= 1

"""Integer synapse optimizers (counter, hidden_int): the update equations against a NumPy
reference written from the docstrings (leak, saturation, flips, reset), integer dtypes and the
bits bound, the exact and the stochastic route from gradient to integer update, EP's estimate
between 0/1 units being an exact integer, the [optimizer] config and its one-line refusals, the
learning memory in summary.json and meta.json, training on the digits, and a bit-identical
resume."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from binlearn.binary.kernels.bernoulli import stochastic_round
from binlearn.experiment import ConfigError, train
from binlearn.experiment.checkpoint import load_checkpoint
from binlearn.experiment.config import apply_overrides, config_from_dict, read_toml
from binlearn.experiment.learner import LocalReducer
from binlearn.experiment.learners.gradient import BOP
from binlearn.experiment.registry import build_learner
from binlearn.rules import Bop, HiddenInteger, IntegerCounter
from binlearn.rules.integer_synapse import hidden_initial, integer_update, state_dtype

ROOT = Path(__file__).resolve().parents[2]
BINARY_INPUT = ROOT / "configs" / "laydevant2021" / "fc-binary-weights-activations-binary-input.toml"
DIGITS = ["data.dataset=\"digits\"", "model.hidden=[32]", "rule.free_steps=10", "rule.nudged_steps=4",
          "train.epochs=2", "train.threads=1"]
COUNTER = ["optimizer.name=\"counter\"", "optimizer.bits=8", "optimizer.leak_shift=8",
           "optimizer.threshold=[32]"]
HIDDEN = ["optimizer.name=\"hidden_int\"", "optimizer.bits=8"]


# --------------------------------------------------------------------------- NumPy references
def counter_reference(w, c, u, bits, k, theta):
    """c ← sat_b(c − sign(c)·(|c| >> k) + u); w ← −w and c ← 0 where c·w ≥ θ (module docstring)."""
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    leak = np.sign(c) * (np.abs(c) // 2**k)  # towards 0 on both signs
    c = np.clip(c - leak + u, low, high)
    flip = c * w >= theta
    return np.where(flip, -w, w), np.where(flip, 0, c), int(flip.sum())


def hidden_reference(h, u, bits):
    """h ← sat_b(h − u); w = sign(h), sign(0) = +1."""
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    h = np.clip(h - u, low, high)
    return np.where(h >= 0, 1, -1), h


def _weight(shape, generator):
    return torch.nn.Parameter(torch.where(torch.rand(shape, generator=generator) > 0.5, 1.0, -1.0),
                              requires_grad=False)


@pytest.mark.parametrize("bits, k, theta", [(4, 1, 3), (4, 2, 7), (8, 4, 20), (12, 3, 100)])
def test_counter_equals_numpy_reference(bits, k, theta):
    generator = torch.Generator().manual_seed(bits * 100 + theta)
    weight = _weight((13, 7), generator)
    scale = 3.0  # g = u / scale: the exact route gives back u
    optimizer = IntegerCounter([weight], bits=bits, leak_shift=k, threshold=theta, scale=scale)
    w = weight.detach().numpy().astype(np.int64)
    c = np.zeros(w.shape, np.int64)
    span = 2 ** (bits - 1)
    saturated = flips = 0
    for step in range(12):
        u = torch.randint(-span + 1, span, w.shape, generator=generator) // (1 + step % 3)
        weight.grad = u.to(torch.float32) / scale
        optimizer.step()
        w, c, flipped = counter_reference(w, c, u.numpy().astype(np.int64), bits, k, theta)
        flips += flipped
        state = optimizer.state[weight]["counter"]
        assert state.dtype == state_dtype(bits)
        assert np.array_equal(state.numpy().astype(np.int64), c), step
        assert np.array_equal(weight.detach().numpy().astype(np.int64), w), step
        low = -(2 ** (bits - 1))
        saturated += int(((c == low) | (c == -low - 1)).sum())
    assert flips > 0 and optimizer.flip_counts() == [flips]
    assert saturated > 0  # the test reached the b-bit range


@pytest.mark.parametrize("bits", [2, 5, 8, 9, 16])
def test_hidden_int_equals_numpy_reference(bits):
    generator = torch.Generator().manual_seed(bits)
    weight = _weight((9, 11), generator)
    optimizer = HiddenInteger([weight], bits=bits)
    w0 = weight.detach().numpy().astype(np.int64)
    h = w0 * -(-(2 ** (bits - 1)) // 8)  # h starts at w·⌈2^(b−1)/8⌉
    span = 2 ** (bits - 1)
    changes = 0
    for step in range(10):
        u = torch.randint(-span, span + 1, w0.shape, generator=generator)
        weight.grad = u.to(torch.float32)
        before = weight.detach().clone()
        optimizer.step()
        w, h = hidden_reference(h, u.numpy().astype(np.int64), bits)
        changes += int((weight != before).sum())
        state = optimizer.state[weight]["hidden"]
        assert state.dtype == state_dtype(bits)
        assert np.array_equal(state.numpy().astype(np.int64), h), step
        assert np.array_equal(weight.detach().numpy().astype(np.int64), w), step
        assert h.min() >= -span and h.max() <= span - 1
    assert optimizer.flip_counts() == [changes] and changes > 0


def test_descent_direction_matches_bop_and_sgd():
    """A positive gradient pushes a +1 weight to −1 (w ← w − lr·g), as Bop does."""
    for make in (lambda p: IntegerCounter([p], bits=4, leak_shift=2, threshold=2),
                 lambda p: HiddenInteger([p], bits=4), lambda p: Bop([p], gamma=1.0, threshold=0.5)):
        weight = torch.nn.Parameter(torch.tensor([1.0, -1.0, 1.0, -1.0]), requires_grad=False)
        optimizer = make(weight)
        weight.grad = torch.tensor([3.0, -3.0, -3.0, 3.0])
        optimizer.step()
        assert weight.tolist() == [-1.0, 1.0, 1.0, -1.0], type(optimizer).__name__


def test_zero_counts_as_plus_one_and_the_counter_resets_after_a_flip():
    weight = torch.nn.Parameter(torch.tensor([-1.0]), requires_grad=False)
    hidden = HiddenInteger([weight], bits=4)  # h₀ = ⌈8/8⌉ = 1
    assert hidden_initial(4) == 1 and hidden_initial(8) == 16 and hidden_initial(2) == 1
    weight.grad = torch.tensor([-1.0])  # h: −1 → 0, and sign(0) = +1
    hidden.step()
    assert weight.tolist() == [1.0] and hidden.state[weight]["hidden"].tolist() == [0]
    weight = torch.nn.Parameter(torch.tensor([1.0]), requires_grad=False)
    counter = IntegerCounter([weight], bits=4, leak_shift=3, threshold=5)
    for expected_weight, expected_counter in ((1.0, 3), (-1.0, 0)):
        weight.grad = torch.tensor([3.0])
        counter.step()
        assert weight.tolist() == [expected_weight]
        assert counter.state[weight]["counter"].tolist() == [expected_counter]


def test_the_leak_rounds_towards_zero_on_both_signs():
    """c − sign(c)·(|c| >> k): ±3 keep their value at k = 2, ±40 lose 10 (an arithmetic shift would
    raise −3 to −2 every step and leave +3)."""
    weight = torch.nn.Parameter(torch.tensor([1.0, -1.0, 1.0, -1.0]), requires_grad=False)
    counter = IntegerCounter([weight], bits=8, leak_shift=2, threshold=100)
    weight.grad = torch.tensor([-3.0, 3.0, -40.0, 40.0])  # against each sign: no flip
    counter.step()
    for expected in ([-3, 3, -30, 30], [-3, 3, -23, 23]):
        weight.grad = torch.zeros(4)
        counter.step()
        assert counter.state[weight]["counter"].tolist() == expected


def test_bits_bounds_and_dtypes():
    assert state_dtype(2) == state_dtype(8) == torch.int8
    assert state_dtype(9) == state_dtype(16) == torch.int16
    weight = torch.nn.Parameter(torch.ones(3), requires_grad=False)
    for bits in (1, 17):
        with pytest.raises(ValueError, match="bits"):
            HiddenInteger([weight], bits=bits)
    with pytest.raises(ValueError, match="threshold"):
        IntegerCounter([weight], bits=4, threshold=8)  # 2^(b−1): out of reach of a 4-bit counter
    with pytest.raises(ValueError, match="threshold"):
        IntegerCounter([weight], bits=4, threshold=0)
    with pytest.raises(ValueError, match="leak_shift"):
        IntegerCounter([weight], bits=4, leak_shift=16, threshold=3)


def test_exact_and_stochastic_integer_updates():
    gradient = torch.tensor([[3.0, -7.0], [0.0, 64.0]]) / (2.0 * 32)  # D / (β B), β = 2, B = 32
    assert integer_update(gradient, 64.0, seed=1, bits=8).tolist() == [[3, -7], [0, 64]]
    # not integral: stochastic rounding, unbiased, seeded, a function of (seed, value) only
    values = torch.full((20000,), 0.3)
    first = integer_update(values, 1.0, seed=5, bits=8)
    assert set(first.unique().tolist()) == {0, 1}
    assert abs(first.double().mean().item() - 0.3) < 0.02
    assert torch.equal(first, integer_update(values, 1.0, seed=5, bits=8))
    assert not torch.equal(first, integer_update(values, 1.0, seed=6, bits=8))
    # saturation before conversion: a huge gradient is a full-range update, not an overflow
    assert integer_update(torch.tensor([1e30, -1e30]), 1.0, seed=0, bits=4).tolist() == [16, -16]
    rounded = stochastic_round(np.array([-1.25] * 4000), 9)
    assert set(np.unique(rounded)) == {-2, -1} and abs(rounded.mean() + 1.25) < 0.03


def _config(overrides, optimizer=COUNTER):
    raw = read_toml(BINARY_INPUT)
    raw["optimizer"] = {"bias_learning_rates": [1e-7]}  # Bop's gamma and threshold removed
    return config_from_dict(apply_overrides(raw, [*DIGITS, *optimizer, *overrides]))


def test_ep_estimate_between_binary_units_is_an_exact_integer(one_thread):
    config = _config(["model.hidden=[24]", "data.batch_size=16"])
    torch.manual_seed(0)
    learner = build_learner(config, (1, 8, 8), 10, torch.device("cpu"))
    x = (torch.rand(16, 1, 8, 8) > 0.5).float()
    y = torch.arange(16) % 10
    gradients, _ = learner.source.estimate(x, y)
    scale = learner.optimizers[BOP].scale
    assert scale == 2.0 * 16  # |β| B, β = 2
    for name in ("couplings.0.weight", "couplings.1.weight"):
        scaled = gradients[name].double() * scale
        assert (scaled - scaled.round()).abs().max() <= 1e-3, name
        assert scaled.abs().max() > 0
    learner.train_step(x, y, LocalReducer())
    state = learner.optimizers[BOP].state[learner.model.couplings[0].weight]
    assert state["counter"].dtype == torch.int8 and int(state["step"]) == 1


@pytest.mark.parametrize("shift", [0, 3])
def test_update_shift_divides_the_integer_update_by_a_power_of_two(one_thread, shift):
    """optimizer.update_shift = s: the scale the learner sets is |β|·B / 2^s, so the update is the
    exact product difference D / 2^s, rounded stochastically where it is not an integer."""
    config = _config(["model.hidden=[24]", "data.batch_size=16", f"optimizer.update_shift={shift}"])
    torch.manual_seed(0)
    learner = build_learner(config, (1, 8, 8), 10, torch.device("cpu"))
    x = (torch.rand(16, 1, 8, 8) > 0.5).float()
    y = torch.arange(16) % 10
    gradients, _ = learner.source.estimate(x, y)
    optimizer = learner.optimizers[BOP]
    assert optimizer.scale == pytest.approx(abs(config.rule.beta) * 16 / 2**shift)
    scaled = gradients["couplings.0.weight"].double() * optimizer.scale * 2**shift
    assert (scaled - scaled.round()).abs().max() <= 1e-3 and scaled.abs().max() >= 2


def test_an_empty_set_value_restores_the_default_and_unknown_keys_still_fail():
    raw = read_toml(BINARY_INPUT)  # a Bop config: gamma and threshold set
    config = config_from_dict(apply_overrides(raw, [*DIGITS, "optimizer.name=\"hidden_int\"",
                                                    "optimizer.gamma=", "optimizer.threshold="]))
    assert config.optimizer.name == "hidden_int" and config.optimizer.gamma is None
    with pytest.raises(ConfigError, match="optimizer.gamma is Bop's"):
        config_from_dict(apply_overrides(raw, [*DIGITS, "optimizer.name=\"hidden_int\"",
                                               "optimizer.threshold="]))
    with pytest.raises(ConfigError, match="unknown key optimizer.gamma_typo"):
        config_from_dict(apply_overrides(raw, ["optimizer.gamma_typo="]))
    with pytest.raises(ConfigError, match=r"\[optimizer\] is a section"):
        apply_overrides(raw, ["optimizer="])
    assert config_from_dict(apply_overrides(raw, ["seed=7", "seed="])).seed == 0


@pytest.mark.parametrize("overrides, message", [
    (["optimizer.bits=1"], "optimizer.bits must be >= 2"),
    (["optimizer.bits=17"], "optimizer.bits must be <= 16"),
    (["optimizer.leak_shift=0"], "optimizer.leak_shift must be >= 1"),
    (["optimizer.leak_shift=16"], "optimizer.leak_shift must be <= 15"),
    (["optimizer.threshold=[128]"], r"threshold of counter must be integers in \[1, 128\)"),
    (["optimizer.bits=4", "optimizer.threshold=[8]"], r"integers in \[1, 8\) for optimizer.bits = 4"),
    (["optimizer.threshold=[2.5]"], "must be integers"),
    (["optimizer.threshold=[0]"], "must be integers"),
    (["optimizer.gamma=[0.5]"], "optimizer.gamma is Bop's"),
    (["optimizer.flip_on_equal=true"], "optimizer.flip_on_equal is Bop's"),
    (["optimizer.update_shift=16"], "optimizer.update_shift must be <= 15"),
    (["optimizer.name=\"bop\"", "optimizer.gamma=[1e-4]", "optimizer.update_shift=1"],
     "update_shift is a setting of the integer synapse optimizers"),
])
def test_config_bounds_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        _config(overrides)
    assert "\n" not in str(error.value)


def test_config_refusals_for_float_weights_bptt_and_missing_keys():
    config = _config(["model.weights=\"float\""])
    with pytest.raises(ConfigError, match="optimizer.name = \"counter\" needs model.weights = \"binary\""):
        build_learner(config, (1, 8, 8), 10, torch.device("cpu"))
    raw = read_toml(BINARY_INPUT)
    raw["optimizer"] = {"name": "counter", "bias_learning_rates": [1e-7]}
    with pytest.raises(ConfigError, match="needs optimizer.threshold"):
        config_from_dict(raw)
    raw["optimizer"] = {"name": "hidden_int", "bias_learning_rates": [1e-7], "threshold": [3.0]}
    with pytest.raises(ConfigError, match="threshold is Bop's"):
        config_from_dict(raw)
    raw = copy.deepcopy(read_toml(BINARY_INPUT))
    raw["rule"] = {"name": "bptt", "free_steps": 5}
    raw["model"]["neuron"] = "hard_sigmoid"
    raw["optimizer"] = {"name": "hidden_int", "bias_learning_rates": [1e-7]}
    with pytest.raises(ConfigError, match="needs rule.name = \"ep\""):
        build_learner(config_from_dict(raw), (1, 8, 8), 10, torch.device("cpu"))
    raw["optimizer"] = {"name": "hidden_int", "bias_learning_rates": [1e-7]}
    raw["schedule"] = {"cosine_epochs": 3, "anneal_flips": True}
    with pytest.raises(ConfigError, match="anneal_flips needs optimizer.name = \"bop\""):
        config_from_dict(raw)


@pytest.mark.parametrize("optimizer, bits_per_synapse", [
    (COUNTER, 9), (["optimizer.name=\"counter\"", "optimizer.bits=12", "optimizer.threshold=[3]"], 13),
    (HIDDEN, 8), (["optimizer.name=\"hidden_int\"", "optimizer.bits=3"], 3),
    (["optimizer.name=\"bop\"", "optimizer.gamma=[1e-4]", "optimizer.threshold=[1e-6]"], 33),
    (["optimizer.name=\"sgd\"", "model.weights=\"float\""], 32),
    (["optimizer.name=\"sgd\"", "model.weights=\"float\"", "optimizer.momentum=0.9"], 64),
])
def test_learning_memory_counts_the_bits_of_learning_state_per_synapse(optimizer, bits_per_synapse):
    learner = build_learner(_config([], optimizer), (1, 8, 8), 10, torch.device("cpu"))
    memory = learner.learning_memory()
    synapses = 64 * 32 + 32 * 100  # 64-32-(10 classes × group_size 10) on 8×8 digits; biases not counted
    assert [row["parameter"] for row in memory["layers"]] == ["couplings.0.weight", "couplings.1.weight"]
    assert [row["synapses"] for row in memory["layers"]] == [64 * 32, 32 * 100]
    assert all(row["bits_per_synapse"] == bits_per_synapse for row in memory["layers"])
    assert memory["synapses"] == synapses and memory["bits"] == synapses * bits_per_synapse
    assert memory["bytes"] == -(-synapses * bits_per_synapse // 8)
    assert memory["kib"] == round(memory["bytes"] / 1024, 3)


def _tensors(state, prefix=""):
    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, dict):
        for key, value in state.items():
            yield from _tensors(value, f"{prefix}/{key}")
    elif isinstance(state, list | tuple):
        for i, value in enumerate(state):
            yield from _tensors(value, f"{prefix}/{i}")


@pytest.mark.slow
@pytest.mark.parametrize("name, optimizer, bits_per_synapse",
                         [("counter", COUNTER, 9), ("hidden_int", HIDDEN, 8)])
def test_trains_the_digits_resumes_bit_identically_and_reports_its_memory(tmp_path, name, optimizer,
                                                                          bits_per_synapse):
    summary = train(_config([], optimizer), tmp_path / "full", quiet=True)
    assert summary["test_accuracy"] > ACCURACY[name]
    states = {}
    for run in ("full", "cut"):
        if run == "cut":  # 1 epoch, then resumed to 2
            train(_config(["train.epochs=1"], optimizer), tmp_path / "cut", quiet=True)
            train(_config([], optimizer), tmp_path / "cut", resume=True, quiet=True)
        states[run] = dict(_tensors(load_checkpoint(tmp_path / run / "checkpoint.pt")["learner"]))
    assert states["full"].keys() == states["cut"].keys()
    integer = [key for key in states["full"] if key.endswith(("/counter", "/hidden"))]
    assert len(integer) == 2 and all(states["full"][key].dtype == torch.int8 for key in integer)
    for key, tensor in states["full"].items():
        assert tensor.dtype == states["cut"][key].dtype and torch.equal(tensor, states["cut"][key]), key

    # the learning memory: 64·32 + 32·(10·10) synapses (group_size 10), b + 1 or b bits each
    memory = summary["learning_memory"]
    synapses = 64 * 32 + 32 * 100
    assert memory["synapses"] == synapses
    assert [row["bits_per_synapse"] for row in memory["layers"]] == [bits_per_synapse] * 2
    assert memory["bits"] == synapses * bits_per_synapse
    assert memory["bytes"] == (synapses * bits_per_synapse + 7) // 8
    assert json.loads((tmp_path / "full" / "meta.json").read_text())["learning_memory"] == memory
    assert json.loads((tmp_path / "full" / "summary.json").read_text())["learning_memory"] == memory


ACCURACY = {"counter": 0.3, "hidden_int": 0.3}
"""Test accuracy after 2 epochs (46 batches) on the digits must exceed this: 3× chance. Measured
(seed 0, one thread): counter b = 8, k = 8, θ = 32: 0.472; hidden_int b = 8: 0.386; Bop with
the config's own γ and τ: 0.392. None reaches 0.5 in 2 epochs."""

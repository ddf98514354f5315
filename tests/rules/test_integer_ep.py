"""The integer-only EP step (:mod:`binlearn.rules.integer_ep`): every tensor of one step is an
integer or a boolean; one step equals a NumPy integer reference written from the module
docstring; its kernels equal integer matmuls; the free phase predicts what the float engine
predicts on real MNIST images; float pixels take the seeded stochastic route; training learns,
resumes bit for bit, and refuses what it cannot do in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from binlearn.binary.kernels.bernoulli import stochastic_shift
from binlearn.binary.kernels.integer_rows import add_row_changes, outer_difference
from binlearn.experiment import ConfigError, train
from binlearn.experiment.checkpoint import load_checkpoint
from binlearn.experiment.config import apply_overrides, config_from_dict, read_toml
from binlearn.experiment.learner import LocalReducer
from binlearn.experiment.registry import build_learner
from binlearn.rules.integer_ep import (
    RATE_SHIFT,
    IntegerEPParameters,
    IntegerNetwork,
    IntegerSynapseRule,
    integer_ep_step,
    integer_free_phase,
    integer_parameters,
    integer_predict,
    network_integers,
    with_transposed,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
INTEGER = ROOT / "configs" / "laydevant2021" / "fc-binary-weights-activations-binary-input-integer.toml"
DIGITS = ["data.dataset=\"digits\"", "model.hidden=[32]", "rule.free_steps=10", "rule.nudged_steps=4",
          "optimizer.threshold=[32]", "optimizer.leak_shift=8", "optimizer.bias_learning_rates=[1e-7]",
          "train.epochs=2", "train.threads=1"]
INTEGER_TYPES = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}


def _config(overrides):
    return config_from_dict(apply_overrides(read_toml(INTEGER), [*DIGITS, *overrides]))


# --------------------------------------------------------------------------- a small random step
def _small(generator, placement="free_drive", symmetric=False, sizes=(12, 9, 6), group=2, fraction=8,
           shift=1):
    params = IntegerEPParameters(fraction, shift, 1 << (fraction - 1), 1 << fraction, 2 << fraction, 5, 3,
                                 placement, symmetric, sizes[-1] // group, group)
    signs = tuple(torch.where(torch.rand(o, i, generator=generator) > 0.5, 1, -1).to(torch.int8)
                  for i, o in zip(sizes, sizes[1:], strict=False))
    scales = tuple(int(v) for v in torch.randint(20, 90, (len(signs),), generator=generator))
    biases = tuple(torch.randint(-60, 60, (o,), generator=generator, dtype=torch.int32) for o in sizes[1:])
    return params, IntegerNetwork(signs, scales, biases)


def _rule(name, layers, rates=(3 << 30, 5 << 29)):
    return IntegerSynapseRule(name, 4, 2, (2,) * layers, tuple(rates[:layers]))


def _inputs(generator, batch=7, features=12, classes=3):
    x = (torch.rand(batch, features, generator=generator) > 0.6).to(torch.uint8)
    return x, torch.randint(0, classes, (batch,), generator=generator)


class _Dtypes(TorchDispatchMode):
    """Records the dtype of every tensor every aten operation produces."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, torch.dtype]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in out if isinstance(out, list | tuple) else (out,):
            if isinstance(value, torch.Tensor):
                self.seen.append((str(func), value.dtype))
        return out


def test_every_tensor_of_a_binary_input_step_is_integer_or_boolean():
    generator = torch.Generator().manual_seed(0)
    params, network = _small(generator)
    synapses = tuple(torch.zeros_like(s) for s in network.signs)
    x, y = _inputs(generator)
    with _Dtypes() as recorder:
        result = integer_ep_step(params, _rule("counter", 2), network, synapses, x, y, -1, 5)
    assert len(recorder.seen) > 200  # the whole step went through the recorder
    floats = [(op, dtype) for op, dtype in recorder.seen if dtype not in INTEGER_TYPES]
    assert floats == []
    for tensor in (*result.network.signs, *result.network.biases, *result.synapses, *result.free,
                   *result.nudged, *result.weight_updates, *result.bias_updates, result.scores):
        assert tensor.dtype in INTEGER_TYPES
    # the recorder sees floats where there are some: a float-pixel step has its two float products
    with _Dtypes() as recorder:
        integer_ep_step(params, _rule("counter", 2), network, synapses, x.float() * 0.5, y, -1, 5)
    assert {torch.float64} <= {dtype for _, dtype in recorder.seen}


# --------------------------------------------------------------------------- the NumPy reference
MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _mix(z):
    """splitmix64's output function, Python integers mod 2^64."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _mix_seed(seed, stream):
    return _mix(((seed ^ ((stream * 0xD1B54A32D192ED03) & MASK)) + GOLDEN) & MASK)


def _shift_reference(values, q, seed):
    """(v + r_i) >> q, r_i the top q bits of splitmix64 word i + 1 from seed."""
    return np.array([(int(v) + (_mix((seed + (i + 1) * GOLDEN) & MASK) >> (64 - q))) >> q
                     for i, v in enumerate(values)], np.int64)


def reference_step(params, rule, signs, scales, biases, synapses, x, labels, sign, seed):
    """One step from the module docstring's equations, NumPy int64 throughout."""
    F, g, top = params.fraction_bits, params.gamma_shift, 1 << params.fraction_bits
    count = len(signs)
    target = np.zeros((len(labels), params.num_classes * params.group_size), np.int64)
    for b, label in enumerate(labels):
        target[b, label * params.group_size:(label + 1) * params.group_size] = top

    def act(state):
        return (state > params.threshold).astype(np.int64)

    def relax(state, steps, beta):
        state = [s.copy() for s in state]
        push = (beta * (target - state[-1])) >> F
        for _ in range(steps):
            a = [act(s) for s in state]
            drives = []
            for l in range(count):
                below = x if l == 0 else a[l - 1]
                u = scales[l] * (below @ signs[l].T) + biases[l]
                if l + 1 < count:
                    u = u + scales[l + 1] * (a[l + 1] @ signs[l + 1])
                drives.append(u)
            if beta and params.placement == "drive":
                drives[-1] = drives[-1] + ((beta * (target - state[-1])) >> F)
            if beta and params.placement == "free_drive":
                drives[-1] = drives[-1] + push
            new = [np.clip(s + ((u - s) >> g), 0, top) for u, s in zip(drives, state, strict=True)]
            if beta and params.placement == "state":
                new[-1] = np.clip(new[-1] + ((beta * (target - state[-1])) >> F), 0, top)
            state = new
        return state

    initial = [np.full((len(labels), s.shape[0]), params.initial, np.int64) for s in signs]
    free = relax(initial, params.free_steps, 0)
    first = relax(free, params.nudged_steps, sign * params.beta)
    second = relax(free, params.nudged_steps, -sign * params.beta) if params.symmetric else free
    out = {"free": free, "nudged": first, "signs": [], "synapses": [], "biases": [], "updates": []}
    low, high = -(1 << (rule.bits - 1)), (1 << (rule.bits - 1)) - 1
    for l in range(count):
        below1 = x if l == 0 else act(first[l - 1])
        below2 = x if l == 0 else act(second[l - 1])
        d = act(first[l]).T @ below1 - act(second[l]).T @ below2
        u = np.clip(-sign * d, -(1 << rule.bits), 1 << rule.bits)
        w, c = signs[l].copy(), synapses[l].copy()
        if rule.name == "counter":
            c = np.clip(c - np.sign(c) * (np.abs(c) >> rule.leak_shift) + u, low, high)
            flip = c * w >= rule.thresholds[l]
            w, c = np.where(flip, -w, w), np.where(flip, 0, c)
        else:
            c = np.clip(c - u, low, high)
            w = np.where(c >= 0, 1, -1)
        ub = -sign * (act(first[l]).sum(0) - act(second[l]).sum(0))
        decrement = _shift_reference(rule.bias_rates[l] * ub, RATE_SHIFT, _mix_seed(seed, 1001 + l))
        out["signs"].append(w)
        out["synapses"].append(c)
        out["biases"].append(np.clip(biases[l] - decrement, -(2**24 - 1), 2**24 - 1))
        out["updates"].append(u)
    return out


@pytest.mark.parametrize("placement, symmetric, name, shift", [
    ("free_drive", False, "counter", 1), ("drive", False, "hidden_int", 1), ("state", False, "counter", 2),
    ("drive", True, "counter", 1), ("free_drive", True, "hidden_int", 3)])
@pytest.mark.parametrize("sign", [1, -1])
def test_one_step_equals_the_numpy_integer_reference(placement, symmetric, name, shift, sign):
    sign = 1 if symmetric else sign
    moved = changed = 0
    for case in range(12):  # twelve random nets, inputs and synapse states
        generator = torch.Generator().manual_seed(case)
        params, network = _small(generator, placement, symmetric, shift=shift)
        if case % 2:  # the signs' transposes kept with them: the step flips both
            network = with_transposed(network)
        synapses = tuple(torch.randint(-7, 8, s.shape, generator=generator, dtype=torch.int8)
                         for s in network.signs)
        rule = _rule(name, 2)
        x, y = _inputs(generator)
        seed = 0xFEDCBA9876543210 + case
        got = integer_ep_step(params, rule, network, synapses, x, y, sign, seed)
        if case % 3 == 0:  # in place: the same numbers, written into the inputs
            signs = tuple(w.clone() for w in network.signs)
            owned = network._replace(signs=signs, transposed=tuple(t.clone() for t in network.transposed))
            states = tuple(c.clone() for c in synapses)
            again = integer_ep_step(params, rule, owned, states, x, y, sign, seed, inplace=True)
            for left, right in zip(got.network + got.synapses, again.network + again.synapses, strict=True):
                pairs = zip(left, right, strict=True) if isinstance(left, tuple) else [(left, right)]
                assert all(a == b if isinstance(a, int) else torch.equal(a, b) for a, b in pairs)
            written = zip(again.network.signs + again.synapses, signs + states, strict=True)
            assert all(a is b for a, b in written)
        want = reference_step(params, rule, [s.numpy().astype(np.int64) for s in network.signs],
                              network.scales, [b.numpy().astype(np.int64) for b in network.biases],
                              [s.numpy().astype(np.int64) for s in synapses], x.numpy().astype(np.int64),
                              y.numpy(), sign, seed)
        for key, tensors in (("free", got.free), ("nudged", got.nudged), ("signs", got.network.signs),
                             ("synapses", got.synapses), ("biases", got.network.biases),
                             ("updates", got.weight_updates)):
            for index, (tensor, expected) in enumerate(zip(tensors, want[key], strict=True)):
                np.testing.assert_array_equal(tensor.numpy(), expected, err_msg=f"case {case}: {key} {index}")
        if case % 2:
            kept = zip(got.network.transposed, got.network.signs, strict=True)
            assert all(torch.equal(t, w.t()) for t, w in kept)
        moved += any(bool((u != 0).any()) for u in got.weight_updates)
        changed += any(not torch.equal(a, b) for a, b in zip(got.network.biases, network.biases, strict=True))
    assert moved >= 6 and changed >= 6  # the steps did something: nudged states differ, biases move


def test_row_and_outer_kernels_equal_integer_matmuls():
    generator = torch.Generator().manual_seed(3)
    rows = torch.where(torch.rand(70, 33, generator=generator) > 0.5, 1, -1).to(torch.int8)
    old = torch.zeros(5, 70, dtype=torch.uint8)
    out = torch.zeros(5, 33, dtype=torch.int32)
    for density in (0.9, 0.3, 0.5):
        new = (torch.rand(5, 70, generator=generator) < density).to(torch.uint8)
        add_row_changes(new.numpy(), old.numpy(), rows.numpy(), out.numpy())
        assert torch.equal(out, new.int() @ rows.int()) and torch.equal(old, new)
    tops = [(torch.rand(6, 20, generator=generator) > 0.5).to(torch.uint8) for _ in range(2)]
    bottoms = [(torch.rand(6, 31, generator=generator) > 0.5).to(torch.uint8) for _ in range(2)]
    total = torch.zeros(20, 31, dtype=torch.int32)
    outer_difference(tops[0].numpy(), bottoms[0].numpy(), tops[1].numpy(), bottoms[1].numpy(), total.numpy())
    assert torch.equal(total, tops[0].int().t() @ bottoms[0].int() - tops[1].int().t() @ bottoms[1].int())


def test_stochastic_shift_is_unbiased_seeded_and_integer():
    values = np.full(20000, 5 * 2**20 + 2**18, np.int64)  # 5.25 · 2^20
    first = stochastic_shift(values, 20, seed=11)
    assert first.dtype == np.int64 and set(np.unique(first)) == {5, 6}
    assert abs(first.mean() - 5.25) < 0.02
    assert np.array_equal(first, stochastic_shift(values, 20, seed=11))
    assert not np.array_equal(first, stochastic_shift(values, 20, seed=12))
    assert np.array_equal(stochastic_shift(-values[:50], 20, seed=3), _shift_reference(-values[:50], 20, 3))
    with pytest.raises(ValueError, match="shift in"):
        stochastic_shift(values, 63, seed=1)


def test_float_pixels_round_the_first_update_stochastically_and_reproducibly():
    generator = torch.Generator().manual_seed(4)
    params, network = _small(generator)
    synapses = tuple(torch.zeros_like(s) for s in network.signs)
    x = torch.rand(7, 12, generator=generator)
    y = torch.randint(0, 3, (7,), generator=generator)
    rule = _rule("counter", 2)
    runs = [integer_ep_step(params, rule, network, synapses, x, y, 1, seed) for seed in (1, 1, 2)]
    for a, b in zip(runs[0], runs[1], strict=True):  # the same seed: the same step
        for left, right in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,),
                               strict=True):
            if isinstance(left, torch.Tensor):
                assert torch.equal(left, right)
    assert runs[0].weight_updates[0].dtype == torch.int32
    # the rounding is ⌊v⌋ or ⌈v⌉ of the float update, and another seed draws another rounding
    acts = [torch.gt(s, params.threshold).double() for s in (runs[0].nudged[0], runs[0].free[0])]
    exact = -(acts[0] - acts[1]).t() @ x.double()
    update = runs[0].weight_updates[0].double()
    assert bool(((update - exact.floor()) >= 0).all()) and bool(((exact.ceil() - update) >= 0).all())
    assert float((exact - exact.round()).abs().max()) > 0.01  # there was something to round
    assert not torch.equal(runs[0].weight_updates[0], runs[2].weight_updates[0])


# --------------------------------------------------------------------------- against the float engine
def test_free_phase_predicts_what_the_float_engine_predicts_on_mnist(mnist_dir):
    from binlearn.data import load_dataset

    data = load_dataset("mnist", data_dir=str(mnist_dir.parent), train_size=256, quiet=True)
    x = (data.x_train > 0.5).float()
    config = config_from_dict(apply_overrides(read_toml(INTEGER), ["model.hidden=[1024]"]))
    torch.manual_seed(0)
    learner = build_learner(config, (1, 28, 28), 10, torch.device("cpu"))
    net, ep = learner.model, learner.rule
    params = integer_parameters(net, ep, 16)
    network = network_integers(net, 16)
    state, _ = ep.free_phase_until(net, x)
    float_predictions = net.predict(state)
    integer_state = integer_free_phase(params, network, x)
    assert float((integer_predict(params, network, x) == float_predictions).float().mean()) >= 0.99
    for integer, real in zip(integer_state, state.layers, strict=True):
        assert float((torch.gt(integer, params.threshold) == (real > 0.5)).float().mean()) >= 0.999
    coarse = integer_parameters(net, ep, 6)  # F = 6 rounds α to 2 digits: visibly another net
    coarse_predictions = integer_predict(coarse, network_integers(net, 6), x)
    assert float((coarse_predictions == float_predictions).float().mean()) < 0.9


def test_training_on_mnist_learns(mnist_dir, tmp_path):
    config = config_from_dict(apply_overrides(read_toml(INTEGER), [
        "model.hidden=[512]", "data.train_size=2000", "train.epochs=2", "train.threads=1",
        "optimizer.threshold=[6, 8]", f"data.data_dir=\"{mnist_dir.parent}\""]))
    summary = train(config, tmp_path / "run", quiet=True)
    # chance 0.1; measured (seed 0): 0.399 after one epoch, 0.681 after two (θ = [13, 16], the
    # config's: 0.262 and 0.680, the first epoch at chance in training)
    assert summary["test_accuracy"] > 0.5


# --------------------------------------------------------------------------- training, resume, errors
def _tensors(state, prefix=""):
    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, dict):
        for key, value in state.items():
            yield from _tensors(value, f"{prefix}/{key}")
    elif isinstance(state, list | tuple):
        for i, value in enumerate(state):
            yield from _tensors(value, f"{prefix}/{i}")


FLOAT_PIXELS = ["data.encoding=\"unit\"", "optimizer.name=\"hidden_int\"", "rule.symmetric=true",
                "optimizer.bias_learning_rates=[1e-4]"]


@pytest.mark.parametrize("extra", [[], FLOAT_PIXELS], ids=["binary-counter", "float-pixels-hidden"])
def test_resumed_run_equals_the_uninterrupted_one(tmp_path, extra):
    def config(more):
        raw = apply_overrides(read_toml(INTEGER), [*DIGITS, *extra, *more])
        if "optimizer.name=\"hidden_int\"" in extra:  # the counter's keys are not hidden_int's
            raw["optimizer"].pop("threshold")
        return config_from_dict(raw)

    summary = train(config([]), tmp_path / "full", quiet=True)
    assert summary["test_accuracy"] > 0.2  # the digits, 2 epochs: above chance (0.1)
    train(config(["train.epochs=1"]), tmp_path / "cut", quiet=True)
    train(config([]), tmp_path / "cut", resume=True, quiet=True)
    states = {run: dict(_tensors(load_checkpoint(tmp_path / run / "checkpoint.pt")["learner"]))
              for run in ("full", "cut")}
    assert states["full"].keys() == states["cut"].keys()
    synapse = [key for key in states["full"] if key.endswith(("/counter", "/hidden"))]
    assert len(synapse) == 2 and all(states["full"][key].dtype == torch.int8 for key in synapse)
    for key, tensor in states["full"].items():
        assert tensor.dtype == states["cut"][key].dtype and torch.equal(tensor, states["cut"][key]), key
    # the float copies in the checkpoint hold the integers exactly: signs ±1, biases multiples of 2^−F
    model = states["full"]
    for index in range(2):
        bias = model[f"/model/couplings.{index}.bias"].double() * 2**16
        assert torch.equal(bias, bias.round())
        assert set(model[f"/model/couplings.{index}.weight"].unique().tolist()) <= {-1.0, 1.0}


def test_a_step_through_the_learner_keeps_the_checkpointed_integers():
    config = _config(["data.batch_size=16"])
    torch.manual_seed(0)
    learner = build_learner(config, (1, 8, 8), 10, torch.device("cpu"))
    x = (torch.rand(16, 1, 8, 8) > 0.5).float()
    y = torch.arange(16) % 10
    stats = learner.train_step(x, y, LocalReducer())
    assert set(stats) == {"loss", "correct"}
    optimizer = learner.optimizers["weights"]
    state = optimizer.state[learner.model.couplings[0].weight]
    assert state["counter"].dtype == torch.int8 and int(state["step"]) == 1
    for coupling in learner.model.couplings:  # the float copies: ±1 signs, biases on the 2^−16 grid
        assert set(coupling.weight.unique().tolist()) <= {-1.0, 1.0}
        assert torch.equal(coupling.bias.double() * 2**16, (coupling.bias.double() * 2**16).round())
    # a parameter changed from outside (a loaded checkpoint) is read back as integers
    with torch.no_grad():
        learner.model.couplings[0].bias.fill_(2.0**-16 * 5)
    assert bool((learner.integers().biases[0] == 5).all())


BAD = [
    (["model.architecture=\"conv\"", "model.channels=[4]", "model.kernel_size=3", "model.padding=[1]"],
     "needs a fully connected net"),
    (["model.neuron=\"hard_sigmoid\""], "needs binary accumulator neurons"),
    (["model.neuron_gamma=0.3"], "neuron_gamma = 2\\^-g"),
    (["model.readout=\"cross_entropy\"", "model.group_size=1", "rule.nudge_placement=\"drive\""],
     "needs model.readout = \"mse\""),
    (["rule.relaxation=\"even_odd\""], "relaxes synchronously"),
    (["rule.free_tolerance=0.01"], "remove rule.free_tolerance"),
    (["model.learn_scale=true", "optimizer.scale_learning_rate=0.01"], "keeps α fixed"),
    (["model.hidden=[100000]", "rule.fraction_bits=24"], "too many for layer"),
    (["optimizer.update_shift=2"], "no optimizer.update_shift yet"),
]


@pytest.mark.parametrize("overrides, message", BAD)
def test_unsupported_combinations_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        build_learner(_config(overrides), (1, 8, 8), 10, torch.device("cpu"))
    assert "\n" not in str(error.value) and str(error.value).startswith("rule.arithmetic = \"integer\"")


def test_float_weights_bop_and_bounds_are_one_line_errors():
    raw = apply_overrides(read_toml(INTEGER), DIGITS)
    raw["optimizer"] = {"name": "bop", "gamma": [1e-4], "threshold": [1e-6], "bias_learning_rates": [1e-3]}
    with pytest.raises(ConfigError, match="needs optimizer.name = \"counter\" or \"hidden_int\""):
        build_learner(config_from_dict(raw), (1, 8, 8), 10, torch.device("cpu"))
    with pytest.raises(ConfigError, match="needs model.weights = \"binary\""):
        build_learner(_config(["model.weights=\"float\""]), (1, 8, 8), 10, torch.device("cpu"))
    for key, value, message in (("fraction_bits", 25, "must be <= 24"), ("fraction_bits", 3, "must be >= 4"),
                                ("arithmetic", "\"fixed\"", "must be one of 'float', 'integer'")):
        with pytest.raises(ConfigError, match=f"rule.{key} {message}") as error:
            _config([f"rule.{key}={value}"])
        assert "\n" not in str(error.value)

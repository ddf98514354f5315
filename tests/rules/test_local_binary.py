"""The binary-native local rule (rules/local_binary.py) and its CP+R committee baseline
(rules/cpr.py, both variants): the packed forward against a dense ±1 integer matmul,
integer-only updates, the bit-packed steps against their dense float twins, the tie rule,
reinforcement masks, clipping, determinism and bit-identical resume, learning on real MNIST
digits, and one-line ConfigErrors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import binlearn.rules.cpr as cpr
import binlearn.rules.local_binary as lb
from binlearn.binary.kernels.numba_cpu import pack_sign_matrix
from binlearn.binary.kernels.reference import dense_sign_matmul
from binlearn.binary.packing import from_numpy_words, unpack_bits, unpack_signs
from binlearn.data import load_dataset
from binlearn.experiment import ConfigError, load_config, train
from binlearn.experiment.checkpoint import load_checkpoint
from binlearn.experiment.learner import LocalReducer
from binlearn.experiment.registry import build_learner

CONFIGS = Path(__file__).parents[2] / "configs" / "colombo2024"
RULE = CONFIGS / "mnist-1035-1035.toml"
COMMITTEE = CONFIGS / "mnist-committee-2070.toml"
CLASS_COMMITTEES = "rule.variant=\"class_committees\""
# the published 255-wide shape (G = 51), small enough for a few epochs on 2,000 images
SMALL = ["model.hidden=[255,255]", "rule.group_size=51", "data.train_size=2000", "train.threads=1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mnist_batch(mnist_dir):
    """300 real MNIST training images as ±1 int8 signs (binarised as the configs do) and labels."""
    config = load_config(RULE)
    data = load_dataset("mnist", data_dir=mnist_dir.parent, train_size=300, encoding="binarize",
                        threshold=config.data.threshold, quiet=True)
    return lb.input_signs(data.x_train), data.y_train


def _random_layers(sizes, seed=0, dtype="int16"):
    generator = torch.Generator().manual_seed(seed)
    return lb.init_layers(sizes, 10, init_std=8.0, hidden_dtype=dtype, generator=generator)


def _random_signs(batch, features, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (batch, features), generator=generator) * 2 - 1).to(torch.int8)


def _masks(layers, seed, bits):
    """The step's reinforcement masks as bool tensors (what the float twin consumes)."""
    return [unpack_bits(from_numpy_words(lb.reinforcement_mask_words(
        seed, index, layer.out_features, layer.in_features, layer.reinforcement_numerator, bits)),
        layer.in_features) for index, layer in enumerate(layers)]


def _dense_twin_step(layers, x, y, params, seed):
    """The float twin from the same state, with the integer step's reinforcement masks."""
    limits = []
    for layer in layers:
        low, high = lb._limits(layer, params.clip)
        limits.append((low, high))
    return lb.local_binary_step_dense(
        [layer.hidden.float() for layer in layers], [layer.classifier.float() for layer in layers],
        x.float(), y, params, [0.0] * len(layers), limits, _masks(layers, seed, params.probability_bits))


# ----------------------------------------------------------------------------- forward
def test_packed_forward_equals_dense_integer_matmul():
    """Pre-activations and class scores of every layer, n not a multiple of 64, zero weights."""
    layers = _random_layers([100, 70, 45])
    layers[0].hidden[3, :10] = 0  # sign(0) = +1
    layers[0].weight_words = lb.pack_sign_tensor(layers[0].hidden)
    x = _random_signs(33, 100)
    outputs = lb.forward(layers, pack_sign_matrix(x.numpy()), 100)
    inputs = x
    for layer, (pre, s_words, scores) in zip(layers, outputs, strict=True):
        weights = torch.where(layer.hidden >= 0, 1, -1)
        dense = dense_sign_matmul(inputs, weights)
        assert torch.equal(torch.from_numpy(pre).long(), dense)
        signs = torch.where(dense >= 0, 1, -1)
        assert torch.equal(unpack_signs(from_numpy_words(s_words), layer.out_features).long(), signs)
        assert torch.equal(torch.from_numpy(scores).long(), dense_sign_matmul(signs, layer.classifier))
        inputs = signs
    assert torch.equal(lb.predict(layers, x), torch.from_numpy(outputs[-1][2]).long().argmax(1))


def test_input_signs_accepts_binary_encodings_only():
    x = torch.tensor([[0.0, 1.0, -1.0, 1.0]])
    assert lb.input_signs(x).tolist() == [[-1, 1, -1, 1]] and lb.input_signs(x).dtype == torch.int8
    with pytest.raises(ValueError, match="binary inputs"):
        lb.input_signs(torch.tensor([[0.0, 0.5]]))


# ----------------------------------------------------------------------------- integers only
@pytest.mark.parametrize("dtype", ["int16", "int32"])
def test_training_uses_integer_state_and_integer_kernel_inputs_only(monkeypatch, dtype, mnist_batch):
    """Every array entering the step's kernels is an integer or bool array (no float), and the
    hidden weights stay int16/int32."""
    seen = []

    def checked(kernel):
        def wrapper(*args, **kwargs):
            for value in (*args, *kwargs.values()):
                if isinstance(value, np.ndarray | torch.Tensor):
                    assert not (value.dtype.is_floating_point if isinstance(value, torch.Tensor)
                                else np.issubdtype(value.dtype, np.floating)), (kernel.__name__, value.dtype)
                    seen.append(kernel.__name__)
                assert not isinstance(value, float), (kernel.__name__, value)
            return kernel(*args, **kwargs)
        return wrapper

    for name in ("scores_verdicts", "_select_accumulate", "_apply_delta", "_reinforce",
                 "xnor_popcount_dense", "pack_sign_matrix", "_sign_bytes"):
        monkeypatch.setattr(lb, name, checked(getattr(lb, name)))
    x, y = mnist_batch
    layers = lb.init_layers([784, 96, 64], 10, hidden_dtype=dtype, generator=torch.Generator().manual_seed(0))
    for layer in layers:
        layer.reinforcement_numerator = lb.probability_numerator(0.05, 16)
    params = lb.LocalBinaryParameters(group_size=32)
    for step in range(3):
        result = lb.local_binary_step(layers, x[step * 100:(step + 1) * 100], y[step * 100:(step + 1) * 100],
                                      params, seed=step)
        assert sum(result.updates) > 0
    assert {"_select_accumulate", "_apply_delta", "_reinforce", "xnor_popcount_dense"} <= set(seen)
    for layer in layers:
        assert layer.hidden.dtype == lb.HIDDEN_DTYPES[dtype]
        assert layer.weight_words.dtype == torch.int64 and layer.classifier.dtype == torch.int8
        assert torch.equal(layer.weight_words, lb.pack_sign_tensor(layer.hidden))  # packed twin in sync


# ----------------------------------------------------------------------------- float twin
@pytest.mark.parametrize("error_signal", ["target", "difference"])
def test_integer_step_equals_dense_float_step(mnist_batch, error_signal):
    """The published shape (784-1035-1035, G = 115) on real digits: three chained steps of the
    bit-packed rule give exactly the hidden weights of the dense float twin."""
    x, y = mnist_batch
    torch.manual_seed(0)
    layers = lb.init_layers([784, 1035, 1035], 10)
    for layer in layers:
        numerator = lb.probability_numerator(lb.reinforcement_probability(0.5, 0.0, layer.in_features), 16)
        layer.reinforcement_numerator = numerator
    params = lb.LocalBinaryParameters(group_size=115, error_signal=error_signal)
    for step in range(3):
        rows = slice(step * 100, (step + 1) * 100)
        expected, mistakes, correct = _dense_twin_step(layers, x[rows], y[rows], params, seed=10 + step)
        result = lb.local_binary_step(layers, x[rows], y[rows], params, seed=10 + step)
        assert (result.mistakes, result.correct) == (mistakes, correct)
        assert sum(result.updates) > 0
        for layer, hidden in zip(layers, expected, strict=True):
            assert torch.equal(layer.hidden.float(), hidden)


def test_clip_bounds_hidden_weights_and_matches_the_float_twin(mnist_batch):
    x, y = mnist_batch
    layers = lb.init_layers([784, 64, 64], 10, generator=torch.Generator().manual_seed(3), clip=5)
    assert all(int(layer.hidden.abs().max()) == 5 for layer in layers)
    for layer in layers:
        layer.reinforcement_numerator = lb.probability_numerator(0.2, 16)
    params = lb.LocalBinaryParameters(group_size=16, clip=5)
    for step in range(3):
        rows = slice(step * 100, (step + 1) * 100)
        expected, _, _ = _dense_twin_step(layers, x[rows], y[rows], params, seed=step)
        lb.local_binary_step(layers, x[rows], y[rows], params, seed=step)
        for layer, hidden in zip(layers, expected, strict=True):
            assert int(layer.hidden.abs().max()) <= 5
            assert torch.equal(layer.hidden.float(), hidden)


def _reference_committee_twin(machine, x, y, margin):
    """The "reference" committee step in dense float tensor ops (no reinforcement): returns
    (hidden after the step, mistakes, correct, updates)."""
    g, committees = machine.committee_size, machine.committees
    batch = x.shape[0]
    pre = x.float() @ torch.where(machine.layer.hidden >= 0, 1.0, -1.0).T
    votes = torch.where(pre >= 0, 1.0, -1.0).view(batch, committees, g).sum(-1).sign()
    readout = machine.readout.float()
    scores = votes @ readout.T
    rows = torch.arange(batch)
    others = scores.clone()
    others[rows, y] = -torch.inf
    correct = scores.argmax(1) == y
    mistaken = ~correct | (scores[rows, y] - others.max(1).values < margin)
    desired = readout[y]  # (batch, committees): d_m = R[y, m]
    error = pre.view(batch, committees, g) * desired[..., None]
    pick = torch.where(error < 0, error, -torch.inf).argmax(-1)  # least |a| among errors, first on ties
    update = mistaken[:, None] & (votes != desired) & (error < 0).any(-1)
    mask = torch.zeros(batch, committees, g).scatter_(2, pick[..., None], update[..., None].float())
    signal = (mask * desired[..., None]).view(batch, -1)
    hidden = machine.layer.hidden.float() + 2 * signal.T @ x.float()
    return hidden, int(mistaken.sum()), int(correct.sum()), int(update.sum())


def test_reference_committee_step_equals_dense_float_step(mnist_batch):
    """The authors' baseline (frozen random readout, one unit per wrong committee), 2070 units
    in 230 committees of 9 on real digits: three chained bit-packed steps give exactly the
    hidden weights of the dense float twin, and the readout never changes."""
    x, y = mnist_batch
    machine = cpr.init_committee(784, 2070, 9, 10, init_std=8.0, generator=torch.Generator().manual_seed(4))
    readout = machine.readout.clone()
    assert machine.variant == "reference" and machine.layer.reinforcement_numerator == 0
    params = cpr.CommitteeParameters(robustness=0.25)
    for step in range(3):
        rows = slice(step * 100, (step + 1) * 100)
        expected, mistakes, correct, updates = _reference_committee_twin(machine, x[rows], y[rows],
                                                                         machine.margin(0.25))
        result = cpr.cpr_step(machine, x[rows], y[rows], params, seed=step)
        assert (result.mistakes, result.correct, result.updates) == (mistakes, correct, (updates,))
        assert updates > 0
        assert torch.equal(machine.layer.hidden.float(), expected)
        assert torch.equal(machine.layer.weight_words, lb.pack_sign_tensor(machine.layer.hidden))
    assert torch.equal(machine.readout, readout)
    assert machine.margin(0.25) == 57  # ⌊0.25 · 230⌋, all committees score every class


def test_committee_scores_are_the_dense_integer_votes():
    """Both variants: scores from packed pre-activations = the dense ±1 integer votes."""
    x = _random_signs(20, 100)
    for variant in cpr.VARIANTS:
        machine = cpr.init_committee(100, 90, 3, 10, init_std=4.0, generator=torch.Generator().manual_seed(2),
                                     variant=variant)
        pre, scores = cpr.committee_scores(machine, x)
        signs = torch.where(machine.layer.hidden >= 0, 1, -1)
        assert np.array_equal(pre, (x.long() @ signs.T).numpy())
        votes = torch.where(torch.from_numpy(pre) >= 0, 1, -1).view(20, 30, 3).sum(-1).sign()
        if variant == "reference":
            expected = votes @ machine.readout.long().T
        else:
            expected = votes.view(20, 10, 3).sum(-1)
        assert np.array_equal(scores, expected.numpy()), variant


def test_a_tied_unit_is_not_an_error():
    """a = 0 reads +1 (sign(0) = +1) but is not 'in error' for desired −1: the strictly wrong
    unit of the group is updated instead (the reference code's d·a < 0)."""
    hidden = torch.tensor([[5, -5], [3, 4]], dtype=torch.int16)  # a = 0 and a = 7 for x = (+1, +1)
    classifier = torch.full((10, 2), -1, dtype=torch.int8)  # every class wants both units at −1
    layer = lb.BinaryLayer(hidden.clone(), lb.pack_sign_tensor(hidden), classifier,
                           lb.pack_sign_tensor(classifier))
    x = torch.ones(1, 2, dtype=torch.int8)
    # label 1 against tied scores: argmax (first index) 0 is wrong
    result = lb.local_binary_step([layer], x, torch.tensor([1]), lb.LocalBinaryParameters(group_size=2), 0)
    assert result.updates == (1,)
    assert layer.hidden.tolist() == [[5, -5], [1, 2]]


# ----------------------------------------------------------------------------- reinforcement
def test_reinforcement_masks_have_the_requested_probability():
    rows, features = 300, 200  # padding bits in the last word
    for numerator, bits in ((0, 16), (934, 16), (3, 2), (4, 2)):
        words = lb.reinforcement_mask_words(7, 0, rows, features, numerator, bits)
        bitmap = unpack_bits(from_numpy_words(words), features)
        assert int(np.bitwise_count(words).sum()) == int(bitmap.sum())  # padding stays 0
        p = numerator / 2**bits
        assert abs(float(bitmap.float().mean()) - p) <= 4 * (p * (1 - p) / bitmap.numel()) ** 0.5
    other = lb.reinforcement_mask_words(8, 0, rows, features, 934, 16)
    assert not np.array_equal(other, lb.reinforcement_mask_words(7, 0, rows, features, 934, 16))
    with pytest.raises(ValueError):
        lb.reinforcement_mask_words(7, 0, rows, features, 5, 2)


def test_reinforcement_pushes_away_from_zero_and_never_flips_a_sign():
    layer = _random_layers([130, 40])[0]
    layer.hidden[0, :5] = 0
    before = layer.hidden.clone()
    layer.reinforcement_numerator = lb.probability_numerator(0.3, 16)
    count = lb.reinforce(layer, seed=1, stream=0, bits=16, clip=None)
    step = layer.hidden.int() - before.int()
    assert count == int((step != 0).sum()) > 0
    assert bool(((step == 0) | (step == 2 * torch.where(before >= 0, 1, -1))).all())
    assert torch.equal(layer.hidden >= 0, before >= 0)


# ----------------------------------------------------------------------------- determinism
def test_seeded_steps_are_deterministic(mnist_batch):
    x, y = mnist_batch
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        learner = build_learner(load_config(RULE, ["model.hidden=[128,64]", "rule.group_size=32"]),
                                (1, 28, 28), 10, torch.device("cpu"))
        initial = learner.model[0].hidden.clone()
        for step in range(3):
            learner.train_step(x[step * 100:(step + 1) * 100].float(), y[step * 100:(step + 1) * 100],
                               LocalReducer())
        runs.append(learner.state_dict()["rule"])  # the rule saves its own state
    for first, second in zip(runs[0]["hidden"], runs[1]["hidden"], strict=True):
        assert torch.equal(first, second)
    assert not torch.equal(runs[0]["hidden"][0], initial)  # it did train


@pytest.mark.parametrize("variant", cpr.VARIANTS)
def test_seeded_committee_steps_are_deterministic(mnist_batch, variant):
    x, y = mnist_batch
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        learner = build_learner(load_config(COMMITTEE, ["model.hidden=270", f"rule.variant={variant!r}"]),
                                (1, 28, 28), 10, torch.device("cpu"))
        initial = learner.model.layer.hidden.clone()
        for step in range(3):
            learner.train_step(x[step * 100:(step + 1) * 100].float(), y[step * 100:(step + 1) * 100],
                               LocalReducer())
        runs.append(learner.state_dict()["rule"])  # the rule saves its own state
    assert torch.equal(runs[0]["hidden"], runs[1]["hidden"])
    assert not torch.equal(runs[0]["hidden"], initial)  # it did train
    assert ("readout" in runs[0]) == (variant == "reference")
    if variant == "reference":
        assert torch.equal(runs[0]["readout"], runs[1]["readout"])


@pytest.mark.parametrize("path, overrides", [(RULE, ["model.hidden=[128,64]", "rule.group_size=32"]),
                                             (COMMITTEE, ["model.hidden=270"]),
                                             (COMMITTEE, ["model.hidden=270", CLASS_COMMITTEES])],
                         ids=["local_binary", "cpr-reference", "cpr-class_committees"])
def test_the_rule_saves_its_own_state_and_the_old_flat_layout_still_loads(mnist_batch, path, overrides):
    """The learner's state is the rule's own (hidden weights, frozen error-signal weights,
    p_r counters) beside the signs at the epoch start; a checkpoint written before, with the
    rule's keys flat beside ``epoch_start_words`` (one tensor for CP+R), resumes the same."""
    x, y = mnist_batch
    config = load_config(path, overrides)

    def build():
        torch.manual_seed(5)
        return build_learner(config, (1, 28, 28), 10, torch.device("cpu"))

    learner = build()
    for rows in (slice(0, 100), slice(100, 200)):
        learner.train_step(x[rows].float(), y[rows], LocalReducer())
    learner.end_epoch(1, 0.4, LocalReducer())
    state = learner.state_dict()
    assert set(state) == {"rule", "epoch_start_words"}
    assert state["rule"].keys() == learner.rule.state_dict(learner.model).keys()
    numerators = state["rule"]["reinforcement_numerator"]
    assert all(n > 0 for n in (numerators if isinstance(numerators, list) else [numerators]))
    words = state["epoch_start_words"]
    old = {**state["rule"], "epoch_start_words": words[0] if path == COMMITTEE else words}
    results = []
    for saved in (state, old):
        twin = build()
        twin.load_state_dict(saved)
        torch.manual_seed(1)
        twin.train_step(x[200:].float(), y[200:], LocalReducer())
        results.append((twin.state_dict(), twin.end_epoch(2, 0.5, LocalReducer())))
    torch.manual_seed(1)
    learner.train_step(x[200:].float(), y[200:], LocalReducer())
    results.append((learner.state_dict(), learner.end_epoch(2, 0.5, LocalReducer())))
    for other_state, other_metrics in results[1:]:
        assert other_metrics == results[0][1]
        for key, value in results[0][0]["rule"].items():
            if isinstance(value, list):
                assert all(torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b
                           for a, b in zip(value, other_state["rule"][key], strict=True)), key
            else:
                assert torch.equal(value, other_state["rule"][key]) if isinstance(value, torch.Tensor) \
                    else value == other_state["rule"][key], key


def test_a_committee_layer_has_no_classifier():
    """CP+R's layer type holds what the rule trains and nothing of the local rule's classifiers."""
    machine = cpr.init_committee(20, 9, 3, 3)
    assert type(machine.layer) is cpr.CommitteeLayer and isinstance(machine.layer, lb.IntegerLayer)
    assert not hasattr(machine.layer, "classifier")


def test_committee_checkpoint_of_the_other_variant_is_refused():
    config = load_config(COMMITTEE, ["model.hidden=270"])
    reference = build_learner(config, (1, 28, 28), 10, torch.device("cpu"))
    other = build_learner(load_config(COMMITTEE, ["model.hidden=270", CLASS_COMMITTEES]), (1, 28, 28), 10,
                          torch.device("cpu"))
    with pytest.raises(ValueError, match="variant"):
        reference.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="variant"):
        other.load_state_dict(reference.state_dict())


def test_reference_committee_resume_is_bit_identical(tmp_path, mnist_dir):
    overrides = ["model.hidden=270", "data.train_size=500", "train.threads=1",
                 f"data.data_dir={str(mnist_dir.parent)!r}"]
    full = train(load_config(COMMITTEE, [*overrides, "train.epochs=3"]), tmp_path / "full", quiet=True)
    train(load_config(COMMITTEE, [*overrides, "train.epochs=2"]), tmp_path / "cut", quiet=True)
    (tmp_path / "cut" / "config.toml").write_text((tmp_path / "full" / "config.toml").read_text())
    resumed = train(load_config(COMMITTEE, [*overrides, "train.epochs=3"]), tmp_path / "cut", resume=True,
                    quiet=True)
    states = [load_checkpoint(tmp_path / run / "checkpoint.pt")["learner"]["rule"] for run in ("full", "cut")]
    assert torch.equal(states[0]["hidden"], states[1]["hidden"])
    assert torch.equal(states[0]["readout"], states[1]["readout"])
    assert states[0]["reinforcement_numerator"] == states[1]["reinforcement_numerator"]
    assert resumed["test_accuracy"] == full["test_accuracy"]


def test_resume_is_bit_identical(tmp_path, mnist_dir):
    overrides = [*SMALL, "data.train_size=500", f"data.data_dir={str(mnist_dir.parent)!r}"]
    full = train(load_config(RULE, [*overrides, "train.epochs=3"]), tmp_path / "full", quiet=True)
    train(load_config(RULE, [*overrides, "train.epochs=2"]), tmp_path / "cut", quiet=True)
    (tmp_path / "cut" / "config.toml").write_text((tmp_path / "full" / "config.toml").read_text())
    resumed = train(load_config(RULE, [*overrides, "train.epochs=3"]), tmp_path / "cut", resume=True,
                    quiet=True)
    states = [load_checkpoint(tmp_path / run / "checkpoint.pt")["learner"]["rule"] for run in ("full", "cut")]
    for first, second in zip(states[0]["hidden"], states[1]["hidden"], strict=True):
        assert torch.equal(first, second)
    assert states[0]["reinforcement_numerator"] == states[1]["reinforcement_numerator"]
    assert resumed["test_accuracy"] == full["test_accuracy"]


# ----------------------------------------------------------------------------- learning
def test_local_rule_learns_mnist_digits(tmp_path, mnist_dir):
    """2,000 training images, 6 epochs of 20 batches: ~0.8 test accuracy (chance 0.1)."""
    summary = train(load_config(RULE, [*SMALL, "train.epochs=6", f"data.data_dir={str(mnist_dir.parent)!r}"]),
                    tmp_path / "run", quiet=True)
    assert summary["test_accuracy"] > 0.7, summary


def test_cpr_committee_learns_mnist_digits(tmp_path, mnist_dir):
    """class_committees: 270 units (3 committees of 9 per class), 2,000 images, 5 epochs: ~0.75
    (chance 0.1)."""
    summary = train(load_config(COMMITTEE, ["model.hidden=270", "data.train_size=2000", "train.epochs=5",
                                            "train.threads=1", CLASS_COMMITTEES,
                                            f"data.data_dir={str(mnist_dir.parent)!r}"]),
                    tmp_path / "run", quiet=True)
    assert summary["test_accuracy"] > 0.6, summary


def test_reference_committee_learns_mnist_digits(tmp_path, mnist_dir):
    """The authors' baseline: 450 units (50 committees of 9, random readout), 2,000 images, 6
    epochs: 0.66-0.71 over seeds 0-2 (chance 0.1; it learns more slowly than class_committees
    on few batches and its test accuracy swings from epoch to epoch)."""
    summary = train(load_config(COMMITTEE, ["model.hidden=450", "data.train_size=2000", "train.epochs=6",
                                            "train.threads=1", f"data.data_dir={str(mnist_dir.parent)!r}"]),
                    tmp_path / "run", quiet=True)
    assert summary["test_accuracy"] > 0.5, summary


# ----------------------------------------------------------------------------- configs
def test_every_colombo2024_config_builds():
    for path in sorted(CONFIGS.glob("*.toml")):
        config = load_config(path)
        assert config.data.encoding in ("binarize", "thermometer"), path
        assert config.data.batch_size == 100, path
        channels = config.data.thermometer_bits if config.data.encoding == "thermometer" else 1
        learner = build_learner(config, (channels, 28, 28), 10, torch.device("cpu"))
        assert learner.predict(torch.zeros(2, channels, 28, 28)).shape == (2,)


@pytest.mark.parametrize("overrides, needle", [
    (["rule.group_size=100"], "must divide every hidden width"),
    (["rule.group_size=0"], "group_size"),
    (["rule.robustness=-0.1"], "robustness"),
    (["rule.reinforcement=1.5"], "reinforcement"),
    (["rule.clip=0"], "clip"),
    (["rule.error_signal=\"sideways\""], "error_signal"),
    (["model.hidden_dtype=\"int8\""], "hidden_dtype"),
    (["model.init_std=0"], "init_std"),
])
def test_bad_local_binary_configs_are_config_errors(overrides, needle):
    with pytest.raises(ConfigError, match=needle) as error:
        build_learner(load_config(RULE, overrides), (1, 28, 28), 10, torch.device("cpu"))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("overrides, needle", [
    (["model.hidden=2000"], "multiple of committee_size"),
    (["model.hidden=2079", CLASS_COMMITTEES], "multiple of committee_size × classes"),
    (["model.committee_size=4"], "committee_size"),
    (["rule.robustness=-1"], "robustness"),
    (["rule.variant=\"baldassi\""], "variant.*'reference', 'class_committees'"),
])
def test_bad_committee_configs_are_config_errors(overrides, needle):
    with pytest.raises(ConfigError, match=needle) as error:
        build_learner(load_config(COMMITTEE, overrides), (1, 28, 28), 10, torch.device("cpu"))
    assert "\n" not in str(error.value)

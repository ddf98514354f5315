"""The energy learner through the experiment layer: every laydevant2021 config loads and
trains a step, bad configurations give one-line ConfigErrors, state round trips are
bit-identical, CIFAR-10 configs run end to end on a small official-format archive, and EP
learns real MNIST digits."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from binlearn.data import load_dataset, write_cifar_archive
from binlearn.data.encodings import random_crop_flip
from binlearn.energy import DivergenceError
from binlearn.experiment import ConfigError, load_config
from binlearn.experiment.config import default_config
from binlearn.experiment.learner import LocalReducer
from binlearn.experiment.registry import build_learner

CONFIGS = sorted((Path(__file__).parents[2] / "configs" / "laydevant2021").glob("*.toml"))
# shrink every architecture so one step runs in milliseconds (hyper-parameters untouched)
SMALL = {"fc": ["model.hidden=[24]"], "fc2": ["model.hidden=[24,16]"],
         "conv": ["model.channels=[3,4]"], "cifar": ["model.channels=[2,3,3,4]"],
         "laborieux": ["model.channels=[2,3,3,4]"]}
STEPS = ["rule.free_steps=4", "rule.eval_steps=3"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _small(path: Path) -> list[str]:
    stem = path.stem
    key = next(k for k in ("laborieux", "cifar", "conv", "fc2", "fc") if k in stem)
    overrides = SMALL[key] + STEPS
    text = path.read_text()
    if 'name = "ep"' in text:
        overrides.append("rule.nudged_steps=2")
    if 'name = "bptt"' in text:
        overrides.append("rule.truncation=2")
    return overrides


def _input_shape(config) -> tuple[int, int, int]:
    return (3, 32, 32) if config.data.dataset.startswith("cifar") else (1, 28, 28)


def test_there_is_a_config_per_paper_row():
    names = {path.stem for path in CONFIGS}
    for expected in ("fc-binary-weights", "fc2-binary-weights", "conv-mnist-binary-weights",
                     "cifar10-binary-weights", "fc-binary-weights-activations",
                     "fc2-binary-weights-activations", "conv-mnist-binary-weights-activations",
                     "fc-float", "conv-mnist-float", "cifar10-float"):
        assert expected in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_builds_and_trains_one_step(path):
    config = load_config(path, _small(path))
    shape = _input_shape(config)
    torch.manual_seed(0)
    learner = build_learner(config, shape, 10, torch.device("cpu"))
    x, y = torch.rand(4, *shape), torch.tensor([0, 1, 2, 3])
    stats = learner.train_step(x, y, LocalReducer())
    assert set(stats) >= {"loss", "correct"} and 0 <= stats["correct"] <= 4
    assert learner.predict(x).shape == (4,)
    metrics = learner.end_epoch(1, 0.5, LocalReducer())
    if config.optimizer.name == "bop":
        assert len(metrics["flips"]) == learner.model.num_layers


def _learner(overrides: list[str]):
    config = load_config(CONFIGS[0].parent / "fc-binary-weights.toml",
                         ["model.hidden=[16]", "rule.free_steps=5", "rule.nudged_steps=3",
                          *overrides])
    return build_learner(config, (1, 4, 4), 3, torch.device("cpu"))


@pytest.mark.parametrize("overrides, message", [
    (["rule.beta=0"], "rule.beta"),
    (["rule.free_steps=0"], "rule.free_steps"),
    (["rule.nudged_steps=0"], "rule.nudged_steps"),
    (["optimizer.threshold=[1e-7,1e-7,1e-7]"], "optimizer.threshold has 3 values"),
    (["optimizer.gamma=[0.0,1e-4]"], "optimizer.gamma"),
    (["rule.relaxation=\"random\""], "rule.relaxation"),
    (["model.hidden=[0]"], "model.hidden"),
    (["model.neuron=\"spiking\""], "model.neuron"),
    (["model.architecture=\"conv\"", "model.channels=[2,2,2]", "model.pool=[2]"], "too small"),
    (["model.architecture=\"conv\"", "model.channels=[2,2]", "model.pool=[2,2,2]"],
     "one value per conv layer"),
    (["optimizer.name=\"sgd\""], "needs optimizer.name"),
    (["model.weights=\"float\""], "needs model.weights"),
    (["model.learn_scale=true"], "scale_learning_rate"),
    (["rule.nudge_placement=\"free_drive\"", "model.readout=\"cross_entropy\""], "free_drive"),
    (["schedule.anneal_flips=true"], "needs a schedule"),
    (["schedule.anneal_gamma=true"], "schedule.anneal_gamma needs a schedule"),
    (["schedule.decay_start=-1"], "schedule.decay_start"),
])
def test_bad_configurations_give_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        _learner(overrides)
    assert "\n" not in str(info.value)


def test_state_dict_round_trip_is_bit_identical():
    torch.manual_seed(0)
    learner = _learner(["model.learn_scale=true", "optimizer.scale_learning_rate=1e-3"])
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    for _ in range(3):
        learner.train_step(x, y, LocalReducer())
    learner.end_epoch(1, 0.5, LocalReducer())
    saved = copy.deepcopy(learner.state_dict())
    twin = _learner(["model.learn_scale=true", "optimizer.scale_learning_rate=1e-3"])
    twin.load_state_dict(saved)
    torch.manual_seed(1)
    learner.train_step(x, y, LocalReducer())
    torch.manual_seed(1)
    twin.train_step(x, y, LocalReducer())
    for (name, a), (_, b) in zip(learner.state_dict()["model"].items(),
                                 twin.state_dict()["model"].items(), strict=True):
        assert torch.equal(a, b), name
    momentum = learner.optimizers["weights"].state_dict()["state"][0]["momentum"]
    assert torch.equal(momentum, twin.optimizers["weights"].state_dict()["state"][0]["momentum"])


def test_optimizers_are_routed_by_weight_precision():
    """The coupling says what its weights are: ±1 weights go to Bop (per-layer γ, τ), float
    weights, biases and a readout to SGD, the learned α to their own SGD; an STE net's
    parameters (latent float weights included) all go to its float optimizer."""

    def params(optimizer):
        return [[id(p) for p in group["params"]] for group in optimizer.param_groups]

    binary = _learner(["model.learn_scale=true", "optimizer.scale_learning_rate=1e-3"])
    couplings = binary.model.couplings
    assert list(binary.optimizers) == ["weights", "float", "scale"]
    assert params(binary.optimizers["weights"]) == [[id(c.weight)] for c in couplings]
    assert params(binary.optimizers["float"]) == [[id(c.bias)] for c in couplings]
    assert params(binary.optimizers["scale"]) == [[id(c.scale) for c in couplings]]
    floats = _learner(["model.weights=\"float\"", "optimizer.name=\"sgd\"",
                       "optimizer.learning_rates=[0.1,0.2]"])
    couplings = floats.model.couplings
    assert list(floats.optimizers) == ["float"]
    assert params(floats.optimizers["float"]) == ([[id(c.weight)] for c in couplings]
                                                  + [[id(c.bias)] for c in couplings])
    assert [g["lr"] for g in floats.optimizers["float"].param_groups][:2] == [0.1, 0.2]
    ste = build_learner(default_config(["model.hidden=[16]"]), (1, 8, 8), 10, torch.device("cpu"))
    assert list(ste.optimizers) == ["float"]
    assert params(ste.optimizers["float"]) == [[id(p) for p in ste.model.parameters()]]


def test_schedule_waits_decay_start_epochs_and_anneals_bop_thresholds_to_no_flips():
    settings = ["schedule.decay_start=2", "schedule.cosine_epochs=2", "schedule.anneal_flips=true",
                "optimizer.threshold=[1e-6,2e-6]", "optimizer.bias_learning_rates=[0.1,0.2]"]
    torch.manual_seed(0)
    learner = _learner(settings)
    bop, biases = learner.optimizers["weights"], learner.optimizers["float"]
    seen = []
    for epoch in range(1, 6):
        metrics = learner.end_epoch(epoch, 0.5, LocalReducer())
        seen.append((metrics["thresholds"], metrics["lr"]))
    # constant for decay_start epochs, then cosine: factor 1, 1, 0.5, 0, 0
    assert seen[0] == ([1e-6, 2e-6], 0.1) and seen[1] == ([1e-6, 2e-6], 0.1)
    assert seen[2][0] == pytest.approx([2e-6, 4e-6]) and seen[2][1] == pytest.approx(0.05)
    assert seen[3] == ([None, None], 0.0) and seen[4] == ([None, None], 0.0)
    assert [g["threshold"] for g in bop.param_groups] == [float("inf")] * 2
    assert biases.param_groups[1]["lr"] == 0.0
    weights = [c.weight.detach().clone() for c in learner.model.couplings]
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    for _ in range(3):
        learner.train_step(x, y, LocalReducer())
    assert bop.flip_counts() == [0, 0]
    assert all(torch.equal(w, c.weight) for w, c in zip(weights, learner.model.couplings, strict=True))
    # a resumed run recomputes the thresholds from the config and the epochs done
    twin = _learner(settings)
    twin.load_state_dict(copy.deepcopy(learner.state_dict()))
    assert [g["threshold"] for g in twin.optimizers["weights"].param_groups] == [float("inf")] * 2
    plain = _learner(["schedule.decay_start=2", "schedule.cosine_epochs=2",
                      "optimizer.threshold=[1e-6,2e-6]"])
    for epoch in range(1, 5):
        assert "thresholds" not in plain.end_epoch(epoch, 0.5, LocalReducer())
    assert [g["threshold"] for g in plain.optimizers["weights"].param_groups] == [1e-6, 2e-6]


def test_diverging_training_raises_divergence_error():
    learner = _learner([])
    with torch.no_grad():
        learner.model.couplings[1].bias[0] = float("nan")
    with pytest.raises(DivergenceError, match="layer 2 of 2 .* at step 1;"):
        learner.train_step(torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0]), LocalReducer())


def test_learned_scale_at_or_below_zero_stops_training():
    """A learned α that reaches 0 or below would invert (or erase) its coupling's signs and
    leave the network at chance without any error: the step raises instead."""
    learner = _learner(["model.learn_scale=true", "optimizer.scale_learning_rate=1e-9"])
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    learner.train_step(x, y, LocalReducer())  # positive α: no complaint
    with torch.no_grad():
        learner.model.couplings[1].scale.fill_(-0.1)
    with pytest.raises(DivergenceError, match=r"α of coupling 2 of 2 fell to -0\.1 .*"
                                              r"optimizer\.scale_learning_rate \(now 1e-09\)"):
        learner.train_step(x, y, LocalReducer())


@pytest.mark.parametrize("name", ["cifar10-binary-weights", "cifar10-float",
                                  "cifar10-float-laborieux"])
def test_cifar_configs_run_end_to_end_on_an_official_format_archive(tmp_path, name):
    rng = np.random.default_rng(0)
    (tmp_path / "cifar10").mkdir()
    write_cifar_archive(tmp_path / "cifar10" / "cifar-10-python.tar.gz", "cifar10",
                        (rng.integers(0, 256, (10, 3, 32, 32), dtype=np.uint8), np.arange(10)),
                        (rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8), np.arange(6)))
    path = CONFIGS[0].parent / f"{name}.toml"
    config = load_config(path, _small(path))
    data = load_dataset(config.data, data_dir=tmp_path, verify=False, quiet=True)
    torch.manual_seed(0)
    learner = build_learner(config, data.input_shape, data.num_classes, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    x = random_crop_flip(data.x_train[:5], generator) if config.data.augment else data.x_train[:5]
    stats = learner.train_step(x, data.y_train[:5], LocalReducer())
    assert np.isfinite(stats["loss"])
    assert learner.predict(data.x_test).shape == (6,)


def test_ep_learns_real_mnist_digits(mnist_dir):
    """Float EP, 784-128-10, 2000 training images, 2 epochs: well above chance."""
    config = load_config(CONFIGS[0].parent / "fc-float.toml",
                         ["model.hidden=[128]", "rule.free_steps=20", "rule.nudged_steps=6",
                          "optimizer.learning_rates=[0.1,0.05]", "data.train_size=2000"])
    data = load_dataset(config.data, data_dir=mnist_dir.parent, quiet=True)
    torch.manual_seed(0)
    learner = build_learner(config, data.input_shape, 10, torch.device("cpu"))
    for _ in range(2):
        order = torch.randperm(2000)
        for start in range(0, 2000, 50):
            index = order[start:start + 50]
            learner.train_step(data.x_train[index], data.y_train[index], LocalReducer())
    accuracy = float((learner.predict(data.x_test[:1000]) == data.y_test[:1000]).float().mean())
    assert accuracy > 0.75, accuracy


def test_diverging_run_stops_naming_layer_and_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """A real NaN enters the network at the end of epoch 2: its evaluation's relaxation
    diverges, the runner stops with a one-line message (layer, step, kept epoch) and
    checkpoint.pt stays at epoch 1."""
    from binlearn.experiment import train
    from binlearn.experiment.checkpoint import load_checkpoint
    from binlearn.experiment.learners.gradient import GradientLearner
    from binlearn.experiment.runner import TrainingDiverged

    original = GradientLearner.end_epoch

    def poisoned_end_epoch(self, epoch, train_accuracy, reducer):
        result = original(self, epoch, train_accuracy, reducer)
        if epoch == 2:
            with torch.no_grad():
                self.model.couplings[1].bias[0] = float("nan")
        return result

    monkeypatch.setattr(GradientLearner, "end_epoch", poisoned_end_epoch)
    config = load_config(CONFIGS[0].parent / "fc-float.toml",
                         ["data.dataset=\"digits\"", "model.hidden=[16]", "rule.free_steps=5",
                          "rule.nudged_steps=2", "train.epochs=3"])
    with pytest.raises(TrainingDiverged) as info:
        train(config, tmp_path / "run", quiet=True)
    message = str(info.value)
    assert "\n" not in message
    assert "layer 2 of 2" in message and "at step 1" in message, message
    assert "checkpoint (epoch 1) is kept" in message, message
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_eval_overrides_change_how_a_run_is_evaluated_not_the_model(tmp_path):
    """``evaluate_run`` with ``rule.eval_steps`` relaxes for that many steps: the trained T
    gives the run's own test accuracy; one step stops the free phase far from its fixed point
    and predicts differently. Keys that would change the model are refused."""
    from binlearn.artifacts import evaluate_run
    from binlearn.experiment import train

    config = load_config(CONFIGS[0].parent / "fc-float.toml",
                         ["data.dataset=\"digits\"", "model.hidden=[32]", "rule.free_steps=12",
                          "rule.nudged_steps=4", "train.epochs=2"])
    summary = train(config, tmp_path / "run", quiet=True)
    same = evaluate_run(tmp_path / "run", quiet=True, overrides=["rule.eval_steps=12"])
    assert same["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert same["overrides"] == ["rule.eval_steps=12"]
    one_step = evaluate_run(tmp_path / "run", quiet=True, overrides=["rule.eval_steps=1"])
    assert one_step["accuracy"] < same["accuracy"] - 0.2, (one_step, same)
    for bad in ("model.hidden=[8]", "rule.free_steps=3", "rule.eval_stepz=3"):
        with pytest.raises(ConfigError, match="eval accepts --set rule.eval_steps"):
            evaluate_run(tmp_path / "run", quiet=True, overrides=[bad])
    with pytest.raises(ConfigError, match="eval_steps must be >= 1"):
        evaluate_run(tmp_path / "run", quiet=True, overrides=["rule.eval_steps=0"])


def test_anneal_gamma_decays_bop_gamma_with_the_schedule_until_weights_stop():
    """``schedule.anneal_gamma``: γ follows the learning-rate factor (1, 1, 0.5, 0): at γ = 0 the
    filtered update m no longer moves, so a batch that flips weights at full γ flips none."""
    settings = ["schedule.decay_start=2", "schedule.cosine_epochs=2", "schedule.anneal_gamma=true",
                "optimizer.gamma=[0.2,0.3]", "optimizer.threshold=[1e-9,1e-9]"]
    torch.manual_seed(0)
    learner = _learner(settings)
    bop = learner.optimizers["weights"]
    seen = [learner.end_epoch(epoch, 0.5, LocalReducer())["gammas"] for epoch in range(1, 5)]
    assert seen[0] == seen[1] == [0.2, 0.3]
    assert seen[2] == pytest.approx([0.1, 0.15]) and seen[3] == [0.0, 0.0]
    assert [g["threshold"] for g in bop.param_groups] == [1e-9, 1e-9]  # thresholds untouched
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    momenta = [bop.state[c.weight]["momentum"].clone() if c.weight in bop.state else None
               for c in learner.model.couplings]
    weights = [c.weight.detach().clone() for c in learner.model.couplings]
    learner.train_step(x, y, LocalReducer())
    assert bop.flip_counts() == [0, 0]
    assert all(torch.equal(w, c.weight) for w, c in zip(weights, learner.model.couplings, strict=True))
    for before, c in zip(momenta, learner.model.couplings, strict=True):
        after = bop.state[c.weight]["momentum"]
        assert torch.equal(after, before if before is not None else torch.zeros_like(after))
    fresh = _learner(["optimizer.gamma=[0.2,0.3]", "optimizer.threshold=[1e-9,1e-9]"])
    fresh.train_step(x, y, LocalReducer())
    assert sum(fresh.optimizers["weights"].flip_counts()) > 0  # the same batch flips at full γ
    twin = _learner(settings)
    twin.load_state_dict(copy.deepcopy(learner.state_dict()))
    assert [g["gamma"] for g in twin.optimizers["weights"].param_groups] == [0.0, 0.0]

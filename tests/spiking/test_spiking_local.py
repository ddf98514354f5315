"""A local-binary-rule network as a spiking network (binlearn.spiking.local): exact at T = 1
on real MNIST bits, and ``binlearn convert`` end to end on a trained digits run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from binlearn.cli import main
from binlearn.data import load_dataset
from binlearn.experiment.config import load_config
from binlearn.experiment.runner import train
from binlearn.rules.local_binary import init_layers, input_signs, predict
from binlearn.spiking import simulate
from binlearn.spiking.local import convert_sign_mlp, input_spikes

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mnist_bits(mnist_dir):
    data = load_dataset("mnist", data_dir=mnist_dir.parent, train_size=64, encoding="binarize",
                        threshold=0.5, quiet=True)
    return data.x_test[:300]


# odd widths: a layer fed by 41 or 31 units has odd ±1 row sums S, where θ = ⌈S/2⌉ − 1 rounds
@pytest.mark.parametrize("sizes", [[784, 40], [784, 64, 30], [784, 41, 31]])
def test_sign_mlp_is_exact_at_one_step_on_mnist_bits(mnist_bits, sizes):
    generator = torch.Generator().manual_seed(1)
    # small init: many pre-activations land exactly on 0, where sign(0) = +1 must hold
    layers = init_layers(sizes, 10, init_std=1.0, generator=generator)
    x = mnist_bits
    network = convert_sign_mlp([layer.hidden for layer in layers], layers[-1].classifier, tuple(x.shape[1:]))
    result = simulate(network, input_spikes(x), 1, delay=False)
    assert torch.equal(result.predictions()[0], predict(layers, input_signs(x)))
    # the output's first current is the source's class scores / 2, exactly
    signs = input_signs(x).float()
    for layer in layers:
        hidden = torch.where(layer.hidden >= 0, 1.0, -1.0)
        signs = torch.where(signs @ hidden.T >= 0, 1.0, -1.0)
    scores = signs @ layers[-1].classifier.float().T
    assert torch.equal(result.outputs[0], scores / 2)


def test_sign_mlp_refuses_mismatched_shapes():
    layers = init_layers([16, 8], 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="has 12 features"):
        convert_sign_mlp([layers[0].hidden], layers[0].classifier, (12,))
    with pytest.raises(ValueError, match="fan-in"):
        convert_sign_mlp([layers[0].hidden, layers[0].hidden], layers[0].classifier, (16,))


def test_convert_command_on_a_local_binary_run(tmp_path, capsys):
    config = load_config(ROOT / "configs/quickstart/digits-local-binary.toml",
                         ["train.epochs=2", "model.hidden=[230]", "train.threads=1"])
    train(config, tmp_path / "run", quiet=True)
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "run"), "--timesteps", "6", "--one-step", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    record = json.loads((tmp_path / "run/spiking.json").read_text())
    assert record["source"] == "local_binary" and record["test_images"] == 360
    assert record["accuracy_per_step"][0] == pytest.approx(record["source_accuracy"], abs=1e-6)
    assert record["agreement_with_source_per_step"][0] == 1.0
    assert printed["source_accuracy"] == record["source_accuracy"]
    assert set(record["firing_rate_per_layer"]) == {"fc1"}
    assert (tmp_path / "run/latency.png").stat().st_size > 1000

"""Conversion of STE-trained sources to spiking networks, on real MNIST images, and
``binlearn convert`` end to end (digits, a tiny official-format CIFAR-10 archive)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from binlearn.binary import Heaviside
from binlearn.cli import main
from binlearn.data import load_dataset
from binlearn.experiment.config import DataConfig, config_to_dict, load_config, to_toml
from binlearn.experiment.learner import LocalReducer
from binlearn.experiment.learners.ste import (
    ConvNetConfig,
    MLPConfig,
    STEConfig,
    STEOptimizerConfig,
    build_convnet,
    build_mlp,
    ste_learner,
)
from binlearn.experiment.runner import train
from binlearn.nn import QCFS
from binlearn.spiking import simulate
from binlearn.spiking.convert import ConversionError, convert
from binlearn.spiking.synops import fanout, spiking_summary, totals

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_dataset(DataConfig(dataset="mnist", data_dir=str(mnist_dir.parent), train_size=2000))


def _trained(model: nn.Module, data, epochs: int = 2) -> nn.Module:
    torch.manual_seed(0)
    learner = ste_learner(model, STEConfig(), STEOptimizerConfig(lr=3e-3))
    for _ in range(epochs):
        for batch in torch.randperm(len(data.y_train)).split(100):
            learner.train_step(data.x_train[batch], data.y_train[batch], LocalReducer())
    return learner.model.eval()


def _mlp(data, activations: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    cfg = MLPConfig(hidden=[128, 128], weights="binary", weight_scale="unit", activations=activations,
                    binary_first_layer=False, binary_last_layer=False, **kwargs)
    return _trained(build_mlp(cfg, data.input_shape, data.num_classes), data)


def _activations(model: nn.Module, x: torch.Tensor, kind: type) -> list[torch.Tensor]:
    found = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: found.append(out))
             for m in model if isinstance(m, kind)]
    with torch.no_grad():
        logits = model(x)
    for hook in hooks:
        hook.remove()
    return [*found, logits]


def test_heaviside_source_is_bit_exact_at_one_step(mnist):
    model = _mlp(mnist, "heaviside")
    x = mnist.x_test[:2000]
    *hidden, logits = _activations(model, x, Heaviside)
    network = convert(model, mnist.x_train[:500])
    assert network.layers[1].binary  # the hidden binary layer keeps ±1 synapses
    result = simulate(network, x, 1, delay=False)
    for source, spikes in zip(hidden, result.spike_counts, strict=True):
        assert torch.equal(source, spikes)  # every hidden unit, bit for bit
    assert torch.equal(result.predictions()[0], logits.argmax(1))
    assert 0.05 < float(hidden[0].mean()) < 0.95  # a real test: the units are neither all on nor off


def test_spike_rates_approach_the_source_activations(mnist):
    model = _mlp(mnist, "relu")
    x = mnist.x_test[:300]
    *hidden, logits = _activations(model, x, nn.ReLU)
    network = convert(model, x, percentile=100)  # the max over these images: no activation saturates
    errors = []
    for steps in (8, 32, 128):
        result = simulate(network, x, steps, delay=False)
        errors.append([float((counts / steps * layer.spike_value - source).abs().mean())
                       for counts, layer, source
                       in zip(result.spike_counts, network.layers, hidden, strict=False)])
        agreement = float((result.predictions()[-1] == logits.argmax(1)).float().mean())
    errors_np = np.array(errors)
    assert (np.diff(errors_np, axis=0) < 0).all(), errors  # every layer's error falls with T
    assert errors_np[-1, 0] < 0.02 * float(hidden[0].max())  # the first layer's rate error ~ λ/T
    assert agreement > 0.97


def test_qcfs_source_converts_in_a_few_steps(mnist):
    model = _mlp(mnist, "qcfs", qcfs_levels=4)
    x = mnist.x_test[:1000]
    logits = _activations(model, x, QCFS)[-1]
    source = float((logits.argmax(1) == mnist.y_test[:1000]).float().mean())
    network = convert(model, mnist.x_train[:500])
    # θ = the trained λ
    assert network.layers[0].spike_value == pytest.approx(float(model[3].threshold.detach()))
    result = simulate(network, x, 8, delay=False, init="half")
    accuracy = (result.predictions() == mnist.y_test[:1000]).float().mean(1)
    assert float(accuracy[3:].max()) > source - 0.02, (accuracy.tolist(), source)
    rows = spiking_summary(network, result)
    total = totals(rows)
    assert rows[1]["synaptic_ops"] == pytest.approx(rows[0]["spikes"] * 128)  # each spike drives 128 weights
    assert total["input_macs"] == 784 * 128 and 0 < total["spikes"] < 8 * 256


def test_convnet_conversion_and_refusals():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 16, 16)
    model = build_convnet(ConvNetConfig(stages=[[8], [16]], hidden=32), (3, 16, 16), 10)
    model.train()
    model(x)
    model.eval()
    network = convert(model, x, percentile=100)
    assert [layer.binary for layer in network.layers] == [False, True, True, False]
    result = simulate(network, x, 96, delay=False)
    assert float((result.predictions()[-1] == model(x).argmax(1)).float().mean()) > 0.9
    rows = spiking_summary(network, result)
    # the second conv on its 8×8 map: dense MACs = weights × positions; a spike drives only
    # the taps that do not fall on padding: Σ over the 9 taps of (8 − |du|)(8 − |dv|) = 22²
    assert rows[1]["source_macs"] == 16 * 8 * 9 * 8 * 8
    assert float(fanout(network.layers[1], (8, 8, 8)).sum()) == 16 * 8 * 22 * 22
    maxpool = build_convnet(ConvNetConfig(stages=[[8]], hidden=32, pool="max"), (3, 16, 16), 10).eval()
    with pytest.raises(ConversionError, match="max pooling"):
        convert(maxpool, x)
    sign = build_mlp(MLPConfig(hidden=[16], activations="sign"), (3, 16, 16), 10).eval()
    with pytest.raises(ConversionError, match="heaviside"):
        convert(sign, x)


def _binlearn(capsys, *args: str) -> SimpleNamespace:
    """``binlearn ARGS`` in this process (the CLI's own main): exit status, stdout, stderr."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def _config_only_run(tmp_path: Path, name: str, config: Path, *overrides: str) -> Path:
    run = tmp_path / name
    run.mkdir()
    (run / "config.toml").write_text(to_toml(config_to_dict(load_config(config, list(overrides)))))
    return run


def test_convert_refuses_what_it_cannot_convert(tmp_path, capsys):
    cases = {
        "max pooling": _config_only_run(tmp_path, "maxpool", ROOT / "configs/lu2020/cifar10-vgg-small.toml",
                                        "model.pool=max"),
        "float-weight EP network": _config_only_run(tmp_path, "ep",
                                                    ROOT / "configs/laydevant2021/fc-float.toml"),
        "committee run": _config_only_run(tmp_path, "committee",
                                          ROOT / "configs/colombo2024/mnist-committee-2070.toml"),
        "no checkpoint.pt": _config_only_run(tmp_path, "fresh", ROOT / "configs/lu2020/mnist-mlp-float.toml"),
        "run directory not found": tmp_path / "missing",
    }
    for reason, run in cases.items():
        done = _binlearn(capsys, "convert", str(run), "--quiet")
        assert done.returncode == 2, (reason, done.stderr)
        assert done.stderr.startswith("binlearn: error: ") and done.stderr.count("\n") == 1, done.stderr
        assert reason in done.stderr, (reason, done.stderr)


def test_convert_command_end_to_end_on_digits(tmp_path, capsys):
    config = load_config(ROOT / "configs/lu2020/mnist-mlp-binary-weights.toml",
                         ["data.dataset=digits", "train.epochs=2", "model.hidden=[64,64]",
                          "data.batch_size=32"])
    train(config, tmp_path / "run", quiet=True)
    done = _binlearn(capsys, "convert", str(tmp_path / "run"), "--timesteps", "12", "--one-step",
                     "--init-half", "--percentile", "99.9", "--output", str(tmp_path / "out"), "--quiet")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out/spiking.json").read_text())
    for key in ("source_accuracy", "accuracy_per_step", "steps_to_within_1_point", "spikes_per_inference",
                "synaptic_ops_per_inference", "firing_rate_per_layer", "settings"):
        assert key in record
    assert len(record["accuracy_per_step"]) == 12 and record["test_images"] == 360
    assert record["settings"]["delay"] is False and record["settings"]["init"] == "half"
    assert set(record["firing_rate_per_layer"]) == {"fc1", "fc2"}
    assert (tmp_path / "out/latency.png").stat().st_size > 1000
    again = _binlearn(capsys, "convert", str(tmp_path / "run"), "--timesteps", "4", "--reset", "zero",
                      "--encoding", "poisson", "--compare", str(tmp_path / "out/spiking.json"), "--quiet")
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "run/spiking.json").read_text())["settings"]["encoding"] == "poisson"
    bad = _binlearn(capsys, "convert", str(tmp_path / "run"), "--reset", "hold")
    assert bad.returncode == 2 and "subtract, zero" in bad.stderr


def test_cifar10_vgg_config_end_to_end(tmp_path, capsys):
    from binlearn.data.formats import write_cifar_archive

    rng = np.random.default_rng(0)
    train_set = (rng.integers(0, 256, (60, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 60))
    test_set = (rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 20))
    (tmp_path / "data/cifar10").mkdir(parents=True)
    write_cifar_archive(tmp_path / "data/cifar10/cifar-10-python.tar.gz", "cifar10", train_set, test_set)
    config = load_config(ROOT / "configs/lu2020/cifar10-vgg-small.toml",
                         [f"data.data_dir={json.dumps(str(tmp_path / 'data'))}", "data.verify=false",
                          "data.download=false", "train.epochs=1", "model.stages=[[8],[8],[16]]",
                          "model.hidden=16", "data.batch_size=20", "train.device=cpu"])
    train(config, tmp_path / "run", quiet=True)
    done = _binlearn(capsys, "convert", str(tmp_path / "run"), "--timesteps", "6",
                     "--calibration-images", "40", "--device", "cpu", "--quiet")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "run/spiking.json").read_text())
    assert record["test_images"] == 20 and len(record["accuracy_per_step"]) == 6
    assert set(record["firing_rate_per_layer"]) == {"conv1", "conv2", "conv3", "fc4"}

"""binlearn.spiking.nir: a converted network written as NIR reads back as the same graph, and an
independent reader (nirtorch's graph interpreter with snnTorch's neurons) runs the exported
reset-to-zero MLP and predicts what binlearn's simulator predicts, step by step, on 1,000 MNIST
test images; a network trained by the local binary rule exports too, and the reader computes
its outputs bit for bit at every step; what NIR cannot express is refused in one line."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from binlearn.artifacts.nir_export import CALIBRATION_IMAGES, NIR_MEMORY_KEY, PERCENTILE, SEED
from binlearn.artifacts.trained import load_trained
from binlearn.cli import main
from binlearn.data import load_dataset
from binlearn.energy import BinaryAccumulator, BinaryWeights, fully_connected
from binlearn.experiment import load_config, train
from binlearn.spiking import IF, Integrator, SpikingLayer, SpikingNetwork, simulate
from binlearn.spiking.convert import convert
from binlearn.spiking.ep import SpikingEPError, simulate_ep
from binlearn.spiking.local import convert_sign_mlp, input_spikes
from binlearn.spiking.nir import (
    NIRExportError,
    ep_to_nir,
    graph_differences,
    read_nir,
    reference_outputs,
    reference_predictions,
    sign_mlp_to_nir,
    to_nir,
    write_nir,
)

nir = pytest.importorskip("nir")

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_dataset("mnist", data_dir=str(mnist_dir.parent), train_size=4000, quiet=True)


@pytest.fixture(scope="module")
def trained(mnist):
    """A 784-64-10 ReLU MLP trained for 300 Adam steps on 4,000 MNIST images, and the largest
    hidden activation of each unit on them (max threshold balancing, per unit)."""
    torch.manual_seed(0)
    first, second = nn.Linear(784, 64), nn.Linear(64, 10)
    model = nn.Sequential(nn.Flatten(), first, nn.ReLU(), second)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = mnist.x_train, mnist.y_train
    for step in range(300):
        batch = torch.randint(0, len(x), (128,), generator=torch.Generator().manual_seed(step))
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        peak = torch.relu(first(x.flatten(1))).amax(dim=0).clamp_min(1e-3)
    return first, second, peak


def _mlp(trained, reset: str = "zero") -> SpikingNetwork:
    """The trained MLP converted: IF(θ = the unit's peak activation) and output weights × peak
    (one spike stands for the unit's peak activation)."""
    first, second, peak = trained
    with torch.no_grad():
        synapse = nn.Linear(784, 64, bias=False)
        synapse.weight.copy_(first.weight)
        output = nn.Linear(64, 10, bias=False)
        output.weight.copy_(second.weight * peak)
    layers = [SpikingLayer("fc1", nn.Sequential(nn.Flatten(), synapse), IF(peak, reset), bias=first.bias),
              SpikingLayer("output", nn.Sequential(output), Integrator(), bias=second.bias)]
    return SpikingNetwork(layers, (1, 28, 28))


def _conv_net(seed: int = 0, reset: str = "zero") -> SpikingNetwork:
    """conv 3x3 (pad 1) -> average pool 2 -> IF (one θ per channel) -> flatten -> linear -> integrator."""
    torch.manual_seed(seed)
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
    linear = nn.Linear(4 * 14 * 14, 10, bias=False)
    threshold = torch.tensor([0.3, 0.5, 0.7, 0.9]).reshape(4, 1, 1)
    layers = [SpikingLayer("conv1", nn.Sequential(conv, nn.AvgPool2d(2)), IF(threshold, reset),
                           bias=0.05 * torch.randn(4, 1, 1)),
              SpikingLayer("output", nn.Sequential(nn.Flatten(), linear), Integrator(), bias=torch.zeros(10))]
    return SpikingNetwork(layers, (1, 28, 28))


def _same_graph(a, b) -> None:
    assert graph_differences(a, b) == []
    # the comparison can fail: one changed threshold is seen
    changed = copy.deepcopy(b)
    name = next(n for n in changed.nodes if n.endswith(".if"))
    changed.nodes[name].v_threshold = changed.nodes[name].v_threshold + 1
    assert graph_differences(a, changed) == [f"{name}.v_threshold differs"]


def test_a_round_trip_through_nir_write_and_read_gives_the_same_graph(tmp_path, trained):
    for network, pooling in ((_mlp(trained), "sum"), (_conv_net(), "sum"), (_conv_net(), "avg")):
        graph = to_nir(network, pooling=pooling)
        path = write_nir(graph, tmp_path / "net.nir")
        back = read_nir(path)
        _same_graph(graph, back)
    types = [type(node).__name__ for node in to_nir(_conv_net()).nodes.values()]
    assert types == ["Input", "Conv2d", "SumPool2d", "IF", "Flatten", "Affine", "I", "Output"]
    conv_graph = to_nir(_conv_net())
    # the sum pool is 4x the average pool: thresholds 4θ, per unit over the (4, 14, 14) map
    assert conv_graph.nodes["conv1.if"].v_threshold.shape == (4, 14, 14)
    assert np.allclose(conv_graph.nodes["conv1.if"].v_threshold[:, 0, 0], [1.2, 2.0, 2.8, 3.6])
    assert np.allclose(to_nir(_conv_net(), pooling="avg").nodes["conv1.if"].v_threshold[:, 0, 0],
                       [0.3, 0.5, 0.7, 0.9])
    flatten = conv_graph.nodes["output.0.flatten"]
    assert (flatten.start_dim, list(flatten.input_type["input"])) == (0, [4, 14, 14])  # no batch axis
    mlp = to_nir(_mlp(trained)).nodes
    assert mlp["fc1.if"].v_threshold.shape == (64,) and np.unique(mlp["fc1.if"].v_threshold).size > 1


def _reader_predictions(graph, x: torch.Tensor, steps: int) -> torch.Tensor:
    pytest.importorskip("nirtorch")
    pytest.importorskip("snntorch")
    return reference_predictions(graph, x, steps)


def test_snntorch_and_nirtorch_run_the_exported_reset_to_zero_mlp_like_binlearn(tmp_path, mnist, trained):
    network = _mlp(trained)
    x = mnist.x_test[:1000]
    steps = 16
    path = write_nir(to_nir(network, output_integrator=False), tmp_path / "mlp.nir")
    got = _reader_predictions(read_nir(path), x, steps)
    expected = simulate(network, x, steps, delay=False).predictions()
    assert torch.equal(got, expected)  # every image, every step
    accuracy = float((expected[-1] == mnist.y_test[:1000]).float().mean())
    assert accuracy > 0.8  # a real trained network, not a degenerate one
    # the reader is sensitive to what was exported: the same graph with halved thresholds differs
    graph = to_nir(network, output_integrator=False)
    graph.nodes["fc1.if"].v_threshold = graph.nodes["fc1.if"].v_threshold / 2
    assert not torch.equal(_reader_predictions(graph, x, steps), expected)


def test_the_reader_reproduces_the_sum_pool_with_folded_thresholds(tmp_path, mnist):
    network = _conv_net()
    x = mnist.x_test[:200]
    got = _reader_predictions(read_nir(write_nir(to_nir(network, output_integrator=False),
                                                 tmp_path / "conv.nir")), x, 8)
    expected = simulate(network, x, 8, delay=False).predictions()
    assert (got == expected).float().mean() > 0.99  # float sums in another order may flip a rare tie


def test_snntorch_import_from_nir_does_not_read_nir_if_as_nir_defines_it(trained):
    """Why the test above maps IF itself: snnTorch 1.0's import_from_nir refuses per-unit
    thresholds, and for a uniform one builds a leaky neuron (β = 0.9, reset by subtraction)
    whose membrane NIR's IF neither leaks nor subtracts."""
    snn = pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from snntorch.import_nir import import_from_nir

    graph = to_nir(_mlp(trained), output_integrator=False)
    with pytest.raises(AssertionError, match="v_threshold must be same"):
        import_from_nir(graph)
    graph.nodes["fc1.if"].v_threshold = np.ones_like(graph.nodes["fc1.if"].v_threshold)
    neurons = [m for m in import_from_nir(graph).modules() if isinstance(m, snn.Leaky)]
    assert len(neurons) == 1
    assert float(neurons[0].beta) == pytest.approx(0.9) and neurons[0].reset_mechanism == "subtract"


def test_what_nir_cannot_express_is_refused_in_one_line(trained):
    with pytest.raises(NIRExportError, match="resets by subtraction") as error:
        to_nir(_mlp(trained, reset="subtract"))
    assert "\n" not in str(error.value)
    graph = to_nir(_mlp(trained, reset="subtract"), subtract_as_zero=True)
    assert graph.nodes["fc1.if"].metadata["binlearn_reset"] == "subtract"
    with pytest.raises(NIRExportError, match="pooling"):
        to_nir(_conv_net(), pooling="max")


def test_binlearn_export_format_nir_writes_the_converted_run(tmp_path, capsys):
    """`binlearn export RUN --format nir` on a binary-weight STE run (digits): the file reads back
    as the graph of the run converted with reset to zero, and the independent reader predicts
    what binlearn's simulator predicts for that conversion on every test image and step."""
    root = Path(__file__).parents[2]
    config = load_config(root / "configs/lu2020/mnist-mlp-binary-weights.toml",
                         ["data.dataset=digits", "train.epochs=2", "model.hidden=[64,64]",
                          "data.batch_size=32"])
    train(config, tmp_path / "run", quiet=True)
    capsys.readouterr()
    assert main(["export", str(tmp_path / "run"), "--format", "nir", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "nir" and summary["verified"] and summary["output"].endswith("model.nir")
    graph = read_nir(tmp_path / "run" / "model.nir")
    kinds = [type(graph.nodes[n]).__name__ for n in ("fc1.if", "fc2.if", "output.integrator")]
    assert kinds == ["IF", "IF", "I"]
    trained = load_trained(tmp_path / "run", device="cpu", quiet=True)
    images = trained.data.x_train
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(SEED))[:CALIBRATION_IMAGES]
    network = convert(trained.model, images[chosen], percentile=PERCENTILE, reset="zero")
    assert graph_differences(graph, to_nir(network)) == []
    x = trained.data.x_test
    expected = simulate(network, x, 12, delay=False).predictions()
    got = _reader_predictions(to_nir(network, output_integrator=False), x, 12)
    assert torch.equal(got, expected)
    # what cannot be exported as NIR is refused in one line, exit status 2
    ep = tmp_path / "ep"
    ep.mkdir()
    (ep / "config.toml").write_text((root / "configs/laydevant2021/fc-float.toml").read_text())
    assert main(["export", str(ep), "--format", "nir", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("binlearn: error: ") and error.count("\n") == 1


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The quickstart's 192-1035-1035-10 network trained by the local binary rule for 2 epochs
    on the embedded digits (thermometer bits; 0.758 test accuracy), and the run loaded back."""
    run = tmp_path_factory.mktemp("local") / "run"
    config = load_config(ROOT / "configs/quickstart/digits-local-binary.toml",
                         ["train.epochs=2", "train.threads=1"])
    train(config, run, quiet=True)
    return run, load_trained(run, device="cpu", quiet=True)


def _sign_mlp(trained, reset: str = "zero"):
    model = trained.model  # a SignNetwork
    return convert_sign_mlp(model.hidden, model.classifier, tuple(trained.data.x_test.shape[1:]), reset=reset)


def test_a_local_binary_network_exports_to_nir_and_reads_back(tmp_path, local_run):
    _, trained = local_run
    network = _sign_mlp(trained)
    graph = sign_mlp_to_nir(network)
    _same_graph(graph, read_nir(write_nir(graph, tmp_path / "local.nir")))
    types = [type(node).__name__ for node in graph.nodes.values()]
    assert types == ["Input", "Threshold", "Flatten", "Linear", "IF", "Linear", "IF", "Affine", "I", "Output"]
    assert graph.edges[:2] == [("input", "input.threshold"), ("input.threshold", "fc1.0.flatten")]
    assert np.array_equal(graph.nodes["input.threshold"].threshold, np.zeros(network.input_shape))
    for name in ("fc1", "fc2"):  # ±1 synapses, one integer θ = ⌈S/2⌉ − 1 per unit
        weight = graph.nodes[f"{name}.{1 if name == 'fc1' else 0}.linear"].weight
        threshold = graph.nodes[f"{name}.if"].v_threshold
        assert set(np.unique(weight)) == {-1.0, 1.0}
        assert np.array_equal(threshold, np.ceil(weight.sum(1) / 2) - 1) and np.unique(threshold).size > 1
    # the class scores' constant current −S/2, half-integers
    output = graph.nodes["output.0.affine"]
    assert np.array_equal(output.bias, -output.weight.sum(1) / 2)
    without = sign_mlp_to_nir(network, binarize_input=False)
    assert "input.threshold" not in without.nodes and graph_differences(without, to_nir(network)) == []


def test_the_reader_computes_the_local_binary_network_bit_for_bit_at_every_step(tmp_path, local_run):
    """nirtorch + snnTorch read the export from the file and get binlearn's outputs, every test
    image and every step, from the data as given (the graph's Threshold makes the spikes);
    at the first step that is the rule's own prediction."""
    _, trained = local_run
    network = _sign_mlp(trained)
    x, steps = trained.data.x_test, 8
    graph = read_nir(write_nir(sign_mlp_to_nir(network, output_integrator=False), tmp_path / "local.nir"))
    pytest.importorskip("nirtorch")
    pytest.importorskip("snntorch")
    got = reference_outputs(graph, x, steps)
    expected = simulate(network, input_spikes(x), steps, delay=False)
    assert torch.equal(got, expected.outputs)  # every image, every step, every class score
    assert torch.equal(got.argmax(-1), expected.predictions())
    assert torch.equal(expected.predictions()[0], trained.learner.predict(x))
    accuracy = float((expected.predictions()[0] == trained.data.y_test).float().mean())
    assert accuracy > 0.7  # a real trained network
    # the reader reads what was exported: thresholds one higher give other outputs
    graph.nodes["fc2.if"].v_threshold = graph.nodes["fc2.if"].v_threshold + 1
    assert not torch.equal(reference_outputs(graph, x, steps), expected.outputs)


def test_what_a_local_binary_export_cannot_express_is_refused(trained, local_run):
    _, run = local_run
    with pytest.raises(NIRExportError, match="resets by subtraction") as error:
        sign_mlp_to_nir(_sign_mlp(run, reset="subtract"))
    assert "\n" not in str(error.value)
    with pytest.raises(NIRExportError, match="not a ±1 fully connected layer"):
        sign_mlp_to_nir(_mlp(trained))


def test_snntorch_leaky_is_nir_if_only_for_thresholds_at_or_above_zero():
    """Why the reference reader runs IF layers with a θ < 0 on NIR's equations: snn.Leaky
    (β = 1, reset to zero, no delay) takes its reset flag from the membrane before the step
    (v > θ) and then resets by (new spike − that flag). With θ ≥ 0 that is NIR's IF; with
    θ < 0 a membrane at 0 is already above θ, so a spiking unit is not reset and a silent
    one has its membrane doubled."""
    snn = pytest.importorskip("snntorch")
    leaky = snn.Leaky(beta=1.0, threshold=torch.tensor([-2.0, 2.0]), reset_mechanism="zero",
                      reset_delay=False, init_hidden=True)
    assert leaky(torch.tensor([[1.0, 3.0]])).tolist() == [[1.0, 1.0]]  # both fire, as in NIR
    assert leaky.mem.tolist() == [[1.0, 0.0]]  # NIR's IF resets both to 0
    assert leaky(torch.tensor([[-3.0, 1.0]])).tolist() == [[0.0, 0.0]]
    assert leaky.mem.tolist() == [[-6.0, 1.0]]  # NIR's IF: v = 0 − 3 = −3 and v = 0 + 1 = 1


def _ep_net(**neuron):
    torch.manual_seed(0)
    return fully_connected((1, 8, 8), [24], 4, neuron=BinaryAccumulator(**neuron), weight=BinaryWeights(),
                           group_size=2)


def test_binary_ep_networks_are_refused_in_one_line_saying_why():
    """No NIR graph runs a binary EP network's relaxation: γ < 1 clips a leaky state to [0, 1];
    γ = 1 is memoryless, but its first step reads the initial state's spikes, which a NIR
    Delay's output before its first input would have to hold (and it changes the step)."""
    with pytest.raises(NIRExportError, match=r"clipped to \[0, 1\].*γ = 0.5") as error:
        ep_to_nir(_ep_net())  # the paper's neuron
    assert "\n" not in str(error.value)
    with pytest.raises(NIRExportError, match="Delay nodes in a cycle") as error:
        ep_to_nir(_ep_net(gamma=1.0))
    assert "\n" not in str(error.value) and "initial state 1.0" in str(error.value)
    with pytest.raises(SpikingEPError, match="HardSigmoid"):  # not a spiking network at all
        ep_to_nir(fully_connected((1, 8, 8), [24], 4, weight=BinaryWeights()))
    # with γ = 1 the initial state still decides the first step: a graph would have to hold it
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ones, zeros = (simulate_ep(_ep_net(gamma=1.0, initial_value=value), x, 1).spikes[1]
                   for value in (1.0, 0.0))
    assert not torch.equal(ones, zeros)


@pytest.mark.filterwarnings("ignore:nirtorch.load is being deprecated:DeprecationWarning")  # norse's call
def test_norse_from_nir_drops_the_integrator_and_flattens_one_image_at_a_time(local_run):
    """A third reader, where it is installed (norse is not a dependency: docs/nir.md): norse
    1.1's from_nir maps no I node and drops it without a word, maps NIR's Flatten dims onto
    the batch (so one image at a time), and maps no Threshold (so the local-binary graph is
    read without its input node). Fed the spikes one image at a time, its outputs summed by
    hand, it computes binlearn's outputs bit for bit (its IAF is NIR's IF, θ < 0 included)."""
    norse_torch = pytest.importorskip("norse.torch")
    _, trained = local_run
    network = _sign_mlp(trained)
    with pytest.raises(KeyError, match="input_threshold"):
        norse_torch.from_nir(sign_mlp_to_nir(network))
    module = norse_torch.from_nir(sign_mlp_to_nir(network, binarize_input=False))
    names = [type(m).__name__ for m in module.children()]
    assert "IAFCell" in names and not any("Integrator" in name or "LI" in name for name in names)
    x, steps = trained.data.x_test[:60], 6
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        module(input_spikes(x))  # Flatten(0) flattens the batch too
    expected = simulate(network, input_spikes(x), steps, delay=False).outputs
    with torch.no_grad():
        for index in range(len(x)):
            state, total = None, torch.zeros(expected.shape[-1])
            for step in range(steps):
                output, state = module(input_spikes(x[index]), state)
                total = total + output  # the dropped integrator, by hand
                assert torch.equal(total, expected[step, index])


def test_binlearn_export_format_nir_writes_a_local_binary_run_and_refuses_a_binary_ep_run(
        tmp_path, local_run, capsys):
    """`binlearn export RUN --format nir` on a local-binary run writes the graph of the run
    converted with reset to zero (input.threshold first), which the reader runs as binlearn
    does; on a binary EP run it prints the one-line refusal, exit status 2."""
    run, trained = local_run
    output = tmp_path / "local.nir"
    capsys.readouterr()
    assert main(["export", str(run), "--format", "nir", "--output", str(output), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["conversion"]["source"] == "local_binary" and summary["verified"]
    assert [row["type"] for row in summary["nodes"]][:2] == ["Input", "Threshold"]
    # the learning memory: the run's (int16 hidden weights, 16 bits per synapse), in the graph too
    memory = json.loads((run / "summary.json").read_text())["learning_memory"]
    assert summary["learning_memory"] == memory and memory["bits"] == 16 * memory["synapses"]
    assert json.loads(read_nir(output).metadata[NIR_MEMORY_KEY]) == memory
    network = _sign_mlp(trained)
    assert graph_differences(read_nir(output), sign_mlp_to_nir(network)) == []
    x = trained.data.x_test
    got = _reader_predictions(sign_mlp_to_nir(network, output_integrator=False), x, 4)
    assert torch.equal(got, simulate(network, input_spikes(x), 4, delay=False).predictions())
    # a binary EP run (γ = 0.5, the paper's neurons): refused in one line saying why
    config = load_config(ROOT / "configs/laydevant2021/fc-binary-weights-activations.toml",
                         ["data.dataset=digits", "model.hidden=[32]", "train.epochs=1", "rule.free_steps=4",
                          "rule.nudged_steps=2", "train.threads=1"])
    train(config, tmp_path / "ep", quiet=True)
    capsys.readouterr()
    assert main(["export", str(tmp_path / "ep"), "--format", "nir", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("binlearn: error: ") and error.count("\n") == 1
    assert "no exact NIR form" in error and "clipped to [0, 1]" in error
    assert not (tmp_path / "ep" / "model.nir").exists()

"""binlearn.spiking.ep: a binary EP network read as a spiking network reproduces its relaxation
bit for bit (spikes, membranes, predictions at every step), its currents are row sums over the
spiking neurons, synaptic operations follow the spike counts, and what is not a spiking network
is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from binlearn.data import load_dataset
from binlearn.energy import (
    BinaryAccumulator,
    BinaryWeights,
    convolutional,
    fully_connected,
    prepare,
    relax,
)
from binlearn.spiking.ep import SpikingEPError, event_currents, fan_outs, simulate_ep

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images(mnist_dir) -> torch.Tensor:
    data = load_dataset("mnist", data_dir=str(mnist_dir.parent), train_size=64, quiet=True)
    return data.x_test[:48]


def _net(hidden=(96, 64), group_size=4, seed=0):
    torch.manual_seed(seed)
    return fully_connected((1, 28, 28), list(hidden), 10, neuron=BinaryAccumulator(), weight=BinaryWeights(),
                           group_size=group_size)


@pytest.mark.parametrize("schedule", ["synchronous", "even_odd"])
def test_every_step_is_the_relaxation_stopped_there_and_the_row_add_update(images, schedule):
    net = _net()
    steps = 7
    result = simulate_ep(net, images, steps, schedule=schedule, check=True)
    assert result.mismatches == 0  # every membrane = the IF update with row-add currents, bit for bit
    with torch.no_grad():
        state = net.initial_state(len(images))
        context = prepare(net, images)
        for t in range(1, steps + 1):
            state = relax(net, images, state, 1, schedule=schedule, context=context)
            assert torch.equal(result.predictions["relaxation"][t - 1], net.predict(state))
            assert result.spikes[t].tolist() == [int(a.sum()) for a in net.activations(state)]
    for a, b in zip(result.state.layers, state.layers, strict=True):
        assert torch.equal(a, b)
    # at step 1 the summed spikes are step 1's spikes: both readouts agree there
    assert torch.equal(result.predictions["spike_count"][0], result.predictions["relaxation"][0])


def test_currents_are_sums_of_the_spiking_rows_and_a_flipped_spike_changes_the_membrane(images):
    net = _net()
    x = images[:8]
    with torch.no_grad():
        context = prepare(net, x)
        start = relax(net, x, net.initial_state(8), 3, context=context)
        after = relax(net, x, start, 1, context=context)
        spikes = list(net.activations(start))
        currents = event_currents(net, context, spikes)
        for neuron, v, current, expected in zip(net.neurons, start.layers, currents, after.layers,
                                                strict=True):
            assert torch.equal(neuron.step_(v.clone(), current.clone()), expected)
        # the same currents from effective weights in float64 (an independent dense computation)
        W = [c.effective_weight().double() for c in net.couplings]
        b = [c.bias.double() for c in net.couplings]
        hidden = x.flatten(1).double() @ W[0].t() + b[0] + spikes[1].double() @ W[1]
        assert torch.allclose(currents[0].double(), hidden, atol=1e-4)
        top = spikes[1].double() @ W[2].t() + b[2]
        assert torch.allclose(currents[2].double(), top, atol=1e-4)
        # one spike more in the top layer moves its row into the middle layer's current
        flipped = [s.clone() for s in spikes]
        flipped[2][0, 0] = 1.0 - flipped[2][0, 0]
        changed = event_currents(net, context, flipped)[1]
        row = net.couplings[2].weight[0] * float(net.couplings[2].scale)
        sign = 1.0 if flipped[2][0, 0] == 1 else -1.0
        assert torch.allclose(changed[0] - currents[1][0], sign * row, atol=1e-5)


def test_synaptic_operations_are_spikes_read_times_fan_out(images):
    net = _net(hidden=(50,), group_size=3)  # 784-50-30
    assert fan_outs(net) == (30, 50)
    steps = 5
    result = simulate_ep(net, images, steps)
    n = result.spikes
    assert n[0].tolist() == [50 * len(images), 30 * len(images)]  # accumulators start at 1 > θ: all spike
    # synchronous: step t reads the spikes of step t - 1 (step T's are never read)
    assert result.synops.tolist() == [[int(n[t - 1, 0]) * 30, int(n[t - 1, 1]) * 50]
                                      for t in range(1, steps + 1)]
    assert result.input_ops == int(torch.count_nonzero(images)) * 50
    # a delta-coded simulator: the initial spikes whole, then the changes of steps 1 .. T-1
    delta = torch.cat([n[:1], result.changes[:steps - 1]]) * torch.tensor([30, 50])
    assert torch.equal(result.delta_synops, delta)
    odd = simulate_ep(net, images, steps, schedule="even_odd")
    # even/odd: the first layer (first half-sweep) is read in the same step, the output a step later
    assert odd.synops[:, 0].tolist() == (odd.spikes[1:, 0] * 30).tolist()
    assert odd.synops[:, 1].tolist() == (odd.spikes[:steps, 1] * 50).tolist()
    assert torch.equal(odd.delta_synops[1:, 0], odd.changes[1:, 0] * 30)


@pytest.mark.parametrize("build, message", [
    (lambda: fully_connected((1, 4, 4), [8], 2, weight=BinaryWeights(), group_size=2),
     "HardSigmoid neurons"),
    (lambda: fully_connected((1, 4, 4), [8], 2, neuron=BinaryAccumulator(), group_size=2), "float weights"),
    (lambda: convolutional((1, 8, 8), [2], 2, kernel_size=3, padding=1, neuron=BinaryAccumulator(),
                           weight=BinaryWeights()), "ConvPool"),
    (lambda: fully_connected((1, 4, 4), [8], 2, neuron=BinaryAccumulator(), weight=BinaryWeights(),
                             readout="cross_entropy"), "cross-entropy readout"),
])
def test_what_is_not_a_spiking_network_is_refused_in_one_line(build, message):
    with pytest.raises(SpikingEPError, match=message) as error:
        net = build()
        simulate_ep(net, torch.zeros(2, *net.input_shape), 3)
    assert "\n" not in str(error.value)
    with pytest.raises(SpikingEPError, match="time steps must be >= 1"):
        simulate_ep(_net(hidden=(8,), group_size=1), torch.zeros(1, 1, 28, 28), 0)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, mnist_dir):
    """A 784-64-100 binary W+A EP run, one epoch on 512 MNIST images, T = 6 free steps."""
    from binlearn.experiment import load_config, train

    path = Path(__file__).parents[2] / "configs" / "laydevant2021" / "fc-binary-weights-activations.toml"
    config = load_config(path, ["model.hidden=[64]", "data.train_size=512", "train.epochs=1",
                                "rule.free_steps=6", "rule.nudged_steps=3", "train.threads=1",
                                "data.eval_batch_size=2500"])
    config.data.data_dir = str(mnist_dir.parent)
    run_dir = tmp_path_factory.mktemp("ep") / "bwa"
    train(config, run_dir, quiet=True)
    return run_dir


def test_a_trained_run_as_a_spiking_network_reproduces_its_recorded_test_accuracy(tiny_run):
    import json

    from binlearn.artifacts.spiking_ep import spiking_ep_run

    run_dir = tiny_run
    summary = spiking_ep_run(run_dir, timesteps=9, quiet=True)
    assert summary["samples"] == 10000  # the official test set
    # the run's evaluation (6 free steps), the metrics it recorded, and the spiking network at step 6
    assert summary["source_accuracy"] == summary["recorded_test_accuracy"]
    assert summary["accuracy_per_step"][5] == summary["source_accuracy"]
    assert summary["identical_predictions_at_eval_steps"] == 10000
    assert len(summary["accuracy_per_step"]) == len(summary["accuracy_per_step_spike_count"]) == 9
    layers = summary["synaptic_ops_per_inference_per_layer"]
    assert summary["synaptic_ops_per_inference"] == pytest.approx(sum(layers))
    assert summary["fan_out_per_layer"] == [100, 64]
    written = json.loads((run_dir / "spiking.json").read_text())
    assert written["accuracy_per_step"] == summary["accuracy_per_step"]
    assert (run_dir / "latency.png").stat().st_size > 0


def test_binlearn_convert_reads_a_binary_ep_run_as_a_spiking_network(tiny_run, tmp_path, capsys):
    import json

    from binlearn.cli import main

    out = tmp_path / "out"
    assert main(["convert", str(tiny_run), "--timesteps", "8", "--output", str(out), "--quiet"]) == 0
    record = json.loads((out / "spiking.json").read_text())
    assert record["kind"] == "ep" and len(record["accuracy_per_step"]) == 8
    assert record["identical_predictions_at_eval_steps"] == record["samples"] == 10000
    assert (out / "latency.png").stat().st_size > 0
    capsys.readouterr()
    for flag in (["--percentile", "99"], ["--reset", "zero"], ["--one-step"], ["--encoding", "poisson"]):
        assert main(["convert", str(tiny_run), *flag, "--quiet"]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"binlearn: error: {flag[0]} does not apply") and error.count("\n") == 1

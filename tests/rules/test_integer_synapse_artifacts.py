"""A model trained with integer synapse state (optimizer.name = counter | hidden_int) is an
ordinary binary EP run for everything after training: `binlearn export` writes it as packed
bits (verified on the whole test split), `binlearn infer` runs the packed file with the packed
kernels only and predicts what the trained model predicts, and the EP network read as a
spiking network (`binlearn convert`, :mod:`binlearn.spiking.ep`) predicts the same at T_eval.
The bits of learning state per synapse and the network's total (`learning_memory`) travel with
every artefact: the packed manifest and the export's summary, spiking.json and the convert
printout; artefacts written before the field (a manifest or spiking.json without it) still read,
and a learner that does not report it gives null and a note, not a figure.

The runs: configs/laydevant2021/fc-binary-weights-activations-binary-input.toml scaled down to
784-64-100 on 2,048 MNIST images, one epoch, T = 6 free steps (the test split is the official
10,000 images)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from binlearn.artifacts import load_trained
from binlearn.artifacts.spiking_record import read_spiking_record
from binlearn.artifacts.trained import NO_LEARNING_MEMORY, TrainedRun
from binlearn.binary.packed_format import PackedModel
from binlearn.cli import main
from binlearn.experiment import train
from binlearn.experiment.checkpoint import load_checkpoint
from binlearn.experiment.config import apply_overrides, config_from_dict, read_toml
from binlearn.spiking.ep import simulate_ep

ROOT = Path(__file__).resolve().parents[2]
BINARY_INPUT = ROOT / "configs" / "laydevant2021" / "fc-binary-weights-activations-binary-input.toml"
SMALL = ["model.hidden=[64]", "model.gain=3.0", "data.train_size=2048", "train.epochs=1",
         "rule.free_steps=6", "rule.nudged_steps=3", "train.threads=1", "data.eval_batch_size=2500"]
OPTIMIZERS = {
    "counter": (["optimizer.name=\"counter\"", "optimizer.bits=8", "optimizer.leak_shift=8",
                 "optimizer.threshold=[32]"], "counter", 9),
    "hidden_int": (["optimizer.name=\"hidden_int\"", "optimizer.bits=8"], "hidden", 8),
}
"""name -> (--set items, the integer state's key in the optimizer state, bits per synapse)."""
SYNAPSES = [784 * 64, 64 * 100]  # couplings input-hidden and hidden-output (10 classes × group 10)
EVAL_STEPS = 6

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_dir) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("integer-runs")
    made = {}
    for name, (optimizer, _, _) in OPTIMIZERS.items():
        raw = read_toml(BINARY_INPUT)
        raw["optimizer"] = {"bias_learning_rates": [1e-7]}  # Bop's gamma and threshold removed
        config = config_from_dict(apply_overrides(raw, [*SMALL, *optimizer,
                                                        f"data.data_dir={json.dumps(str(mnist_dir.parent))}"]))
        train(config, folder / name, quiet=True)
        made[name] = folder / name
    return made


def _run_memory(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())["learning_memory"]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_run_keeps_integer_state_and_reports_its_memory(runs, name):
    _, key, bits = OPTIMIZERS[name]
    state = load_checkpoint(runs[name] / "checkpoint.pt")["learner"]["optimizers"]["weights"]["state"]
    assert [state[i][key].dtype for i in sorted(state)] == [torch.int8, torch.int8]
    memory = _run_memory(runs[name])
    assert [row["synapses"] for row in memory["layers"]] == SYNAPSES
    assert [row["bits_per_synapse"] for row in memory["layers"]] == [bits, bits]
    assert memory["bits"] == sum(SYNAPSES) * bits
    assert json.loads((runs[name] / "meta.json").read_text())["learning_memory"] == memory


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_packed_export_infer_and_the_spiking_view_predict_as_the_trained_model(runs, name, tmp_path, capsys):
    run, bits = runs[name], OPTIMIZERS[name][2]
    trained = load_trained(run, device="cpu", quiet=True)
    with torch.no_grad():
        expected = torch.cat([trained.learner.predict(x) for x in trained.data.x_test.split(2500)]).numpy()
    assert len(np.unique(expected)) >= 5, "a network that predicts a few classes proves little"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.3  # it learned (measured: 0.6-0.7)

    # export: packed bits, verified on the whole test split; the memory in its summary and manifest
    packed = tmp_path / "model.packed.npz"
    capsys.readouterr()
    assert main(["export", str(run), "--output", str(packed), "--quiet"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["verified"] == {"split": "test", "samples": 10000, "identical": 10000}
    assert exported["learning_memory"] == _run_memory(run)
    manifest = PackedModel.load(packed).manifest
    assert manifest["learning_memory"] == _run_memory(run)
    assert [row["bits_per_synapse"] for row in manifest["learning_memory"]["layers"]] == [bits, bits]
    assert "learning_memory_note" not in manifest

    # infer: the packed kernels alone, the same predictions image by image
    predictions = tmp_path / "predictions.npy"
    config = trained.config
    assert main(["infer", str(packed), "--data-dir", str(Path(config.data.data_dir)), "--output",
                 str(predictions), "--quiet"]) == 0
    inferred = json.loads(capsys.readouterr().out)
    got = np.load(predictions)
    assert np.array_equal(got, expected)
    assert inferred["samples"] == 10000
    assert inferred["accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-12)

    # the spiking view: binlearn convert reads the EP net as the spiking network it is
    out = tmp_path / "spiking"
    steps = str(EVAL_STEPS + 2)
    assert main(["convert", str(run), "--timesteps", steps, "--output", str(out), "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    record = json.loads((out / "spiking.json").read_text())
    assert record["kind"] == "ep" and record["identical_predictions_at_eval_steps"] == 10000
    assert record["accuracy_per_step"][EVAL_STEPS - 1] == record["source_accuracy"]
    assert record["source_accuracy"] == summary["test_accuracy"]
    assert record["learning_memory"] == _run_memory(run)
    assert printed["learning_memory"] == {key: record["learning_memory"][key]
                                          for key in ("synapses", "bits", "bytes", "kib")}
    # and directly: the spiking network at step T_eval, image by image, against the packed file's
    spiking = simulate_ep(trained.model, trained.data.x_test, EVAL_STEPS,
                          schedule=config.rule.relaxation).predictions["relaxation"][EVAL_STEPS - 1]
    assert np.array_equal(spiking.numpy(), got)


def _without(path: Path, key: str, target: Path) -> Path:
    """A copy of the packed file at ``path`` whose manifest lacks ``key`` (as written before it)."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as copy:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "manifest.json":
                manifest = json.loads(content)
                del manifest[key]
                content = json.dumps(manifest).encode()
            copy.writestr(item, content)
    return target


def test_artefacts_without_the_field_still_read(runs, tmp_path, capsys):
    run = runs["counter"]
    capsys.readouterr()
    assert main(["export", str(run), "--output", str(tmp_path / "new.npz"), "--no-verify", "--quiet"]) == 0
    capsys.readouterr()
    old = _without(tmp_path / "new.npz", "learning_memory", tmp_path / "old.npz")
    assert "learning_memory" not in PackedModel.load(old).manifest
    data_dir = str(load_trained(run, quiet=True).config.data.data_dir)
    assert main(["infer", str(old), "--data-dir", data_dir, "--quiet"]) == 0
    recorded = json.loads((run / "summary.json").read_text())["test_accuracy"]
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(recorded, abs=1e-12)
    # a spiking.json written before the field: still a record to --compare with
    assert main(["convert", str(run), "--timesteps", "3", "--output", str(tmp_path / "s"), "--quiet"]) == 0
    record = json.loads((tmp_path / "s" / "spiking.json").read_text())
    del record["learning_memory"]
    (tmp_path / "old-spiking.json").write_text(json.dumps(record))
    _, read = read_spiking_record(tmp_path / "old-spiking.json")
    assert read["source_accuracy"] == record["source_accuracy"]


def test_a_learner_that_does_not_report_its_memory_gives_null_and_a_note(runs):
    trained = load_trained(runs["hidden_int"], device="cpu", quiet=True)
    assert trained.learning_memory_fields() == {"learning_memory": _run_memory(runs["hidden_int"])}

    class Silent:  # a learner without learning_memory()
        model = trained.model

    silent = TrainedRun(trained.run_dir, trained.config, trained.epoch, Silent(), trained.data,  # type: ignore[arg-type]
                        trained.device)
    assert silent.learning_memory is None
    assert silent.learning_memory_fields() == {"learning_memory": None,
                                               "learning_memory_note": NO_LEARNING_MEMORY}


@pytest.mark.parametrize("config, overrides, rows", [
    # the local binary rule: integer hidden weights H of model.hidden_dtype, the synapse sign(H)
    ("quickstart/digits-local-binary.toml", ["model.hidden=[40,24]", "rule.group_size=8",
                                              "model.hidden_dtype=\"int32\""],
     [("layers.0.hidden", 40 * 192, "LocalBinary", 32), ("layers.1.hidden", 24 * 40, "LocalBinary", 32)]),
    # CP+R: one layer of int16 hidden weights (the frozen readout is not learning state)
    ("colombo2024/mnist-committee-2070.toml", ["data.dataset=\"digits\"", "model.hidden=90"],
     [("layers.0.hidden", 90 * 64, "CPR", 16)]),
    # STE: float32 latent weights and Adam's two moments; batch norm's γ is not a synapse
    ("baselines/digits-ste-binary-mlp.toml", ["model.hidden=[16]"],
     [("1.weight", 64 * 16, "Adam", 96), ("4.weight", 16 * 10, "Adam", 96)]),
])
def test_every_learner_reports_its_bits_of_learning_state(config, overrides, rows):
    from binlearn.experiment import load_config
    from binlearn.experiment.learner import learner_memory
    from binlearn.experiment.registry import build_learner

    loaded = load_config(ROOT / "configs" / config, overrides)
    shape = (1, 8, 8) if loaded.data.encoding != "thermometer" else (loaded.data.thermometer_bits, 8, 8)
    memory = learner_memory(build_learner(loaded, shape, 10, torch.device("cpu")))
    assert memory is not None
    got = [(r["parameter"], r["synapses"], r["optimizer"], r["bits_per_synapse"]) for r in memory["layers"]]
    assert got == rows
    assert memory["bits"] == sum(r[1] * r[3] for r in rows) and memory["bytes"] == (memory["bits"] + 7) // 8


def test_the_layer_summary_shows_each_layer_s_bits_of_learning_state():
    from binlearn.experiment import load_config
    from binlearn.experiment.registry import build_learner
    from binlearn.nn import summary

    config = load_config(ROOT / "configs/baselines/digits-ste-binary-mlp.toml", ["model.hidden=[16]"])
    learner = build_learner(config, (1, 8, 8), 10, torch.device("cpu"))
    rows = summary(learner.model, learning_memory=learner.learning_memory())
    assert [(r["layer"], r["learning_bits_per_synapse"], r["learning_memory_bytes"]) for r in rows] == [
        ("1", 96, 64 * 16 * 12), ("4", 96, 16 * 10 * 12)]
    assert "learning_bits_per_synapse" not in summary(learner.model)[0]

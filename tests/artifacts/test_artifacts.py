"""The model -> artefact seam (binlearn.artifacts): a run is loaded once into a typed model,
one registry keyed by (model type, target) picks its converter, `binlearn convert` reads the
run once and writes one spike record, and what has no form is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import binlearn.experiment.config as config_module
from binlearn.artifacts import load_trained
from binlearn.artifacts.registry import TARGETS, ArtifactError, route, routes_for
from binlearn.artifacts.spiking_record import RECORD_KEYS, read_spiking_record
from binlearn.cli import main
from binlearn.energy.network import EnergyNet
from binlearn.errors import BinlearnError
from binlearn.experiment import load_config, train
from binlearn.experiment.runner import RunError
from binlearn.rules.cpr import CommitteeMachine
from binlearn.rules.local_binary import SignNetwork

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("artifacts") / "local"
    config = load_config(ROOT / "configs/quickstart/digits-local-binary.toml",
                         ["train.epochs=1", "model.hidden=[115]", "train.threads=1"])
    train(config, run, quiet=True)
    return run


def test_every_model_type_has_its_routes_and_the_rest_are_refused_in_one_line():
    import binlearn.artifacts.export  # noqa: F401 - registers the packed routes
    import binlearn.artifacts.nir_export  # noqa: F401 - registers the nir routes
    import binlearn.artifacts.spiking  # noqa: F401 - registers the spiking routes

    registered = {(r.model_type, r.target) for target in TARGETS for r in routes_for(target)}
    assert {(nn.Sequential, t) for t in TARGETS} <= registered
    assert {(SignNetwork, t) for t in TARGETS} <= registered
    assert {(EnergyNet, "packed"), (EnergyNet, "spiking"), (CommitteeMachine, "packed")} <= registered

    class Subclass(nn.Sequential):
        pass

    assert route(Subclass(nn.Linear(2, 2)), "packed").model_type is nn.Sequential  # along the MRO
    machine = CommitteeMachine.__new__(CommitteeMachine)
    with pytest.raises(ArtifactError, match="vote over committees") as refused:
        route(machine, "spiking")
    assert "\n" not in str(refused.value) and isinstance(refused.value, BinlearnError)
    with pytest.raises(ArtifactError, match="a Tensor model has no nir form; nir takes: STE"):
        route(torch.zeros(1), "nir")
    with pytest.raises(ArtifactError, match="unknown target 'onnx'"):
        route(nn.Sequential(), "onnx")


def test_the_trained_run_holds_a_typed_model(local_run):
    trained = load_trained(local_run, device="cpu", quiet=True)
    assert isinstance(trained.model, SignNetwork)
    assert [h.shape for h in trained.model.hidden] == [torch.Size([115, 192])]
    assert (trained.model_kind, trained.rule_name) == ("binary_mlp", "local_binary")


def test_convert_reads_the_run_s_config_once_and_writes_one_spike_record(local_run, tmp_path, capsys,
                                                                          monkeypatch):
    reads: list[str] = []
    original = config_module.read_toml

    def counting(path, *args, **kwargs):
        reads.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(config_module, "read_toml", counting)
    assert main(["convert", str(local_run), "--timesteps", "3", "--one-step", "--output", str(tmp_path)]) == 0
    assert [r for r in reads if r.endswith("config.toml")] == [str(local_run / "config.toml")]
    out = capsys.readouterr()
    record = json.loads((tmp_path / "spiking.json").read_text())
    assert set(RECORD_KEYS) <= set(record)
    # the accuracy after step 1 is the binary network's, as an exact ratio (no float32 artefact)
    assert record["accuracy_per_step"][0] == record["source_accuracy"]
    images = record["test_images"]
    assert all(round(a * images) / images == a for a in record["accuracy_per_step"])
    # stderr is not a terminal here: plain lines, not a tqdm bar drawn into a log
    assert "\r" not in out.err and "images in" in out.err and "simulating T=3" in out.err
    assert json.loads(out.out)["final_accuracy"] == record["final_accuracy"]
    # the learning memory: the local rule's int16 hidden weights H (the synapse is sign(H))
    memory = json.loads((local_run / "summary.json").read_text())["learning_memory"]
    assert record["learning_memory"] == memory
    assert memory["layers"] == [{"parameter": "layers.0.hidden", "synapses": 115 * 192,
                                 "optimizer": "LocalBinary", "bits_per_synapse": 16}]
    assert json.loads(out.out)["learning_memory"]["bits"] == memory["bits"] == 16 * 115 * 192


@pytest.mark.parametrize("content,message", [
    ('{"accuracy_per_step": [0.5]}', "source_accuracy must be a number"),
    ('{"accuracy_per_step": "0.5", "source_accuracy": 0.5}', "accuracy_per_step must be a non-empty list"),
    ('{"accuracy_per_step": [NaN], "source_accuracy": 0.5}', "accuracy_per_step must be a non-empty list"),
    ('{"accuracy_per_step": [0.5], "source_accuracy": 0.5, "settings": "x"}', "settings must be a table"),
    ('[1, 2]', "not a JSON object"),
    ('{"a": ' * 5000, "not JSON"),
    ('{}', "has no accuracy_per_step"),
])
def test_compare_files_are_validated_in_one_line(tmp_path, content, message):
    path = tmp_path / "spiking.json"
    path.write_text(content)
    with pytest.raises(RunError, match=message) as error:
        read_spiking_record(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    with pytest.raises(RunError, match="is not a file"):
        read_spiking_record(tmp_path)


def test_a_bad_compare_file_is_refused_before_anything_is_simulated(local_run, tmp_path, capsys):
    bad = tmp_path / "other.json"
    bad.write_text('{"accuracy_per_step": "x", "source_accuracy": 0.5}')
    assert main(["convert", str(local_run), "--timesteps", "2", "--output", str(tmp_path / "out"),
                 "--compare", str(bad), "--quiet"]) == 2
    assert "accuracy_per_step must be" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.fixture()
def a_file(tmp_path) -> Path:
    path = tmp_path / "plain.txt"
    path.write_text("x")
    return path


@pytest.mark.parametrize("command", ["export", "export-nir", "infer", "convert", "compare"])
def test_every_output_path_binlearn_cannot_write_is_one_line(local_run, tmp_path, a_file, capsys, command):
    """Issue 25, defect 1: --output under a regular file, an existing directory (for convert an
    existing file), or a path that cannot be created is one line with exit status 2, before
    anything is computed, and nothing is left behind."""
    suffix = ".png" if command == "compare" else ".out"
    folder = tmp_path / f"folder{suffix}"
    folder.mkdir()
    cases = [(a_file / f"x{suffix}", "which is a file, not a folder"),
             (Path(f"/proc/binlearn-x/y{suffix}"), "cannot write"), (folder, "is a directory")]
    if command == "convert":
        cases = [(a_file / "dir", "which is a file, not a folder"),
                 (Path("/proc/binlearn-x"), "cannot write"), (a_file, "is a file; give a folder")]
    if not (local_run / "model.packed.npz").exists():
        assert main(["export", str(local_run), "--quiet"]) == 0
    capsys.readouterr()
    for output, message in cases:
        args = {"export": ["export", str(local_run), "--quiet"],
                "export-nir": ["export", str(local_run), "--format", "nir", "--quiet"],
                "infer": ["infer", str(local_run / "model.packed.npz")],
                "convert": ["convert", str(local_run), "--timesteps", "1", "--quiet"],
                "compare": ["compare", str(local_run)]}[command]
        assert main([*args, "--output", str(output)]) == 2, (args, capsys.readouterr())
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("binlearn: error: --output"), err
        assert message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["plain.txt", folder.name])
    assert not any(folder.iterdir())


def test_compare_takes_its_format_from_the_suffix(local_run, tmp_path, capsys):
    assert main(["compare", str(local_run), "--output", str(tmp_path / "curve.txt")]) == 2
    assert "give a file name ending in .png" in capsys.readouterr().err
    assert not (tmp_path / "curve.txt").exists()


@pytest.mark.parametrize("option,value,message", [
    ("--timesteps", "99999999999999999999", "--timesteps must be <= 100,000"),
    ("--batch-size", "99999999999999999999", "--batch-size must be <= 10,000,000"),
    ("--seed", str(2**70), "--seed must be <="), ("--seed", "-1", "--seed must be >= 0"),
    ("--calibration-images", "0", "--calibration-images must be >= 1")])
def test_convert_options_out_of_their_bounds_are_one_line(local_run, capsys, option, value, message):
    """Issue 25, defect 3 (CV18, CV46, CV48): the convert options have bounds."""
    assert main(["convert", str(local_run), option, value, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_deeply_nested_toml_and_manifests_are_one_line(tmp_path, local_run, capsys):
    """Issue 25, defect 3 (C41, C42, RP28h, E133): deep nesting is refused, not a RecursionError."""
    deep = "[" * 3000 + "]" * 3000
    config = tmp_path / "deep.toml"
    config.write_text(f"[train]\nepochs = {deep}\n")
    assert main(["train", str(config), "--quiet"]) == 2
    assert "nested more than" in capsys.readouterr().err
    assert main(["train", "--set", f"train.epochs={deep}", "--quiet"]) == 2
    assert "nested more than" in capsys.readouterr().err
    shallow_but_deep = "[" * 40 + "1" + "]" * 40
    assert main(["train", "--set", f"train.epochs={shallow_but_deep}", "--quiet"]) == 2
    assert "nested more than" in capsys.readouterr().err
    import zipfile

    packed = tmp_path / "deep.packed.npz"
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("manifest.json", "[" * 200000 + "]" * 200000)
    assert main(["infer", str(packed)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too deeply" in err, err

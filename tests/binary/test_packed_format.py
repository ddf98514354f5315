"""Packed export and inference: the packed model predicts exactly what the trained model
predicts (every hidden bit too), its arithmetic is the dense ±1 integer arithmetic, and every
bad file or unexportable model is refused with one line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from binlearn.artifacts import load_trained
from binlearn.artifacts.export import export_run
from binlearn.binary.kernels import dense_sign_matmul
from binlearn.binary.packed_format import (
    FORMAT_VERSION,
    PackedFormatError,
    PackedInput,
    PackedLayer,
    PackedModel,
    rank_table,
    step_thresholds,
)
from binlearn.binary.packing import from_numpy_words, pack_bits, pack_signs, to_numpy_words, unpack_bits
from binlearn.cli import main
from binlearn.data import raw_split
from binlearn.energy import relax
from binlearn.energy.packed import energy_to_packed
from binlearn.energy.plan import ordered_couplings
from binlearn.experiment import load_config, train
from binlearn.experiment.config import default_config
from binlearn.experiment.registry import build_learner

DIGITS = ["data.encoding=\"binarize\"", "train.epochs=2", "train.threads=1", "data.batch_size=64"]
STE_SIGN = ["model.hidden=[48,24]", "model.activations=\"sign\""]
RUNS = {
    "ste-sign-batchnorm": [*DIGITS, *STE_SIGN],
    "ste-heaviside-bias-signed-median": [*DIGITS, "model.hidden=[40]", "model.activations=\"heaviside\"",
                                         "model.batch_norm=false", "data.signed=true",
                                         "data.threshold=\"median\""],
    "local-binary-median": [*DIGITS, "model.kind=\"binary_mlp\"", "rule.name=\"local_binary\"",
                            "model.hidden=[48,32]", "rule.group_size=8", "data.threshold=\"median\""],
    "local-binary-thermometer": [*DIGITS, "model.kind=\"binary_mlp\"", "rule.name=\"local_binary\"",
                                 "model.hidden=[40]", "rule.group_size=8", "data.encoding=\"thermometer\"",
                                 "data.thermometer_bits=3"],
    "local-binary-thermometer-levels": [*DIGITS, "model.kind=\"binary_mlp\"", "rule.name=\"local_binary\"",
                                        "model.hidden=[40]", "rule.group_size=8",
                                        "data.encoding=\"thermometer\"",
                                        "data.thermometer_levels=[0,0.3,0.55]"],
    "cpr-committee": [*DIGITS, "model.kind=\"committee\"", "rule.name=\"cpr\"", "model.hidden=90",
                      "model.committee_size=3", "rule.variant=\"class_committees\""],
    # the authors' baseline: a frozen random ±1 readout of 31 committee votes (not a multiple of 64
    # or of the 10 classes)
    "cpr-committee-reference": [*DIGITS, "model.kind=\"committee\"", "rule.name=\"cpr\"", "model.hidden=93",
                                "model.committee_size=3", "rule.variant=\"reference\""],
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _train_runs(root: Path, runs: dict[str, list[str]], config: Path | None = None) -> dict[str, Path]:
    """Train each named list of overrides of ``config`` (None: the defaults) into root/name."""
    for name, overrides in runs.items():
        train(default_config(overrides) if config is None else load_config(config, overrides), root / name,
              quiet=True)
    return {name: root / name for name in runs}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return _train_runs(tmp_path_factory.mktemp("runs"), RUNS)


def _learner_and_data(run_dir: Path):
    trained = load_trained(run_dir, device="cpu", quiet=True)
    return trained.config, trained.learner, trained.data


def _raw(config, split: str) -> np.ndarray:
    return raw_split(config.data.dataset, split, config.data.train_size, config.data.validation_size,
                     config.data.data_dir, quiet=True)[0]


def _check_identical(run_dir: Path, tmp_path: Path) -> None:
    summary = export_run(run_dir, tmp_path / "model.npz", verify=False, quiet=True)
    model = PackedModel.load(summary["output"])
    config, learner, data = _learner_and_data(run_dir)
    for split, x in (("test", data.x_test), ("train", data.x_train)):
        expected = learner.predict(x).numpy()
        words = model.encode(_raw(config, split))
        outputs = model.forward(words)
        assert np.array_equal(outputs[-1].argmax(axis=1), expected), split
        assert np.array_equal(model.predict(_raw(config, split)), expected), split
        if isinstance(learner.model, torch.nn.Sequential):  # STE: every hidden bit, not only the argmax
            activations: list[torch.Tensor] = []
            hooks = [m.register_forward_hook(lambda m, i, o, keep=activations: keep.append(o))
                     for m in learner.model if type(m).__name__ in ("Sign", "Heaviside")]
            with torch.no_grad():
                learner.model(x)
            for hook in hooks:
                hook.remove()
            for words_out, torch_out in zip(outputs[:-1], activations, strict=True):
                bits = unpack_bits(from_numpy_words(words_out), torch_out.shape[1]).numpy()
                assert np.array_equal(bits, (torch_out > 0).numpy()), split


@pytest.mark.parametrize("name", list(RUNS))
def test_export_predicts_exactly_as_the_model(runs, name, tmp_path):
    _check_identical(runs[name], tmp_path)


def test_mnist_export_identical_on_the_whole_test_set(mnist_dir, tmp_path):
    overrides = ["data.dataset=\"mnist\"", "data.train_size=1000", "data.encoding=\"binarize\"",
                 "data.threshold=\"median\"", "model.hidden=[96,96]", "model.activations=\"sign\"",
                 "train.epochs=1", "train.threads=1", f"data.data_dir=\"{mnist_dir.parent}\""]
    train(default_config(overrides), tmp_path / "run", quiet=True)
    summary = export_run(tmp_path / "run", quiet=True)  # verify: the whole 10,000-image test set
    assert summary["verified"] == {"split": "test", "samples": 10000, "identical": 10000}
    _check_identical(tmp_path / "run", tmp_path)


# ----------------------------------------------------------------------------- the arithmetic
def _random_model(generator, features: int, widths: list[int], classes: int, input_values: str,
                  bit_order: str = "little") -> tuple[PackedModel, list[torch.Tensor], list[np.ndarray]]:
    """Random layers; every layer after the first is masked (connectivity "masked"): the
    returned weights are s·mask, so the oracle is the plain dense product."""
    signs, layers, thresholds = [], [], []
    reads = input_values
    sizes = [features, *widths, classes]
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        s = torch.randint(0, 2, (fan_out, fan_in), generator=generator) * 2 - 1
        s[0] = 1  # a unit whose weights are all +1 (and all-zero inputs below): the tie cases
        words = to_numpy_words(pack_signs(s, bit_order))
        mask = None
        if index > 0:
            member = torch.rand(fan_out, fan_in, generator=generator) < 0.6
            member[1] = False  # an empty mask: m = 0
            mask = to_numpy_words(pack_bits(member, bit_order))
            s = s * member
        signs.append(s)
        if index == len(widths):
            layers.append(PackedLayer.output("output", words, fan_in, reads, mask=mask))
            break
        threshold = torch.randint(-3, 4, (fan_out,), generator=generator).numpy()
        flip = (torch.arange(fan_out) % 3 == 0).numpy()
        thresholds.append((threshold, flip))
        written = "signed" if index % 2 == 0 else "binary"
        layers.append(PackedLayer.hidden(f"hidden{index + 1}", words, fan_in, threshold, flip, reads,
                                         written, mask=mask))
        reads = written
    packed_input = PackedInput((features,), np.arange(features), np.full(features, 127), input_values)
    model = PackedModel.build(packed_input, layers, classes, bit_order=bit_order)
    return model, signs, thresholds


@pytest.mark.parametrize("bit_order", ["little", "big"])
@pytest.mark.parametrize("input_values", ["signed", "binary"])
def test_packed_layers_are_the_dense_integer_arithmetic(input_values, bit_order):
    generator = torch.Generator().manual_seed(7)
    features = 70  # not a multiple of 64: padding bits
    model, signs, thresholds = _random_model(generator, features, [130, 65], 5, input_values, bit_order)
    pixels = torch.randint(0, 256, (33, features), generator=generator).to(torch.uint8)
    pixels[0] = 0  # every input bit 0: the value −1 (signed) or 0 (binary)
    outputs = model.forward(model.encode(pixels.numpy()))
    bits = (pixels > 127).long()
    x = bits * 2 - 1 if input_values == "signed" else bits
    reads = input_values
    for index, s in enumerate(signs):
        pre = x @ s.T  # the dense integer oracle
        if index == len(signs) - 1:
            assert np.array_equal(outputs[-1], pre.numpy())
            break
        threshold, flip = thresholds[index]
        on = (pre.numpy() >= threshold) ^ flip
        got = unpack_bits(from_numpy_words(outputs[index]), s.shape[0], bit_order).numpy()
        assert np.array_equal(got, on), index
        reads = "signed" if index % 2 == 0 else "binary"
        x = torch.from_numpy(on).long() * 2 - 1 if reads == "signed" else torch.from_numpy(on).long()
    assert np.array_equal(model.predict(pixels.numpy()), outputs[-1].argmax(axis=1))


def test_ties_follow_the_convention():
    # sign(0) = +1: a local-rule unit with m = 0 fires; pixels equal to the threshold are off.
    weights = to_numpy_words(pack_signs(torch.tensor([[1, -1], [1, 1]])))
    zeros = np.zeros(2, np.int32)
    classifier = to_numpy_words(pack_signs(torch.tensor([[1, 1], [-1, -1]])))
    layers = [PackedLayer.hidden("h", weights, 2, zeros, zeros, "signed", "signed"),
              PackedLayer.output("o", classifier, 2, "signed")]
    model = PackedModel.build(PackedInput((2,), np.arange(2), np.array([10, 10]), "signed"), layers, 2)
    out = model.forward(model.encode(np.array([[11, 10], [10, 10]], np.uint8)))
    # pixels (11, 10) -> bits (1, 0) -> x = (+1, −1): m = (2, 0) -> both units fire (+1, +1)
    assert unpack_bits(from_numpy_words(out[0]), 2).tolist()[0] == [True, True]
    # pixels (10, 10) -> x = (−1, −1): m = (0, −2) -> (+1, −1); classifier scores (0, 0) -> class 0
    assert unpack_bits(from_numpy_words(out[0]), 2).tolist()[1] == [True, False]
    assert out[1][1].tolist() == [0, 0] and model.predict(np.array([[10, 10]], np.uint8)).tolist() == [0]
    assert dense_sign_matmul(torch.tensor([[1, -1]]), torch.tensor([[1, 1], [-1, -1]])).tolist() == [[0, 0]]


def test_step_thresholds_and_rank_table():
    # rows m = −2 … 1; units: up at 0, down at 0, up at −1, always on
    bits = np.array([[0, 1, 0, 1], [0, 1, 1, 1], [1, 0, 1, 1], [1, 0, 1, 1]], bool)
    threshold, flip = step_thresholds(bits, -2)
    assert threshold.tolist() == [0, 0, -1, -2] and flip.tolist() == [0, 1, 0, 0]
    m = np.arange(-2, 2)[:, None]
    assert np.array_equal((m >= threshold) ^ flip.astype(bool), bits)
    assert step_thresholds(np.zeros((3, 1), bool), -1)[0].tolist() == [2]  # never on
    with pytest.raises(PackedFormatError, match="not a step function"):
        step_thresholds(np.array([[0], [1], [0]], bool), 0)
    scores = np.array([[0.5, -1.0, 2.0], [0.5, 3.0, -1.0]], np.float32)
    ranks = rank_table(scores)
    assert ranks.tolist() == [[1, 0, 2], [1, 3, 0]]
    with pytest.raises(PackedFormatError, match="finite"):
        rank_table(np.array([[np.nan]]))


# ----------------------------------------------------------------------------- refusals
@pytest.fixture(scope="module")
def packed_file(runs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("packed") / "model.packed.npz"
    export_run(runs["ste-sign-batchnorm"], path, verify=False, quiet=True)
    return path


def _rewrite(source: Path, target: Path, *, manifest=None, drop: str | None = None,
             replace: dict[str, np.ndarray] | None = None) -> Path:
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if manifest is not None:
        members["manifest.json"] = json.dumps(manifest).encode()
    if drop is not None:
        del members[drop]
    for name, array in (replace or {}).items():
        buffer = io.BytesIO()
        np.save(buffer, array)
        members[f"{name}.npy"] = buffer.getvalue()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def _manifest(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("manifest.json"))


def _refused(path: Path, *fragments: str) -> str:
    with pytest.raises(PackedFormatError) as info:
        PackedModel.load(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_round_trip_and_atomic_save(packed_file, tmp_path):
    model = PackedModel.load(packed_file)
    copy = model.save(tmp_path / "sub" / "copy.npz")
    assert sorted(p.name for p in copy.parent.iterdir()) == ["copy.npz"]  # no temporary left behind
    again = PackedModel.load(copy)
    assert again.manifest == model.manifest
    assert all(np.array_equal(again.arrays[k], v) for k, v in model.arrays.items())
    with np.load(copy) as plain:  # a plain .npz for numpy too
        assert set(plain.files) == {*model.arrays, "manifest.json"}
        assert np.array_equal(plain["layers.0.weights"], model.arrays["layers.0.weights"])


def test_truncated_and_garbage_files_are_refused(packed_file, tmp_path):
    data = packed_file.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        _refused(tmp_path / "cut.npz", "truncated or corrupt")
    (tmp_path / "garbage.npz").write_bytes(os.urandom(4096))
    _refused(tmp_path / "garbage.npz", "truncated or corrupt")
    (tmp_path / "empty.npz").write_bytes(b"")
    _refused(tmp_path / "empty.npz", "truncated or corrupt")
    _refused(tmp_path / "missing.npz", "no such packed model file")
    corrupted = bytearray(data)
    start = data.index(b"layers.0.weights.npy") + 200  # inside a member's data: CRC check
    corrupted[start:start + 8] = bytes(8) if corrupted[start:start + 8] != bytes(8) else b"\xff" * 8
    (tmp_path / "flipped.npz").write_bytes(bytes(corrupted))
    _refused(tmp_path / "flipped.npz")


def test_other_versions_and_formats_are_refused(packed_file, tmp_path):
    manifest = _manifest(packed_file)
    assert manifest["format_version"] == 1  # feed-forward models are still written as version 1
    newer = {**manifest, "format_version": FORMAT_VERSION + 1}
    _refused(_rewrite(packed_file, tmp_path / "v3.npz", manifest=newer),
             f"packed format version {FORMAT_VERSION + 1}", "reads versions 1, 2")
    for version in (0, "1", True):
        _refused(_rewrite(packed_file, tmp_path / "vx.npz", manifest={**manifest, "format_version": version}),
                 f"packed format version {version!r}")
    assert PackedModel.load(_rewrite(packed_file, tmp_path / "as-v2.npz",  # version 2 reads layers too
                                     manifest={**manifest, "format_version": 2})).summary()
    _refused(_rewrite(packed_file, tmp_path / "other.npz", manifest={**manifest, "format": "larq"}),
             "not a binlearn packed model")
    _refused(_rewrite(packed_file, tmp_path / "order.npz", manifest={**manifest, "bit_order": "middle"}),
             "bit_order", "valid: little, big")
    _refused(_rewrite(packed_file, tmp_path / "nomanifest.npz", drop="manifest.json"), "no manifest.json")
    with zipfile.ZipFile(tmp_path / "badjson.npz", "w") as archive:
        archive.writestr("manifest.json", "{not json")
    _refused(tmp_path / "badjson.npz", "not valid JSON")


def test_mismatched_shapes_and_missing_arrays_are_refused(packed_file, tmp_path):
    manifest = _manifest(packed_file)
    edited = json.loads(json.dumps(manifest))
    edited["layers"][0]["arrays"]["weights"]["shape"][0] -= 1
    _refused(_rewrite(packed_file, tmp_path / "shape.npz", manifest=edited), "layers.0.weights",
             "needs uint64")
    edited = json.loads(json.dumps(manifest))
    edited["layers"][0]["out_features"] += 1
    _refused(_rewrite(packed_file, tmp_path / "width.npz", manifest=edited), "layers[0]")
    edited = json.loads(json.dumps(manifest))
    edited["layers"][1]["in_features"] = 100  # words = ceil(100 / 64) = 2 != 1
    _refused(_rewrite(packed_file, tmp_path / "chain.npz", manifest=edited), "layers[1].in_features = 100")
    _refused(_rewrite(packed_file, tmp_path / "drop.npz", drop="layers.1.threshold.npy"),
             "'layers.1.threshold'", "missing")
    model = PackedModel.load(packed_file)
    weights = model.arrays["layers.0.weights"]
    signed_words = weights.astype(np.int64)
    _refused(_rewrite(packed_file, tmp_path / "dtype.npz", replace={"layers.0.weights": signed_words}),
             "int64", "declares uint64")
    _refused(_rewrite(packed_file, tmp_path / "rows.npz", replace={"layers.0.weights": weights[:-1]}),
             "layers.0.weights", "declares uint64")
    hidden = model.arrays["layers.1.weights"].copy()
    hidden[0, -1] |= np.uint64(1 << 63)  # 48 features: bit 63 is padding
    _refused(_rewrite(packed_file, tmp_path / "pad.npz", replace={"layers.1.weights": hidden}),
             "padding bits")
    _refused(_rewrite(packed_file, tmp_path / "extra.npz", replace={"stowaway": np.zeros(3)}),
             "'stowaway' is not declared")
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "pickle.npz", "w") as archive, zipfile.ZipFile(packed_file) as original:
        for name in original.namelist():
            data = pickled.getvalue() if name == "layers.0.flip.npy" else original.read(name)
            archive.writestr(name, data)
    _refused(tmp_path / "pickle.npz", "'layers.0.flip' is unreadable")


# ----------------------------------------------------------------------------- unexportable models
@pytest.mark.parametrize("overrides, fragment", [
    (["model.hidden=[16]", "model.activations=\"relu\""], "float activations cannot be packed"),
    (["model.hidden=[16]", "model.activations=\"sign\"", "model.weights=\"float\""], "has float weights"),
    (["model.hidden=[16]", "model.activations=\"sign\"", "model.binary_last_layer=false"], "float weights"),
    (["model.hidden=[16]", "model.activations=\"sign\"", "data.encoding=\"unit\""], "float inputs"),
])
def test_unexportable_models_are_refused(overrides, fragment, tmp_path, capsys):
    base = ["data.encoding=\"binarize\"", "train.epochs=1", "train.threads=1"]
    train(default_config([*base, *overrides]), tmp_path / "run", quiet=True)
    assert main(["export", str(tmp_path / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("binlearn: error: ") and error.count("\n") == 1 and fragment in error, error
    assert not (tmp_path / "run" / "model.packed.npz").exists()


# ----------------------------------------------------------------------------- the command line
def test_cli_export_then_infer(runs, tmp_path, capsys):
    run_dir = runs["local-binary-median"]
    output = tmp_path / "lb.npz"
    assert main(["export", str(run_dir), "--output", str(output), "--quiet"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["verified"]["identical"] == exported["verified"]["samples"] == 360
    assert main(["infer", str(output), "--data", "digits", "--output", str(tmp_path / "pred.npy")]) == 0
    result = json.loads(capsys.readouterr().out)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert result["samples"] == 360
    assert result["accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-12)
    config, learner, data = _learner_and_data(run_dir)
    assert np.array_equal(np.load(tmp_path / "pred.npy"), learner.predict(data.x_test).numpy())
    assert main(["infer", str(output), "--split", "train", "--quiet"]) == 0  # dataset from the manifest
    assert json.loads(capsys.readouterr().out)["samples"] == 1437


def test_cli_errors_are_one_line(runs, packed_file, tmp_path, capsys):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 definitely not a model")
    cases = [
        (["infer", str(garbage), "--data", "digits"], "truncated or corrupt"),
        (["infer", str(tmp_path / "absent.npz")], "no such packed model file"),
        (["infer", str(packed_file), "--data", "nonexistent"], "unknown dataset"),
        (["export", str(tmp_path / "no-run")], "run directory not found"),
    ]
    for argv, fragment in cases:
        assert main(argv) == 2, argv
        error = capsys.readouterr().err
        assert error.startswith("binlearn: error: ") and error.count("\n") == 1 and fragment in error, error
    # and as a real process: one line, exit 2, no traceback
    done = subprocess.run([sys.executable, "-m", "binlearn", "infer", str(garbage)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("binlearn: error: ") and done.stderr.count("\n") == 1, done.stderr


# ----------------------------------------------------------------------------- binary EP networks
CONFIGS = Path(__file__).parents[2] / "configs" / "laydevant2021"
EP_CONFIG = CONFIGS / "fc-binary-weights-activations-binary-input.toml"
EP_DIGITS = ["data.dataset=\"digits\"", "train.epochs=1", "train.threads=1", "rule.free_steps=8",
             "rule.nudged_steps=3", "model.group_size=4", "optimizer.gamma=[2e-6]"]
# α = 0.3 and a higher flip threshold: hidden and output bits stay far from all-0 / all-1 (one epoch
# of the paper's rule on digits silences the outputs: then the accumulator tie-break decides)
EP_ACTIVE = [*EP_DIGITS, "model.scale=0.3", "optimizer.threshold=[2e-5]"]
EP_RUNS = {
    # 10 outputs per class: a group mean long enough for summation order to show in the last bit
    "ep-synchronous-gain-3": [*EP_DIGITS, "model.hidden=[48]", "model.gain=3.0", "optimizer.threshold=[2e-7]",
                              "model.group_size=10"],
    "ep-even-odd-signed-two-hidden": [*EP_ACTIVE, "model.hidden=[40,24]", "rule.relaxation=\"even_odd\"",
                                      "data.signed=true", "model.neuron_gamma=0.75", "rule.eval_steps=11"],
    "ep-thermometer-start-0": [*EP_ACTIVE, "model.hidden=[40]", "data.encoding=\"thermometer\"",
                               "data.thermometer_bits=3", "model.initial_state=0.0",
                               "model.neuron_threshold=0.3"],
    "ep-median-gamma-1": [*EP_ACTIVE, "model.hidden=[40]", "data.threshold=\"median\"",
                          "model.neuron_gamma=1.0"],
}


@pytest.fixture(scope="module")
def ep_runs(tmp_path_factory) -> dict[str, Path]:
    return _train_runs(tmp_path_factory.mktemp("ep-runs"), EP_RUNS, EP_CONFIG)


@pytest.mark.parametrize("name", list(EP_RUNS))
def test_ep_export_relaxes_bit_for_bit_as_the_model(ep_runs, name, tmp_path):
    summary = export_run(ep_runs[name], tmp_path / "ep.npz", quiet=True)  # verify: the whole test split
    assert summary["verified"] == {"split": "test", "samples": 360, "identical": 360}
    model = PackedModel.load(summary["output"])
    assert model.manifest["format_version"] == 2 and "layers" not in model.manifest
    config, learner, data = _learner_and_data(ep_runs[name])
    net = learner.model
    assert model.manifest["dynamics"]["steps"] == learner.source.eval_steps
    for split, x in (("test", data.x_test), ("train", data.x_train)):
        raw = _raw(config, split)
        with torch.no_grad():
            state = relax(net, x, net.initial_state(len(x)), learner.source.eval_steps,
                          schedule=config.rule.relaxation)
        packed = model.relaxation.relax(model.encode(raw))
        for ours, theirs in zip(packed, state.layers, strict=True):  # every float32 accumulator, bitwise
            assert torch.equal(ours.view(torch.int32), theirs.view(torch.int32)), split
        outputs = model.forward(model.encode(raw))
        activations = net.activations(state)
        for words, activation in zip(outputs[:-1], activations, strict=True):
            bits = unpack_bits(from_numpy_words(words), activation.shape[1]).numpy()
            assert np.array_equal(bits, activation.numpy() > 0), split
        scores = net.output_cost.scores(state.layers[-1], activations[-1])  # the float32 scores, bitwise
        assert np.array_equal(outputs[-1].view(np.int32), scores.numpy().view(np.int32)), split
        expected = learner.predict(x).numpy()
        assert np.array_equal(outputs[-1].argmax(axis=1), expected)
        assert np.array_equal(model.predict(raw), expected)
        assert len(np.unique(expected)) >= 3, "a degenerate network proves little"
        assert 0.02 < float(activations[0].mean()) < 0.98, "hidden bits all alike prove little"


def test_ordered_drives_only_between_binary_neurons():
    def net(*overrides: str):
        config = load_config(EP_CONFIG, ["data.dataset=\"digits\"", "model.hidden=[8]", *overrides])
        return build_learner(config, (1, 8, 8), 10, torch.device("cpu")).model

    assert ordered_couplings(net()) == (True, True)
    # float neurons keep the fused products (the speed of the float-neuron benchmarks)
    assert ordered_couplings(net("model.neuron=\"hard_sigmoid\"")) == (False, False)
    assert ordered_couplings(net("model.weights=\"float\"", "optimizer.name=\"sgd\"")) == (False, False)


def test_mnist_ep_export_identical_on_the_whole_test_set(mnist_dir, tmp_path, capsys):
    overrides = ["data.train_size=600", "model.hidden=[256]", "model.gain=3.0", "train.epochs=1",
                 "train.threads=1", f"data.data_dir=\"{mnist_dir.parent}\""]
    train(load_config(EP_CONFIG, overrides), tmp_path / "run", quiet=True)
    assert main(["export", str(tmp_path / "run"), "--quiet"]) == 0  # verify: 10,000 test images
    exported = json.loads(capsys.readouterr().out)
    assert exported["verified"] == {"split": "test", "samples": 10000, "identical": 10000}
    assert main(["infer", exported["output"], "--data-dir", str(mnist_dir.parent), "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert result["samples"] == 10000 and result["accuracy"] > 0.3
    assert result["accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-12)


@pytest.mark.parametrize("config_file, overrides, fragments", [
    # the published config reads float pixels
    ("fc-binary-weights-activations.toml", [], ["float inputs", "data.encoding = \"binarize\""]),
    ("fc-binary-weights.toml", ["data.encoding=\"binarize\""],
     ["model.neuron = \"hard_sigmoid\"", "float activations", "model.neuron = \"binary\""]),
])
def test_unexportable_ep_runs_are_refused(config_file, overrides, fragments, tmp_path, capsys):
    small = ["data.dataset=\"digits\"", "model.hidden=[16]", "train.epochs=1", "train.threads=1",
             "rule.free_steps=3", "rule.nudged_steps=2"]
    train(load_config(CONFIGS / config_file, [*small, *overrides]), tmp_path / "ep", quiet=True)
    assert main(["export", str(tmp_path / "ep"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("binlearn: error: ") and error.count("\n") == 1, error
    assert all(fragment in error for fragment in fragments), error
    assert not (tmp_path / "ep" / "model.packed.npz").exists()


@pytest.mark.parametrize("overrides, fragment", [
    (["model.weights=\"float\"", "optimizer.name=\"sgd\""], "model.weights = \"float\""),
    (["model.readout=\"cross_entropy\"", "model.group_size=1", "rule.nudge_placement=\"drive\"",
      "optimizer.gamma=[2e-6]", "optimizer.threshold=[2e-7]"], "model.readout = \"cross_entropy\""),
    (["model.architecture=\"conv\"", "model.channels=[4]"], "model.architecture = \"fc\""),
    (["model.neuron_gamma=0.3"], "model.neuron_gamma = 0.3"),
])
def test_unexportable_ep_networks_are_refused(overrides, fragment):
    config = load_config(EP_CONFIG, ["data.dataset=\"digits\"", "model.hidden=[8]", *overrides])
    learner = build_learner(config, (1, 8, 8), 10, torch.device("cpu"))
    with pytest.raises(PackedFormatError) as info:
        energy_to_packed(learner.model, learner.source.eval_steps, learner.source.cfg.relaxation, False)
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.fixture(scope="module")
def ep_file(ep_runs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ep-packed") / "ep.packed.npz"
    export_run(ep_runs["ep-synchronous-gain-3"], path, verify=False, quiet=True)
    return path


def test_ep_file_round_trip_and_truncation(ep_file, tmp_path):
    model = PackedModel.load(ep_file)
    again = PackedModel.load(model.save(tmp_path / "copy.npz"))
    assert again.manifest == model.manifest
    assert [row["kind"] for row in again.summary()] == ["ep_coupling", "ep_coupling"]
    images = np.random.default_rng(0).integers(0, 256, (50, 1, 8, 8), dtype=np.uint8)
    assert np.array_equal(again.predict(images), model.predict(images))
    data = ep_file.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        _refused(tmp_path / "cut.npz", "truncated or corrupt")


def _edited(path: Path, target: Path, edit) -> Path:
    manifest = _manifest(path)
    edit(manifest)
    return _rewrite(path, target, manifest=manifest)


def test_ep_files_with_wrong_versions_kinds_or_arrays_are_refused(ep_file, tmp_path):
    def case(edit, *fragments):
        _refused(_edited(ep_file, tmp_path / "edited.npz", edit), *fragments)

    case(lambda m: m.update(format_version=1), "dynamics needs format_version 2")
    case(lambda m: m.update(format_version=3), "packed format version 3", "reads versions 1, 2")
    case(lambda m: m["dynamics"].update(kind="hopfield"), "dynamics.kind = 'hopfield'",
         "valid: ep_binary_relaxation")
    case(lambda m: m["dynamics"].update(schedule="random"), "dynamics.schedule = 'random'")
    case(lambda m: m["dynamics"].update(steps=0), "dynamics.steps must be an integer >= 1")
    case(lambda m: m["dynamics"]["neuron"].update(gamma=0.0), "gamma must be in (0, 1]")
    case(lambda m: m["dynamics"]["neuron"].update(kind="hard_sigmoid"), "dynamics.neuron.kind")
    case(lambda m: m["dynamics"]["neuron"].pop("threshold"),
         "dynamics.neuron.threshold must be a finite float32 number")
    case(lambda m: m["dynamics"]["readout"].update(tie_break=1e308),
         "dynamics.readout.tie_break must be a finite float32 number")
    case(lambda m: m["dynamics"]["couplings"][0].pop("name"), "dynamics.couplings[0].name must be")
    case(lambda m: m["dynamics"]["readout"].update(group_size=3), "num_classes × group_size = 10 × 3")
    case(lambda m: m.update(layers=[]), "both layers and dynamics")
    case(lambda m: m["dynamics"].update(couplings=[]), "dynamics.couplings must be a non-empty list")
    case(lambda m: m["dynamics"]["couplings"][1].update(in_features=47),
         "dynamics.couplings[1].in_features = 47")
    case(lambda m: m["dynamics"]["couplings"][1].update(input_values="signed"), "couplings[1].input_values")
    case(lambda m: m["dynamics"]["couplings"][0]["arrays"]["scale"].update(shape=[2]), "couplings.0.scale",
         "needs float32 [1]")
    case(lambda m: m["dynamics"]["couplings"][0]["arrays"].pop("bias"), "dynamics.couplings[0].arrays has")
    _refused(_rewrite(ep_file, tmp_path / "drop.npz", drop="couplings.1.bias.npy"), "'couplings.1.bias'",
             "missing")
    model = PackedModel.load(ep_file)
    bias = model.arrays["couplings.1.bias"]
    _refused(_rewrite(ep_file, tmp_path / "f64.npz", replace={"couplings.1.bias": bias.astype(np.float64)}),
             "float64", "declares float32")
    _refused(_rewrite(ep_file, tmp_path / "short.npz", replace={"couplings.1.bias": bias[:-1]}),
             "couplings.1.bias", "declares float32")
    nan = np.full_like(bias, np.nan)
    _refused(_rewrite(ep_file, tmp_path / "nan.npz", replace={"couplings.1.bias": nan}),
             "bias values must be finite")
    weights = model.arrays["couplings.1.weights"].copy()
    weights[0, -1] |= np.uint64(1 << 63)  # 48 features: bit 63 is padding
    _refused(_rewrite(ep_file, tmp_path / "pad.npz", replace={"couplings.1.weights": weights}),
             "padding bits")
    _refused(_rewrite(ep_file, tmp_path / "extra.npz", replace={"stowaway": np.zeros(3)}),
             "'stowaway' is not declared")

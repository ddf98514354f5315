"""Fuzz the readers of user files (issue 25): any input gives a result or one of binlearn's
one-line errors (a BinlearnError, exit 2 on the command line), never another exception.

Each reader gets random bytes and structured mutations of a valid file: TOML and JSON with
random values and types, truncated files, IDX headers with random sizes and type codes.
Hypothesis draws a bounded number of examples (the whole file runs in well under 30 s); a
defect it found is kept below as an ``@example`` or a plain test.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import string
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from binlearn.artifacts.spiking_record import read_spiking_record
from binlearn.binary.packed_format import PackedInput, PackedLayer, PackedModel
from binlearn.binary.packing import pack_signs, to_numpy_words
from binlearn.data.features import read_features
from binlearn.data.formats import read_idx, read_idx_images, read_idx_labels
from binlearn.errors import BinlearnError, BinlearnWarning
from binlearn.experiment.compare import _parent
from binlearn.experiment.config import load_config, parse_toml
from binlearn.experiment.rundir import read_metrics
from binlearn.experiment.runner import _last_threads
from binlearn.reproduce.results import load_results

ROOT = Path(__file__).resolve().parents[1]
STE_DIGITS = ROOT / "configs/baselines/digits-ste-binary-mlp.toml"
RESULTS = ROOT / "docs/results.toml"

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
"""Bounded: derandomized (the same examples on every run), no per-example deadline."""


def _reads(read, *args):
    """Call a reader: a result or a one-line BinlearnError pass; anything else fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BinlearnWarning)  # a skipped line is a warning, by design
        try:
            return read(*args)
        except BinlearnError as error:
            assert "\n" not in str(error), str(error)
            return error


# ------------------------------------------------------------------------------- strategies
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string (\uXXXX escapes included)


def _toml_float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


toml_values = st.recursive(
    st.booleans().map(lambda b: "true" if b else "false") | st.integers(-2**70, 2**70).map(str)
    | st.floats().map(_toml_float) | st.text(max_size=8).map(_toml_string)
    | st.sampled_from(["1979-05-27", "07:32:00", "'literal'", "0x1F", "1e308", "1e-320", "-0.0"]),
    lambda inner: st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]")
    | st.dictionaries(st.sampled_from(["a", "b", "name", "lr"]), inner, max_size=3).map(
        lambda table: "{" + ", ".join(f"{k} = {v}" for k, v in table.items()) + "}"),
    max_leaves=8)


def _mutate_lines(text: str, data) -> str:
    """A valid TOML file with one value replaced by a random one, a line dropped, or cut short."""
    lines = text.splitlines()
    how = data.draw(st.sampled_from(["value", "drop", "truncate", "insert"]))
    index = data.draw(st.integers(0, max(len(lines) - 1, 0)))
    if how == "truncate":
        return text[:data.draw(st.integers(0, len(text)))]
    if how == "drop" and lines:
        del lines[index]
    elif how == "insert":
        key = data.draw(st.text(string.ascii_lowercase + "_.", min_size=1, max_size=8))
        lines.insert(index, f"{key} = {data.draw(toml_values)}")
    elif lines and " = " in lines[index]:
        lines[index] = lines[index].split(" = ")[0] + " = " + data.draw(toml_values)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- config and --set
@FUZZ
@given(text=st.text(max_size=200))
@example(text="a = " + "[" * 5000)
@example(text="[" + "a." * 3000 + "b]")
def test_parse_toml_of_any_text(text):
    _reads(parse_toml, text, "fuzz.toml")


@FUZZ
@given(data=st.data())
def test_load_config_of_a_mutated_config(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("config") / "config.toml"
    path.write_text(_mutate_lines(STE_DIGITS.read_text(), data))
    _reads(load_config, path, [])


KEYS = ["optimizer.lr", "model.hidden", "train.epochs", "data.batch_size", "seed", "name", "rule.name",
        "model.kind", "data.dataset", "train.device", "model.weights", "schedule.lr_decay", "x.y", "train"]


@FUZZ
@given(key=st.sampled_from(KEYS) | st.text(max_size=12), value=toml_values | st.text(max_size=12))
@example(key="model.hidden", value="[" * 3000)
@example(key="optimizer.lr", value="1e-320")
def test_set_with_any_value(key, value):
    _reads(load_config, STE_DIGITS, [f"{key}={value}"])


# ---------------------------------------------------------------------- metrics and meta.json
@FUZZ
@given(lines=st.lists(json_values.map(json.dumps) | st.text(max_size=30), max_size=6))
@example(lines=['{"epoch": 1}', "[" * 100000])
@example(lines=['{"epoch": ' + "1" * 5000 + "}"])
def test_metrics_jsonl_of_any_lines(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("metrics") / "metrics.jsonl"
    path.write_text("\n".join(lines))
    _reads(read_metrics, path)


@FUZZ
@given(blob=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode())
       | json_values.map(lambda v: json.dumps({"branched_from": v, "threads": v}).encode())
       | json_values.map(lambda v: json.dumps(
           {"resumed": [v], "branched_from": {"run_dir": "x", "after_epoch": v}}).encode()))
@example(blob=b"[" * 100000)
@example(blob=b'{"threads": ' + b"1" * 5000 + b"}")
def test_meta_json_of_any_bytes(tmp_path_factory, blob):
    run = tmp_path_factory.mktemp("run")
    (run / "meta.json").write_bytes(blob)
    _reads(_parent, run)
    _reads(_last_threads, run / "meta.json")


# ------------------------------------------------------------------------------ spike record
VALID_SPIKING = {"accuracy_per_step": [0.1, 0.5, 0.9], "source_accuracy": 0.9, "settings": {"timesteps": 3},
                 "synaptic_ops_per_step": [1, 2, 3], "accuracy_per_step_spike_count": [0.1, 0.2, 0.3]}


@FUZZ
@given(blob=st.binary(max_size=200),
       field=st.sampled_from([None, *VALID_SPIKING]), value=json_values)
@example(blob=b"[" * 100000, field=None, value=None)
@example(blob=b'{"accuracy_per_step": [' + b"1" * 5000 + b"]}", field=None, value=None)
def test_spike_record_of_any_content(tmp_path_factory, blob, field, value):
    path = tmp_path_factory.mktemp("spiking") / "spiking.json"
    path.write_bytes(blob if field is None else json.dumps({**VALID_SPIKING, field: value}).encode())
    _reads(read_spiking_record, path)


# ----------------------------------------------------------------------------- results file
@FUZZ
@given(data=st.data())
def test_results_file_mutated(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("results") / "results.toml"
    path.write_text(_mutate_lines(RESULTS.read_text(), data))
    _reads(load_results, path)


@FUZZ
@given(blob=st.binary(max_size=300))
def test_results_file_of_any_bytes(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("results") / "results.toml"
    path.write_bytes(blob)
    _reads(load_results, path)


# ---------------------------------------------------------------------------- packed models
@pytest.fixture(scope="module")
def packed_bytes(tmp_path_factory) -> bytes:
    """A small valid packed model: 20 binary inputs, a hidden layer of 5, 3 classes."""
    generator = torch.Generator().manual_seed(0)
    hidden_signs = torch.randint(0, 2, (5, 20), generator=generator) * 2 - 1
    output_signs = torch.randint(0, 2, (3, 5), generator=generator) * 2 - 1
    layers = [PackedLayer.hidden("hidden1", to_numpy_words(pack_signs(hidden_signs, "little")), 20,
                                 np.zeros(5, dtype=np.int32), np.zeros(5, dtype=np.uint8), "binary",
                                 "binary"),
              PackedLayer.output("output", to_numpy_words(pack_signs(output_signs, "little")), 5, "binary")]
    packed_input = PackedInput((1, 4, 5), np.arange(20), np.full(20, 127, dtype=np.int16), "binary")
    path = PackedModel.build(packed_input, layers, 3).save(tmp_path_factory.mktemp("packed") / "m.packed.npz")
    return path.read_bytes()


def _members(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _paths(value, prefix=()):
    """Every (path, value) inside a JSON value, containers included."""
    yield prefix, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replace(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(copy[path[0]], path[1:], new)
    return copy


@FUZZ
@given(data=st.data())
def test_packed_model_mutated(tmp_path_factory, packed_bytes, data):
    members = _members(packed_bytes)
    how = data.draw(st.sampled_from(["manifest", "truncate", "member", "bytes"]))
    if how == "truncate":
        blob = packed_bytes[:data.draw(st.integers(0, len(packed_bytes) - 1))]
    elif how == "bytes":
        blob = data.draw(st.binary(max_size=300))
    elif how == "member":  # one .npy member replaced by random bytes or another array
        name = data.draw(st.sampled_from(sorted(n for n in members if n.endswith(".npy"))))
        buffer = io.BytesIO()
        np.save(buffer, np.zeros(data.draw(st.integers(0, 5)),
                                 dtype=data.draw(st.sampled_from(["uint64", "int32", "float64", "uint8"]))))
        members[name] = data.draw(st.sampled_from([buffer.getvalue(), b""]) | st.binary(max_size=80))
        blob = _zip(members)
    else:  # one value anywhere in the manifest replaced by a random JSON value
        manifest = json.loads(members["manifest.json"])
        path, _ = data.draw(st.sampled_from(list(_paths(manifest))))
        members["manifest.json"] = json.dumps(_replace(manifest, path, data.draw(json_values))).encode()
        blob = _zip(members)
    path = tmp_path_factory.mktemp("packed") / "model.packed.npz"
    path.write_bytes(blob)
    model = _reads(PackedModel.load, path)
    if isinstance(model, PackedModel):  # what loads must also predict (or refuse in one line)
        _reads(model.predict, torch.zeros(2, 1, 4, 5, dtype=torch.uint8))


# ------------------------------------------------------------------------------ IDX and npy
IDX_CODES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x07, 0xFF]


@FUZZ
@given(code=st.sampled_from(IDX_CODES), dims=st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 6),
                                                      max_size=6),
       extra=st.integers(-4, 4), gz=st.booleans(), zero=st.sampled_from([0, 0, 1]))
@example(code=0x08, dims=[2**31, 2**31, 2**31, 2**31], extra=0, gz=False, zero=0)
def test_idx_headers(tmp_path_factory, code, dims, extra, gz, zero):
    header = bytes([0, zero, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    size = math.prod(dims) * 8
    body = bytes(max(min(size, 4096) + extra, 0))
    blob = header + body
    path = tmp_path_factory.mktemp("idx") / ("data.idx.gz" if gz else "data.idx")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    for read in (read_idx, read_idx_images, read_idx_labels):
        _reads(read, path)


@FUZZ
@given(blob=st.binary(max_size=200), gz=st.booleans())
def test_idx_of_any_bytes(tmp_path_factory, blob, gz):
    path = tmp_path_factory.mktemp("idx") / ("data.idx.gz" if gz else "data.idx")
    path.write_bytes(blob)
    _reads(read_idx, path)


NPY_DTYPES = ["uint8", "int64", "float32", "float64", "bool", "complex64", "float16", "uint64", "int8",
              "U3", "datetime64[s]", "object"]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


@FUZZ
@given(data=st.data())
def test_npy_features(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("features")
    rows = data.draw(st.integers(0, 4))
    valid = {"x_train": np.arange(rows * 3, dtype=np.float32).reshape(rows, 3),
             "y_train": np.arange(rows, dtype=np.int64) % 2,
             "x_test": np.zeros((2, 3), dtype=np.float32), "y_test": np.zeros(2, dtype=np.int64)}
    name = data.draw(st.sampled_from(sorted(valid)))
    how = data.draw(st.sampled_from(["array", "bytes", "truncate", "values"]))
    blobs = {key: _npy(array) for key, array in valid.items()}
    if how == "array":
        dtype = data.draw(st.sampled_from(NPY_DTYPES))
        shape = tuple(data.draw(st.lists(st.integers(0, 3), max_size=4)))
        blobs[name] = _npy(np.zeros(shape, dtype=dtype))
    elif how == "bytes":
        blobs[name] = data.draw(st.binary(max_size=120))
    elif how == "truncate":
        blobs[name] = blobs[name][:data.draw(st.integers(0, len(blobs[name]) - 1))]
    else:  # valid shapes, random values (huge, negative, NaN)
        values = data.draw(st.lists(st.floats() | st.integers(-2**63, 2**64 - 1), min_size=1, max_size=1))
        dtype = "float64" if isinstance(values[0], float) else ("uint64" if values[0] >= 2**63 else "int64")
        shape = valid[name].shape
        blobs[name] = _npy(np.full(shape, values[0], dtype=dtype))
    for key, blob in blobs.items():
        (folder / f"{key}.npy").write_bytes(blob)
    _reads(read_features, folder)


def test_a_manifest_with_a_huge_integer_is_one_line(packed_bytes, tmp_path):
    """Found by the fuzzing: json refuses integers of more than 4300 digits with a plain
    ValueError (not a JSONDecodeError), which escaped as a traceback."""
    members = _members(packed_bytes)
    members["manifest.json"] = members["manifest.json"].replace(b"{", b'{"x": ' + b"1" * 5000 + b", ", 1)
    path = tmp_path / "model.packed.npz"
    path.write_bytes(_zip(members))
    with pytest.raises(BinlearnError, match="manifest.json is not valid JSON"):
        PackedModel.load(path)

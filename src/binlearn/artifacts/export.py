"""Export and inference of runs: wires a trained run (config + checkpoint + data encoding)
to an artefact format.

``export_run(run_dir, fmt=...)`` reads the run back (:func:`~binlearn.artifacts.load_trained`,
on the CPU) and hands it to the format's exporter in :data:`EXPORT_FORMATS`. The ``packed``
exporter (:mod:`binlearn.binary.packed_format`) converts the model with the conversion that
lives beside the model (the ``"packed"`` routes of :mod:`binlearn.artifacts.registry`:
:func:`binlearn.nn.packed.mlp_to_packed`, :func:`binlearn.energy.packed.energy_to_packed`,
:mod:`binlearn.rules.packed`, keyed by the model's type), derives the
input stage from the run's data encoding, checks (``verify``) that the packed model predicts
exactly what the learner predicts on the whole test split, and writes
``RUN_DIR/model.packed.npz``. ``infer_export(path, dataset)`` runs a packed model on raw
uint8 images with the packed kernels only.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from binlearn.artifacts.nir_export import export_nir
from binlearn.artifacts.registry import ArtifactError, register, route
from binlearn.artifacts.trained import TrainedRun, load_trained
from binlearn.atomic import atomic_write_bytes, checked_output, remove_stale_temporaries
from binlearn.binary.packed_dynamics import PackedDynamics
from binlearn.binary.packed_format import PackedFormatError, PackedInput, PackedLayer, PackedModel
from binlearn.data import SOURCES, DataError, load_dataset, raw_split
from binlearn.data.encodings import encode
from binlearn.energy.network import EnergyNet
from binlearn.energy.packed import energy_to_packed
from binlearn.experiment.config import ExperimentConfig, config_to_dict
from binlearn.nn.packed import mlp_to_packed
from binlearn.rules.cpr import CommitteeMachine
from binlearn.rules.local_binary import SignNetwork
from binlearn.rules.packed import committee_to_packed, local_binary_to_packed

__all__ = ["DEFAULT_EXPORT_NAME", "EXPORT_FORMATS", "FORMATS", "export_run",
           "export_packed", "infer_export", "input_stage"]

DEFAULT_EXPORT_NAME = "model.packed.npz"
_BINARY_ENCODINGS = ("binarize", "thermometer")


def _unit_images(images: np.ndarray) -> torch.Tensor:
    """uint8 -> [0, 1] float32 exactly as :func:`binlearn.data.load_dataset` does it."""
    return torch.from_numpy(np.array(images, dtype=np.float32)).div_(255.0)


def _encode_as_run(x: torch.Tensor, config: ExperimentConfig, train_reference: torch.Tensor) -> torch.Tensor:
    """``x`` (images in [0, 1]) encoded as the run's data config encodes its inputs."""
    data, source = config.data, SOURCES[config.data.dataset]
    return encode(x, data.encoding, train_reference=train_reference, mean=source.mean, std=source.std,
                  threshold=data.threshold, thermometer_bits=data.thermometer_bits,
                  thermometer_levels=data.thermometer_levels, signed=data.signed)


def input_stage(config: ExperimentConfig, train_reference: torch.Tensor,
                raw_shape: tuple[int, ...]) -> tuple[PackedInput, tuple[int, ...]]:
    """The encoding as integer pixel thresholds: bit_f = pixel[pixel_index[f]] > pixel_threshold[f].

    The run's own :func:`~binlearn.data.encodings.encode` is applied to 256 synthetic images
    (every pixel = v / 255 for v = 0 … 255), so each feature's threshold is read off the
    function the model was trained with (median thresholds included) — no re-derivation.

    Args:
        config: the run's config (data.encoding must be binarize or thermometer).
        train_reference: the run's training split in [0, 1] (median statistics).
        raw_shape: one raw image (channels, height, width).
    Returns:
        (the input stage, the encoded sample shape the learner was built for).
    """
    data = config.data
    if data.encoding not in _BINARY_ENCODINGS:
        raise PackedFormatError(f"data.encoding = {data.encoding!r} gives float inputs, whose products with "
                                "the first layer's weights are not integers; only runs on binarised inputs "
                                f"can be packed: train with data.encoding = \"binarize\" (or "
                                f"\"thermometer\")")
    levels = np.arange(256, dtype=np.uint8)[:, None, None, None]
    synthetic = _unit_images(np.broadcast_to(levels, (256, *raw_shape)))
    encoded = _encode_as_run(synthetic, config, train_reference)
    bits = (encoded.reshape(256, -1) > 0).numpy()
    if (bits[1:] < bits[:-1]).any():
        raise PackedFormatError("the input encoding is not a pixel threshold (a brighter pixel turned a "
                                "bit off)")
    threshold = (256 - bits.sum(axis=0) - 1).astype(np.int16)  # bit = pixel > threshold
    index = torch.arange(int(np.prod(raw_shape))).reshape(1, *raw_shape)
    if data.encoding == "thermometer":  # the layout of encodings.thermometer: (c, level, h, w)
        index = index.unsqueeze(2).expand(-1, -1, data.thermometer_bits, *raw_shape[1:]).flatten(1, 2)
    description = {"name": data.encoding, "dataset": data.dataset, "signed": data.signed,
                   "threshold": data.threshold if data.encoding == "binarize" else None,
                   "thermometer_bits": data.thermometer_bits if data.encoding == "thermometer" else None,
                   "thermometer_levels": data.thermometer_levels if data.encoding == "thermometer" else None,
                   "train_size": data.train_size, "validation_size": data.validation_size}
    packed = PackedInput(tuple(raw_shape), index.reshape(-1).numpy().astype(np.int64), threshold,
                         "signed" if data.signed else "binary", description)
    return packed, tuple(encoded.shape[1:])


def _packed_feed_forward(trained: TrainedRun) -> list[PackedLayer]:
    return mlp_to_packed(trained.model, trained.config.data.signed)


def _packed_energy(trained: TrainedRun) -> PackedDynamics:
    rule: Any = trained.config.rule  # an energy rule's config: eval_steps (None: T), relaxation
    return energy_to_packed(trained.model, rule.eval_steps or rule.free_steps, rule.relaxation,
                            trained.config.data.signed)


def _packed_sign_network(trained: TrainedRun) -> list[PackedLayer]:
    return local_binary_to_packed(list(trained.model.layers))  # reads ±1 inputs


def _packed_committee(trained: TrainedRun) -> list[PackedLayer]:
    return committee_to_packed(trained.model)  # reads ±1 inputs


register(nn.Sequential, "packed", _packed_feed_forward, what="STE mlp")
register(EnergyNet, "packed", _packed_energy, what="binary EP networks")
register(SignNetwork, "packed", _packed_sign_network, what="local-binary networks")
register(CommitteeMachine, "packed", _packed_committee, what="CP+R committees")


def export_packed(trained: TrainedRun, output: Path | None, *, verify: bool = True,
                  quiet: bool = False) -> dict[str, Any]:
    """The ``packed`` format: ``output`` (default ``RUN_DIR/model.packed.npz``), the model as
    packed bits plus its input stage (:func:`input_stage`); with ``verify`` the packed
    predictions must equal the learner's on the whole test split, or nothing is written."""
    config, learner, run_dir = trained.config, trained.learner, trained.run_dir
    if config.data.dataset not in SOURCES:
        raise PackedFormatError(f"runs on dataset {config.data.dataset!r} cannot be packed: the packed input "
                                f"stage reads the uint8 images of a named dataset ({', '.join(SOURCES)})")
    try:
        found = route(trained.model, "packed")
    except ArtifactError:
        raise PackedFormatError(f"model.kind = {trained.model_kind!r} with rule {trained.rule_name!r} cannot "
                                "be exported to the packed format yet (not supported)") from None
    layers = found.converter(trained)  # type: ignore[misc]  # feed-forward layers, or EP dynamics
    unit = load_dataset(config.data, quiet=quiet, encoding="unit")
    packed_input, _ = input_stage(config, unit.x_train, unit.input_shape)
    # the learner decides how it reads the bits
    packed_input.values = layers[0].input_values if isinstance(layers, list) else layers.input_values
    settings = config_to_dict(config)
    memory = trained.learning_memory_fields()  # what learning this model on chip would keep
    metadata = {"model": {"config": settings["model"], "rule": trained.rule_name},
                "source": {"run_dir": str(run_dir), "epoch": trained.epoch,
                           "exported": time.strftime("%Y-%m-%dT%H:%M:%S")},
                **memory}
    model = PackedModel.build(packed_input, layers, unit.num_classes, metadata)
    summary: dict[str, Any] = {"run_dir": str(run_dir), "format": "packed", "layers": model.summary(),
                               **memory}
    if verify:
        expected = _learner_predictions(learner, trained.data.x_test, config.data.eval_batch_size)
        images, _ = raw_split(config.data.dataset, "test", data_dir=config.data.data_dir,
                              download=config.data.download, verify=config.data.verify, quiet=True)
        got = model.predict(images)
        differ = int((got != expected).sum())
        if differ:
            raise PackedFormatError(f"the packed model differs from the trained model on {differ} of "
                                    f"{len(expected)} test images; nothing written")
        summary["verified"] = {"split": "test", "samples": len(expected), "identical": len(expected)}
    target = Path(output or run_dir / DEFAULT_EXPORT_NAME)
    remove_stale_temporaries(target.parent, [target.name])  # a killed export's leftovers
    path = model.save(target)
    summary.update(output=str(path), bytes=path.stat().st_size)
    float_bytes = float32_bytes(summary["layers"])
    if float_bytes is not None:
        summary.update(float32_bytes=float_bytes,
                       smaller_than_float32=round(float_bytes / summary["bytes"], 1))
    return summary


def float32_bytes(layers: list[dict[str, Any]]) -> int | None:
    """What the same dense layers take as float32 weights and biases (4·(in·out + out) bytes
    each), to set the packed file's size against; None when a layer is not a dense in → out."""
    total = 0
    for layer in layers:
        fan_in, fan_out = layer.get("in"), layer.get("out")
        if not isinstance(fan_in, int) or not isinstance(fan_out, int):
            return None
        total += 4 * (fan_in * fan_out + fan_out)
    return total


Exporter = Callable[..., dict[str, Any]]
"""``exporter(trained, output, *, verify, quiet) -> summary``: writes ``output`` (None: the
format's default file in the run directory) from a :class:`TrainedRun` and returns a
JSON-able summary including ``"output"``."""

EXPORT_FORMATS: dict[str, Exporter] = {
    "packed": export_packed,
    "nir": export_nir,
}
"""``binlearn export --format NAME`` -> its exporter. A new format is one entry here: a
function with the :data:`Exporter` signature (e.g. ``"nir": export_nir``); the CLI lists
these names as the valid ``--format`` values."""

FORMATS = tuple(EXPORT_FORMATS)


def export_run(run_dir: Path, output: Path | None = None, *, fmt: str = "packed", verify: bool = True,
               quiet: bool = False) -> dict[str, Any]:
    """Export a run's latest checkpoint (:func:`~binlearn.artifacts.load_trained`, on the
    CPU) in the format ``fmt`` (a key of :data:`EXPORT_FORMATS`); return its summary dict.

    ``verify``: the format checks its artefact against the learner (``packed``: identical
    predictions on the whole test split) and refuses to write it otherwise.
    """
    if fmt not in EXPORT_FORMATS:
        raise PackedFormatError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    if output is not None:
        output = checked_output(output)  # refused now, not after the run is read and converted
    trained = load_trained(run_dir, device="cpu", quiet=quiet)
    return EXPORT_FORMATS[fmt](trained, output, verify=verify, quiet=quiet)


@torch.no_grad()
def _learner_predictions(learner: Any, x: torch.Tensor, batch_size: int) -> np.ndarray:
    chunks = [learner.predict(x[s:s + batch_size]).cpu() for s in range(0, len(x), batch_size)]
    return torch.cat(chunks).numpy()


def infer_export(path: Path, dataset: str | None = None, *, split: str = "test", data_dir: str | None = None,
                 output: Path | None = None, download: bool = True, quiet: bool = False) -> dict[str, Any]:
    """Run a packed model on a dataset split (raw uint8 images, packed kernels only);
    ``output``: where to save the predictions (a ``.npy`` of int64 labels; the suffix is added
    as np.save adds it), checked before anything runs."""
    if output is not None:
        output = checked_output(output)  # as given: a directory is refused, not suffixed
        if output.suffix != ".npy":
            output = output.with_name(output.name + ".npy")  # what np.save would write
        output = checked_output(output)
    model = PackedModel.load(path)
    spec = model.manifest["input"]
    encoding = spec.get("encoding") or {}
    name = dataset or encoding.get("dataset")
    if not name:
        raise DataError("the packed model does not name its dataset; pass --data DATASET")
    same = name == encoding.get("dataset")
    images, labels = raw_split(name, split, encoding.get("train_size") if same else None,
                               encoding.get("validation_size", 0) if same else 0, data_dir,
                               download=download, quiet=quiet)
    if tuple(images.shape[1:]) != model.input_shape:
        raise DataError(f"{name} images are {list(images.shape[1:])} but the packed model reads "
                        f"{list(model.input_shape)}")
    if len(images) == 0:
        raise DataError(f"the {split} split of {name} is empty")
    start = time.perf_counter()
    predictions = model.predict(images)
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {
        "export": str(path), "dataset": name, "split": split, "samples": int(len(predictions)),
        "accuracy": float((predictions == labels).mean()), "seconds": round(seconds, 4),
    }
    if output is not None:
        buffer = io.BytesIO()
        np.save(buffer, predictions)
        atomic_write_bytes(output, buffer.getvalue())
        result["predictions"] = str(output)
    return result

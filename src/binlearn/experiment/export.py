"""Packed export and inference of runs: wires a run (config + checkpoint + data encoding)
to :mod:`binlearn.binary.packed_format`.

``export_run(run_dir)`` rebuilds the run's learner on the CPU, asks it for its packed
layers (``learner.to_packed``), derives the input stage from the run's data encoding,
checks (``verify``) that the packed model predicts exactly what the learner predicts on the
whole test split, and writes ``RUN_DIR/model.packed.npz``. ``infer_export(path, dataset)``
runs a packed model on raw uint8 images with the packed kernels only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from binlearn.binary.packed_format import PackedFormatError, PackedInput, PackedModel
from binlearn.data import SOURCES, DataError, load_dataset, load_raw
from binlearn.data.encodings import encode
from binlearn.experiment.config import ExperimentConfig, config_to_dict
from binlearn.experiment.registry import build_learner
from binlearn.experiment.runner import load_learner_state, load_run

__all__ = ["DEFAULT_EXPORT_NAME", "FORMATS", "export_run", "infer_export", "input_stage", "split_images"]

DEFAULT_EXPORT_NAME = "model.packed.npz"
FORMATS = ("packed",)
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


def split_images(name: str, split: str, train_size: int | None, validation_size: int,
                 data_dir: str | None = None, *, download: bool = True, verify: bool = True,
                 quiet: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Raw uint8 images and labels of one split, cut as :func:`~binlearn.data.load_dataset` cuts it."""
    train_x, train_y, test_x, test_y = load_raw(name, data_dir, download=download, verify=verify, quiet=quiet)
    if split == "test":
        return test_x, test_y
    pool = len(train_x) - int(validation_size or 0)
    if split == "validation":
        return train_x[pool:], train_y[pool:]
    if split != "train":
        raise DataError(f"unknown split {split!r}; valid: test, train, validation")
    stop = pool if train_size is None else min(int(train_size), pool)
    return train_x[:stop], train_y[:stop]


def export_run(run_dir: Path, output: Path | None = None, *, fmt: str = "packed", verify: bool = True,
               quiet: bool = False) -> dict[str, Any]:
    """Export a run's latest checkpoint as a packed model; return a summary dict.

    ``verify``: compare the packed predictions with the learner's on the whole test split
    and refuse to write the file unless every one is identical.
    """
    if fmt not in FORMATS:
        raise PackedFormatError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    config, checkpoint = load_run(run_dir)
    if config.data.dataset not in SOURCES:
        raise PackedFormatError(f"runs on dataset {config.data.dataset!r} cannot be packed: the packed input "
                                f"stage reads the uint8 images of a named dataset ({', '.join(SOURCES)})")
    unit = load_dataset(config.data, quiet=quiet, encoding="unit")
    sample = _encode_as_run(unit.x_train[:1], config, unit.x_train)
    learner = build_learner(config, tuple(sample.shape[1:]), unit.num_classes, torch.device("cpu"))
    load_learner_state(learner, checkpoint, run_dir)
    settings = config_to_dict(config)
    kind, rule = settings["model"].get("kind"), settings["rule"].get("name")
    if not hasattr(learner, "to_packed"):
        raise PackedFormatError(f"model.kind = {kind!r} with rule {rule!r} cannot be exported to the packed "
                                "format yet (not supported)")
    layers = learner.to_packed(config.data.signed)  # feed-forward layers, or EP dynamics
    packed_input, _ = input_stage(config, unit.x_train, unit.input_shape)
    # the learner decides how it reads the bits
    packed_input.values = layers[0].input_values if isinstance(layers, list) else layers.input_values
    metadata = {"model": {"config": settings["model"], "rule": rule},
                "source": {"run_dir": str(run_dir), "epoch": checkpoint.get("epoch"),
                           "exported": time.strftime("%Y-%m-%dT%H:%M:%S")}}
    model = PackedModel.build(packed_input, layers, unit.num_classes, metadata)
    summary: dict[str, Any] = {"run_dir": str(run_dir), "format": fmt, "layers": model.summary()}
    if verify:
        encoded = load_dataset(config.data, quiet=True)
        expected = _learner_predictions(learner, encoded.x_test, config.data.eval_batch_size)
        images, _ = split_images(config.data.dataset, "test", None, 0, config.data.data_dir,
                                 download=config.data.download, verify=config.data.verify, quiet=True)
        got = model.predict(images)
        differ = int((got != expected).sum())
        if differ:
            raise PackedFormatError(f"the packed model differs from the trained model on {differ} of "
                                    f"{len(expected)} test images; nothing written")
        summary["verified"] = {"split": "test", "samples": len(expected), "identical": len(expected)}
    path = model.save(output or run_dir / DEFAULT_EXPORT_NAME)
    summary.update(output=str(path), bytes=path.stat().st_size)
    return summary


@torch.no_grad()
def _learner_predictions(learner: Any, x: torch.Tensor, batch_size: int) -> np.ndarray:
    chunks = [learner.predict(x[s:s + batch_size]).cpu() for s in range(0, len(x), batch_size)]
    return torch.cat(chunks).numpy()


def infer_export(path: Path, dataset: str | None = None, *, split: str = "test", data_dir: str | None = None,
                 output: Path | None = None, download: bool = True, quiet: bool = False) -> dict[str, Any]:
    """Run a packed model on a dataset split (raw uint8 images, packed kernels only)."""
    model = PackedModel.load(path)
    spec = model.manifest["input"]
    encoding = spec.get("encoding") or {}
    name = dataset or encoding.get("dataset")
    if not name:
        raise DataError("the packed model does not name its dataset; pass --data DATASET")
    same = name == encoding.get("dataset")
    images, labels = split_images(name, split, encoding.get("train_size") if same else None,
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
        output = Path(output)
        if output.suffix != ".npy":
            output = output.with_name(output.name + ".npy")  # what np.save would write
        output.parent.mkdir(parents=True, exist_ok=True)
        np.save(output, predictions)
        result["predictions"] = str(output)
    return result

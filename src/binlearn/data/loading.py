"""``load_dataset``: official files -> encoded in-memory tensors with the requested splits."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from binlearn.data.dataset import Dataset
from binlearn.data.encodings import ENCODINGS, encode
from binlearn.data.features import NPY_DATASET, features_to_unit, read_features
from binlearn.data.files import ensure_files
from binlearn.data.formats import read_cifar, read_idx_images, read_idx_labels
from binlearn.data.sources import SOURCES, DataError, resolve_data_dir

__all__ = ["load_dataset", "load_raw", "raw_split", "split_bounds", "SPLITS", "DIGITS_TEST_SIZE",
           "DIGITS_SPLIT_SEED"]

DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 20240607
"""The digits split is fixed (not the run seed) so every run is evaluated on the same 360 images."""

SPLITS = ("test", "train", "validation")

_LOAD_KEYS = ("data_dir", "train_size", "validation_size", "encoding", "threshold",
              "thermometer_bits", "thermometer_levels", "signed", "download", "verify", "features")


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    test, train = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    return images[train], labels[train], images[test], labels[test]


def load_raw(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    verify: bool = True,
    quiet: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The official train and test splits as uint8 images ``(n, c, h, w)`` and int64 labels."""
    if name not in SOURCES:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(SOURCES)}")
    source = SOURCES[name]
    if source.format == "digits":
        return _digits()
    if verify:
        paths = ensure_files(source, data_dir, download=download, quiet=quiet)
    else:
        folder = resolve_data_dir(data_dir) / name
        paths = {f.name: folder / f.name for f in source.files}
        for path in paths.values():
            if not path.is_file():
                raise DataError(f"{name}: {path} not found (verify=false never downloads)")
    if source.format == "idx":
        train_x = read_idx_images(paths["train-images-idx3-ubyte.gz"])
        train_y = read_idx_labels(paths["train-labels-idx1-ubyte.gz"])
        test_x = read_idx_images(paths["t10k-images-idx3-ubyte.gz"])
        test_y = read_idx_labels(paths["t10k-labels-idx1-ubyte.gz"])
        for images, labels, split in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
            if len(images) != len(labels):
                raise DataError(f"{name}: {split} has {len(images)} images but {len(labels)} labels")
        if train_x.shape[1:] != test_x.shape[1:]:
            raise DataError(f"{name}: the training images are {'×'.join(map(str, train_x.shape[2:]))} but "
                            f"the t10k images are {'×'.join(map(str, test_x.shape[2:]))}")
        _check_labels(name, source.num_classes, (train_y, "train-labels-idx1-ubyte.gz"),
                      (test_y, "t10k-labels-idx1-ubyte.gz"))
        return train_x, train_y.astype(np.int64), test_x, test_y.astype(np.int64)
    (archive,) = paths.values()
    train_x, train_y, test_x, test_y = read_cifar(archive, source.format)
    _check_labels(name, source.num_classes, (train_y, archive.name), (test_y, archive.name))
    return train_x, train_y, test_x, test_y


def _check_labels(name: str, num_classes: int, *labelled: tuple[np.ndarray, str]) -> None:
    """Labels of a source with K classes must be 0 … K−1 (files of your own in the official
    format, read with data.verify = false, may hold others)."""
    for labels, where in labelled:
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
            bad = int(labels.max()) if int(labels.max()) >= num_classes else int(labels.min())
            raise DataError(f"{name}: {where} holds label {bad}; {name} labels are 0 … {num_classes - 1}")


def split_bounds(name: str, total: int, train_size: int | None, validation_size: int | None
                 ) -> tuple[int, int]:
    """The one split rule: of the ``total`` official training images, validation = the last
    ``validation_size`` (images [pool, total)), train = the first ``train_size`` of the rest
    (images [0, n_train)); test = the official test files.

    Args:
        name: the dataset, for messages.
        total: images in the official training files.
        train_size: None (all of the pool) or in [1, pool].
        validation_size: None or 0 (no validation split) or in [1, total).
    Returns:
        (n_train, pool).
    Raises:
        DataError: a size out of range, in one line.
    """
    validation_size = int(validation_size or 0)
    if not 0 <= validation_size < total:
        raise DataError(f"validation_size={validation_size} must be in [0, {total})")
    pool = total - validation_size
    if train_size is not None and not 0 < train_size <= pool:
        raise DataError(f"train_size={train_size} must be in [1, {pool}] for {name}")
    return (pool if train_size is None else train_size), pool


def raw_split(name: str, split: str, train_size: int | None = None, validation_size: int | None = 0,
              data_dir: str | os.PathLike | None = None, *, download: bool = True, verify: bool = True,
              quiet: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 images ``(n, c, h, w)`` and int64 labels of one split (``split`` in
    :data:`SPLITS`), cut by :func:`split_bounds` exactly as :func:`load_dataset` cuts it."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    train_x, train_y, test_x, test_y = load_raw(name, data_dir, download=download, verify=verify, quiet=quiet)
    if split == "test":
        return test_x, test_y
    n_train, pool = split_bounds(name, len(train_x), train_size, validation_size)
    if split == "validation":
        return train_x[pool:], train_y[pool:]
    return train_x[:n_train], train_y[:n_train]


def _options(config: Any, overrides: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(config, str):
        name, options = config, {}
    else:
        name = config.dataset
        options = {k: getattr(config, k) for k in _LOAD_KEYS if hasattr(config, k)}
    options.update(overrides)
    return name, options


def load_dataset(config: Any, *, quiet: bool = False, **overrides: Any) -> Dataset:
    """Load a dataset into memory, split and encoded.

    Args:
        config: a dataset name, or any object with the fields of
            :class:`binlearn.experiment.DataConfig` (``dataset``, ``data_dir``, ``train_size``,
            ``validation_size``, ``encoding``, ``threshold``, ``thermometer_bits``,
            ``thermometer_levels``, ``signed``,
            ``download``, ``verify``, ``features``). Keyword arguments override those fields.

    Splits: validation = the last ``validation_size`` images of the official training
    files; train = the first ``train_size`` of the rest; test = the official test files.
    Encoding statistics (normalisation without published values, median thresholds) come
    from the training split only. ``dataset = "npy"`` reads the four arrays of the folder
    ``features`` (:mod:`binlearn.data.features`) instead of official files.
    """
    name, options = _options(config, overrides)
    encoding = options.get("encoding", "unit")
    if encoding not in ENCODINGS:
        raise DataError(f"unknown encoding {encoding!r}; valid: {', '.join(ENCODINGS)}")
    if name == NPY_DATASET:
        train_x, train_y, test_x, test_y = read_features(options.get("features"))
    elif name not in SOURCES:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(SOURCES)}, {NPY_DATASET} (your own "
                        "arrays: data.features = FOLDER)")
    else:
        train_x, train_y, test_x, test_y = load_raw(
            name, options.get("data_dir"), download=options.get("download", True),
            verify=options.get("verify", True), quiet=quiet,
        )
    n_train, pool = split_bounds(name, len(train_x), options.get("train_size"),
                                 options.get("validation_size"))

    def tensor(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(images, dtype=np.float32)).div_(255.0)

    if name == NPY_DATASET:
        x_train, x_val, x_test = features_to_unit(train_x[:n_train], train_x[pool:], test_x)
        mean = std = None
        num_classes = int(train_y.max()) + 1
    else:
        x_train, x_val, x_test = tensor(train_x[:n_train]), tensor(train_x[pool:]), tensor(test_x)
        source = SOURCES[name]
        mean, std, num_classes = source.mean, source.std, source.num_classes
    kwargs = dict(train_reference=x_train, mean=mean, std=std,
                  threshold=options.get("threshold", 0.5),
                  thermometer_bits=options.get("thermometer_bits", 4),
                  thermometer_levels=options.get("thermometer_levels"),
                  signed=options.get("signed", False))
    x_train, x_val, x_test = (encode(x, encoding, **kwargs) for x in (x_train, x_val, x_test))
    labels = lambda y: torch.from_numpy(np.array(y, dtype=np.int64))  # noqa: E731
    return Dataset(
        name, x_train, labels(train_y[:n_train]), x_test, labels(test_y),
        x_val, labels(train_y[pool:]), num_classes,
    )

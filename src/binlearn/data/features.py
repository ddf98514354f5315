"""Datasets from ``.npy`` files: pre-computed features (the "TL" datasets of Colombo et
al. 2024, features of a frozen pre-trained extractor) or any images of your own.

A features folder holds four files::

    x_train.npy   (n_train, F) or (n_train, C, H, W), any real dtype
    y_train.npy   (n_train,) integer class labels 0 … K−1
    x_test.npy    (n_test, same sample shape)
    y_test.npy    (n_test,)

Values are brought to [0, 1] so that every encoding (``unit``, ``binarize`` with a fixed
or median threshold, ``thermometer``) means what it means for images: uint8 arrays are
divided by 255 (images); other dtypes are rescaled per feature by the training split's
minimum and maximum (test values outside that range are clipped), the per-feature range
the authors' thermometer encoder uses (taken from the training split only, after the
validation rows are carved off). Flat features become ``(F, 1, 1)`` samples (F
channels of one pixel each). Files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from binlearn.data.sources import DataError

__all__ = ["FEATURE_FILES", "NPY_DATASET", "features_to_unit", "read_features"]

NPY_DATASET = "npy"
MAX_CLASSES = 65536
"""Labels of your own arrays must be below this (K classes become K output units)."""

FEATURE_FILES = ("x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy")


def _read(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path} not found; a features folder holds {', '.join(FEATURE_FILES)}")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path}: not a readable .npy array ({reason})") from None
    if not isinstance(array, np.ndarray):  # an .npz archive under an .npy name
        array.close()
        raise DataError(f"{path}: an .npz archive, not one .npy array (save each array with np.save)")
    return array


def _check_pair(x: np.ndarray, y: np.ndarray, split: str, folder: Path) -> None:
    if x.ndim not in (2, 4):
        raise DataError(f"{folder}/x_{split}.npy has shape {list(x.shape)}; expected (n, features) "
                        "or (n, channels, height, width)")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
            or x.dtype == np.bool_):
        raise DataError(f"{folder}/x_{split}.npy holds {x.dtype} values; expected numbers")
    if len(x) == 0:
        raise DataError(f"{folder}/x_{split}.npy is empty")
    if 0 in x.shape[1:]:
        raise DataError(f"{folder}/x_{split}.npy has shape {list(x.shape)}: its samples hold no features")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{folder}/y_{split}.npy has shape {list(y.shape)}; expected ({len(x)},), "
                        f"one label per row of x_{split}.npy")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{folder}/y_{split}.npy holds {y.dtype} values; expected integer class labels")
    if y.min() < 0:
        raise DataError(f"{folder}/y_{split}.npy has a negative label ({int(y.min())}); labels are 0 … K−1")
    if int(y.max()) >= MAX_CLASSES:  # also a uint64 label that int64 would wrap to a negative one
        raise DataError(f"{folder}/y_{split}.npy has label {int(y.max())}; labels are 0 … K−1 with "
                        f"K ≤ {MAX_CLASSES}")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DataError(f"{folder}/x_{split}.npy holds NaN or infinite values")
    # training computes in float32: a float64 value beyond its range would become inf there
    largest = float(np.finfo(np.float32).max)
    if np.issubdtype(x.dtype, np.floating) and float(np.abs(x).max()) > largest:
        raise DataError(f"{folder}/x_{split}.npy holds values beyond float32's range (|x| up to "
                        f"{float(np.abs(x).max()):.3g} > {largest:.3g}); training computes in float32")


def features_to_unit(train: np.ndarray, *others: np.ndarray) -> list[torch.Tensor]:
    """float32 tensors in [0, 1], ``(n, C, H, W)``: uint8 / 255, otherwise per-feature
    min-max scaling by ``train`` (the training split; others are clipped to its range, and a
    feature constant over ``train`` is 0 everywhere)."""
    if train.dtype == np.uint8:
        out = [torch.from_numpy(a.astype(np.float32)).div_(255.0) for a in (train, *others)]
    else:
        low = train.min(axis=0).astype(np.float64)
        span = train.max(axis=0).astype(np.float64) - low
        largest = float(np.finfo(np.float32).max)
        if (span > largest).any():  # max − min would be inf in float32, every scaled value NaN
            raise DataError(f"the training features span more than float32 can hold in one feature "
                            f"(max − min up to {float(span.max()):.3g} > {largest:.3g}); rescale them")
        span[span == 0] = np.inf  # constant feature: (x − low) / inf = 0, also for test values
        low32, span32 = torch.from_numpy(low.astype(np.float32)), torch.from_numpy(span.astype(np.float32))
        out = [((torch.from_numpy(np.asarray(a, dtype=np.float32)) - low32) / span32).clamp_(0.0, 1.0)
               for a in (train, *others)]
    return [a[:, :, None, None].contiguous() if a.dim() == 2 else a for a in out]


def read_features(folder: str | Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read and check a features folder: ``(x_train, y_train, x_test, y_test)`` as stored,
    labels as int64.

    Every problem (missing folder or file, unreadable array, shapes or dtypes that disagree,
    non-integer or negative labels, NaN/inf features, a test label above every training
    label) is a one-line :class:`DataError`.
    """
    if not folder:
        raise DataError('dataset "npy" needs data.features = "FOLDER" (a folder holding '
                        f"{', '.join(FEATURE_FILES)})")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"features folder {folder} not found")
    x_train, y_train, x_test, y_test = (_read(folder / name) for name in FEATURE_FILES)
    _check_pair(x_train, y_train, "train", folder)
    _check_pair(x_test, y_test, "test", folder)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{folder}: train samples are {list(x_train.shape[1:])} but test samples are "
                        f"{list(x_test.shape[1:])}")
    if (x_train.dtype == np.uint8) != (x_test.dtype == np.uint8):
        raise DataError(f"{folder}: x_train.npy is {x_train.dtype} but x_test.npy is {x_test.dtype}; uint8 "
                        "arrays are read as images (÷ 255), others are rescaled, so both must be one or the "
                        "other")
    if y_test.max() > y_train.max():
        raise DataError(f"{folder}/y_test.npy has label {int(y_test.max())}, but the training labels "
                        f"only go up to {int(y_train.max())}")
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)

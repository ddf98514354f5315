"""Parsers for the official file formats: IDX (MNIST family) and CIFAR python pickles.

Both return NumPy uint8 arrays ``images: (n, channels, height, width)`` and
``labels: (n,)``; every malformed input raises :class:`DataError` naming the file.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from binlearn.data.sources import DataError

__all__ = ["read_idx", "read_idx_images", "read_idx_labels", "read_cifar"]

_IDX_TYPES: dict[int, type | str] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
                                     0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into an array of its stated shape.

    Layout: magic ``0x0000TTDD`` (T type code, D number of dimensions), D big-endian
    int32 sizes, then the data, row-major.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: not a readable gzip file ({error})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    zero, type_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or type_code not in _IDX_TYPES or not 1 <= ndim <= 4:
        raise DataError(f"{path}: bad IDX magic {raw[:4].hex()} (expected 0000080N)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[type_code])
    expected = math.prod(shape) * dtype.itemsize  # exact: np.prod would wrap around at 2^63
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: {len(raw) - header} data bytes, header says {expected} for shape {shape} "
            "(truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def read_idx_images(path: Path) -> np.ndarray:
    """IDX images as ``(n, 1, rows, cols)`` uint8."""
    array = read_idx(path)
    if array.ndim != 3 or array.dtype != np.uint8:
        raise DataError(f"{path}: expected a 3-d uint8 IDX image file, got a {array.ndim}-d "
                        f"{array.dtype.name} array of shape {array.shape}")
    return array[:, None, :, :]


def read_idx_labels(path: Path) -> np.ndarray:
    array = read_idx(path)
    if array.ndim != 1 or array.dtype != np.uint8:
        raise DataError(f"{path}: expected a 1-d uint8 IDX label file, got a {array.ndim}-d "
                        f"{array.dtype.name} array of shape {array.shape}")
    return array


def _unpickle(blob: bytes, where: str) -> dict:
    try:
        # The official archives are Python-2 pickles of dicts of bytes/arrays/lists.
        data = pickle.loads(blob, encoding="bytes")
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a corrupt file
        raise DataError(f"{where}: not a CIFAR pickle ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise DataError(f"{where}: not a CIFAR batch (expected a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in data.items()}


def _cifar_batch(blob: bytes, where: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(blob, where)
    if "data" not in batch or label_key not in batch:
        raise DataError(f"{where}: missing 'data' or {label_key!r} in CIFAR batch")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{where}: CIFAR batch of shape {data.shape} with {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


_CIFAR_MEMBERS = {
    "cifar10": ("cifar-10-batches-py",
                [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels"),
}


def read_cifar(archive: Path, variant: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the official CIFAR python archive (``.tar.gz``) straight from the tarball.

    Returns ``(train_images, train_labels, test_images, test_labels)``, images
    ``(n, 3, 32, 32)`` uint8.
    """
    folder, train_names, test_names, label_key = _CIFAR_MEMBERS[variant]
    try:
        with tarfile.open(archive, "r:gz") as tar:
            blobs = {}
            for name in train_names + test_names:
                member = f"{folder}/{name}"
                try:
                    handle = tar.extractfile(member)
                except KeyError:
                    raise DataError(f"{archive}: no member {member} (not the official archive)") from None
                if handle is None:
                    raise DataError(f"{archive}: {member} is not a file")
                blobs[name] = handle.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DataError(f"{archive}: not a readable .tar.gz ({error})") from None

    def stack(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_cifar_batch(blobs[n], f"{archive}:{n}", label_key) for n in names]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return (*stack(train_names), *stack(test_names))


def write_cifar_archive(
    path: Path, variant: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]
) -> None:
    """Write a small archive in the official CIFAR python format (for tests and demos):
    images ``(n, 3, 32, 32)`` uint8, labels ``(n,)``. Training images are spread evenly
    over the official batch files."""
    folder, train_names, test_names, label_key = _CIFAR_MEMBERS[variant]

    def blob(images: np.ndarray, labels: np.ndarray) -> bytes:
        record = {b"data": images.reshape(len(images), -1).astype(np.uint8),
                  label_key.encode(): [int(v) for v in labels]}
        return pickle.dumps(record, protocol=2)

    with tarfile.open(path, "w:gz") as tar:
        splits = np.array_split(np.arange(len(train[0])), len(train_names))
        pieces: list[tuple[str, np.ndarray | None]] = list(zip(train_names, splits, strict=True))
        pieces += [(test_names[0], None)]
        for name, idx in pieces:
            data = blob(*test) if idx is None else blob(train[0][idx], train[1][idx])
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

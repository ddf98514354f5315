"""Dataset sources: the official files, their checksums and where to download them.

Each dataset lives in ``<data_dir>/<name>/`` under the official file names, e.g.
``$BINLEARN_DATA/mnist/train-images-idx3-ubyte.gz``. The data directory is, in order:
an explicit ``data_dir`` (``--data-dir``), ``$BINLEARN_DATA``, else the user cache
(``$XDG_CACHE_HOME/binlearn`` or ``~/.cache/binlearn``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from binlearn.errors import BinlearnError

__all__ = ["RemoteFile", "Source", "SOURCES", "resolve_data_dir", "DataError"]


class DataError(BinlearnError, ValueError):
    """A data problem explained in one line: which file, what was expected, what to do."""


@dataclass(frozen=True)
class RemoteFile:
    """One official distribution file: its name, MD5 (as published) and mirrors."""

    name: str
    md5: str
    urls: tuple[str, ...]
    size: int | None = None


@dataclass(frozen=True)
class Source:
    """A dataset: its files, format and class count."""

    name: str
    format: str  # "idx" | "cifar10" | "cifar100" | "digits"
    files: tuple[RemoteFile, ...]
    num_classes: int
    description: str
    # Published per-channel normalisation on [0,1] pixels (None: computed on the train set).
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


def _idx_files(
    mirrors: tuple[str, ...], md5s: dict[str, str], sizes: dict[str, int] | None = None
) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(name, md5, tuple(m + name for m in mirrors), (sizes or {}).get(name))
        for name, md5 in md5s.items()
    )


_IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

SOURCES: dict[str, Source] = {
    "digits": Source(
        "digits",
        "digits",
        (),
        10,
        "scikit-learn's 8x8 handwritten digits (1,797 images, embedded, no download)",
    ),
    "mnist": Source(
        "mnist",
        "idx",
        _idx_files(
            ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
            dict(zip(_IDX_NAMES, (
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "d53e105ee54ea40749a09fcbcd1e9432",
                "9fb629c4189551a2d022fa330f9573f3",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ), strict=True)),
            dict(zip(_IDX_NAMES, (9912422, 28881, 1648877, 4542), strict=True)),
        ),
        10,
        "MNIST handwritten digits, 60,000 train / 10,000 test, 28x28",
        mean=(0.1307,),
        std=(0.3081,),
    ),
    "fashion-mnist": Source(
        "fashion-mnist",
        "idx",
        _idx_files(
            ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
            dict(zip(_IDX_NAMES, (
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940ec79",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ), strict=True)),
            dict(zip(_IDX_NAMES, (26421880, 29515, 4422102, 5148), strict=True)),
        ),
        10,
        "Zalando Fashion-MNIST, 60,000 train / 10,000 test, 28x28",
        mean=(0.2860,),
        std=(0.3530,),
    ),
    "kmnist": Source(
        "kmnist",
        "idx",
        _idx_files(
            ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
            dict(zip(_IDX_NAMES, (
                "bdb82020997e1d708af4cf47b453dcf7",
                "e144d726b3acfaa3e44228e80efcd344",
                "5c965bf0a639b31b8f53240b1b52f4d7",
                "7320c461ea6c1c855c0b718fb2a4b134",
            ), strict=True)),
        ),
        10,
        "Kuzushiji-MNIST (cursive Japanese), 60,000 train / 10,000 test, 28x28",
    ),
    "cifar10": Source(
        "cifar10",
        "cifar10",
        (
            RemoteFile(
                "cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a",
                ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                170498071,
            ),
        ),
        10,
        "CIFAR-10, 50,000 train / 10,000 test, 32x32 RGB (python pickle archive)",
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.247, 0.243, 0.261),
    ),
    "cifar100": Source(
        "cifar100",
        "cifar100",
        (
            RemoteFile(
                "cifar-100-python.tar.gz",
                "eb9058c3a382ffc7106e4002c42a8d85",
                ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
                169001437,
            ),
        ),
        100,
        "CIFAR-100 (fine labels), 50,000 train / 10,000 test, 32x32 RGB",
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
    ),
}


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` if given, else ``$BINLEARN_DATA``, else the user cache directory."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("BINLEARN_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "binlearn"

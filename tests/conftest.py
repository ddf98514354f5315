"""Shared fixtures. Real datasets are found through ``BINLEARN_DATA`` (CI points it at
../shared/data); tests that need one are skipped, with the reason, when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def _data_root() -> Path | None:
    root = os.environ.get("BINLEARN_DATA")
    return Path(root) if root and Path(root).is_dir() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if root is None:
        pytest.skip("BINLEARN_DATA is not set to a folder with the official dataset files")
    return root


@pytest.fixture(scope="session")
def mnist_dir(data_root: Path) -> Path:
    folder = data_root / "mnist"
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no MNIST files in {folder}")
    return folder


@pytest.fixture(scope="session")
def fashion_dir(data_root: Path) -> Path:
    folder = data_root / "fashion-mnist"
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no Fashion-MNIST files in {folder}")
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module: with small tensors a second OpenMP thread on a
    shared 2-core machine only waits. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def defaults_toml(tmp_path_factory) -> Path:
    """A config file that names its run and sets nothing else: every field's default (an STE MLP
    on the digits; `binlearn train` with no CONFIG trains the local-rule quickstart instead)."""
    path = tmp_path_factory.mktemp("configs") / "defaults.toml"
    path.write_text('name = "defaults"\n')
    return path

"""Data that would fail deep inside training is one line ``binlearn: error: ...`` (exit 2):
labels outside 0 … K−1 in files of the official format read with data.verify = false, test
images of another size than the training images, IDX headers whose dimensions overflow,
labels of your own arrays too large for int64 or for a classifier; and a model too big for
the machine's memory is refused before it is built."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from binlearn.cli import main
from binlearn.data import DataError
from binlearn.data.formats import read_idx

FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


ROOT = Path(__file__).resolve().parents[2]
STE_DIGITS = str(ROOT / "configs/baselines/digits-ste-binary-mlp.toml")  # the STE baseline

def _write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _official_format(root, *, train_labels=None, test_size=28):
    """Small MNIST-format files of our own under root/mnist (20 train, 10 test images)."""
    rng = np.random.default_rng(0)
    folder = root / "mnist"
    folder.mkdir(parents=True)
    labels = {"train": np.arange(20) % 10 if train_labels is None else np.asarray(train_labels),
              "t10k": np.arange(10) % 10}
    sizes = {"train": 28, "t10k": test_size}
    for split, (images, label_file) in FILES.items():
        count = len(labels[split])
        _write_idx(folder / images, rng.integers(0, 256, (count, sizes[split], sizes[split])))
        _write_idx(folder / label_file, labels[split])


def _train(capsys, root, *settings: str) -> str:
    argv = ["train", STE_DIGITS, "--quiet", "--data-dir", str(root), "--run-dir", str(root / "run"),
            "--set", 'data.dataset="mnist"', "--set", "data.verify=false", "--set", "train.epochs=1",
            "--set", "model.hidden=[8]", "--set", "train.threads=1"]
    for item in settings:
        argv += ["--set", item]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("binlearn: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_own_files_in_the_official_format_train(capsys, tmp_path):
    _official_format(tmp_path)
    assert main(["train", STE_DIGITS, "--quiet", "--data-dir", str(tmp_path), "--run-dir",
                 str(tmp_path / "run"),
                 "--set", 'data.dataset="mnist"', "--set", "data.verify=false", "--set", "train.epochs=1",
                 "--set", "model.hidden=[8]", "--set", "train.threads=1"]) == 0


def test_labels_outside_the_classes_are_one_line(capsys, tmp_path):
    _official_format(tmp_path, train_labels=[*range(10), *range(9), 12])
    err = _train(capsys, tmp_path)
    assert "train-labels-idx1-ubyte.gz holds label 12" in err and "0 … 9" in err


def test_test_images_of_another_size_are_one_line(capsys, tmp_path):
    _official_format(tmp_path, test_size=32)
    err = _train(capsys, tmp_path)
    assert "28×28" in err and "32×32" in err


def test_idx_dimensions_whose_product_overflows_are_refused(tmp_path):
    path = tmp_path / "huge-idx3-ubyte"
    dims = (2**31 - 1, 2**31 - 1, 2**31 - 1)  # product ≈ 1e28: wraps around in int64
    path.write_bytes(struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">3I", *dims) + bytes(16))
    with pytest.raises(DataError, match="16 data bytes, header says 9903520300447984150353281023"):
        read_idx(path)


@pytest.mark.parametrize("labels, needle", [
    (np.array([0, 1, 2**63 + 5, 1], dtype=np.uint64), "has label 9223372036854775813"),
    (np.array([0, 1, 10**6, 1], dtype=np.int64), "has label 1000000"),
])
def test_npy_labels_too_large_are_one_line(capsys, tmp_path, labels, needle):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        np.save(tmp_path / f"x_{split}.npy", rng.random((4, 6)).astype(np.float32))
        np.save(tmp_path / f"y_{split}.npy", labels if split == "train" else np.array([0, 1, 0, 1]))
    code = main(["train", STE_DIGITS, "--quiet", "--run-dir", str(tmp_path / "run"),
                 "--set", 'data.dataset="npy"',
                 "--set", f'data.features="{tmp_path}"', "--set", "train.epochs=1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and needle in err and "y_train.npy" in err, err


def test_a_model_too_big_for_the_memory_is_refused_before_it_is_built(capsys, tmp_path):
    """784-3000000-10 in float32 with Adam's state is 35.5 GiB (the test machines have
    less; the test is skipped where more is free)."""
    import torch

    from binlearn.experiment.registry import available_memory

    free = available_memory(torch.device("cpu"))
    if free is None or free > 35 * 2**30:
        pytest.skip(f"{free} bytes free: the model would fit")
    _official_format(tmp_path)
    err = _train(capsys, tmp_path, "model.hidden=[3000000]")
    assert "model.hidden = [3000000]" in err and "needs at least 35.5 GiB" in err and "available" in err
    assert not (tmp_path / "run").exists() or not (tmp_path / "run" / "checkpoint.pt").exists()

"""Datasets from .npy arrays (``dataset = "npy"``): the door for pre-computed features."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from binlearn.data import DataError, load_dataset, read_idx
from binlearn.experiment import ConfigError, load_config, train
from binlearn.experiment.config import default_config

ROOT = Path(__file__).resolve().parents[2]
STE_DIGITS = str(ROOT / "configs/baselines/digits-ste-binary-mlp.toml")  # the STE baseline


@pytest.fixture(scope="module")

def mnist_arrays(mnist_dir):
    """1,000 training and 500 test images of the real MNIST files."""
    x_train = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")[:1000]
    y_train = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")[:1000]
    x_test = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[:500]
    y_test = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")[:500]
    return x_train, y_train, x_test, y_test


def _write(folder, x_train, y_train, x_test, y_test):
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(("x_train", "y_train", "x_test", "y_test"), (x_train, y_train, x_test, y_test),
                           strict=True):
        np.save(folder / f"{name}.npy", array)
    return folder


def test_uint8_images_load_exactly_like_the_official_files(tmp_path, mnist_arrays, data_root):
    x_train, y_train, x_test, y_test = mnist_arrays
    folder = _write(tmp_path / "imgs", x_train[:, None], y_train, x_test[:, None], y_test)
    ours = load_dataset("npy", features=str(folder), encoding="binarize", threshold="median",
                        validation_size=100)
    official = load_dataset("mnist", data_dir=data_root, download=False, train_size=900,
                            encoding="binarize", threshold="median")
    assert ours.num_classes == 10 and ours.x_train.shape == (900, 1, 28, 28)
    assert ours.x_val.shape == (100, 1, 28, 28)
    # the median comes from the same 900 training images, so the bits are identical
    assert torch.equal(ours.x_train, official.x_train)
    assert torch.equal(ours.x_test, official.x_test[:500])


def test_float_features_are_scaled_per_feature_by_the_training_split(tmp_path, mnist_arrays):
    x_train, y_train, x_test, y_test = mnist_arrays
    rng = np.random.default_rng(0)
    gain, offset = rng.uniform(0.5, 3.0, 784), rng.normal(0, 5, 784)  # arbitrary feature ranges
    f_train = (x_train.reshape(1000, -1) * gain + offset).astype(np.float32)
    f_test = (x_test.reshape(500, -1) * gain + offset).astype(np.float32)
    folder = _write(tmp_path / "feats", f_train, y_train.astype(np.int32), f_test, y_test)
    data = load_dataset("npy", features=str(folder), encoding="unit", validation_size=200)
    assert data.x_train.shape == (800, 784, 1, 1) and data.x_test.shape == (500, 784, 1, 1)
    flat = data.x_train.flatten(1)
    varying = torch.from_numpy(f_train[:800].max(0) > f_train[:800].min(0))
    assert torch.allclose(flat.amin(0)[varying], torch.zeros(int(varying.sum())))
    assert torch.allclose(flat.amax(0)[varying], torch.ones(int(varying.sum())))
    assert float(data.x_test.min()) >= 0.0 and float(data.x_test.max()) <= 1.0  # clipped
    bits = load_dataset("npy", features=str(folder), encoding="thermometer", thermometer_bits=3)
    assert bits.x_train.shape == (1000, 784 * 3, 1, 1)
    assert set(bits.x_train.unique().tolist()) == {0.0, 1.0}


def test_scaling_uses_the_training_rows_only_and_clips_the_rest(tmp_path):
    x_train = np.array([[0.0, 7.0, -1.0], [2.0, 7.0, 1.0], [1.0, 7.0, 0.0], [50.0, 7.0, -40.0]])
    x_test = np.array([[4.0, 9.0, 0.5], [-3.0, 7.0, 5.0]])
    folder = _write(tmp_path / "f", x_train, np.array([0, 1, 0, 1]), x_test, np.array([1, 0]))
    data = load_dataset("npy", features=str(folder), validation_size=1)  # row 3 is validation
    flat = lambda t: t.flatten(1)  # noqa: E731
    assert torch.equal(flat(data.x_train), torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.5, 0.0, 0.5]]))
    # validation and test: scaled by the training rows, clipped; the constant feature is 0
    assert torch.equal(flat(data.x_val), torch.tensor([[1.0, 0.0, 0.0]]))
    assert torch.equal(flat(data.x_test), torch.tensor([[1.0, 0.0, 0.75], [0.0, 0.0, 1.0]]))


def test_augmenting_flat_features_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    folder = _write(tmp_path / "f", rng.normal(size=(30, 5)), np.arange(30) % 2, rng.normal(size=(8, 5)),
                    np.arange(8) % 2)
    config = default_config(['data.dataset="npy"', f'data.features="{folder}"', "data.augment=true"])
    with pytest.raises(ConfigError, match="flat features"):
        train(config, tmp_path / "run", quiet=True)


def test_a_relative_features_path_is_stored_absolute(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    _write(tmp_path / "f", rng.normal(size=(30, 64)), np.arange(30) % 2, rng.normal(size=(8, 64)),
           np.arange(8) % 2)
    monkeypatch.chdir(tmp_path)
    config = default_config(['data.dataset="npy"', 'data.features="f"', "train.epochs=1"])
    train(config, tmp_path / "run", quiet=True)
    assert f'features = "{tmp_path / "f"}"' in (tmp_path / "run" / "config.toml").read_text()


def test_a_run_trains_on_npy_features(tmp_path, mnist_arrays):
    x_train, y_train, x_test, y_test = mnist_arrays
    folder = _write(tmp_path / "feats", x_train.reshape(1000, -1).astype(np.float64), y_train,
                    x_test.reshape(500, -1).astype(np.float64), y_test)
    config = tmp_path / "npy.toml"
    config.write_text(f'''
name = "npy-local"
[data]
dataset = "npy"
features = "{folder}"
encoding = "binarize"
threshold = "median"
batch_size = 100
[model]
kind = "binary_mlp"
hidden = [255]
[rule]
name = "local_binary"
group_size = 85
[train]
epochs = 15
threads = 1
''')
    summary = train(load_config(config), tmp_path / "run", quiet=True)
    assert summary["test_size"] == 500
    exported = subprocess.run([sys.executable, "-m", "binlearn", "export", str(tmp_path / "run")],
                              capture_output=True, text=True)
    assert exported.returncode == 2 and "cannot be packed" in exported.stderr
    assert "Traceback" not in exported.stderr
    assert summary["test_accuracy"] > 0.7  # 1,000 real MNIST digits as features (mnist itself: 0.81)


@pytest.mark.parametrize("breakage, message", [
    ("missing", "y_test.npy not found"),
    ("garbage", "not a readable .npy array"),
    ("pickled", "not a readable .npy array"),
    ("length", "one label per row"),
    ("float_labels", "integer class labels"),
    ("negative", "negative label"),
    ("nan", "NaN or infinite"),
    ("shape", "train samples are"),
    ("unseen_label", "training labels only go up to"),
    ("ndim", "expected (n, features)"),
    ("npz", "an .npz archive"),
    ("dtypes", "both must be one or the other"),
])
def test_broken_feature_folders_are_one_line_errors(tmp_path, breakage, message):
    rng = np.random.default_rng(0)
    x_train, y_train = rng.normal(size=(20, 6)).astype(np.float32), np.arange(20) % 3
    x_test, y_test = rng.normal(size=(10, 6)).astype(np.float32), np.arange(10) % 3
    folder = _write(tmp_path / "f", x_train, y_train, x_test, y_test)
    if breakage == "missing":
        (folder / "y_test.npy").unlink()
    elif breakage == "garbage":
        (folder / "x_train.npy").write_bytes(b"\x93NUMPY garbage")
    elif breakage == "pickled":
        np.save(folder / "x_train.npy", np.array([{"a": 1}] * 20, dtype=object), allow_pickle=True)
    elif breakage == "length":
        np.save(folder / "y_train.npy", y_train[:-1])
    elif breakage == "float_labels":
        np.save(folder / "y_train.npy", y_train.astype(np.float32))
    elif breakage == "negative":
        np.save(folder / "y_train.npy", y_train - 1)
    elif breakage == "nan":
        x_train[3, 2] = np.nan
        np.save(folder / "x_train.npy", x_train)
    elif breakage == "shape":
        np.save(folder / "x_test.npy", x_test[:, :5])
    elif breakage == "unseen_label":
        np.save(folder / "y_test.npy", y_test + 5)
    elif breakage == "ndim":
        np.save(folder / "x_train.npy", x_train[:, :, None])
    elif breakage == "npz":
        with open(folder / "x_test.npy", "wb") as handle:
            np.savez(handle, x=x_test)
    elif breakage == "dtypes":
        np.save(folder / "x_train.npy", (x_train > 0).astype(np.uint8))
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        load_dataset("npy", features=str(folder))
    assert "\n" not in str(caught.value)


def test_npy_without_a_folder_is_a_cli_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "binlearn", "train", STE_DIGITS, "--set",
                             "data.dataset=npy", "--run-dir", str(tmp_path / "r")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("binlearn: error:") and "data.features" in result.stderr
    assert "Traceback" not in result.stderr


def test_features_whose_range_overflows_float32_are_refused_at_load():
    """Issue 25 (N33): every value within float32, but max − min beyond it, became NaN and was
    reported as "training diverged"."""
    import numpy as np

    from binlearn.data.features import features_to_unit

    train = np.array([[-3e38, 0.0], [3e38, 1.0]], dtype=np.float32)
    with pytest.raises(DataError, match="span more than float32"):
        features_to_unit(train, train)
    fine = np.array([[-1e38, 0.0], [1e38, 1.0]], dtype=np.float32)
    assert all(bool(t.isfinite().all()) for t in features_to_unit(fine, fine))

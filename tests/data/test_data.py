"""Data: IDX and CIFAR parsing, checksums and corruption, splits, encodings, batching."""

from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest
import torch

from binlearn.data import (
    SOURCES,
    DataError,
    batch_indices,
    binarize,
    ensure_files,
    load_dataset,
    random_crop_flip,
    read_cifar,
    read_idx,
    thermometer,
    write_cifar_archive,
)
from binlearn.data.sources import RemoteFile, Source


def test_mnist_official_files(mnist_dir, data_root):
    """Facts from the data README: sizes, first labels, class counts."""
    labels = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")
    assert labels.shape == (60000,)
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8 and images.max() == 255
    ensure_files(SOURCES["mnist"], data_root, download=False)  # checksums hold


def test_train_size_and_validation_split(data_root):
    full = load_dataset("fashion-mnist", data_dir=data_root, download=False, train_size=100,
                        validation_size=50)
    assert full.x_train.shape == (100, 1, 28, 28) and full.x_val.shape == (50, 1, 28, 28)
    assert full.x_test.shape == (10000, 1, 28, 28)
    assert full.y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert full.y_test[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert 0.0 <= float(full.x_train.min()) and float(full.x_train.max()) <= 1.0
    with pytest.raises(DataError, match="train_size"):
        load_dataset("fashion-mnist", data_dir=data_root, download=False, train_size=60000,
                     validation_size=10)


def test_digits_split_is_fixed_and_disjoint():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert torch.equal(a.x_test, b.x_test)
    train_rows = {tuple(r) for r in a.x_train.flatten(1).tolist()}
    shared = sum(tuple(r) in train_rows for r in a.x_test.flatten(1).tolist())
    assert shared < 5  # the digits set has a handful of exact duplicate images, no more


def _write_idx(path, array: np.ndarray, magic_type=0x08):
    header = struct.pack(">HBB", 0, magic_type, array.ndim) + b"".join(
        struct.pack(">I", s) for s in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_idx_round_trip_and_malformed(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    _write_idx(tmp_path / "ok.gz", images)
    assert np.array_equal(read_idx(tmp_path / "ok.gz"), images)

    raw = gzip.decompress((tmp_path / "ok.gz").read_bytes())
    (tmp_path / "short.gz").write_bytes(gzip.compress(raw[:-4]))
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "magic.gz").write_bytes(gzip.compress(b"\x12\x34" + raw[2:]))
    with pytest.raises(DataError, match="bad IDX magic"):
        read_idx(tmp_path / "magic.gz")
    (tmp_path / "garbage.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match="not a readable gzip"):
        read_idx(tmp_path / "garbage.gz")


def _copy_dataset(src, dst, name="mnist"):
    (dst / name).mkdir(parents=True)
    for f in src.iterdir():
        shutil.copy(f, dst / name / f.name)
    return dst / name


def test_corrupt_and_truncated_official_file_is_refused(mnist_dir, tmp_path):
    folder = _copy_dataset(mnist_dir, tmp_path)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(labels.read_bytes())
    data[100] ^= 0xFF
    labels.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"MD5 .* expected ec29112dd5afa0611ce80d1b7f02629c"):
        load_dataset("mnist", data_dir=tmp_path, download=False)
    labels.write_bytes(bytes(data[:1000]))
    with pytest.raises(DataError, match="1000 bytes, expected 4542"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_missing_file_without_network_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="not found") as info:
        load_dataset("kmnist", data_dir=tmp_path, download=False)
    assert "\n" not in str(info.value)
    # A download attempt that cannot reach its server (a closed local port) fails cleanly
    # and leaves no partial file behind.
    closed = Source("fake", "idx", (RemoteFile("x.gz", "0" * 32, ("http://127.0.0.1:9/x.gz",)),), 10, "")
    with pytest.raises(DataError, match="download failed") as info:
        ensure_files(closed, tmp_path, download=True, quiet=True)
    assert "\n" not in str(info.value)
    assert list((tmp_path / "fake").iterdir()) == []


def test_cifar_archive_round_trip_and_corruption(tmp_path):
    rng = np.random.default_rng(1)
    train = (rng.integers(0, 256, (25, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 25))
    test = (rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 6))
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(archive, "cifar10", train, test)
    tx, ty, vx, vy = read_cifar(archive, "cifar10")
    assert np.array_equal(tx, train[0]) and np.array_equal(ty, train[1])
    assert np.array_equal(vx, test[0]) and np.array_equal(vy, test[1])

    write_cifar_archive(tmp_path / "c100.tar.gz", "cifar100", train, test)
    assert read_cifar(tmp_path / "c100.tar.gz", "cifar100")[0].shape == (25, 3, 32, 32)
    with pytest.raises(DataError, match="no member"):
        read_cifar(tmp_path / "c100.tar.gz", "cifar10")
    archive.write_bytes(archive.read_bytes()[:300])
    with pytest.raises(DataError, match="not a readable"):
        read_cifar(archive, "cifar10")


def test_cifar_dataset_from_own_files(tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "cifar10").mkdir()
    write_cifar_archive(tmp_path / "cifar10" / "cifar-10-python.tar.gz", "cifar10",
                        (rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 20)),
                        (rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 8)))
    with pytest.raises(DataError, match="not the official file"):  # refused by default
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    data = load_dataset("cifar10", data_dir=tmp_path, verify=False, encoding="normalize")
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    expected = (torch.tensor(0.0) - 0.4914) / 0.247
    assert torch.isclose(data.x_train.min(), expected, atol=0.02)


def test_binary_encodings():
    x = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]).view(1, 1, 1, 5)
    assert binarize(x, 0.5).flatten().tolist() == [0, 0, 0, 1, 1]  # strict: H(0) = 0
    assert binarize(x, 0.5, signed=True).flatten().tolist() == [-1, -1, -1, 1, 1]
    code = thermometer(x, 3)
    assert code.shape == (1, 3, 1, 5)
    assert code.sum(1).flatten().tolist() == [0, 0, 1, 2, 3]  # levels 1/4, 2/4, 3/4
    assert (code[:, 1:] <= code[:, :-1]).all()  # thermometer: bits turn on in order
    chosen = thermometer(x, 3, levels=[0.0, 0.5])  # explicit levels: bits = their number
    assert chosen.shape == (1, 2, 1, 5)
    assert chosen[0, :, 0].tolist() == [[0, 1, 1, 1, 1], [0, 0, 0, 1, 1]]
    for bad in ([], [0.5, 0.5], [0.6, 0.2], [-0.1], [1.0]):
        with pytest.raises(ValueError, match="thermometer_levels"):
            thermometer(x, 3, levels=bad)


def test_thermometer_levels_in_a_config_set_the_bit_count_and_refuse_bad_lists():
    from binlearn.experiment.config import ConfigError, config_from_dict

    config = config_from_dict({"data": {"encoding": "thermometer", "thermometer_levels": [0, 0.5]}})
    assert config.data.thermometer_bits == 2 and config.data.thermometer_levels == [0.0, 0.5]
    with pytest.raises(ConfigError, match="increasing") as info:
        config_from_dict({"data": {"encoding": "thermometer", "thermometer_levels": [0.5, 0.1]}})
    assert "\n" not in str(info.value)


def test_median_binarisation_uses_training_statistics(data_root):
    data = load_dataset("mnist", data_dir=data_root, download=False, train_size=500,
                        encoding="binarize", threshold="median", signed=True)
    assert set(data.x_train.unique().tolist()) == {-1.0, 1.0}
    assert data.x_test.shape == (10000, 1, 28, 28)


def test_random_crop_flip_is_a_crop_of_the_padded_image():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2,) * 4)
    for i in range(2):
        found = any(
            torch.equal(out[i], padded[i, :, r:r + 8, c:c + 8]) or
            torch.equal(out[i], padded[i, :, r:r + 8, c:c + 8].flip(-1))
            for r in range(5) for c in range(5)
        )
        assert found


def test_random_shift_without_flip_never_mirrors():
    # asymmetric images: a mirrored crop cannot equal an unmirrored one
    x = torch.rand(64, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=1, flip=False)
    padded = torch.nn.functional.pad(x, (1,) * 4)
    offsets = set()
    for i in range(len(x)):
        hits = [(r, c) for r in range(3) for c in range(3)
                if torch.equal(out[i], padded[i, :, r:r + 6, c:c + 6])]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) == 9  # every shift in [-1, 1]^2 is drawn


def test_negative_augment_padding_is_a_config_error():
    from binlearn.experiment.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="augment_padding"):
        config_from_dict({"data": {"augment": True, "augment_padding": -1}})


def test_shards_partition_each_global_batch():
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    single = list(batch_indices(50, 8, generator=gen()))
    shards = [list(batch_indices(50, 8, generator=gen(), rank=r, world_size=2)) for r in range(2)]
    for step, batch in enumerate(single):
        assert torch.equal(torch.cat([shards[0][step], shards[1][step]]), batch)


def test_an_idx_file_of_another_dtype_is_named_by_its_dtype(tmp_path):
    """Issue 25 (item 7): an IDX image file of float32 was reported by its shape only."""
    import struct

    import numpy as np

    from binlearn.data.formats import read_idx_images, read_idx_labels

    images = tmp_path / "images-idx3-ubyte"
    images.write_bytes(struct.pack(">BBBB3I", 0, 0, 0x0D, 3, 2, 2, 2) + np.zeros(8, ">f4").tobytes())
    with pytest.raises(DataError, match="expected a 3-d uint8 IDX image file, got a 3-d float32 array"):
        read_idx_images(images)
    labels = tmp_path / "labels-idx1-ubyte"
    labels.write_bytes(struct.pack(">BBBBI", 0, 0, 0x0C, 1, 3) + np.zeros(3, ">i4").tobytes())
    with pytest.raises(DataError, match="got a 1-d int32 array"):
        read_idx_labels(labels)

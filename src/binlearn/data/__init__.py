"""Datasets as in-memory tensors: official files with checksums and download, splits,
encodings (normalise, binarise, thermometer) and batching."""

from binlearn.data.batching import batch_indices, iterate_batches
from binlearn.data.dataset import Dataset
from binlearn.data.encodings import ENCODINGS, binarize, normalize, random_crop_flip, thermometer
from binlearn.data.files import dataset_status, download_file, ensure_files, verify_file
from binlearn.data.formats import read_cifar, read_idx, write_cifar_archive
from binlearn.data.loading import SPLITS, load_dataset, load_raw, raw_split, split_bounds
from binlearn.data.sources import SOURCES, DataError, resolve_data_dir

__all__ = [
    "Dataset", "DataError", "SOURCES", "ENCODINGS", "load_dataset", "load_raw",
    "raw_split", "split_bounds", "SPLITS",
    "resolve_data_dir", "ensure_files", "verify_file", "download_file", "dataset_status",
    "read_idx", "read_cifar", "write_cifar_archive", "batch_indices", "iterate_batches",
    "normalize", "binarize", "thermometer", "random_crop_flip",
]

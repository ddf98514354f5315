"""What both kinds of packed model share, below both (:mod:`binlearn.binary.packed_format`
reads and writes files and runs feed-forward layers; :mod:`binlearn.binary.packed_dynamics`
describes and runs binary EP relaxations): the error type, the manifest value checks and
the packer of comparison bits.

Every check raises :class:`PackedFormatError` with one line ``{source}: manifest {where} ...``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from binlearn.binary.kernels.numba_cpu import pack_sign_matrix
from binlearn.binary.packing import pack_bits, to_numpy_words
from binlearn.errors import BinlearnError

__all__ = ["PackedFormatError", "fail", "check_int", "check_choice", "check_dict", "pack_nonnegative"]


class PackedFormatError(BinlearnError, ValueError):
    """A packed model that cannot be written, read or trusted, in one line."""


def fail(source: str, message: str) -> PackedFormatError:
    """The error for ``message`` about the file ``source`` ("" when not read from a file)."""
    return PackedFormatError(f"{source}: {message}" if source else message)


def check_int(value: Any, where: str, source: str, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` when it is an integer >= ``minimum`` (and <= ``maximum``; bool is not an
    integer here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise fail(source, f"manifest {where} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise fail(source, f"manifest {where} must be <= {maximum:,}, got {value:,}")
    return value


def check_choice(value: Any, valid: tuple[str, ...], where: str, source: str) -> str:
    """``value`` when it is one of ``valid``; the error lists the valid values."""
    if value not in valid:
        raise fail(source, f"manifest {where} = {value!r}; valid: {', '.join(valid)}")
    return value


def check_dict(value: Any, where: str, source: str) -> dict[str, Any]:
    """``value`` when it is a JSON object."""
    if not isinstance(value, dict):
        raise fail(source, f"manifest {where} must be a JSON object, got {type(value).__name__}")
    return value


def pack_nonnegative(values: np.ndarray, bit_order: str) -> np.ndarray:
    """bit = (values >= 0) packed along the last axis of a 2-D array: (rows, words) uint64
    (the numba packer for little bit order, torch's :func:`~binlearn.binary.packing.pack_bits`
    for big)."""
    if bit_order == "little":
        return pack_sign_matrix(np.ascontiguousarray(values))
    return to_numpy_words(pack_bits(torch.from_numpy(values >= 0), bit_order))

"""Checkpoints: the training state (model, rule and optimizer state, counters) as one torch
file, written atomically (:mod:`binlearn.atomic`), so an interrupted run never leaves a
half-written checkpoint."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from binlearn.atomic import atomic_write
from binlearn.errors import BinlearnError

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = 1


class CheckpointError(BinlearnError, ValueError):
    """A checkpoint or run directory that cannot be used, explained in one line."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically; a failure (a full disk among them) is one
    :class:`~binlearn.atomic.WriteError` that says the previous checkpoint is kept."""

    def write(handle) -> None:
        try:
            torch.save({"format": CHECKPOINT_FORMAT, **state}, handle)
        except RuntimeError as error:  # torch reports a short write (a full disk) as a RuntimeError
            full = shutil.disk_usage(Path(path).parent).free < (1 << 20)
            reason = os.strerror(errno.ENOSPC) if full else f"torch.save failed: {str(error).splitlines()[0]}"
            raise OSError(errno.ENOSPC if full else errno.EIO, reason) from None

    atomic_write(path, write)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to read means a bad file
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(error).__name__}); "
                              "it is truncated or not a binlearn checkpoint") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        raise CheckpointError(f"{path}: checkpoint format {found!r}, this binlearn reads "
                              f"format {CHECKPOINT_FORMAT}")
    return state

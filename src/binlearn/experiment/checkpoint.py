"""Atomic files: write to a temporary file in the same folder, fsync, then rename, so an
interrupted run never leaves a half-written checkpoint, config or summary."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "write_json", "save_checkpoint",
           "load_checkpoint", "CheckpointError", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint or run directory that cannot be used, explained in one line."""


def default_file_mode(path: str | os.PathLike) -> None:
    """Give a temporary file the mode a plain ``open(path, "w")`` would (0666 minus the
    umask): ``tempfile`` creates files readable by their owner only."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write(path: str | os.PathLike, write) -> Path:
    """``write(handle)`` into a temporary file beside ``path`` (binary, seekable), fsync it,
    give it the usual file mode and ``os.replace`` it onto ``path``: readers see the old file
    or the whole new one, never a part; on any error the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        default_file_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda handle: torch.save({"format": CHECKPOINT_FORMAT, **state}, handle))


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

"""Atomic file writes, the ground floor every layer may use (data downloads, packed models,
checkpoints, configs, metrics, plots).

    write(temporary beside path) → flush → fsync → chmod (0666 & ~umask) → os.replace(temporary, path)

Readers see the old file or the whole new one, never a part: an interrupted run leaves no
half-written artefact, only (at worst, after a hard kill) a hidden temporary
``.{name}.*.tmp`` beside it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from binlearn.errors import BinlearnError

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "write_json", "default_file_mode",
           "OutputPathError", "WriteError", "checked_output", "remove_stale_temporaries",
           "os_reason"]


class WriteError(BinlearnError, OSError):
    """A file that could not be written (a full disk, a directory in its place, no permission),
    in one line that says what was kept. Also an OSError, for callers that catch those."""


class OutputPathError(BinlearnError, ValueError):
    """An output path binlearn cannot write, in one line (which path, why, what to give)."""


def os_reason(error: OSError) -> str:
    """An OSError in a few words (its strerror, else its type): the end of a one-line error."""
    return error.strerror or type(error).__name__


def checked_output(path: str | os.PathLike, *, option: str = "--output", directory: bool = False) -> Path:
    """Check, before any work, that binlearn can write ``path``; the one check of every output
    path (export, infer, convert, compare plots; run directories have their own).

    A file output must not be an existing directory, a directory output not an existing
    file; neither may lie under a file or a broken link; the folder that will hold it is
    created and a temporary file is made in it and removed again, so a path that cannot be
    created or written (a read-only folder, ``/proc/x``, a full disk) is refused now, not
    after an hour of work.

    Args:
        path: the file (or, ``directory=True``, the folder) to be written.
        option: the command-line option that named it, for the message.
    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    Raises:
        OutputPathError: one line naming the path and why.
    """
    path = Path(path)
    what = "folder" if directory else "file"
    if path.is_dir() and not directory:
        raise OutputPathError(f"{option} {path} is a directory; give a file path")
    if path.exists() and not path.is_dir() and directory:
        raise OutputPathError(f"{option} {path} is a file; give a folder for the output files")
    existing = path if directory else path.parent
    while not existing.exists():
        if existing.is_symlink():
            raise OutputPathError(f"{option} {path}: {existing} is a broken link")
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{option} {path} lies under {existing}, which is a file, not a folder")
    folder = path if directory else path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        reason = os_reason(error)
        raise OutputPathError(f"{option} {path}: cannot write the {what} there ({reason})") from None
    return path


def default_file_mode(path: str | os.PathLike) -> None:
    """Give a temporary file the mode a plain ``open(path, "w")`` would (0666 minus the
    umask): ``tempfile`` creates files readable by their owner only."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """``write(handle)`` into a temporary file beside ``path`` (binary, seekable), fsync it,
    give it the usual file mode and ``os.replace`` it onto ``path``: readers see the old file
    or the whole new one, never a part; on any error (raised by ``write`` too) the temporary
    file is removed and ``path`` is left as it was.

    Args:
        path: the file to (re)place; missing parent folders are created.
        write: called once with the open temporary file.
    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    kept = "the previous file is kept" if path.is_file() else "nothing was written"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise WriteError(f"cannot write {path}: {os_reason(error)}; {kept}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        default_file_mode(tmp)
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, BinlearnError):
            raise
        raise WriteError(f"cannot write {path}: {os_reason(error)}; {kept}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``data`` written atomically to ``path``."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """``text`` (UTF-8) written atomically to ``path``."""
    return atomic_write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """``obj`` as indented, key-sorted JSON plus a newline, written atomically to ``path``."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


STALE_AFTER = 60.0
"""Seconds after which a temporary of :func:`atomic_write` counts as left by a killed process:
a live write fills and renames its temporary within seconds."""


def remove_stale_temporaries(folder: str | os.PathLike, names: list[str] | tuple[str, ...],
                             older_than: float = STALE_AFTER) -> list[Path]:
    """Remove the temporaries ``.NAME.*.tmp`` of :func:`atomic_write` that a killed process
    left beside the files ``names`` in ``folder``, when they were last written more than
    ``older_than`` seconds ago (a write in progress elsewhere keeps its own; ``-math.inf``:
    every one, for a caller that holds the folder's lock). Returns what it removed; a file it
    cannot remove is left."""
    import time

    removed = []
    now = time.time()
    for name in names:
        for stale in Path(folder).glob(f".{name}.*.tmp"):
            try:
                if now - stale.stat().st_mtime > older_than:
                    stale.unlink()
                    removed.append(stale)
            except OSError:
                continue
    return removed

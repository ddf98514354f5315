"""A run directory's housekeeping: one process at a time, metrics that survive a torn line,
no stale temporaries, and one-line errors for a place runs cannot be written.

* **Lock.** A train (new run, ``--resume`` or ``--branch-from``) holds an exclusive
  ``flock`` on ``RUN_DIR/.lock`` for its whole life; the file names the holder's pid. A
  second process is refused in one line naming that pid. The kernel drops the lock of a
  process that dies (even by SIGKILL), so a lock file left by a killed run is stale by
  construction and the next train simply takes it over.
* **Torn lines.** ``metrics.jsonl`` is rewritten atomically after every epoch, but a file
  edited or truncated by hand (or copied half-way) may hold a line that is not a JSON
  record: it is skipped with a warning naming it, the records after it are kept, and a
  resumed run keeps the unreadable line verbatim (it never rewrites what it could not read).
* **Stale temporaries.** Every artefact is written to ``.NAME.XXXXXXXX.tmp`` and renamed
  (:func:`binlearn.atomic.atomic_write`); a process killed between the two
  leaves the temporary behind. The next train of the directory, holding the lock, removes
  the temporaries of the run's own artefacts (no other process can be writing them).
"""

from __future__ import annotations

import errno
import json
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from binlearn.atomic import os_reason
from binlearn.atomic import remove_stale_temporaries as remove_stale_artefact_temporaries
from binlearn.errors import BinlearnError, BinlearnWarning

try:  # POSIX; without it (Windows) runs are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunError", "MetricsWarning", "MetricsLog", "LOCK_NAME", "RUN_ARTEFACTS", "check_run_dir",
           "check_enterable",
           "make_run_dir", "refuse_if_busy", "locked", "remove_stale_temporaries", "read_metrics",
           "finite_number", "metrics_text"]

LOCK_NAME = ".lock"
RUN_ARTEFACTS = ("config.toml", "meta.json", "metrics.jsonl", "checkpoint.pt", "summary.json", "curves.png")
"""The files a train writes into its run directory (atomically, through a temporary)."""


class RunError(BinlearnError, ValueError):
    """A run directory problem, in one line."""


class MetricsWarning(BinlearnWarning):
    """A line of metrics.jsonl that is not a JSON record was skipped."""


def check_run_dir(run_dir: Path) -> None:
    """Refuse, before any work, a ``run_dir`` that is a file, lies under a file or cannot be
    created or written (it is created later, only once the run is sure to start)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"--run-dir {run_dir} is a file, not a directory; choose another --run-dir")
    existing = run_dir
    while not existing.exists():
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            raise RunError(f"cannot create run directory {run_dir}: {existing} is a broken link")
        existing = existing.parent
    if not existing.is_dir():
        raise RunError(f"cannot create run directory {run_dir}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "write into" if existing == run_dir else "create"
        raise RunError(f"cannot {what} run directory {run_dir}: {existing} is not writable "
                       "(permission denied)")


def check_enterable(run_dir: Path) -> None:
    """Refuse, in one line, an existing ``run_dir`` this user may not enter or list (another
    user's, mode 000): every look inside it (its lock, its config.toml) would fail with a
    PermissionError."""
    run_dir = Path(run_dir)
    if run_dir.is_dir() and not os.access(run_dir, os.R_OK | os.X_OK):
        raise RunError(f"cannot enter run directory {run_dir} (permission denied); its owner can "
                       "open it to you, or choose another directory")


def make_run_dir(run_dir: Path) -> None:
    """``mkdir -p run_dir``, with an OS refusal in one line."""
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunError(f"cannot create run directory {run_dir}: {os_reason(error)}") from None


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return text or "unknown"


def refuse_if_busy(run_dir: Path) -> None:
    """A RunError naming the holder's pid when a process holds ``run_dir``'s lock now (asked
    early, so a busy directory is named as such before anything else is said about it)."""
    check_enterable(run_dir)
    path = Path(run_dir) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # taken over or removed meanwhile; the lock itself decides
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        raise _busy(run_dir, _holder(fd)) from None
    finally:
        os.close(fd)


def _busy(run_dir: Path, holder: str) -> RunError:
    return RunError(f"{run_dir} is in use by another binlearn process (pid {holder}); wait for it "
                    "to end or choose another --run-dir")


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` (which must exist) for the ``with`` block; a
    RunError naming the holder's pid when another process holds it."""
    path = Path(run_dir) / LOCK_NAME
    if fcntl is None:  # pragma: no cover
        yield
        return
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise RunError(f"cannot lock run directory {run_dir}: {os_reason(error)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _holder(fd)
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunError(f"cannot lock run directory {run_dir}: {os_reason(error)}") from None
            raise _busy(run_dir, holder) from None
        # The previous holder removes the file as it lets go: if it did so between our open and
        # our lock, we hold a lock on a file nobody else will open. Lock the file that is there.
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held: a waiting opener re-checks the inode
        os.close(fd)


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Remove the temporaries of the run's own artefacts (``.checkpoint.pt.*.tmp``, ...) that
    a killed process left in ``run_dir``; call it holding the lock (so every one is stale).
    Returns what it removed."""
    return remove_stale_artefact_temporaries(run_dir, RUN_ARTEFACTS, older_than=-math.inf)


@dataclass
class MetricsLog:
    """metrics.jsonl as read.

    ``records``: the JSON records (epoch <= the epoch asked for); ``kept``: the lines to keep
    when the file is rewritten, verbatim and in file order (those records and every
    unreadable line); ``skipped``: the 1-based numbers of the lines skipped: unreadable ones (kept
    verbatim when the file is rewritten) and records that repeat an earlier epoch (dropped)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)


def finite_number(value: Any) -> bool:
    """A number read back from a JSON file that figures can be made of: an int or float (not a
    bool), finite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, an integer of > 4300 digits, nested too deeply
        return None
    epoch = record.get("epoch") if isinstance(record, dict) else None
    return record if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def read_metrics(path: Path, upto_epoch: float = math.inf) -> MetricsLog:
    """Read ``path`` (one JSON object per line); lines that are not a record with an integer
    ``epoch`` are skipped with a :class:`MetricsWarning` naming them, never the lines after."""
    log = MetricsLog()
    path = Path(path)
    if not path.is_file():
        return log
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        record = _record(line)
        if record is None:
            log.skipped.append(number)
            log.kept.append(line)
            warnings.warn(f"{path} line {number} is not a JSON record (torn or edited); skipped",
                          MetricsWarning, stacklevel=2)
        elif log.records and record["epoch"] <= log.records[-1]["epoch"]:
            log.skipped.append(number)  # dropped when the file is rewritten: epochs only go up
            warnings.warn(f"{path} line {number} repeats epoch {record['epoch']} after epoch "
                          f"{log.records[-1]['epoch']} (edited?); skipped", MetricsWarning, stacklevel=2)
        elif record["epoch"] <= upto_epoch:
            log.records.append(record)
            log.kept.append(line)
    return log


def metrics_text(kept: list[str], records: list[dict[str, Any]]) -> str:
    """The file content: the kept lines as they were, then the new records."""
    return "".join(line + "\n" for line in kept) + "".join(json.dumps(r) + "\n" for r in records)

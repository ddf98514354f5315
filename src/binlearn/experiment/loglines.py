"""Plain progress lines for a training whose stderr is not a terminal.

On a terminal the runner shows tqdm bars; under ``nohup``, a batch scheduler or CI the bars
are off, and a long epoch (a full-MNIST convnet epoch is an hour on one core) would say
nothing until it ends. :class:`ProgressLines` writes what the bars would show as one line at
a time instead: every ``interval`` seconds within an epoch (images done, rate, running
train accuracy, the time left in the epoch) and one line per finished epoch (its figures and
whether a checkpoint was written), each flushed at once so ``tail -f`` follows it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["ProgressLines", "DEFAULT_INTERVAL", "progress"]

DEFAULT_INTERVAL = 60.0
"""Seconds between two in-epoch lines."""


def _say(line: str, stream: TextIO | None) -> None:
    """Print a progress line and flush it; a stream that cannot take it (closed, a full disk, a
    reader gone) loses the line, never the training that prints it."""
    try:
        print(line, file=stream or sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):  # ValueError: a closed file; AttributeError: None
        pass


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressLines:
    """``enabled`` False: every call does nothing. ``interval`` 0: epoch lines only."""

    def __init__(self, enabled: bool, interval: float = DEFAULT_INTERVAL, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not interval >= 0:
            raise ValueError(f"the progress interval must be >= 0 seconds, not {interval!r}")
        self.enabled, self.interval, self.clock = enabled, float(interval), clock
        self.stream = stream
        self._epoch_start = self._last = 0.0

    @classmethod
    def for_stderr(cls, quiet: bool, interval: float = DEFAULT_INTERVAL) -> ProgressLines:
        """On when not quiet and stderr is not a terminal (where tqdm shows its bars)."""
        isatty = getattr(sys.stderr, "isatty", None)
        return cls(enabled=not quiet and not (isatty is not None and isatty()), interval=interval)

    def _write(self, line: str) -> None:
        _say(line, self.stream)

    def start_epoch(self) -> None:
        self._epoch_start = self._last = self.clock()

    def batch(self, epoch: int, epochs: int, images: int, total: int, correct: float, ranks: int = 1) -> None:
        """After a batch: ``images`` of ``total`` done this epoch, ``correct`` of them right;
        ``ranks`` > 1: the figures are this process's share of a distributed epoch (its images,
        its rate), and the line says so."""
        if not self.enabled or self.interval == 0:
            return
        now = self.clock()
        if now - self._last < self.interval or images >= total:
            return
        self._last = now
        elapsed = now - self._epoch_start
        rate = images / elapsed if elapsed > 0 else float("nan")
        left = (total - images) / rate if rate > 0 else float("nan")
        share = f"rank 0 of {ranks}, its share: " if ranks > 1 else ""
        done = f"{images:,}/{total:,} images ({100 * images / total:.1f} %)"
        self._write(f"epoch {epoch}/{epochs}: {share}{done}, "
                    f"{rate:,.1f} images/s, train accuracy {correct / max(images, 1):.4f}, "
                    f"epoch ends in ~{_duration(left)}")

    def end_epoch(self, epoch: int, epochs: int, record: dict[str, Any], saved: bool) -> None:
        """After an epoch's evaluation and checkpoint."""
        if not self.enabled:
            return
        parts = [f"train accuracy {record['train_accuracy']:.4f}"]
        for key, label in (("validation_accuracy", "validation"), ("test_accuracy", "test")):
            if record.get(key) is not None:
                parts.append(f"{label} {record[key]:.4f}")
        parts.append(f"{_duration(record['epoch_seconds'])} training")
        parts.append(f"{_duration(self.clock() - self._epoch_start)} with evaluation")
        self._write(f"epoch {epoch}/{epochs} done: " + ", ".join(parts)
                    + ("; checkpoint saved" if saved else ""))


class _PlainProgress:
    """What a tqdm bar would show, as a line every ``interval`` seconds and one at the end."""

    def __init__(self, total: int, desc: str, unit: str, interval: float, stream: TextIO | None,
                 clock: Callable[[], float]) -> None:
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.stream, self.clock = stream, clock
        self.done = 0
        self._start = self._last = clock()

    def _write(self, line: str) -> None:
        _say(line, self.stream)

    def update(self, count: int = 1) -> None:
        self.done += count
        now = self.clock()
        if self.interval == 0 or now - self._last < self.interval or self.done >= self.total:
            return
        self._last = now
        rate = self.done / (now - self._start) if now > self._start else float("nan")
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        self._write(f"{self.desc}: {self.done:,}/{self.total:,} {self.unit}s "
                    f"({100 * self.done / max(self.total, 1):.1f} %), {rate:,.1f} {self.unit}s/s, "
                    f"ends in ~{_duration(left)}")

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self._write(f"{self.desc}: {self.done:,} {self.unit}s in {_duration(self.clock() - self._start)}")


def progress(total: int, desc: str, unit: str, *, quiet: bool = False, interval: float = DEFAULT_INTERVAL,
             stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> Any:
    """A progress display for ``total`` units of work, used as ``with progress(...) as bar:
    bar.update(n)``: a tqdm bar where stderr is a terminal, plain lines elsewhere (a log file,
    ``nohup``, CI: one every ``interval`` seconds and one at the end, as training prints
    them), nothing when ``quiet``."""
    from tqdm.auto import tqdm

    isatty = getattr(stream or sys.stderr, "isatty", None)
    if quiet or (isatty is not None and isatty()):
        return tqdm(total=total, desc=desc, unit=unit, disable=quiet, leave=False)
    return _PlainProgress(total, desc, unit, interval, stream, clock)

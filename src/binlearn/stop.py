"""A stop asked for by a signal, kept until training honours it (ground floor).

``binlearn`` stops a run on Ctrl-C (KeyboardInterrupt) and on SIGTERM, which its handler turns
into :class:`Terminated` raised in the main thread. Python runs a signal handler between two
bytecodes of whatever the main thread is doing; when that is a weakref callback or a
``__del__`` (e.g. an import lock released during garbage collection), the exception the
handler raises is printed as "ignored" and lost, and the run would go on to its end. So the
handler also records the request (:func:`request_termination`), and the training loop calls
:func:`check` at every batch: a stop is never lost, only deferred to the next batch.

The handler does not raise while the main thread is importing a module. An exception raised
inside a C extension's initialisation (matplotlib's ``ft2font``, built with pybind11) leaves
the extension half made: the import fails with ``ImportError: initialization failed`` and the
interpreter may abort at exit (``Fatal Python error: PyThreadState_Get``). Such a request
waits, recorded, for the next :func:`check`; the CLI also checks once its command returns.
"""

from __future__ import annotations

from types import FrameType

__all__ = ["Terminated", "request_termination", "check", "clear", "requested", "importing"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler, ``kill``), handled as Ctrl-C is."""


_requested = False


_IMPORT_MACHINERY = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")


def importing(frame: FrameType | None) -> bool:
    """Whether ``frame`` or one of its callers runs Python's import machinery."""
    while frame is not None:
        if frame.f_code.co_filename in _IMPORT_MACHINERY:
            return True
        frame = frame.f_back
    return False


def request_termination(signum: int | None = None, frame: FrameType | None = None) -> None:  # noqa: ARG001
    """The SIGTERM handler: record the request, then raise :class:`Terminated`, unless the
    signal came during an import (the request then waits for :func:`check`)."""
    global _requested
    _requested = True
    if not importing(frame):
        raise Terminated()


def requested() -> bool:
    """Whether a termination was asked for and not yet cleared."""
    return _requested


def check() -> None:
    """Raise :class:`Terminated` if a termination was asked for (its first raise may have been
    swallowed where Python ignores exceptions); call it at every batch."""
    if _requested:
        raise Terminated()


def clear() -> None:
    """Forget a request (the CLI does this once it has reported the stop)."""
    global _requested
    _requested = False

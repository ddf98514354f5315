"""A stop asked for by a signal, kept until training honours it (ground floor).

``binlearn`` stops a run on Ctrl-C (KeyboardInterrupt) and on SIGTERM, which its handler turns
into :class:`Terminated` raised in the main thread. Python runs a signal handler between two
bytecodes of whatever the main thread is doing; when that is a weakref callback or a
``__del__`` (e.g. an import lock released during garbage collection), the exception the
handler raises is printed as "ignored" and lost, and the run would go on to its end. So the
handler also records the request (:func:`request_termination`), and the training loop calls
:func:`check` at every batch: a stop is never lost, only deferred to the next batch.
"""

from __future__ import annotations

__all__ = ["Terminated", "request_termination", "check", "clear", "requested"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler, ``kill``), handled as Ctrl-C is."""


_requested = False


def request_termination(signum: int | None = None, frame: object = None) -> None:  # noqa: ARG001
    """The SIGTERM handler: record the request, then raise :class:`Terminated`."""
    global _requested
    _requested = True
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

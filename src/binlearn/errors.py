"""The one base class of binlearn's user errors, on the ground floor (every package may use it).

A :class:`BinlearnError` is a problem the user can fix — a wrong path, a corrupt or foreign
file, an unknown config key, a value out of its bounds, a model that cannot be converted —
and its message says, in one line, what was wrong and what to do. The command line catches
this one type and prints ``binlearn: error: <message>`` with exit status 2; anything else is a
bug and keeps its traceback.

Each package derives its own kinds (``DataError``, ``ConfigError``, ``RunError``,
``CheckpointError``, ``PackedFormatError``, ``ConversionError``, ...), so callers can catch
one concern or all of them: ``except binlearn.BinlearnError``.
"""

from __future__ import annotations

__all__ = ["BinlearnError", "BinlearnWarning"]


class BinlearnError(Exception):
    """A user error, explained in one line (the CLI prints it without a traceback)."""


class BinlearnWarning(UserWarning):
    """A problem worth one line that does not stop the command (a skipped metrics line, a run
    that trains at chance): the CLI prints it as ``binlearn: warning: <message>``."""

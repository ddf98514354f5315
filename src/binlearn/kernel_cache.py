"""Where numba keeps binlearn's compiled kernels, decided once, before numba is imported
(ground floor: ``binlearn/__init__`` calls :func:`place_kernel_cache` first).

binlearn's kernels are ``@njit(cache=True)``: compiled once, then loaded from a cache. numba
looks for a writable place, in this order, as it decorates each kernel (at import):
``$NUMBA_CACHE_DIR``, the ``__pycache__`` beside the kernel's source, the user-wide cache
(``$XDG_CACHE_HOME/numba``, else ``~/.cache/numba``); finding none it raises ``RuntimeError:
cannot cache function ...: no locator available`` and the import fails. That is the case of a
package installed by root and run by another user whose HOME is missing or read-only (a
service account, a batch job): so when neither the source folders nor the user cache can be
written and ``NUMBA_CACHE_DIR`` is not set, binlearn sets it to a folder of this user's own
under the system's temporary folder (``binlearn-numba-UID``, mode 700, kept across runs so the
kernels compile once). A ``NUMBA_CACHE_DIR`` the user set is left as it is.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

__all__ = ["place_kernel_cache"]

_PACKAGE = Path(__file__).resolve().parent


def _writable(folder: Path) -> bool:
    """Whether a folder could be created (if missing) and written: the nearest existing one
    decides (one under a folder this user may not enter cannot be)."""
    try:
        while not folder.exists():
            if folder.parent == folder:
                return False
            folder = folder.parent
        return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
    except OSError:
        return False


def _source_folders_writable() -> bool:
    """Whether numba can write the ``__pycache__`` beside every source file of binlearn."""
    for folder, subfolders, _ in os.walk(_PACKAGE):
        subfolders[:] = [name for name in subfolders if name != "__pycache__"]
        if not _writable(Path(folder) / "__pycache__"):
            return False
    return True


def _user_cache() -> Path | None:
    """numba's user-wide cache folder on Linux and macOS, as its ``appdirs.user_cache_dir``
    finds it (None elsewhere: not checked)."""
    if sys.platform == "darwin":
        return Path(os.path.expanduser("~/Library/Caches")) / "numba"
    if sys.platform.startswith("win"):
        return None
    return Path(os.getenv("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))) / "numba"


def _private_folder() -> str | None:
    """``TMP/binlearn-numba-UID``, created mode 700 and used only if it is this user's own and
    nobody else can write it (another user could otherwise plant compiled code in it); else a
    fresh private folder for this process. None when no temporary folder can be written."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        folder = Path(tempfile.gettempdir()) / f"binlearn-numba-{uid if uid is not None else 'user'}"
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        info = folder.lstat()
        own = uid is None or info.st_uid == uid
        if stat.S_ISDIR(info.st_mode) and own and not info.st_mode & 0o022:
            return str(folder)
        return tempfile.mkdtemp(prefix="binlearn-numba-")
    except OSError:
        return None


def place_kernel_cache() -> str | None:
    """Give numba a writable cache folder when it would find none (see the module's docstring).

    Returns the folder set as ``NUMBA_CACHE_DIR`` (None: numba's own choice stands)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    if _source_folders_writable():
        return None
    user_cache = _user_cache()
    if user_cache is None or _writable(user_cache):
        return None
    folder = _private_folder()
    if folder is None:
        return None
    os.environ["NUMBA_CACHE_DIR"] = folder
    config = sys.modules.get("numba.core.config")  # numba already imported: it read the variable
    if config is not None:
        config.CACHE_DIR = folder  # type: ignore[attr-defined]
    return folder

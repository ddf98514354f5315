"""Finding, checking and downloading the official files (atomic writes, progress bars)."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from tqdm.auto import tqdm

from binlearn.atomic import atomic_write
from binlearn.data.sources import SOURCES, DataError, RemoteFile, Source, resolve_data_dir

__all__ = ["md5sum", "verify_file", "download_file", "ensure_files", "dataset_status"]

_CHUNK = 1 << 20


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, remote: RemoteFile, dataset: str) -> None:
    """Raise :class:`DataError` unless ``path`` is the official file (size, then MD5)."""
    advice = (
        f"delete it and run `binlearn data download {dataset}`, "
        f"or put the official file there ({remote.urls[0]})"
    )
    if remote.size is not None:
        size = path.stat().st_size
        if size != remote.size:
            raise DataError(
                f"{path}: {size} bytes, expected {remote.size} (truncated or not the official "
                f"file); {advice}"
            )
    actual = md5sum(path)
    if actual != remote.md5:
        raise DataError(f"{path}: MD5 {actual}, expected {remote.md5} (corrupt file); {advice}")


def download_file(remote: RemoteFile, target: Path, *, quiet: bool = False, timeout: float = 20.0) -> None:
    """Download ``remote`` to ``target`` atomically (:func:`binlearn.atomic.atomic_write`):
    stream into a temporary file in the same folder, check its MD5, then rename; a failed or
    interrupted download leaves nothing."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file where the folder should be, or no permission
        raise DataError(f"cannot create the data folder {target.parent}: "
                        f"{error.strerror or type(error).__name__}") from None
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise DataError(f"cannot write into the data folder {target.parent} (permission denied)")
    errors = []
    for url in remote.urls:

        def write(out: IO[bytes], url: str = url) -> None:
            digest = hashlib.md5(usedforsecurity=False)
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or remote.size
                with tqdm(total=total, unit="B", unit_scale=True, desc=remote.name,
                          disable=quiet, leave=False) as bar:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
            if digest.hexdigest() != remote.md5:  # raised inside: the temporary file is removed
                raise DataError(f"downloaded {url} has MD5 {digest.hexdigest()}, expected {remote.md5}")

        try:
            atomic_write(target, write)
            return
        except (urllib.error.URLError, OSError, DataError, TimeoutError) as error:
            errors.append(f"{url}: {getattr(error, 'reason', error)}")
    raise DataError("; ".join(errors))


def _refuse_file_in_the_way(folder: Path) -> None:
    """A one-line DataError when ``folder`` or a folder above it is a file."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise DataError(f"the data folder {folder} cannot exist: {existing} is a file, not a folder "
                        "(point --data-dir / BINLEARN_DATA at a folder)")


def ensure_files(
    source: Source,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    quiet: bool = False,
) -> dict[str, Path]:
    """Paths of the dataset's official files, each checked; missing ones downloaded when
    ``download`` is set. Raises :class:`DataError` (one line) when a file is missing and
    cannot be fetched, or fails its checksum."""
    folder = resolve_data_dir(data_dir) / source.name
    _refuse_file_in_the_way(folder)
    paths = {}
    for remote in source.files:
        path = folder / remote.name
        if not path.is_file():
            if not download:
                raise DataError(
                    f"{source.name}: {path} not found; download it from {remote.urls[0]} into "
                    f"{folder}, run `binlearn data download {source.name}`, or point --data-dir / "
                    f"BINLEARN_DATA at a folder holding {source.name}/{remote.name}"
                )
            try:
                download_file(remote, path, quiet=quiet)
            except DataError as error:
                raise DataError(
                    f"{source.name}: {path} not found and the download failed ({error}); fetch "
                    f"{remote.urls[0]} into {folder} by hand, or point --data-dir / BINLEARN_DATA "
                    f"at a folder holding {source.name}/{remote.name}"
                ) from None
        verify_file(path, remote, source.name)
        paths[remote.name] = path
    return paths


def dataset_status(name: str, data_dir: str | os.PathLike | None = None) -> str:
    """``embedded``, ``ok``, ``missing`` or ``corrupt: <reason>`` for ``binlearn data list``."""
    source = SOURCES[name]
    if not source.files:
        return "embedded"
    folder = resolve_data_dir(data_dir) / name
    for remote in source.files:
        path = folder / remote.name
        if not path.is_file():
            return "missing"
        try:
            verify_file(path, remote, name)
        except DataError as error:
            return f"corrupt: {error}"
    return "ok"

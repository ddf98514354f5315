"""binlearn run by a user who is not root and owns neither the install nor a HOME: a package
installed by root and used by others must run, and what that user may not read or write is
one ``binlearn: error:`` line, never a traceback.

CI runs as root, so each test creates (once) the user ``binlearn-test`` and runs binlearn as it
with ``runuser``. The install is a copy of ``src`` in a folder owned by root (mode 755: the user
may read it, not write it, so numba cannot put its cache beside the kernels), HOME is a folder
the user cannot write. Where the interpreter lies under a folder other users cannot enter
(pyenv under ``/root``), the command runs in a mount namespace of its own in which that folder
is an empty tmpfs holding only the interpreter's tree: nothing changes outside the namespace.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

USER = "binlearn-test"
SRC = Path(__file__).parents[1] / "src"


def _need_root_tools() -> None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root, to create a user and run binlearn as it (CI runs as root)")
    for tool in ("useradd", "runuser"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} to run binlearn as a user who is not root")


def _ensure_user() -> None:
    if subprocess.run(["id", "-u", USER], capture_output=True).returncode == 0:
        return
    subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh",
                    "--user-group", USER], check=True, capture_output=True)


def _blocked_ancestor(path: Path) -> Path | None:
    """The first folder above ``path`` that other users cannot enter (None: every one lets them)."""
    for folder in reversed(path.parents):
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return folder
    return None


def _opening(prefix: Path) -> list[str]:
    """The shell lines (run as root in a private mount namespace) that let other users reach the
    interpreter's tree ``prefix``; [] when they already can."""
    blocked = _blocked_ancestor(prefix / "bin")
    if blocked is None:
        return []
    child = blocked / prefix.relative_to(blocked).parts[0]
    if _blocked_ancestor(prefix / "bin") != blocked or shutil.which("unshare") is None:
        pytest.skip(f"the interpreter lies under {blocked}, which other users cannot enter")
    return ["keep=$(mktemp -d)", f"mount --bind {child} $keep",
            f"mount -t tmpfs -o mode=755 binlearn-test {blocked}", f"mkdir {child}",
            f"mount --bind $keep {child}"]


@pytest.fixture(scope="module")
def install():
    """A copy of ``src`` owned by root, mode 755 (the user may read it, not write it), in a folder
    the user can enter; it also holds ``home`` (not writable by the user), ``shared`` and the
    user's TMPDIR ``tmp``."""
    _need_root_tools()
    _ensure_user()
    root = Path(tempfile.mkdtemp(prefix="binlearn-non-root-"))
    try:
        os.chmod(root, 0o755)
        shutil.copytree(SRC, root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        for folder in (root / "home", root / "shared", root / "tmp"):
            folder.mkdir(mode=0o755)
        os.chmod(root / "tmp", 0o1777)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_as_user(install: Path, *args: str, cwd: Path | None = None,
                home: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m binlearn ARGS`` as the user, from the read-only copy, HOME (default
    ``install/home``) not writable."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home or install / "home"),
           "PYTHONPATH": str(install / "src"), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
           "MPLBACKEND": "Agg", "LANG": "C.UTF-8", "TMPDIR": str(install / "tmp")}
    command = ["runuser", "-u", USER, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
               sys.executable, "-m", "binlearn", *args]
    opening = _opening(Path(sys.prefix))
    if opening:
        script = "\n".join(["set -e", *opening, 'exec "$@"'])
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd or install / "shared",
                          timeout=300)


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("binlearn: error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("hidden_by", ["file", "folder"])
def test_an_unreadable_config_file_is_one_line(install, hidden_by):
    folder = install / "shared" / f"configs-{hidden_by}"
    folder.mkdir()
    config = folder / "secret.toml"
    config.write_text('name = "secret"\n')
    (config if hidden_by == "file" else folder).chmod(0o000)
    line = _one_line(run_as_user(install, "train", str(config), "--run-dir", "/nowhere", "--quiet"))
    assert str(config) in line and "cannot be read" in line and "permission denied" in line.lower()


@pytest.mark.parametrize("resume", [False, True], ids=["new", "resume"])
def test_a_run_directory_the_user_cannot_enter_is_one_line(install, resume):
    run = install / "shared" / f"locked-{resume}"
    run.mkdir()
    (run / "config.toml").write_text('name = "locked"\n')
    run.chmod(0o000)
    args = ["--resume", str(run)] if resume else ["--run-dir", str(run)]
    line = _one_line(run_as_user(install, "train", *args, "--quiet"))
    assert str(run) in line and "permission denied" in line.lower()


def test_version_and_a_train_run_from_a_read_only_install(install):
    version = run_as_user(install, "--version")
    assert version.returncode == 0 and version.stdout.startswith("binlearn "), version.stderr[-3000:]
    writable = Path(tempfile.mkdtemp(prefix="run-", dir=install / "shared"))
    shutil.chown(writable, USER, USER)
    result = run_as_user(install, "train", "--set", "train.epochs=1", "--set", "model.hidden=[115]",
                         "--run-dir", str(writable / "run"), "--quiet", cwd=writable)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and (writable / "run" / "summary.json").is_file()
    assert not list((install / "src").rglob("*.nbi")), "the user wrote into the install"
    assert list((install / "tmp").glob("binlearn-numba-*/*/*.nbi")), "the kernels were not cached"


def test_a_home_the_user_cannot_enter(install):
    """HOME under a folder the user may not enter: numba's user cache cannot even be looked at
    (a PermissionError where a missing folder is expected); binlearn still runs."""
    sealed = install / "shared" / "sealed"
    sealed.mkdir(mode=0o000)
    sealed.chmod(0o000)
    result = run_as_user(install, "data", "list", "digits", home=sealed / "home")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "digits" in result.stdout

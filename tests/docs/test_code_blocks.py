"""Every code block of the README, the getting-started page and the how-to guides runs as printed.

The blocks of one page run in order, in one scratch folder (with the repository's ``configs/``
linked into it), bash blocks under ``bash -euo pipefail`` and Python blocks in one namespace per
page; ``binlearn`` and ``torchrun`` are this interpreter's. An HTML comment on the lines right
above a fence changes how a block runs (docs/how-to/index.md states the convention):

    <!-- skip: REASON -->       not run (the reason is required)
    <!-- scaled: ARGS -->       ARGS appended to every `binlearn train` / `binlearn reproduce` line
    <!-- needs: mnist -->       skipped, saying so, without the MNIST files under BINLEARN_DATA

Other fences (toml, text) are data, not run. The README's quick start and its Python example
are also run, with their figures checked, by tests/test_readme.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", "docs/getting-started.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "how-to").glob("*.md"))]
RUNNABLE = ("bash", "python")
_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!-- (skip|scaled|needs): ?(.*?) ?-->$")
_COMMAND = re.compile(r"^(?P<head>.*\bbinlearn (?:train|reproduce)\b.*?)(?P<tail>(?:\s+\|.*)?)$")
NEEDS = {"mnist": "mnist/train-images-idx3-ubyte.gz"}

pytestmark = pytest.mark.usefixtures("one_thread")  # the Python blocks run in this process

CHECKS = {
    # the figure a page states about its own example: "test accuracy about 0.8" (0.82 with seed 0)
    "docs/getting-started.md": lambda namespace: namespace["accuracy"] > 0.7,
}
"""Page -> a check of what its Python blocks computed, beyond running without an error."""


@dataclass
class Block:
    page: str
    line: int
    language: str
    code: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: str) -> list[Block]:
    """The fenced blocks of ``page`` with the markers written right above each."""
    lines = (ROOT / page).read_text().split("\n")
    found: list[Block] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        markers: dict[str, str] = {}
        above = index - 1
        while above >= 0 and (marker := _MARKER.match(lines[above])):
            markers[marker.group(1)] = marker.group(2)
            above -= 1
        found.append(Block(page, index + 1, fence.group(1), "\n".join(lines[index + 1:end]) + "\n", markers))
        index = end + 1
    return found


def scaled(code: str, args: str) -> str:
    """``code`` with ``args`` appended to each binlearn train / reproduce command (before a pipe)."""
    out = []
    for line in code.split("\n"):
        match = _COMMAND.match(line)
        out.append(f"{match.group('head')} {args}{match.group('tail')}" if match and args else line)
    return "\n".join(out)


def test_the_convention_is_kept():
    """Every marker is known and complete, every runnable page has a runnable block, and the
    scaled blocks have a command to scale."""
    for page in PAGES:
        for block in blocks(page):
            if "skip" in block.markers:
                assert block.markers["skip"].strip(), f"{block.where}: <!-- skip: --> needs a reason"
            if "needs" in block.markers:
                need = block.markers["needs"]
                assert need in NEEDS, f"{block.where}: unknown need {need!r}"
            if "scaled" in block.markers:
                assert any(_COMMAND.match(line) for line in block.code.split("\n")), (
                    f"{block.where}: <!-- scaled --> above a block without a binlearn train/reproduce line")
    for page in [p for p in PAGES[2:] if not p.endswith("index.md")]:  # every guide shows its task
        assert any(b.language in RUNNABLE and "skip" not in b.markers for b in blocks(page)), page


def test_scaling_appends_to_the_commands_only():
    code = "binlearn train c.toml --run-dir r\nbinlearn reproduce --list | head\nbinlearn export r\n"
    assert scaled(code, "--set a=1") == (
        "binlearn train c.toml --run-dir r --set a=1\nbinlearn reproduce --list --set a=1 | head\n"
        "binlearn export r\n")


def _shell_prelude() -> str:
    python = sys.executable
    return (f'binlearn() {{ "{python}" -m binlearn "$@"; }}\n'
            f'torchrun() {{ "{python}" -m torch.distributed.run "$@"; }}\n'
            f'python() {{ "{python}" "$@"; }}\n'
            "export -f binlearn torchrun python\n")


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_the_code_blocks_of_a_page_run(page, tmp_path, monkeypatch):
    runnable = [b for b in blocks(page) if b.language in RUNNABLE]
    skipped = [b for b in runnable if "skip" in b.markers]
    run = [b for b in runnable if "skip" not in b.markers]
    if not run:
        pytest.skip(f"{page}: no block to run ({len(skipped)} skipped with a reason)")
    data = os.environ.get("BINLEARN_DATA")
    for block in run:
        need = block.markers.get("needs")
        if need and not (data and (Path(data) / NEEDS[need]).is_file()):
            pytest.skip(f"{block.where} needs {need} (BINLEARN_DATA)")
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for block in run:
        code = scaled(block.code, block.markers.get("scaled", ""))
        if block.language == "bash":
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", _shell_prelude() + code], cwd=tmp_path,
                                  env=env, capture_output=True, text=True, timeout=900)
            output = done.stdout[-2000:] + done.stderr[-3000:]
            assert done.returncode == 0, f"{block.where} failed:\n{code}\n{output}"
        else:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(compile(code, block.where, "exec"), namespace)
    if page in CHECKS:
        assert CHECKS[page](namespace), f"{page}: its example does not compute what the page says"

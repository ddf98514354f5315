"""The README's Python example runs as printed and learns (the README stays true)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.usefixtures("one_thread")


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_example_trains_binary_ep_on_digits():
    blocks = _python_blocks()
    assert len(blocks) == 1, "the README has one Python example; update this test with it"
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(blocks[0], str(README), "exec"), namespace)
    lines = printed.getvalue().split()
    assert len(lines) == 10  # "epoch accuracy" for 5 epochs
    # the README says ≈ 0.82 after 5 epochs; chance is 0.1
    assert namespace["accuracy"] > 0.7, namespace["accuracy"]

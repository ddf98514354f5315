"""The README's quick start and Python example run as printed and learn (the README stays true)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.usefixtures("one_thread")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def _quickstart_commands() -> list[list[str]]:
    """The quick start block's binlearn commands, in order (the install that precedes the first
    one on its line is what this test environment already did)."""
    block = _blocks("bash")[0]
    commands = []
    for line in block.strip().splitlines():
        last = line.split("&&")[-1].strip()
        assert last.startswith("binlearn "), f"the quick start runs binlearn commands: {line!r}"
        commands.append(shlex.split(last))
    return commands


def test_readme_quickstart_runs_as_printed(tmp_path):
    commands = _quickstart_commands()
    assert [c[1] for c in commands] == ["train", "export", "infer", "convert"]
    outputs = []
    for command in commands:
        done = subprocess.run([sys.executable, "-m", "binlearn", *command[1:], "--quiet"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (command, done.stderr[-2000:])
        outputs.append(done.stdout)
    trained = json.loads(outputs[0])
    assert trained["dataset"] == "digits" and trained["test_accuracy"] >= 0.90, trained
    run = tmp_path / commands[0][commands[0].index("--run-dir") + 1]
    assert tomllib.loads((run / "config.toml").read_text())["rule"]["name"] == "local_binary"
    exported = json.loads(outputs[1])
    assert exported["verified"]["identical"] == exported["verified"]["samples"] == 360
    times = re.search(r"packed bits \((\d+)× smaller than the same layers in float32\)", README.read_text())
    assert times is not None, "the README names how much smaller the export is"
    assert round(exported["smaller_than_float32"]) == int(times.group(1))
    ratio = exported["float32_bytes"] / exported["bytes"]
    assert exported["smaller_than_float32"] == pytest.approx(ratio, abs=0.05)
    inferred = json.loads(outputs[2])
    assert inferred["accuracy"] == trained["test_accuracy"]  # XNOR-popcount only, the same figure
    converted = json.loads(outputs[3])
    assert converted["settings"]["timesteps"] == 16 and len(converted["accuracy_per_step"]) == 16
    assert converted["accuracy_per_step"][0] == round(trained["test_accuracy"], 4)
    written = [str(Path(commands[3][2], name)) for name in ("spiking.json", "latency.png")]
    assert converted["written"] == written
    record = json.loads((run / "spiking.json").read_text())
    assert record["agreement_with_source_per_step"][0] == 1.0  # exact at T = 1
    assert (run / "latency.png").stat().st_size > 1000


def test_readme_python_example_trains_binary_ep_on_digits():
    blocks = _blocks("python")
    assert len(blocks) == 1, "the README has one Python example; update this test with it"
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(blocks[0], str(README), "exec"), namespace)
    lines = printed.getvalue().split()
    assert len(lines) == 10  # "epoch accuracy" for 5 epochs
    # the README says ≈ 0.82 after 5 epochs; chance is 0.1
    assert namespace["accuracy"] > 0.7, namespace["accuracy"]

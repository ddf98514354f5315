"""The README's commands and Python example run as printed and learn (the README stays true), and
its install and test commands are the ones .ci/run runs.

The quick start is the README's one line (install, then train on the embedded digits) followed by
the export, inference and conversion commands of docs/getting-started.md, whose printed figures
that page explains; both are run here as printed, on one run directory.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GETTING_STARTED = ROOT / "docs" / "getting-started.md"
CI = ROOT / ".ci" / "run"

pytestmark = pytest.mark.usefixtures("one_thread")


def _blocks(language: str, page: Path = README) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), flags=re.S)


def _commands(block: str) -> list[list[str]]:
    """A block's binlearn commands, in order (an install that precedes the first one on its line is
    what this test environment already did)."""
    commands = []
    for line in block.strip().splitlines():
        last = line.split("&&")[-1].strip()
        assert last.startswith("binlearn "), f"the quick start runs binlearn commands: {line!r}"
        commands.append(shlex.split(last))
    return commands


def _quickstart_commands() -> list[list[str]]:
    """The README's train command, then the getting-started page's export, infer and convert."""
    readme = _commands(_blocks("bash")[0])
    page = _commands(_blocks("bash", GETTING_STARTED)[1])
    assert readme == page[:1], "the getting-started page trains the README's quick start"
    return readme + page[1:]


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
    assert "test accuracy above 0.9" in README.read_text()
    run = tmp_path / commands[0][commands[0].index("--run-dir") + 1]
    assert tomllib.loads((run / "config.toml").read_text())["rule"]["name"] == "local_binary"
    exported = json.loads(outputs[1])
    assert exported["verified"]["identical"] == exported["verified"]["samples"] == 360
    times = re.search(r"`smaller_than_float32` \((\d+)× here", GETTING_STARTED.read_text())
    assert times is not None, "the getting-started page names how much smaller the export is"
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


def test_readme_python_example_has_five_lines_and_trains_the_local_rule(tmp_path, monkeypatch):
    blocks = _blocks("python")
    assert len(blocks) == 1, "the README has one Python example; update this test with it"
    assert len(blocks[0].splitlines()) <= 5, blocks[0]  # five lines, the blank one included
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    summary = namespace["summary"]
    assert summary["dataset"] == "digits" and summary["epochs"] == 5
    assert summary["test_accuracy"] > 0.7, summary  # 0.847 with seed 0; chance is 0.1
    assert (tmp_path / summary["run_dir"] / "checkpoint.pt").is_file()


def _pip(line: str) -> str:
    """A pip command as the README writes it: ``pip install X`` (python3 -m pip, quiet flags dropped)."""
    quiet = ("--quiet", "--disable-pip-version-check")
    words = [w for w in shlex.split(line) if w not in quiet]
    if words[:3] in (["python3", "-m", "pip"], ["python", "-m", "pip"]):
        words = ["pip", *words[3:]]
    return " ".join(words)


def _ci_lines() -> list[str]:
    lines = []
    for line in CI.read_text().splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def test_readme_install_and_test_commands_are_the_ones_ci_runs():
    """.ci/run installs torch as the README does, then runs the README's test command (its two
    halves, with lint, type-check and the docs build between and after), so the two stay one."""
    install, test = _blocks("bash")[:2]
    torch_pin = re.match(r"pip install (torch==[\w.+]+) && pip install -e \. && binlearn ", install.strip())
    assert torch_pin, install
    ci = _ci_lines()
    pips = [_pip(line) for line in ci if " pip install " in f" {line}"]
    assert pips[0] == f"pip install {torch_pin.group(1)}", pips
    halves = [part.strip() for part in test.strip().split("&&")]
    assert halves == ['pip install -e ".[test]"', "python -m pytest -q"], halves
    assert "pip install -e .[test]" in pips, pips  # shlex drops the quotes
    pytest_lines = [line for line in ci if "-m pytest" in line]
    assert [line.replace("python3 ", "python ", 1) for line in pytest_lines] == [halves[1]], pytest_lines
    assert ci.index(next(line for line in ci if "-e \".[test]\"" in line or "-e '.[test]'" in line)) \
        < ci.index(pytest_lines[0])
    assert "pip install -e .[docs]" in pips and any("-m mkdocs build --strict" in line for line in ci), ci

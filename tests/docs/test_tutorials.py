"""The tutorials (docs/tutorials/*.py, jupytext percent files) run end to end as scripts, each
in a fresh process with its outputs in a temporary folder, and draw the figures they promise;
one also runs as a notebook. Marked slow (7 to 30 s each on a 2-core CPU), still part of the
default suite that CI runs."""

from __future__ import annotations

import ast
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TUTORIALS = REPO / "docs" / "tutorials"

# every tutorial, the figures it saves (its show(fig, NAME) calls) and what else it writes
EXPECTED = {
    "01_binary_ep.py": ["relaxation-untrained.png", "training.png", "relaxation-trained-synchronous.png",
                        "relaxation-trained-even_odd.png"],
    "02_local_rule_packed.py": ["local-rule-by-hand.png", "size-speed.png", "quickstart/model.packed.npz"],
    "03_spiking_nir.py": ["latency.png", "synops.png", "nir-readback.png", "digits-mlp.nir"],
    "04_reproduce_compare.py": ["compare.png", "row-and-branches.png", "row-quick/reproduce.json"],
}
CPU_BUDGET_S = 240.0
"""Two minutes on two cores: the CPU seconds (user + system) a tutorial and its subprocesses may
use. CPU time, not the wall clock, so a busy machine does not fail the test."""


def _shown_figures(path: Path) -> list[str]:
    """The file names given as string literals to show(fig, NAME) in a tutorial (names built
    at run time, as in a helper's loop, are listed in EXPECTED by hand)."""
    return [node.args[1].value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "show" and len(node.args) == 2
            and isinstance(node.args[1], ast.Constant)]


def _run(script: Path, out: Path, env_extra: dict[str, str] | None = None
         ) -> tuple[subprocess.CompletedProcess, float]:
    """Run a tutorial as `python docs/tutorials/NAME.py` from the repository root; return the
    finished process and the CPU seconds it and its subprocesses used."""
    env = {**os.environ, "BINLEARN_TUTORIAL_OUT": str(out), "MPLBACKEND": "Agg", **(env_extra or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, str(script.relative_to(REPO))], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done, cpu


def test_the_four_tutorials_are_the_ones_tested():
    assert sorted(p.name for p in TUTORIALS.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_tutorial_is_a_jupytext_percent_file_whose_figures_are_tested(name):
    text = (TUTORIALS / name).read_text()
    assert text.startswith("# ---\n# jupyter:\n#   jupytext:\n"), "a jupytext header opens the file"
    assert "format_name: percent" in text.split("# ---", 2)[1]
    assert text.count("# %% [markdown]") >= 5, "prose between the code"
    assert re.search(r"^# %%\n", text, flags=re.M), "code cells"
    title = text.split("# %% [markdown]", 1)[1].lstrip().splitlines()[0]
    assert title.startswith("# # "), f"the first markdown cell opens with the page title, got {title!r}"
    shown = _shown_figures(TUTORIALS / name)
    assert shown, "a tutorial draws figures"
    assert set(shown) <= set(EXPECTED[name]), "each figure it saves is one the run test checks for"


def _check_outputs(name: str, out: Path, done: subprocess.CompletedProcess, cpu: float) -> None:
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert f"tutorial {name[:2]} done in" in done.stdout, done.stdout[-2000:]
    for expected in EXPECTED[name]:
        path = out / expected
        written = sorted(p.name for p in out.rglob("*"))
        assert path.is_file(), f"{name} did not write {expected}; wrote {written}"
        size = path.stat().st_size
        assert size > (5000 if expected.endswith(".png") else 100), (expected, size)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert cpu < CPU_BUDGET_S, f"{name} used {cpu:.0f} CPU seconds (budget {CPU_BUDGET_S:.0f})"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_binary_ep.py", "02_local_rule_packed.py"])
def test_tutorial_runs_as_a_script_on_the_digits(name, tmp_path):
    done, cpu = _run(TUTORIALS / name, tmp_path)
    _check_outputs(name, tmp_path, done, cpu)


@pytest.mark.slow
def test_spiking_and_nir_tutorial_runs_as_a_script(tmp_path):
    pytest.importorskip("nir", reason="the NIR part needs the nir package (pip install 'binlearn[nir]')")
    name = "03_spiking_nir.py"
    done, cpu = _run(TUTORIALS / name, tmp_path)
    _check_outputs(name, tmp_path, done, cpu)
    # the NIR file read back runs as binlearn simulates it: the tutorial prints the agreement
    agreement = re.search(r"same predicted class at every step for (\d+) of (\d+) test images", done.stdout)
    assert agreement is not None, done.stdout[-2000:]
    assert agreement.group(1) == agreement.group(2), agreement.group(0)


@pytest.mark.slow
def test_reproduce_and_compare_tutorial_runs_as_a_script(tmp_path, fashion_dir):
    name = "04_reproduce_compare.py"
    done, cpu = _run(TUTORIALS / name, tmp_path, {"BINLEARN_DATA": str(fashion_dir.parent)})
    _check_outputs(name, tmp_path, done, cpu)
    assert "QUICK RUN" in done.stdout  # reproduce said it was scaled down


def test_reproduce_tutorial_stops_cleanly_without_its_data(tmp_path):
    """Without Fashion-MNIST the tutorial says what is missing and how to get it, and exits 0
    before running anything (its first code cell is all that runs)."""
    done, _ = _run(TUTORIALS / "04_reproduce_compare.py", tmp_path / "out", {"BINLEARN_DATA": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "binlearn data download fashion-mnist" in done.stdout and "Stopping here." in done.stdout
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_a_tutorial_runs_as_a_notebook_with_its_figures_inline(tmp_path, monkeypatch):
    """jupytext turns the percent file into a notebook, which a Jupyter kernel executes top to
    bottom (as mkdocs-jupyter does when it executes a page); every figure is shown inline."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("nir")
    name = "03_spiking_nir.py"
    notebook = jupytext.read(TUTORIALS / name)
    assert sum(cell.cell_type == "markdown" for cell in notebook.cells) >= 5
    monkeypatch.setenv("BINLEARN_TUTORIAL_OUT", str(tmp_path))  # the kernel inherits this environment
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}}).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [output for cell in code for output in cell.get("outputs", [])]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == len(_shown_figures(TUTORIALS / name)), len(images)
    errors = [output for output in outputs if output.get("output_type") == "error"]
    assert not errors, errors
    for expected in EXPECTED[name]:
        assert (tmp_path / expected).is_file(), expected

"""docs/results.toml: the one file that `binlearn reproduce --list`, the tables of
docs/results.md and docs/figures/overview.png come from — checked to agree, and
`binlearn reproduce ROW --quick` run for one row of each paper."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from binlearn.cli import main
from binlearn.experiment import ConfigError
from binlearn.experiment.results import PAPERS, load_results, marked_tables, plot_overview, render_markdown

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.toml"
MARKDOWN = ROOT / "docs" / "results.md"


@pytest.fixture(scope="module")
def results():
    return load_results(RESULTS)


def test_results_md_tables_regenerate_byte_identical(results):
    text = MARKDOWN.read_text()
    assert render_markdown(text, results) == text, "run `binlearn reproduce --write-docs` and commit"
    marked = marked_tables(text)
    # every table of the file is on the page, once, and every paper has its summary
    assert sorted(marked) == sorted([*results.tables, *(f"summary-{p}" for p in PAPERS)])
    # no table on the page outside the generated blocks
    outside, inside = [], False
    for line in text.split("\n"):
        if line.startswith("<!-- table: "):
            inside = True
        elif line == "<!-- end table -->":
            inside = False
        elif line.startswith("|") and not inside:
            outside.append(line)
    assert not outside, outside[:3]


def test_every_paper_config_has_one_row(results):
    configs = sorted(str(p.relative_to(ROOT)) for paper in PAPERS
                     for p in (ROOT / "configs" / paper).glob("*.toml"))
    assert sorted(r.config for r in results.rows) == configs
    for row in results.rows:
        assert row.id == f"{row.paper}/{Path(row.config).stem}"
        assert row.config.startswith(f"configs/{row.paper}/")
        assert row.command.startswith("binlearn ") or row.command.startswith("three commands")


def _figure_forms(value: float) -> set[str]:
    text = f"{value:.4f}"
    forms = {text, text.rstrip("0"), text[1:], text.rstrip("0")[1:]}
    return {f for f in forms if len(f) > 2}


def test_each_recorded_figure_is_in_the_table_it_cites(results):
    for row in results.rows:
        if row.ours is None or row.table is None:
            continue
        rendered = results.tables[row.table].markdown()
        found = [f for f in _figure_forms(row.ours)
                 if re.search(rf"(?<![\d.]){re.escape(f)}(?!\d)", rendered)]
        assert found, (row.id, row.ours, row.table)


def test_overview_figure(results, tmp_path):
    plot_overview(results, tmp_path / "overview.png")
    assert (tmp_path / "overview.png").stat().st_size > 20_000
    assert (ROOT / "docs/figures/overview.png").stat().st_size > 20_000


def test_reproduce_list(capsys):
    assert main(["reproduce", "--list"]) == 0
    printed = capsys.readouterr().out
    results = load_results(RESULTS)
    for row in results.rows:
        assert row.id in printed and row.command in printed
    assert main(["reproduce", "--list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["row"] for r in rows} == {r.id for r in results.rows}
    fc = next(r for r in rows if r["row"] == "laydevant2021/fc-binary-weights")
    assert fc["ours"] == 0.9786 and fc["paper_figure"].startswith("same accuracy as float EP")


@pytest.mark.parametrize("argv, needle", [
    (["reproduce", "laydevant2021/nope"], "unknown row 'laydevant2021/nope'"),
    (["reproduce", "fc-float"], "did you mean laydevant2021/fc-float"),
    (["reproduce"], "give one of ROW, --list or --write-docs"),
    (["reproduce", "--list", "--quick"], "apply to a ROW run"),
    (["reproduce", "--list", "--results", "no/such/results.toml"], "results file not found"),
])
def test_reproduce_errors_are_one_line(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("binlearn: error: ") and err.count("\n") == 1 and needle in err, err


@pytest.mark.parametrize("edit, needle", [
    (lambda t: t.replace('quick_note = "1,000 training images, 1 epoch (the published T, K, β, Bop γ',
                         'quick_nte = "1,000 training images, 1 epoch (the published T, K, β, Bop γ'),
     "unknown key 'quick_nte'"),
    (lambda t: t.replace("ours = 0.9786", "ours = 97.86"), "must be an accuracy in [0, 1]"),
    (lambda t: t.replace('paper = "colombo2024"', 'paper = "colombo"', 1), "unknown paper 'colombo'"),
    (lambda t: t + "\n[[row]\n", "not valid TOML"),
    (lambda t: t.replace("convert = {timesteps = 8, one_step = true}", "convert = {steps = 8}"),
     "convert.steps is not a convert setting"),
])
def test_malformed_results_file_is_one_line(tmp_path, edit, needle):
    bad = tmp_path / "results.toml"
    bad.write_text(edit(RESULTS.read_text()))
    with pytest.raises(ConfigError, match=re.escape(needle)):
        load_results(bad)


@pytest.mark.parametrize("row", ["laydevant2021/fc-binary-weights", "colombo2024/mnist-1035-1035",
                                 "lu2020/mnist-mlp-binary-weights-activations"])
def test_reproduce_quick_runs_a_row_of_each_paper(row, mnist_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["reproduce", row, "--quick", "--run-dir", str(run), "--data-dir", str(mnist_dir.parent),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "QUICK RUN, not the published settings" in printed
    assert "paper:" in printed and "this run:" in printed
    record = json.loads((run / "reproduce.json").read_text())
    results = load_results(RESULTS)
    expected = results.row(row)
    assert record["row"] == row and record["quick"] is True and record["overrides"] == expected.quick
    assert record["paper_figure"] == expected.paper_figure and record["ours_recorded"] == expected.ours
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_size"] == int(expected.quick[0].split("=")[1])
    if expected.convert:  # a spiking row: the figure is the converted network's
        spiking = json.loads((run / "spiking.json").read_text())
        assert record["this_run"] == spiking["final_accuracy"]
        assert record["source_accuracy"] == pytest.approx(summary["test_accuracy"])
    else:
        assert record["this_run"] == summary["test_accuracy"]
    assert record["this_run"] > 0.5  # well above chance (0.1) even scaled down

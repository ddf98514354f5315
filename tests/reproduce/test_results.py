"""docs/results.toml: the one file that `binlearn reproduce --list`, the tables of
docs/results.md and docs/figures/overview.png and claims.png come from — checked to agree, and
`binlearn reproduce ROW --quick` run for one row of each paper."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import fields
from pathlib import Path

import pytest

from binlearn.artifacts.spiking import ConvertSettings
from binlearn.cli import _parser, main
from binlearn.experiment import ConfigError
from binlearn.reproduce.results import (
    PAPERS,
    PaperRow,
    Table,
    find_results_file,
    load_results,
    marked_tables,
    plot_claims,
    plot_curves,
    plot_overview,
    render_markdown,
)

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]
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
    assert sorted(marked) == sorted([*results.tables, *(f"summary-{p}" for p in PAPERS), "claims",
                                     *(f"curve-{c.id}" for c in results.curves)])
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
        assert row.command().startswith(f"binlearn train {row.config}") or row.runs_note is not None


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


def _parsed(command: str) -> tuple[object, object | None]:
    """A rendered command read back with binlearn's own options: (train, convert or None)."""
    parts: list[list[str]] = [[]]
    for word in shlex.split(command):  # a shell's words; a quoted "&&" stays inside its word
        if word == "&&":
            parts.append([])
        else:
            parts[-1].append(word)
    assert len(parts) <= 2 and all(part[:1] == ["binlearn"] for part in parts), command
    parsed = [_parser().parse_args(part[1:]) for part in parts]
    return parsed[0], parsed[1] if len(parsed) == 2 else None


def _settings(args) -> ConvertSettings:
    return ConvertSettings(**{f.name: getattr(args, f.name) for f in fields(ConvertSettings)})


def test_every_rendered_command_runs_the_row(results):
    """The command shown for a row is rendered from its data; read back with binlearn's own
    argument parser it trains the row's config with the row's overrides and, for a spiking row,
    converts that run with the row's convert settings (which ``reproduce`` runs)."""
    several = []
    for row in results.rows:
        if row.runs_note is not None:
            several.append(row.id)
            assert row.command() == row.runs_note and not row.overrides and row.run_dir is None
            continue
        train, convert = _parsed(row.command())
        assert train.command == "train" and train.config == row.config, row.id
        assert train.set == row.overrides and train.run_dir == row.run_dir, row.id
        assert (convert is not None) == bool(row.convert), row.id
        if convert is not None:
            assert convert.command == "convert" and convert.run_dir == row.run_dir, row.id
            assert _settings(convert) == ConvertSettings(**row.convert), row.id
    assert several == ["laydevant2021/fc-binary-weights-activations"]


def test_command_is_rendered_from_the_fields():
    row = PaperRow(id="colombo2024/c", paper="colombo2024", config="configs/colombo2024/c.toml", row="r",
                   paper_figure="–", quick=[], quick_note="", overrides=["a.b=1", "x=a && b", "m.h=[1, 2]"],
                   run_dir="runs/my run",
                   convert={"one_step": True, "timesteps": 8, "init_half": False, "percentile": 99.5,
                            "device": "cuda:1"})
    assert row.command() == ("binlearn train configs/colombo2024/c.toml --set a.b=1 --set 'x=a && b' "
                             "--set 'm.h=[1, 2]' --run-dir 'runs/my run' && binlearn convert 'runs/my run' "
                             "--timesteps 8 --percentile 99.5 --one-step --device cuda:1")
    train, convert = _parsed(row.command())
    assert train.set == ["a.b=1", "x=a && b", "m.h=[1, 2]"]
    assert train.run_dir == convert.run_dir == "runs/my run"
    assert _settings(convert) == ConvertSettings(timesteps=8, percentile=99.5, one_step=True, device="cuda:1")
    # every convert setting, each away from its default, renders to options that parse back to it
    every = {"timesteps": 3, "percentile": 100.0, "reset": "zero", "one_step": True, "init_half": True,
             "encoding": "poisson", "seed": 2, "calibration_images": 7, "batch_size": 9, "device": "cpu"}
    assert set(every) == {f.name for f in fields(ConvertSettings)}
    assert all(every[f.name] != f.default for f in fields(ConvertSettings))
    spiking = PaperRow(**{**row.__dict__, "overrides": [], "run_dir": "r", "convert": every})
    assert _settings(_parsed(spiking.command())[1]) == ConvertSettings(**every)
    several = PaperRow(**{**row.__dict__, "overrides": [], "run_dir": None, "runs_note": "two runs, below"})
    assert several.command() == "two runs, below"


def test_convert_option_defaults_are_convert_settings():
    """``binlearn convert`` with no options converts with ConvertSettings' defaults, so a command
    rendered from a row's convert table converts with the settings reproduce uses."""
    assert _settings(_parser().parse_args(["convert", "r"])) == ConvertSettings()


@pytest.mark.parametrize("name, plot", [("overview.png", plot_overview), ("claims.png", plot_claims),
                                        ("bits-per-synapse.png", plot_curves)])
def test_figures_are_what_the_file_renders_to(results, tmp_path, name, plot):
    from matplotlib.image import imread

    plot(results, tmp_path / name)
    assert (tmp_path / name).stat().st_size > 20_000
    committed = imread(ROOT / "docs/figures" / name)
    assert (imread(tmp_path / name) == committed).all(), \
        f"docs/figures/{name} is stale: run `binlearn reproduce --write-docs` and commit"


def test_cells_escape_pipes():
    table = Table("t", ["a", "b"], [["x | y", "`a\\|b`"]])
    assert table.markdown().split("\n")[2] == "| x \\| y | `a\\|b` |"


def test_unclosed_table_marker_is_an_error(results):
    text = MARKDOWN.read_text()
    first = marked_tables(text)[0]
    end = "<!-- end table -->"
    start = text.index(f"<!-- table: {first} -->")
    broken = text[:start] + text[start:].replace(end, "", 1)
    with pytest.raises(ConfigError, match=f"table '{re.escape(first)}' has no .* before line"):
        render_markdown(broken, results)
    cut = text[:start] + f"<!-- table: {first} -->\n"
    with pytest.raises(ConfigError, match="before the end of the file"):
        render_markdown(cut, results)


def test_results_file_of_another_project_is_not_taken(tmp_path, monkeypatch):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.toml").write_text("[[row]]\n")
    monkeypatch.chdir(tmp_path)
    assert find_results_file().resolve() == RESULTS.resolve()


def test_reproduce_list(capsys):
    assert main(["reproduce", "--list"]) == 0
    printed = capsys.readouterr().out
    results = load_results(RESULTS)
    for row in results.rows:
        assert row.id in printed and f"$ {row.command()}\n" in printed
    assert main(["reproduce", "--list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["row"] for r in rows} == {r.id for r in results.rows}
    fc = next(r for r in rows if r["row"] == "laydevant2021/fc-binary-weights")
    assert fc["ours"] == 0.9786 and fc["paper_figure"].startswith("same accuracy as float EP")


@pytest.mark.parametrize("argv, needle", [
    (["reproduce", "laydevant2021/nope"], "unknown row 'laydevant2021/nope'"),
    (["reproduce", "fc-float"], "did you mean laydevant2021/fc-float"),
    (["reproduce"], "give one of ROW (or CLAIM), --list, --claims or --write-docs"),
    (["reproduce", "--list", "--quick"], "apply to a ROW run"),
    (["reproduce", "--list", "--results", "no/such/results.toml"], "results file not found"),
    (["reproduce", "--list", "--results", "docs"], "is a folder"),
    (["reproduce", "--list", "--as-recorded"], "apply to a ROW run"),
    (["reproduce", "--list", "--data-dir", "x"], "apply to a ROW run"),
    (["reproduce", ""], "unknown row ''"),
    (["reproduce", "colombo2024/"], "colombo2024 is a paper with 12 rows"),
    (["reproduce", "lu2020/mnist-mlp-float", "--quick", "--as-recorded"], "not both"),
    (["reproduce", "laydevant2021/fc-binary-weights-activations", "--as-recorded"], "cannot repeat it"),
])
def test_reproduce_errors_are_one_line(capsys, argv, needle, monkeypatch):
    monkeypatch.chdir(ROOT)
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
    (lambda t: t.replace("convert = {timesteps = 8, one_step = true}", 'convert = {timesteps = "8"}'),
     "convert.timesteps must be int, got '8'"),
    (lambda t: t.replace("convert = {timesteps = 8, one_step = true}", "convert = {timesteps = 0}"),
     "convert: --timesteps must be >= 1"),
    (lambda t: t.replace("convert = {timesteps = 8, one_step = true}", "convert = {one_step = 1}"),
     "convert.one_step must be bool"),
    (lambda t: "row = 3\n", "row must be an array of tables"),
    (lambda t: t.replace('id = "colombo2024/mnist-1035-1035"', 'id = "lu2020/mnist-1035-1035"'),
     "id must be colombo2024/NAME"),
    (lambda t: t.replace('id = "colombo2024/mnist-1035-1035"', 'id = ""'), "id must be colombo2024/NAME"),
    (lambda t: t.replace("convert = {timesteps = 8, one_step = true}",
                         'convert = {timesteps = 8, one_step = true, device = "gpu"}'),
     "--device 'gpu'; valid: auto, cpu, cuda, cuda:N"),
    (lambda t: t.replace("convert = {timesteps = 8, one_step = true}\nours_step = 1",
                         "convert = {timesteps = 8, one_step = true}\nours_step = 9"),
     "ours_step must be a step 1..8"),
    (lambda t: t.replace('quick_note = "1,000 training images, 1 epoch (the published T',
                         'ours_step = 1\nquick_note = "1,000 training images, 1 epoch (the published T', 1),
     "the row has no convert"),
    (lambda t: t.replace('overrides = ["data.train_size=8000"]', 'overrides = "data.train_size=8000"', 1),
     "row 'colombo2024/mnist-1035-1035': overrides must be a list of strings"),
    (lambda t: t.replace('overrides = ["data.train_size=8000"]', 'overrides = ["data.train_size"]', 1),
     "row 'colombo2024/mnist-1035-1035': overrides: 'data.train_size' is not section.key=value"),
    (lambda t: t.replace('overrides = ["data.train_size=8000"]', 'overrides = ["data.train_size=8000", '
                         '"nosuch.key=1"]', 1),
     "row 'colombo2024/mnist-1035-1035': overrides: unknown key 'nosuch'"),
    (lambda t: t.replace('overrides = ["data.train_size=8000"]', 'overrides = ["data.train_sise=8000"]', 1),
     "row 'colombo2024/mnist-1035-1035': overrides: unknown key data.train_sise"),
    (lambda t: t.replace('overrides = ["data.train_size=8000"]', 'overrides = ["data.train_size=many"]', 1),
     "row 'colombo2024/mnist-1035-1035': overrides: data.train_size: expected int | None, got 'many'"),
    (lambda t: t.replace('run_dir = "runs/bwa"', "run_dir = 3"), "run_dir must be a string, got int"),
    (lambda t: t.replace('run_dir = "runs/bwa"', 'run_dir = ""'), "run_dir is empty"),
    (lambda t: t.replace('run_dir = "runs/bwa"\n', ""),
     "row 'lu2020/mnist-mlp-binary-weights-activations': convert needs run_dir"),
    (lambda t: t.replace('runs_note = "three', 'overrides = ["train.epochs=100"]\nruns_note = "three'),
     "runs_note says the figure came from several commands; give it without overrides and run_dir"),
    (lambda t: t.replace('runs_note = "three commands (docs/results.md, the 100-epoch branches)"',
                         "runs_note = ['three commands']"), "runs_note must be a string, got list"),
    (lambda t: t.replace('overrides = ["data.train_size=8000"]',
                         'command = "binlearn train configs/colombo2024/mnist-1035-1035.toml"', 1),
     "row 'colombo2024/mnist-1035-1035': command is no longer a field"),
    (lambda t: t + '\n[[table]]\nid = "empty"\ncolumns = []\nrows = []\n', "columns is empty"),
    (lambda t: "table = 'x'\n", "table must be an array of tables"),
])
def test_malformed_results_file_is_one_line(tmp_path, edit, needle):
    (tmp_path / "docs").mkdir()
    (tmp_path / "configs").symlink_to(ROOT / "configs")  # the overrides are checked against the configs
    bad = tmp_path / "docs" / "results.toml"
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
        step = expected.ours_step or len(spiking["accuracy_per_step"])  # the recorded figure's step
        assert record["this_run"] == spiking["accuracy_per_step"][step - 1]
        assert (f"after step {step}," in record["this_run_is"]) == (expected.ours_step is not None)
        assert record["source_accuracy"] == pytest.approx(summary["test_accuracy"])
    else:
        assert record["this_run"] == summary["test_accuracy"]
    assert record["this_run"] > 0.5  # well above chance (0.1) even scaled down


QUICK_DIGITS = ["train.epochs=1", "model.hidden=[105, 105]", "rule.group_size=15"]


def _digits_results(tmp_path: Path, overrides: tuple[str, ...] = ("train.epochs=1",)) -> Path:
    """A results file of one row on the embedded digits (no dataset needed): the quickstart's
    local binary rule, converted to a spiking network after training; ``overrides``: the
    recorded run's --set items."""
    (tmp_path / "configs" / "colombo2024").mkdir(parents=True)
    config = (ROOT / "configs/quickstart/digits-local-binary.toml").read_text()
    (tmp_path / "configs/colombo2024/digits.toml").write_text(config)
    (tmp_path / "docs").mkdir()
    results = tmp_path / "docs" / "results.toml"
    results.write_text(f"""
[[row]]
id = "colombo2024/digits"
paper = "colombo2024"
config = "configs/colombo2024/digits.toml"
row = "digits 192-1035-1035, local binary rule, as an IF network"
paper_figure = "none (a test row)"
ours = 0.9
ours_data = "digits, 1 epoch"
quick = {json.dumps(QUICK_DIGITS)}
quick_note = "1 epoch, 105 hidden units"
overrides = {json.dumps(list(overrides))}
run_dir = "r"
convert = {{timesteps = 3, one_step = true}}
""")
    return results


def test_reproduce_on_the_embedded_digits(tmp_path, capsys):
    results = _digits_results(tmp_path)
    run = tmp_path / "run"
    assert main(["reproduce", "colombo2024/digits", "--quick", "--set", "seed=1", "--run-dir", str(run),
                 "--results", str(results), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "QUICK RUN, not the published settings: 1 epoch, 105 hidden units; then --set seed=1" in printed
    record = json.loads((run / "reproduce.json").read_text())
    assert record["overrides"] == [*QUICK_DIGITS, "seed=1"]
    assert record["command"].endswith(f"--set seed=1 --results {results}")
    spiking = json.loads((run / "spiking.json").read_text())
    assert record["this_run"] == spiking["final_accuracy"] > 0.5
    assert spiking["settings"]["timesteps"] == 3
    # a local-binary conversion takes its thresholds from the weights: no calibration recorded
    assert "percentile" not in spiking["settings"] and "calibration_images" not in spiking["settings"]
    # the run directory holds a run now: reproduce starts new ones, and says how to go on
    assert main(["reproduce", "colombo2024/digits", "--quick", "--run-dir", str(run),
                 "--results", str(results), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "binlearn train --resume" in err and err.count("\n") == 1


def test_reproduce_names_settings_that_differ_from_the_recorded(tmp_path, capsys):
    results = _digits_results(tmp_path, ("train.epochs=1", "model.hidden=[105,105]", "rule.group_size=15"))
    assert main(["reproduce", "colombo2024/digits", "--as-recorded", "--run-dir", str(tmp_path / "a"),
                 "--results", str(results), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "NOTE" not in printed
    record = json.loads((tmp_path / "a" / "reproduce.json").read_text())
    assert record["overrides"] == ["train.epochs=1", "model.hidden=[105,105]", "rule.group_size=15"]
    assert record["epochs"] == 1
    # not --as-recorded, with an override: this run differs from the recorded one, and says so
    sets = ["train.epochs=1", "model.hidden=[105,105]", "rule.group_size=15", "seed=1"]
    assert main(["reproduce", "colombo2024/digits", *[part for item in sets for part in ("--set", item)],
                 "--run-dir", str(tmp_path / "b"), "--results", str(results), "--quiet"]) == 0
    captured = capsys.readouterr()
    note = ("NOTE: this run differs from the one that measured the recorded figure (recorded → this run): "
            "seed 0 → 1\n")
    assert note in captured.out
    record = json.loads((tmp_path / "b" / "reproduce.json").read_text())
    assert record["as_recorded_would_differ"] is False  # the run has every recorded --set
    assert record["differs_from_recorded"] == {"seed": [0, 1]}
    # the same values written otherwise (spaces, another order) do not differ: values are compared parsed
    results = _digits_results(tmp_path / "c",
                              ("rule.group_size=15", "model.hidden=[105, 105]", "train.epochs=1"))
    assert main(["reproduce", "colombo2024/digits", "--as-recorded", "--run-dir", str(tmp_path / "c" / "run"),
                 "--results", str(results)]) == 0
    captured = capsys.readouterr()
    assert "NOTE" not in captured.out and "NOTE" not in captured.err
    assert json.loads((tmp_path / "c" / "run" / "reproduce.json").read_text())["epochs"] == 1


def test_reproduce_prints_the_difference_before_training(tmp_path, capsys):
    results = _digits_results(tmp_path)  # recorded: --set train.epochs=1
    sets = ["--set", "model.hidden=[105,105]", "--set", "rule.group_size=15"]  # 20 epochs, not 1
    assert main(["reproduce", "colombo2024/digits", *sets, "--run-dir", str(tmp_path / "run"),
                 "--results", str(results), "--json"]) == 0
    captured = capsys.readouterr()
    first = captured.err.splitlines()[0]
    assert first.startswith("NOTE: this run differs") and "train.epochs 1 → 20" in first
    assert first.endswith(" (--as-recorded repeats the recorded settings)")
    record = json.loads(captured.out)
    assert record["differs_from_recorded"] == {
        "train.epochs": [1, 20], "model.hidden": [[1035, 1035], [105, 105]], "rule.group_size": [115, 15]}
    assert record["as_recorded_would_differ"] is True


def test_reproduce_refuses_a_convert_device_before_training(tmp_path, capsys, monkeypatch):
    results = _digits_results(tmp_path)
    text = results.read_text().replace("convert = {timesteps = 3, one_step = true}",
                                       'convert = {timesteps = 3, one_step = true, device = "cuda"}')
    results.write_text(text)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["reproduce", "colombo2024/digits", "--quick", "--run-dir", str(tmp_path / "run"),
                 "--results", str(results), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "row colombo2024/digits: convert.device asks for CUDA" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # nothing trained


def test_a_figure_from_several_commands(tmp_path, capsys):
    results = _digits_results(tmp_path)
    text = results.read_text().replace('overrides = ["train.epochs=1"]\nrun_dir = "r"',
                                       "runs_note = \"see the paper's runs (docs/results.md)\"")
    results.write_text(text)
    assert main(["reproduce", "--list", "--results", str(results)]) == 0
    assert "$ see the paper's runs (docs/results.md)\n" in capsys.readouterr().out
    assert main(["reproduce", "colombo2024/digits", "--quick", "--run-dir", str(tmp_path / "run"),
                 "--results", str(results), "--quiet"]) == 0
    record = json.loads((tmp_path / "run" / "reproduce.json").read_text())
    assert record["recorded_settings"] is None and record["differs_from_recorded"] is None
    assert record["ours_recorded_command"] == "see the paper's runs (docs/results.md)"
    assert main(["reproduce", "colombo2024/digits", "--as-recorded", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "its figure came from several commands (see the paper's runs" in err and "cannot repeat it" in err


def test_results_files_that_cannot_be_read_or_written(tmp_path, capsys, monkeypatch):
    results = _digits_results(tmp_path)
    real = Path.read_text

    def unreadable(path, *args, **kwargs):
        if path.name == "results.toml":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "read_text", unreadable)
        assert main(["reproduce", "--list", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "cannot be read (Permission denied)" in err and err.count("\n") == 1
    markdown = tmp_path / "docs" / "results.md"
    page = "# results\n<!-- table: summary-colombo2024 -->\nstale\n<!-- end table -->\n"
    markdown.write_text(page)
    (tmp_path / "docs" / "figures").write_text("a file where the figures folder goes")
    assert main(["reproduce", "--write-docs", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("binlearn: error: --write-docs: ") and err.count("\n") == 1
    assert markdown.read_text() == page  # nothing half-written
    # the page cannot be written: the figure is not replaced either
    (tmp_path / "docs" / "figures").unlink()
    (tmp_path / "docs" / "figures").mkdir()
    figure = tmp_path / "docs" / "figures" / "overview.png"
    figure.write_bytes(b"old figure")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(markdown))

    with monkeypatch.context() as patch:
        patch.setattr("binlearn.reproduce.results.atomic_write_text", full)
        assert main(["reproduce", "--write-docs", "--results", str(results)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert figure.read_bytes() == b"old figure" and markdown.read_text() == page
    assert sorted(p.name for p in figure.parent.iterdir()) == ["overview.png"]  # no staged file left
    assert main(["reproduce", "--write-docs", "--results", str(results)]) == 0
    assert "stale" not in markdown.read_text() and figure.read_bytes() != b"old figure"
    assert main(["reproduce", "--write-docs", "--json", "--results", str(results)]) == 2
    assert "--json applies to a ROW or CLAIM run" in capsys.readouterr().err


def test_a_binlearn_checkout_in_the_current_folder_is_taken_first(tmp_path, monkeypatch):
    (tmp_path / "src" / "binlearn").mkdir(parents=True)
    _digits_results(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert find_results_file().resolve() == (tmp_path / "docs" / "results.toml").resolve()
    monkeypatch.chdir(tmp_path / "docs")  # not a checkout: the package's own
    assert find_results_file().resolve() == RESULTS.resolve()


def test_write_docs_needs_a_results_md_beside_the_file(tmp_path, capsys):
    results = _digits_results(tmp_path)
    assert main(["reproduce", "--write-docs", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "results.md" in err and "does not exist" in err and err.count("\n") == 1


def test_write_docs_with_no_rows_is_one_line_and_makes_nothing(tmp_path):
    """Issue 25 (RP35): a results file without rows made an empty figures/ and a traceback."""
    from binlearn.reproduce.results import Results, write_docs

    markdown = tmp_path / "results.md"
    markdown.write_text("# results\n")
    with pytest.raises(ConfigError, match="has no \\[\\[row\\]\\]"):
        write_docs(Results(tmp_path / "results.toml", [], {}), markdown,
                   tmp_path / "figures" / "overview.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md"]

"""``binlearn reproduce``: run a paper-table row of ``docs/results.toml`` and set the figure it
gives beside the paper's and our last measured one.

``reproduce(ROW)`` trains the row's config at its published settings (``quick``: the row's
scaled-down overrides, which the result says it used), runs ``binlearn convert`` after it for
the spiking rows, and writes ``reproduce.json`` into the run directory.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from binlearn.atomic import write_json
from binlearn.experiment.config import ConfigError, load_config
from binlearn.experiment.results import PAPERS, PaperRow, Results, load_results

__all__ = ["reproduce", "list_rows", "format_list", "format_result", "RecordedRun", "recorded_run"]


@dataclass(frozen=True)
class RecordedRun:
    """What a row's recorded ``command`` ran: ``binlearn train CONFIG [--set ...]`` and, for a
    spiking row, ``&& binlearn convert RUN_DIR [options]`` (as ConvertSettings keyword values)."""

    config: str
    settings: list[str]
    convert: dict[str, Any] | None


def _convert_options(tokens: list[str]) -> dict[str, Any] | None:
    """``binlearn convert`` options → ConvertSettings values (None: an option it does not have)."""
    from binlearn.experiment.spiking import ConvertSettings

    fields = {name: str(f.type) for name, f in ConvertSettings.__dataclass_fields__.items()}
    values: dict[str, Any] = {}
    index = 0
    while index < len(tokens):
        name = tokens[index].removeprefix("--").replace("-", "_")
        if not tokens[index].startswith("--") or name not in fields:
            return None
        if fields[name] == "bool":
            values[name] = True
            index += 1
            continue
        if index + 1 >= len(tokens):
            return None
        cast = {"int": int, "float": float, "str": str}[fields[name]]
        try:
            values[name] = cast(tokens[index + 1])
        except ValueError:
            return None
        index += 2
    return values


def recorded_run(command: str) -> RecordedRun | None:
    """Parse a row's recorded command; None when it is not one ``binlearn train`` (and convert)
    command line, e.g. a pointer to several commands in docs/results.md."""
    parts = [shlex.split(part) for part in command.split("&&")]
    if not parts or parts[0][:2] != ["binlearn", "train"] or len(parts[0]) < 3 or len(parts) > 2:
        return None
    train, config, settings, run_dir = parts[0][2:], parts[0][2], [], None
    index = 1
    while index < len(train):
        if train[index] not in ("--set", "--run-dir", "--data-dir") or index + 1 >= len(train):
            return None
        if train[index] == "--set":
            settings.append(train[index + 1])
        elif train[index] == "--run-dir":
            run_dir = train[index + 1]
        index += 2
    convert = None
    if len(parts) == 2:
        tokens = parts[1]
        if tokens[:2] != ["binlearn", "convert"] or len(tokens) < 3 or (run_dir and tokens[2] != run_dir):
            return None
        convert = _convert_options(tokens[3:])
        if convert is None:
            return None
    return RecordedRun(config, settings, convert)


def list_rows(results: Results) -> list[dict[str, Any]]:
    """Every row of the results file as a JSON-able record (what ``--list --json`` prints)."""
    return [{"row": r.id, "paper": r.paper, "config": r.config, "what": r.row, "paper_figure": r.paper_figure,
             "paper_value": r.paper_value, "ours": r.ours, "ours_data": r.ours_data, "command": r.command,
             "quick": r.quick_note} for r in results.rows]


def format_list(results: Results) -> str:
    """The rows grouped by paper, one block each: row, paper figure, our figure, command."""
    lines = []
    for paper, title in PAPERS.items():
        rows = [r for r in results.rows if r.paper == paper]
        if not rows:
            continue
        lines.append(f"{title}  (configs/{paper}/)")
        width = max(len(r.id) for r in rows)
        for row in rows:
            ours = row.ours_text + (f"  [{row.ours_data}]" if row.ours is not None and row.ours_data else "")
            lines.append(f"  {row.id:{width}s}  paper: {row.paper_figure}")
            lines.append(f"  {'':{width}s}  ours:  {ours}")
            lines.append(f"  {'':{width}s}  $ {row.command}")
        lines.append("")
    lines.append("run one: binlearn reproduce ROW [--quick] [--run-dir DIR]")
    return "\n".join(lines)


def _default_run_dir(row: PaperRow, quick: bool) -> Path:
    stem = row.id.replace("/", "-") + ("-quick" if quick else "")
    return Path("runs") / "reproduce" / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def reproduce(row_id: str, *, quick: bool = False, as_recorded: bool = False, run_dir: Path | None = None,
              overrides: list[str] | None = None, data_dir: str | None = None,
              results_path: str | Path | None = None, quiet: bool = False) -> dict[str, Any]:
    """Train ``row_id``'s config (and convert it, for a spiking row); return and write the
    paper-vs-ours record. ``quick``: the row's scaled-down overrides; ``as_recorded``: the
    ``--set`` items of the command that measured the recorded figure (the published config
    otherwise). ``overrides`` (``section.key=value``) come after either."""
    from binlearn.experiment.runner import train
    from binlearn.experiment.spiking import ConvertSettings, convert_run

    if quick and as_recorded:
        raise ConfigError("give --quick or --as-recorded, not both")
    results = load_results(results_path)
    row = results.row(row_id)
    config_path = results.root / row.config
    if not config_path.is_file():
        raise ConfigError(f"row {row.id}: its config {row.config} is not in {results.root}")
    recorded = recorded_run(row.command)
    if as_recorded and recorded is None:
        raise ConfigError(f"row {row.id}: its recorded command is not one binlearn train command "
                          f"({row.command!r}); --as-recorded cannot repeat it")
    base = row.quick if quick else recorded.settings if as_recorded and recorded is not None else []
    settings = [*base, *(overrides or [])]
    config = load_config(config_path, settings)
    if data_dir:
        config.data.data_dir = data_dir
    target = Path(run_dir) if run_dir is not None else _default_run_dir(row, quick)
    if (target / "config.toml").exists():
        raise ConfigError(f"{target} already holds a run; reproduce starts new runs: give another --run-dir "
                          f"(or continue that one with binlearn train --resume {target})")
    summary = train(config, target, quiet=quiet)
    figure = summary.get("test_accuracy")
    spiking = None
    if row.convert:
        spiking = convert_run(target, ConvertSettings(**row.convert), quiet=quiet)
        figure = spiking["final_accuracy"]
    command = ["binlearn", "reproduce", row.id, *(["--quick"] if quick else []),
               *(["--as-recorded"] if as_recorded else []), "--run-dir", str(target),
               *[part for item in overrides or [] for part in ("--set", item)],
               *(["--data-dir", data_dir] if data_dir else []),
               *(["--results", str(results_path)] if results_path is not None else [])]
    record: dict[str, Any] = {
        "row": row.id, "paper": row.paper, "what": row.row, "config": row.config,
        "quick": quick, "quick_note": row.quick_note if quick else None, "as_recorded": as_recorded,
        "overrides": settings, "extra_overrides": list(overrides or []),
        "recorded_settings": None if recorded is None else recorded.settings,
        "paper_figure": row.paper_figure, "paper_value": row.paper_value,
        "ours_recorded": row.ours, "ours_recorded_data": row.ours_data, "ours_recorded_command": row.command,
        "this_run": figure, "this_run_is": "the spiking network's accuracy after the last step"
        if spiking is not None else "test accuracy after the last epoch",
        "source_accuracy": spiking["source_accuracy"] if spiking is not None else None,
        "epochs": summary.get("epochs"), "train_seconds": summary.get("train_seconds"),
        "run_dir": str(target), "command": shlex.join(command),
    }
    write_json(target / "reproduce.json", record)
    return record


def format_result(record: dict[str, Any]) -> str:
    """Paper vs ours vs this run, side by side (what ``binlearn reproduce ROW`` prints)."""
    def figure(value: float | None) -> str:
        return "–" if value is None else f"{value:.4f}"

    lines = [f"{record['row']}: {record['what']}"]
    extra = " ".join(f"--set {item}" for item in record["extra_overrides"])
    if record["quick"]:
        lines.append(f"QUICK RUN, not the published settings: {record['quick_note']}"
                     + (f"; then {extra}" if extra else ""))
    recorded = record["recorded_settings"]
    if not record["quick"] and recorded is not None and sorted(recorded) != sorted(record["overrides"]):
        def shown(items: list[str]) -> str:
            return " ".join(f"--set {item}" for item in items) or "the config as published"
        lines.append(f"NOTE: the recorded figure was measured with {shown(recorded)}; this run used "
                     f"{shown(record['overrides'])}"
                     + ("" if record["as_recorded"] else " (--as-recorded repeats the recorded settings)"))
    lines += [f"  paper:          {record['paper_figure']}",
              f"  ours, recorded: {figure(record['ours_recorded'])}"
              + (f"  [{record['ours_recorded_data']}]" if record["ours_recorded_data"] else ""),
              f"  this run:       {figure(record['this_run'])}  ({record['this_run_is']}, "
              f"{record['epochs']} epoch(s), {record['train_seconds']:.0f} s training)",
              *([f"  its source:     {figure(record['source_accuracy'])}  (the trained network, before "
                 "conversion)"] if record["source_accuracy"] is not None else []),
              f"  written to {record['run_dir']}/reproduce.json"]
    return "\n".join(lines)

"""``binlearn reproduce``: run a paper-table row of ``docs/results.toml`` and set the figure it
gives beside the paper's and our last measured one.

``reproduce(ROW)`` trains the row's config at its published settings (``quick``: the row's
scaled-down overrides, which the result says it used), runs ``binlearn convert`` after it for
the spiking rows, and writes ``reproduce.json`` into the run directory.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

from binlearn.atomic import write_json
from binlearn.experiment.config import ConfigError, load_config
from binlearn.experiment.results import PAPERS, PaperRow, Results, load_results

__all__ = ["reproduce", "list_rows", "format_list", "format_result"]


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


def reproduce(row_id: str, *, quick: bool = False, run_dir: Path | None = None,
              overrides: list[str] | None = None, data_dir: str | None = None,
              results_path: str | Path | None = None, quiet: bool = False) -> dict[str, Any]:
    """Train ``row_id``'s config (and convert it, for a spiking row); return and write the
    paper-vs-ours record. ``overrides`` (``section.key=value``) come after the quick ones."""
    from binlearn.experiment.runner import train
    from binlearn.experiment.spiking import ConvertSettings, convert_run

    results = load_results(results_path)
    row = results.row(row_id)
    config_path = results.root / row.config
    if not config_path.is_file():
        raise ConfigError(f"row {row.id}: its config {row.config} is not in {results.root}")
    settings = [*(row.quick if quick else []), *(overrides or [])]
    config = load_config(config_path, settings)
    if data_dir:
        config.data.data_dir = data_dir
    target = Path(run_dir) if run_dir is not None else _default_run_dir(row, quick)
    summary = train(config, target, quiet=quiet)
    figure = summary.get("test_accuracy")
    spiking = None
    if row.convert:
        spiking = convert_run(target, ConvertSettings(**row.convert), quiet=quiet)
        figure = spiking["final_accuracy"]
    command = ["binlearn", "reproduce", row.id, *(["--quick"] if quick else []), "--run-dir", str(target),
               *[part for item in overrides or [] for part in ("--set", item)]]
    record: dict[str, Any] = {
        "row": row.id, "paper": row.paper, "what": row.row, "config": row.config,
        "quick": quick, "quick_note": row.quick_note if quick else None, "overrides": settings,
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
    if record["quick"]:
        lines.append(f"QUICK RUN, not the published settings: {record['quick_note']}")
    lines += [f"  paper:          {record['paper_figure']}",
              f"  ours, recorded: {figure(record['ours_recorded'])}"
              + (f"  [{record['ours_recorded_data']}]" if record["ours_recorded_data"] else ""),
              f"  this run:       {figure(record['this_run'])}  ({record['this_run_is']}, "
              f"{record['epochs']} epoch(s), {record['train_seconds']:.0f} s training)",
              *([f"  its source:     {figure(record['source_accuracy'])}  (the trained network, before "
                 "conversion)"] if record["source_accuracy"] is not None else []),
              f"  written to {record['run_dir']}/reproduce.json"]
    return "\n".join(lines)

"""``binlearn reproduce``: run a paper-table row of ``docs/results.toml`` and set the figure it
gives beside the paper's and our last measured one.

``reproduce(ROW)`` trains the row's config at its published settings (``quick``: the row's
scaled-down overrides, which the result says it used), runs ``binlearn convert`` after it for
the spiking rows, and writes ``reproduce.json`` into the run directory.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

from binlearn.atomic import write_json
from binlearn.experiment.config import ConfigError, config_to_dict, load_config
from binlearn.reproduce.results import PAPERS, PaperRow, Results, load_results

__all__ = ["reproduce", "list_rows", "format_list", "format_result"]


def list_rows(results: Results) -> list[dict[str, Any]]:
    """Every row of the results file as a JSON-able record (what ``--list --json`` prints)."""
    return [{"row": r.id, "paper": r.paper, "config": r.config, "what": r.row, "paper_figure": r.paper_figure,
             "paper_value": r.paper_value, "ours": r.ours, "ours_data": r.ours_data, "command": r.command(),
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
            lines.append(f"  {'':{width}s}  $ {row.command()}")
        lines.append("")
    lines.append("run one: binlearn reproduce ROW [--quick | --as-recorded] [--run-dir DIR] [--set ...]")
    return "\n".join(lines)


def _default_run_dir(row: PaperRow, quick: bool) -> Path:
    stem = row.id.replace("/", "-") + ("-quick" if quick else "")
    return Path("runs") / "reproduce" / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def reproduce(row_id: str, *, quick: bool = False, as_recorded: bool = False, run_dir: Path | None = None,
              overrides: list[str] | None = None, data_dir: str | None = None,
              results_path: str | Path | None = None, quiet: bool = False) -> dict[str, Any]:
    """Train ``row_id``'s config (and convert it, for a spiking row); return and write the
    paper-vs-ours record. ``quick``: the row's scaled-down overrides; ``as_recorded``: the
    row's ``overrides``, the ``--set`` items of the run that measured the recorded figure (the
    published config otherwise). ``overrides`` (``section.key=value``) come after either."""
    from binlearn.artifacts.spiking import ConvertSettings, convert_run
    from binlearn.experiment.runner import resolve_device, train

    if quick and as_recorded:
        raise ConfigError("give --quick or --as-recorded, not both")
    results = load_results(results_path)
    row = results.row(row_id)
    config_path = results.root / row.config
    if not config_path.is_file():
        raise ConfigError(f"row {row.id}: its config {row.config} is not in {results.root}")
    recorded = None if row.runs_note is not None else row.overrides  # the recorded run's --set items
    if as_recorded and recorded is None:
        raise ConfigError(f"row {row.id}: its figure came from several commands ({row.runs_note}); "
                          "--as-recorded cannot repeat it")
    base = row.quick if quick else recorded if as_recorded and recorded is not None else []
    settings = [*base, *(overrides or [])]
    config = load_config(config_path, settings)
    if data_dir:
        config.data.data_dir = data_dir
    differs = None if quick else _differences(config_path, recorded, config)
    hint = bool(differs) and _as_recorded_differs(config_path, recorded, overrides or [], config)
    conversion = ConvertSettings(**row.convert) if row.convert else None
    if conversion is not None:  # before training: a device this machine lacks is an error now
        resolve_device(conversion.device, option=f"row {row.id}: convert.device")
    target = Path(run_dir) if run_dir is not None else _default_run_dir(row, quick)
    if (target / "config.toml").exists():
        raise ConfigError(f"{target} already holds a run; reproduce starts new runs: give another --run-dir "
                          f"(or continue that one with binlearn train --resume {target})")
    if differs and not quiet:
        print(note_line(differs, hint), file=sys.stderr)
    summary = train(config, target, quiet=quiet)
    figure = summary.get("test_accuracy")
    this_run_is = "test accuracy after the last epoch"
    spiking = None
    if conversion is not None:
        spiking = convert_run(target, conversion, quiet=quiet)
        figure = spiking["final_accuracy"]
        this_run_is = "the spiking network's accuracy after the last step"
        per_step = spiking.get("accuracy_per_step")
        if row.ours_step is not None and per_step and row.ours_step < len(per_step):
            figure = per_step[row.ours_step - 1]
            last = f"{len(per_step)}: {spiking['final_accuracy']:.4f}"
            this_run_is = (f"the spiking network's accuracy after step {row.ours_step}, the step of the "
                           f"recorded figure (after the last, {last})")
    command = ["binlearn", "reproduce", row.id, *(["--quick"] if quick else []),
               *(["--as-recorded"] if as_recorded else []), "--run-dir", str(target),
               *[part for item in overrides or [] for part in ("--set", item)],
               *(["--data-dir", data_dir] if data_dir else []),
               *(["--results", str(results_path)] if results_path is not None else [])]
    record: dict[str, Any] = {
        "row": row.id, "paper": row.paper, "what": row.row, "config": row.config,
        "quick": quick, "quick_note": row.quick_note if quick else None, "as_recorded": as_recorded,
        "overrides": settings, "extra_overrides": list(overrides or []),
        "recorded_settings": recorded,
        "differs_from_recorded": differs, "as_recorded_would_differ": hint,
        "paper_figure": row.paper_figure, "paper_value": row.paper_value,
        "ours_recorded": row.ours, "ours_recorded_data": row.ours_data,
        "ours_recorded_command": row.command(),
        "this_run": figure, "this_run_is": this_run_is,
        "source_accuracy": spiking["source_accuracy"] if spiking is not None else None,
        "epochs": summary.get("epochs"), "train_seconds": summary.get("train_seconds"),
        "run_dir": str(target), "command": shlex.join(command),
    }
    write_json(target / "reproduce.json", record)
    return record


def _differences(config_path: Path, recorded: list[str] | None, config: Any) -> dict[str, list[Any]] | None:
    """What this run's config changes from the recorded run's (the config with ``recorded``, its
    --set items), key by key as [recorded, this run] (None: no recorded run to compare with).
    Values are compared parsed, so ``[105, 105]`` and ``[105,105]`` are the same; where and how
    the run is computed (the keys a resume may change, FREE_ON_RESUME) is left out."""
    from binlearn.experiment.runner import FREE_ON_RESUME, config_changes

    if recorded is None:
        return None
    try:
        reference = load_config(config_path, recorded)
    except ConfigError:
        return None
    changes = config_changes(config_to_dict(reference), config_to_dict(config))
    return {key: value for key, value in changes.items() if key not in FREE_ON_RESUME}


def _shown(value: Any) -> str:
    return "unset" if value is None else repr(value)


def _as_recorded_differs(config_path: Path, recorded: list[str] | None, overrides: list[str],
                         config: Any) -> bool:
    """Whether --as-recorded (the recorded --set items, then ``overrides``) gives another run."""
    if not recorded:
        return False
    return bool(_differences(config_path, [*recorded, *overrides], config))


def note_line(differs: dict[str, list[Any]], hint: bool) -> str:
    """One line naming how this run differs from the one that measured the recorded figure
    (``hint``: the recorded run has --set items this run lacks, which --as-recorded repeats)."""
    shown = "; ".join(f"{key} {_shown(before)} → {_shown(after)}" for key, (before, after) in differs.items())
    return (f"NOTE: this run differs from the one that measured the recorded figure (recorded → this run): "
            f"{shown}" + (" (--as-recorded repeats the recorded settings)" if hint else ""))


def format_result(record: dict[str, Any]) -> str:
    """Paper vs ours vs this run, side by side (what ``binlearn reproduce ROW`` prints)."""
    def figure(value: float | None) -> str:
        return "–" if value is None else f"{value:.4f}"

    lines = [f"{record['row']}: {record['what']}"]
    extra = " ".join(f"--set {item}" for item in record["extra_overrides"])
    if record["quick"]:
        lines.append(f"QUICK RUN, not the published settings: {record['quick_note']}"
                     + (f"; then {extra}" if extra else ""))
    if not record["quick"] and record.get("differs_from_recorded"):
        hint = record.get("as_recorded_would_differ", False)
        lines.append(note_line(record["differs_from_recorded"], hint))
    lines += [f"  paper:          {record['paper_figure']}",
              f"  ours, recorded: {figure(record['ours_recorded'])}"
              + (f"  [{record['ours_recorded_data']}]" if record["ours_recorded_data"] else ""),
              f"  this run:       {figure(record['this_run'])}  ({record['this_run_is']}, "
              f"{record['epochs']} epoch(s), {record['train_seconds']:.0f} s training)",
              *([f"  its source:     {figure(record['source_accuracy'])}  (the trained network, before "
                 "conversion)"] if record["source_accuracy"] is not None else []),
              f"  written to {record['run_dir']}/reproduce.json"]
    return "\n".join(lines)

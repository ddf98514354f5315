"""``binlearn reproduce``: run a paper-table row of ``docs/results.toml`` and set the figure it
gives beside the paper's and our last measured one.

``reproduce(ROW)`` trains the row's config at its published settings (``quick``: the row's
scaled-down overrides, which the result says it used), runs ``binlearn convert`` after it for
the spiking rows, and writes ``reproduce.json`` into the run directory.

``reproduce_claim(CLAIM)`` runs a claim's two arms (float first) for every seed, each a train of
its row's config with the claim's settings (:meth:`~binlearn.reproduce.results.Claim.settings`),
into ``PARENT/ARM-sSEED``; a finished seed is kept, a checkpointed one resumed, so the same
command continues an interrupted claim. It writes ``claim.json`` into the parent directory and
never edits the results file (a person records the figures there, as for rows).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from binlearn.atomic import write_json
from binlearn.experiment.config import ConfigError, config_to_dict, load_config
from binlearn.reproduce.results import PAPERS, SETTINGS, Claim, PaperRow, Results, Stats, load_results, meets

__all__ = ["reproduce", "list_rows", "format_list", "format_result", "list_claims", "format_claims",
           "reproduce_claim", "format_claim_result"]


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
    if results.claims:
        lines.append("the papers' relative claims as paired runs: binlearn reproduce --claims")
    return "\n".join(lines)


def list_claims(results: Results) -> list[dict[str, Any]]:
    """Every claim as a JSON-able record (what ``--claims --json`` prints)."""
    return [claim.record() for claim in results.claims]


def format_claims(results: Results) -> str:
    """One block per claim: its text, relaxation, each arm's test accuracy and the paired
    difference (mean ± sample sd over the seeds, in points), the paper's difference, the verdict."""
    lines = []
    for claim in results.claims:
        first, second = claim.labels
        width = max(len(first), len(second), len("difference"))
        lines.append(f"{claim.id}: {claim.claim}")
        lines.append(f"  {'setting':{width}s}  {claim.setting}: {SETTINGS[claim.setting]}")
        for label, arm in zip(claim.labels, claim.arms.values(), strict=True):
            lines.append(f"  {label:{width}s}  test accuracy {arm.stats.text(unit='%')}  ({arm.row})")
        lines.append(f"  {'difference':{width}s}  {second} − {first}: "
                     f"{claim.difference.text(signed=True, unit='points')}; paper "
                     f"{claim.paper_difference:+.1f}, met at >= {claim.threshold:+.1f}")
        lines.append(f"  {'verdict':{width}s}  {claim.verdict}"
                     + (f" ({claim.not_testable})" if claim.not_testable else ""))
        if claim.note:
            lines.append(f"  {'note':{width}s}  {claim.note}")
        lines.append("")
    lines.append("run one: binlearn reproduce CLAIM [--quick] [--run-dir DIR] [--set ...]")
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


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def format_result(record: dict[str, Any]) -> str:
    """Paper vs ours vs this run, side by side (what ``binlearn reproduce ROW`` prints)."""
    lines = [f"{record['row']}: {record['what']}"]
    extra = " ".join(f"--set {item}" for item in record["extra_overrides"])
    if record["quick"]:
        lines.append(f"QUICK RUN, not the published settings: {record['quick_note']}"
                     + (f"; then {extra}" if extra else ""))
    if not record["quick"] and record.get("differs_from_recorded"):
        hint = record.get("as_recorded_would_differ", False)
        lines.append(note_line(record["differs_from_recorded"], hint))
    lines += [f"  paper:          {record['paper_figure']}",
              f"  ours, recorded: {_figure(record['ours_recorded'])}"
              + (f"  [{record['ours_recorded_data']}]" if record["ours_recorded_data"] else ""),
              f"  this run:       {_figure(record['this_run'])}  ({record['this_run_is']}, "
              f"{record['epochs']} epoch(s), {record['train_seconds']:.0f} s training)",
              *([f"  its source:     {_figure(record['source_accuracy'])}  (the trained network, before "
                 "conversion)"] if record["source_accuracy"] is not None else []),
              f"  written to {record['run_dir']}/reproduce.json"]
    return "\n".join(lines)


def _claim_run_dir(claim: Claim, quick: bool) -> Path:
    stem = claim.id.replace("/", "-") + ("-quick" if quick else "")
    return Path("runs") / "claims" / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _finished_config_differs(run_dir: Path, config: Any) -> dict[str, list[Any]]:
    """How a finished seed's config (its config.toml) differs from the one this command would
    train, key by key (where and how it is computed, FREE_ON_RESUME, left out)."""
    from binlearn.experiment.runner import FREE_ON_RESUME, config_changes

    saved = load_config(run_dir / "config.toml")
    changes = config_changes(config_to_dict(saved), config_to_dict(config))
    return {key: value for key, value in changes.items() if key not in FREE_ON_RESUME}


def _run_seed(config: Any, run_dir: Path, *, quiet: bool) -> tuple[dict[str, Any], str]:
    """One arm's run of one seed: kept when finished (summary.json; its config must be this
    one), resumed from its checkpoint, else trained. Returns its summary and which it was."""
    from binlearn.experiment.runner import train

    if (run_dir / "summary.json").is_file():
        differs = _finished_config_differs(run_dir, config)
        if differs:
            shown = "; ".join(f"{key} {_shown(a)} → {_shown(b)}" for key, (a, b) in differs.items())
            raise ConfigError(f"{run_dir} holds a finished run of another config (its → this command's: "
                              f"{shown}); give another --run-dir")
        return json.loads((run_dir / "summary.json").read_text()), "finished before"
    resume = (run_dir / "checkpoint.pt").is_file()
    return train(config, run_dir, resume=resume, quiet=quiet), "resumed" if resume else "trained"


def reproduce_claim(claim_id: str, *, quick: bool = False, run_dir: Path | None = None,
                    overrides: list[str] | None = None, data_dir: str | None = None,
                    results_path: str | Path | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run both arms of ``claim_id`` (float first) for every seed (``quick``: the claim's quick
    items, first seed only), each ``train`` of the arm's row config with
    ``Claim.settings(arm, seed, quick)`` then ``overrides``, into ``PARENT/ARM-sSEED``; return
    and write (``PARENT/claim.json``) each arm's test accuracy and the paired difference."""
    results = load_results(results_path)
    claim = results.claim(claim_id)
    if claim is None:
        raise ConfigError(f"unknown claim {claim_id!r} (binlearn reproduce --claims shows them all)")
    if claim.not_testable is not None:
        raise ConfigError(f"claim {claim.id} is not testable here: {claim.not_testable}")
    rows = {row.id: row for row in results.rows}
    seeds = claim.seeds[:1] if quick else claim.seeds
    parent = Path(run_dir) if run_dir is not None else _claim_run_dir(claim, quick)
    configs = {}  # every run's config, loaded before the first trains: a bad --set stops nothing midway
    for key, arm in claim.arms.items():
        config_path = results.root / rows[arm.row].config
        if not config_path.is_file():
            raise ConfigError(f"claim {claim.id}: {key} arm's config {rows[arm.row].config} is not in "
                              f"{results.root}")
        for seed in seeds:
            config = load_config(config_path, [*claim.settings(key, seed, quick), *(overrides or [])])
            if data_dir:
                config.data.data_dir = data_dir
            configs[key, seed] = config
    arms: dict[str, Any] = {}
    for (key, arm), label in zip(claim.arms.items(), claim.labels, strict=True):
        runs: list[dict[str, Any]] = []
        for seed in seeds:
            target = parent / f"{key}-s{seed}"
            if not quiet:
                print(f"{claim.id}: {label} arm ({arm.row}), seed {seed} -> {target}", file=sys.stderr)
            summary, status = _run_seed(configs[key, seed], target, quiet=quiet)
            runs.append({"seed": seed, "run_dir": str(target), "status": status,
                         "test_accuracy": summary.get("test_accuracy"),
                         "validation_accuracy": summary.get("validation_accuracy")})
        tests = [run["test_accuracy"] for run in runs if run["test_accuracy"] is not None]
        arms[key] = {"label": label, "row": arm.row, "config": rows[arm.row].config,
                     "overrides": [*claim.settings(key, seeds[0], quick)[:-1], *(overrides or [])],
                     "runs": runs, "test_points": Stats.of([100 * t for t in tests]).record()}
    pairs = [100 * (b["test_accuracy"] - f["test_accuracy"])
             for f, b in zip(arms["float"]["runs"], arms["binary"]["runs"], strict=True)
             if f["test_accuracy"] is not None and b["test_accuracy"] is not None]
    difference = Stats.of(pairs)
    command = ["binlearn", "reproduce", claim.id, *(["--quick"] if quick else []), "--run-dir", str(parent),
               *[part for item in overrides or [] for part in ("--set", item)],
               *(["--data-dir", data_dir] if data_dir else []),
               *(["--results", str(results_path)] if results_path is not None else [])]
    record: dict[str, Any] = {
        "claim": claim.id, "what": claim.claim, "setting": claim.setting, "quick": quick,
        "quick_items": claim.quick if quick else None, "extra_overrides": list(overrides or []),
        "seeds": seeds, "labels": list(claim.labels), **arms,
        "difference_points": {**difference.record(), "values": pairs},
        "paper_difference": claim.paper_difference, "within": claim.within, "threshold": claim.threshold,
        "this_run_meets": None if quick or difference.mean is None else meets(difference, claim.threshold),
        "recorded_verdict": claim.verdict, "run_dir": str(parent), "command": shlex.join(command),
    }
    write_json(parent / "claim.json", record)  # the seeds' runs made the parent directory
    return record


def format_claim_result(record: dict[str, Any]) -> str:
    """Each arm's test accuracy per seed and the paired difference (what ``reproduce CLAIM``
    prints)."""
    first, second = record["labels"]
    lines = [f"{record['claim']}: {record['what']}"]
    if record["quick"]:
        extra = " ".join(f"--set {item}" for item in record["extra_overrides"])
        quick = " ".join(record["quick_items"])
        lines.append(f"QUICK RUN, not the claim's settings: {quick}, first seed only"
                     + (f"; then {extra}" if extra else ""))
    width = max(len(first), len(second))
    for key in ("float", "binary"):
        arm = record[key]
        seeds = ", ".join(f"s{run['seed']} {_figure(run['test_accuracy'])}" for run in arm["runs"])
        stats = Stats(**arm["test_points"])
        lines.append(f"  {arm['label']:{width}s}  test accuracy {stats.text(unit='%')}  [{seeds}]  "
                     f"({arm['row']})")
    difference = Stats(**{k: v for k, v in record["difference_points"].items() if k != "values"})
    verdict = "" if record["this_run_meets"] is None else f"; this run: {record['this_run_meets']}"
    lines.append(f"  {second} − {first}: {difference.text(signed=True, unit='points')} (paired by seed); "
                 f"paper {record['paper_difference']:+.1f}, met at >= {record['threshold']:+.1f}{verdict}")
    lines.append(f"  written to {record['run_dir']}/claim.json; the same command continues or repeats it: "
                 f"{record['command']}")
    return "\n".join(lines)

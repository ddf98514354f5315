"""``binlearn compare``: several runs side by side, as a table of figures and one plot.

Reads each run directory's metrics.jsonl (a line that is not a JSON record, torn or
edited, is skipped with a warning and listed in the row's ``skipped_lines``) and
meta.json; writes nothing into the runs. A branch (``--branch-from``) carries its parent's
first records, so the curves of a parent and its branches overlap until the branch point
and part there.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from binlearn.atomic import checked_output
from binlearn.experiment.plots import pyplot, save_png
from binlearn.experiment.rundir import MetricsWarning, RunError, finite_number, read_metrics

__all__ = ["compare_runs", "METRICS"]

METRICS = ("test_accuracy", "validation_accuracy", "train_accuracy", "train_loss")


def _metric_points(run_dir: Path, records: list[dict[str, Any]], metric: str) -> list[tuple[int, float]]:
    """(epoch, value) of every record that holds ``metric``; a value that is not a finite
    number is one line naming the file, the epoch and the field."""
    points = []
    for record in records:
        value = record.get(metric)
        if value is None:
            continue
        if not finite_number(value):
            raise RunError(f"{run_dir}/metrics.jsonl, epoch {record['epoch']}: {metric} is {value!r}, not a "
                           "number (an edited file?)")
        points.append((record["epoch"], value))
    return points


def _parent(run_dir: Path) -> dict[str, Any] | None:
    """meta.json's ``branched_from`` as {run_dir: str, after_epoch: int}, or None; a meta.json
    that cannot be read or holds another shape is left out with a one-line warning."""
    path = run_dir / "meta.json"
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        warnings.warn(f"{path} is not a JSON file; its branch point is not shown", MetricsWarning,
                      stacklevel=3)
        return None
    parent = meta.get("branched_from") if isinstance(meta, dict) else None
    if parent is None:
        return None
    after = parent.get("after_epoch") if isinstance(parent, dict) else None
    name = parent.get("run_dir") if isinstance(parent, dict) else None
    if not (isinstance(after, int) and not isinstance(after, bool) and after >= 0 and isinstance(name, str)):
        warnings.warn(f"{path}: branched_from is not a table with run_dir (text) and after_epoch (an "
                      "integer); its branch point is not shown", MetricsWarning, stacklevel=3)
        return None
    return {"run_dir": name, "after_epoch": after}


def _run_figures(run_dir: Path, metric: str) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise RunError(f"run directory not found: {run_dir}")
    log = read_metrics(run_dir / "metrics.jsonl")
    records = log.records
    points = _metric_points(run_dir, records, metric)
    if not points:
        raise RunError(f"{run_dir} has no {metric} in metrics.jsonl (no finished epoch, or that split "
                       "was not evaluated)")
    best = (min if metric == "train_loss" else max)(points, key=lambda p: p[1])
    seconds = [r.get("epoch_seconds", 0.0) for r in records]
    wrong = next((r for r, s in zip(records, seconds, strict=True) if not finite_number(s)), None)
    if wrong is not None:
        raise RunError(f"{run_dir}/metrics.jsonl, epoch {wrong['epoch']}: epoch_seconds is "
                       f"{wrong.get('epoch_seconds')!r}, not a number (an edited file?)")
    return {"run_dir": str(run_dir), "epochs": records[-1]["epoch"], f"last_{metric}": points[-1][1],
            f"best_{metric}": best[1], "best_epoch": best[0],
            "train_seconds": sum(seconds),
            "branched_from": _parent(run_dir),
            "skipped_lines": log.skipped, "points": points}


def compare_runs(run_dirs: list[Path], output: Path | None = None, metric: str = "test_accuracy",
                 labels: list[str] | None = None, from_epoch: int = 1) -> list[dict[str, Any]]:
    """One row of figures per run (last and best ``metric``, epochs, training seconds, parent
    of a branch); with ``output``, a PNG of ``metric`` against epoch (from ``from_epoch`` on),
    one line per run."""
    if metric not in METRICS:
        raise RunError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    if labels is not None and len(labels) != len(run_dirs):
        raise RunError(f"{len(labels)} labels for {len(run_dirs)} runs")
    if output is not None:
        if Path(output).suffix.lower() != ".png":
            raise RunError(f"--output {output}: the plot is a PNG image; give a file name ending in .png")
        checked_output(output)
    rows = [_run_figures(Path(run_dir), metric) for run_dir in run_dirs]
    names = labels or [Path(row["run_dir"]).name for row in rows]
    if output is not None:
        _plot(rows, names, metric, Path(output), from_epoch)
    return [{"label": name, **{k: v for k, v in row.items() if k != "points"}}
            for name, row in zip(names, rows, strict=True)]


def _plot(rows: list[dict[str, Any]], names: list[str], metric: str, path: Path, from_epoch: int) -> None:
    from matplotlib.ticker import MaxNLocator

    fig, axis = pyplot().subplots(figsize=(8, 4.5))
    for row, name in zip(rows, names, strict=True):
        shown = [p for p in row["points"] if p[0] >= from_epoch] or row["points"][-1:]
        epochs, values = zip(*shown, strict=True)
        axis.plot(epochs, values, marker="o", markersize=2.5, linewidth=1.2,
                  label=f"{name} (last {values[-1]:.4f})")
        parent = row["branched_from"]
        if parent and parent.get("after_epoch"):
            axis.axvline(parent["after_epoch"], color="grey", linewidth=0.6, linestyle=":")
    axis.set_xlabel("epoch")
    axis.set_ylabel(metric.replace("_", " "))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    try:
        save_png(fig, path, dpi=110)
    except OSError as error:
        raise RunError(f"cannot write {path}: {error.strerror or error}") from None

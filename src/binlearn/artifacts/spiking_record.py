"""The spike record of a spiking network run on a data split, and its one writer.

Every way binlearn runs a network as a spiking network — a converted feed-forward network
(:mod:`binlearn.artifacts.spiking`) or a binary EP network read as the spiking network it is
(:mod:`binlearn.artifacts.spiking_ep`) — returns one record (a JSON-able dict) with at least
the keys of :data:`RECORD_KEYS`:

    source_accuracy            the source network's accuracy on the same images
    accuracy_per_step          [T] accuracy after each time step t = 1..T
    final_accuracy, best_accuracy
    steps_to_within_1_point    the first t from which the accuracy stays within 1 point of the
                               source's (None: the last step is not within)
    spikes_per_inference, synaptic_ops_per_inference
    firing_rate_per_layer      {layer: spikes / (units · T)}
    settings                   how it ran

and optionally ``synaptic_ops_per_step`` ([T]) and ``accuracy_per_step_spike_count`` (a
second readout). :func:`write_spiking` writes ``spiking.json`` and ``latency.png`` from it;
:func:`read_spiking_record` reads one back (``binlearn convert --compare``), validated, with
one-line errors naming the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from binlearn.atomic import remove_stale_temporaries, write_json
from binlearn.experiment.plots import pyplot, save_png
from binlearn.experiment.rundir import finite_number
from binlearn.experiment.runner import RunError

__all__ = ["SPIKING_NAME", "LATENCY_NAME", "RECORD_KEYS", "steps_within", "write_spiking", "plot_latency",
           "read_spiking_record"]

SPIKING_NAME = "spiking.json"
LATENCY_NAME = "latency.png"
RECORD_KEYS = ("source_accuracy", "accuracy_per_step", "final_accuracy", "best_accuracy",
               "steps_to_within_1_point", "spikes_per_inference", "synaptic_ops_per_inference",
               "firing_rate_per_layer", "settings")


def steps_within(accuracy_per_step: list[float], reference: float, points: float = 1.0) -> int | None:
    """The first step t (1-based) from which the accuracy stays within ``points`` percentage
    points of ``reference`` up to the last step; None if the last step is not within."""
    within = None
    for step in range(len(accuracy_per_step), 0, -1):
        if accuracy_per_step[step - 1] < reference - points / 100.0:
            break
        within = step
    return within


def write_spiking(record: dict[str, Any], folder: Path,
                  compare: list[tuple[Path, dict[str, Any]]] | None = None) -> list[Path]:
    """``folder/spiking.json`` (the record) and ``folder/latency.png`` (its accuracy curve,
    with the ``compare`` records' curves); returns the two paths."""
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:  # pragma: no cover - every producer fills them; a programming error, not a user's
        raise KeyError(f"a spike record without {', '.join(missing)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, png_path = folder / SPIKING_NAME, folder / LATENCY_NAME
    remove_stale_temporaries(folder, [SPIKING_NAME, LATENCY_NAME])  # a killed convert's leftovers
    write_json(json_path, record)
    curves = [(label(record), record), *[(label(other), other) for _, other in (compare or [])]]
    name = Path(str(record.get("run_dir", "?"))).name
    plot_latency(curves, png_path, title=f"{name}: accuracy vs time steps")
    return [json_path, png_path]


def label(record: dict[str, Any]) -> str:
    """A curve's legend: the run's name and the settings that shape its spikes."""
    found = record.get("settings")
    settings: dict[str, Any] = found if isinstance(found, dict) else {}
    parts: list[Any] = [Path(str(record.get("run_dir", "?"))).name]
    if record.get("kind") == "ep":
        parts += [f"binary EP, {settings.get('schedule', '?')}"]
    else:
        parts += [*([f"p={settings['percentile']}"] if "percentile" in settings else []),
                  settings.get("reset", "?"), "one-step" if not settings.get("delay", True) else "delay",
                  f"v0={settings.get('init', '?')}"]
    return " ".join(str(p) for p in parts)


def plot_latency(curves: list[tuple[str, dict[str, Any]]], path: Path, title: str = "") -> None:
    """Accuracy against time steps, one line per record (a second readout dotted), each
    source's accuracy dashed; beside it the synaptic operations per step when the first record
    has them."""
    plt = pyplot()
    per_step_ops = curves[0][1].get("synaptic_ops_per_step") if curves else None
    fig, axes = plt.subplots(1, 2 if per_step_ops else 1, figsize=(11 if per_step_ops else 7, 4.5),
                             squeeze=False)
    ax = axes[0][0]
    for name, record in curves:
        accuracy = record["accuracy_per_step"]
        line, = ax.plot(range(1, len(accuracy) + 1), accuracy, marker=".", label=name)
        second = record.get("accuracy_per_step_spike_count")
        if second:
            ax.plot(range(1, len(second) + 1), second, linestyle=":", color=line.get_color(),
                    label=f"{name} (spike count over 1..t)")
        ax.axhline(record["source_accuracy"], color=line.get_color(), linestyle="--", linewidth=1)
    ax.set_xlabel("time step T")
    ax.set_ylabel("test accuracy (dashed: source network)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    if per_step_ops:
        ops = axes[0][1]
        ops.plot(range(1, len(per_step_ops) + 1), per_step_ops, marker=".")
        ops.set_xlabel("time step")
        ops.set_ylabel("synaptic operations per inference")
        ops.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def read_spiking_record(path: Path, option: str = "--compare") -> tuple[Path, dict[str, Any]]:
    """``path`` read as a spike record written by ``binlearn convert``: a JSON object whose
    ``accuracy_per_step`` is a non-empty list of finite numbers in [0, 1], ``source_accuracy``
    one such number and ``settings`` a table. Anything else is one line naming the file and
    the field (:class:`~binlearn.experiment.RunError`)."""
    where = f"{option}: {path}"
    if not path.exists():
        raise RunError(f"{where} not found (a spiking.json written by binlearn convert)")
    if not path.is_file():
        raise RunError(f"{where} is not a file (a spiking.json written by binlearn convert)")
    try:
        record = json.loads(path.read_text())
    except (ValueError, RecursionError):  # not UTF-8 or JSON, an integer of > 4300 digits, too deep
        raise RunError(f"{where} is not a spiking.json file (not JSON)") from None
    except OSError as error:
        raise RunError(f"{where} cannot be read ({error.strerror or error})") from None
    if not isinstance(record, dict):
        raise RunError(f"{where} is not a spiking.json file (not a JSON object)")
    accuracy = record.get("accuracy_per_step")
    if accuracy is None:
        raise RunError(f"{where} has no accuracy_per_step (not written by binlearn convert)")
    if (not isinstance(accuracy, list) or not accuracy
            or not all(finite_number(a) and 0 <= a <= 1 for a in accuracy)):
        raise RunError(f"{where}: accuracy_per_step must be a non-empty list of numbers in [0, 1]")
    source: Any = record.get("source_accuracy")
    if not (finite_number(source) and 0 <= source <= 1):
        raise RunError(f"{where}: source_accuracy must be a number in [0, 1], not {source!r}")
    if not isinstance(record.get("settings", {}), dict):
        raise RunError(f"{where}: settings must be a table (JSON object)")
    ops = record.get("synaptic_ops_per_step")
    if ops is not None and not (isinstance(ops, list) and all(finite_number(o) for o in ops)):
        record = {k: v for k, v in record.items() if k != "synaptic_ops_per_step"}
    second = record.get("accuracy_per_step_spike_count")
    if second is not None and not (isinstance(second, list) and all(finite_number(a) for a in second)):
        record = {k: v for k, v in record.items() if k != "accuracy_per_step_spike_count"}
    return path, record

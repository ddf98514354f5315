"""A trained binary EP run read as an event-driven spiking network, on a whole split.

Wires a run (config + checkpoint + data) to :func:`binlearn.spiking.ep.simulate_ep`: every test
image runs T time steps (one relaxation step each) and the accuracy after every step, the
spikes and the synaptic operations per inference are written to ``RUN_DIR/spiking.json``
and ``RUN_DIR/latency.png``. The relaxation accuracy (the run's own evaluation: T_eval free
steps from the initial state, :meth:`EnergyGradients.predict`) is measured on the same images
and, for T ≥ T_eval, compared prediction by prediction with the spiking network's at step
T_eval (``identical_predictions_at_eval_steps``).

Python::

    from binlearn.experiment.spiking_ep import spiking_ep_run
    summary = spiking_ep_run("runs/RUN", timesteps=40)
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from binlearn.atomic import write_json
from binlearn.experiment.config import ConfigError
from binlearn.experiment.learners.energy import EnergyGradients
from binlearn.experiment.rundir import read_metrics
from binlearn.experiment.trained import load_trained
from binlearn.spiking.ep import READOUTS, SpikingEPError, check_spiking, fan_outs, simulate_ep

__all__ = ["spiking_ep_run", "convert_ep_run", "is_spiking_ep_config", "plot_latency", "steps_within",
           "SPIKING_NAME", "LATENCY_NAME"]

SPIKING_NAME = "spiking.json"
LATENCY_NAME = "latency.png"


def steps_within(accuracy_per_step: list[float], reference: float, points: float = 1.0) -> int | None:
    """The first step t (1-based) from which the accuracy stays within ``points`` percentage
    points of ``reference`` up to the last step; None if the last step is not within."""
    within = None
    for step in range(len(accuracy_per_step), 0, -1):
        if accuracy_per_step[step - 1] < reference - points / 100.0:
            break
        within = step
    return within


def spiking_ep_run(run_dir: str | Path, *, timesteps: int | None = None, batch_size: int | None = None,
                   check: bool = False, split: str = "test", output: str | Path | None = None,
                   quiet: bool = False) -> dict[str, Any]:
    """Run a binary EP run's network as a spiking network on ``split``; write spiking.json and latency.png.

    Args:
        run_dir: a run of a binary-weight, binary-activation fully connected energy network.
        timesteps: T, time steps per inference (default: the run's evaluation steps T_eval).
        batch_size: images per batch (default: the run's ``data.eval_batch_size``).
        check: recompute every step's currents by row adds and count mismatching steps (slower).
        split: ``"test"`` (the official test set), ``"validation"`` or ``"train"``.
        output: folder for the two files (default: ``run_dir``).
    Returns:
        the summary written to spiking.json.
    """
    run_dir = Path(run_dir)
    trained = load_trained(run_dir, device="cpu", quiet=quiet)
    if trained.model_kind != "energy":
        raise SpikingEPError(f"{run_dir} trains model.kind = {trained.model_kind!r}; the EP spiking view "
                             "reads energy (EP / BPTT) runs")
    config, data, learner = trained.config, trained.data, trained.learner
    source = getattr(learner, "source", None)  # the gradient learner's model family
    if not isinstance(source, EnergyGradients):  # pragma: no cover - model.kind = "energy" builds one
        raise SpikingEPError(f"{run_dir}: not an energy learner")
    net = source.model
    check_spiking(net)
    eval_steps = int(source.eval_steps)
    steps = eval_steps if timesteps is None else int(timesteps)
    if steps < 1:
        raise ConfigError(f"--timesteps must be >= 1, got {steps}")
    batch_size = int(batch_size or config.data.eval_batch_size)
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    splits = {"test": (data.x_test, data.y_test), "train": (data.x_train, data.y_train),
              "validation": (data.x_val, data.y_val)}
    if split not in splits:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(splits)}")
    x, y = splits[split]
    if len(x) == 0:
        raise ConfigError(f"the run's {split} split is empty")
    schedule = config.rule.relaxation
    count = net.num_layers
    correct = {name: torch.zeros(steps, dtype=torch.int64) for name in READOUTS}
    relaxation_correct = identical = mismatches = input_ops = 0
    spikes = torch.zeros(steps + 1, count, dtype=torch.int64)
    synops = torch.zeros(steps, count, dtype=torch.int64)
    delta = torch.zeros(steps, count, dtype=torch.int64)
    started = time.perf_counter()
    with tqdm(total=len(x), desc="spiking", unit="image", disable=quiet, leave=False) as bar:
        for start in range(0, len(x), batch_size):
            images, labels = x[start:start + batch_size], y[start:start + batch_size]
            result = simulate_ep(net, images, steps, schedule=schedule, check=check)
            for name in READOUTS:
                correct[name] += (result.predictions[name] == labels).sum(dim=1)
            reference = learner.predict(images)  # the run's own evaluation (T_eval steps)
            relaxation_correct += int((reference == labels).sum())
            if steps >= eval_steps:
                identical += int((result.predictions["relaxation"][eval_steps - 1] == reference).sum())
            spikes += result.spikes
            synops += result.synops
            delta += result.delta_synops
            input_ops += result.input_ops
            mismatches += result.mismatches
            bar.update(len(images))
    seconds = time.perf_counter() - started
    samples = len(x)
    sizes = [math.prod(shape) for shape in net.layer_shapes]
    fans = fan_outs(net)
    names = [f"hidden{i}" for i in range(1, count)] + ["output"]
    per_step = {name: [int(c) / samples for c in correct[name]] for name in READOUTS}
    relaxation_accuracy = relaxation_correct / samples
    # the same relaxation with dense float products: every neuron into every neighbour at
    # every step, and the image into the first layer once
    dense_macs = steps * sum(size * fan for size, fan in zip(sizes, fans, strict=True)) + \
        math.prod(net.input_shape) * sizes[0]
    summary: dict[str, Any] = {
        "kind": "ep",
        "run_dir": str(run_dir), "epoch": trained.epoch, "split": split, "samples": samples,
        "source_accuracy": relaxation_accuracy,
        "source": f"relaxation, {eval_steps} free steps ({schedule})",
        "recorded_test_accuracy": _recorded_accuracy(run_dir, trained.epoch),
        "accuracy_per_step": per_step["relaxation"],
        "final_accuracy": per_step["relaxation"][-1],
        "best_accuracy": max(per_step["relaxation"]),
        "accuracy_per_step_spike_count": per_step["spike_count"],
        "steps_to_within_1_point": steps_within(per_step["relaxation"], relaxation_accuracy),
        "steps_to_within_1_point_spike_count": steps_within(per_step["spike_count"], relaxation_accuracy),
        "identical_predictions_at_eval_steps": identical if steps >= eval_steps else None,
        "spikes_per_inference": int(spikes[1:].sum()) / samples,
        "spikes_per_inference_per_layer": [int(s) / samples for s in spikes[1:].sum(dim=0)],
        "initial_spikes_per_inference_per_layer": [int(s) / samples for s in spikes[0]],
        "synaptic_ops_per_inference": int(synops.sum()) / samples,
        "synaptic_ops_per_inference_per_layer": [int(s) / samples for s in synops.sum(dim=0)],
        "synaptic_ops_per_step": [int(s) / samples for s in synops.sum(dim=1)],
        "delta_synaptic_ops_per_inference": int(delta.sum()) / samples,
        "delta_synaptic_ops_per_inference_per_layer": [int(s) / samples for s in delta.sum(dim=0)],
        "input_macs_per_inference": input_ops / samples,
        "source_macs_per_inference": dense_macs,
        "firing_rate_per_layer": {name: int(s) / (samples * size * steps)
                                  for name, s, size in zip(names, spikes[1:].sum(dim=0), sizes, strict=True)},
        "layers": names, "layer_sizes": sizes, "fan_out_per_layer": list(fans),
        "seconds": round(seconds, 2),
        "settings": {"timesteps": steps, "eval_steps": eval_steps, "schedule": schedule,
                     "batch_size": batch_size, "check": check,
                     "readout": "relaxation: output group with the most spikes at step t, ties broken by "
                                "the group's mean membrane; spike_count: spikes summed over steps 1..t",
                     "threads": torch.get_num_threads()},
    }
    if check:
        summary["steps_with_membrane_mismatch"] = mismatches
    folder = Path(output) if output else run_dir
    write_json(folder / SPIKING_NAME, summary)
    plot_latency(summary, folder / LATENCY_NAME)
    summary["outputs"] = [str(folder / SPIKING_NAME), str(folder / LATENCY_NAME)]
    return summary


def _recorded_accuracy(run_dir: Path, epoch: int) -> float | None:
    """The test accuracy metrics.jsonl recorded for ``epoch`` during training (None if absent)."""
    records = [r for r in read_metrics(run_dir / "metrics.jsonl", epoch).records if r["epoch"] == epoch]
    return records[-1].get("test_accuracy") if records else None


def plot_latency(summary: dict[str, Any], path: Path) -> None:
    """Accuracy against time step (both readouts, the relaxation accuracy as a line) and
    synaptic operations per step."""
    from binlearn.experiment.plots import pyplot, save_png

    plt = pyplot()
    steps = range(1, len(summary["accuracy_per_step"]) + 1)
    fig, (ax_acc, ax_ops) = plt.subplots(1, 2, figsize=(10, 4))
    ax_acc.plot(steps, summary["accuracy_per_step"], marker=".",
                label="spikes at step t (relaxation readout)")
    ax_acc.plot(steps, summary["accuracy_per_step_spike_count"], marker=".", label="spike count over 1..t")
    ax_acc.axhline(summary["source_accuracy"], color="gray", linestyle="--",
                   label=f"relaxation, T = {summary['settings']['eval_steps']}")
    ax_acc.set_xlabel("time step")
    ax_acc.set_ylabel(f"{summary['split']} accuracy")
    ax_acc.set_ylim(max(0.0, min(summary["accuracy_per_step"][-1], summary["source_accuracy"]) - 0.2), 1.0)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    ax_ops.plot(steps, summary["synaptic_ops_per_step"], marker=".")
    ax_ops.set_xlabel("time step")
    ax_ops.set_ylabel("synaptic operations per inference")
    ax_ops.grid(alpha=0.3)
    fig.suptitle(f"{Path(summary['run_dir']).name}: binary EP network as a spiking network")
    fig.tight_layout()
    save_png(fig, path)


_CONVERSION_ONLY = {"percentile": "--percentile", "reset": "--reset", "one_step": "--one-step",
                    "init_half": "--init-half", "encoding": "--encoding",
                    "calibration_images": "--calibration-images"}
"""``binlearn convert`` options that set how a feed-forward source is converted; a binary EP
network is already spiking (its thresholds, resets and delays are its own dynamics)."""


def is_spiking_ep_config(raw: dict[str, Any]) -> bool:
    """True for a run config (the raw config.toml table) of a fully connected energy network
    with binary weights and binary neurons: the runs :func:`spiking_ep_run` reads."""
    model = raw.get("model", {})
    return (model.get("kind") == "energy" and model.get("architecture", "fc") == "fc"
            and model.get("neuron") == "binary" and model.get("weights") == "binary")


def convert_ep_run(run_dir: str | Path, settings: Any, output: str | Path | None = None, *,
                   quiet: bool = False) -> dict[str, Any]:
    """``binlearn convert`` of a binary EP run: :func:`spiking_ep_run` with ``--timesteps`` and
    ``--batch-size``; a conversion option set away from its default is refused in one line.

    ``settings``: the command's settings (fields ``timesteps``, ``batch_size``, ``device`` and the
    conversion options of :data:`_CONVERSION_ONLY`, whose defaults are the settings type's own).
    """
    defaults = type(settings)()
    for field, flag in _CONVERSION_ONLY.items():
        if getattr(settings, field, None) != getattr(defaults, field, None):
            raise SpikingEPError(f"{flag} does not apply to {run_dir}: a binary EP network is already a "
                                 "spiking network (its spikes are its Heaviside activations, one relaxation "
                                 "step per time step); only --timesteps, --batch-size and --output apply")
    if str(getattr(settings, "device", "auto")) not in ("auto", "cpu"):
        raise SpikingEPError(f"--device {settings.device}: the EP spiking view runs on the CPU (row adds)")
    return spiking_ep_run(run_dir, timesteps=settings.timesteps, batch_size=settings.batch_size,
                          output=output, quiet=quiet)

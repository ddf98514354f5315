"""A trained binary EP run read as an event-driven spiking network, on a whole split.

Wires a run (config + checkpoint + data) to :func:`binlearn.spiking.ep.simulate_ep`: every test
image runs T time steps (one relaxation step each) and the accuracy after every step, the
spikes and the synaptic operations per inference are written to ``RUN_DIR/spiking.json``
and ``RUN_DIR/latency.png``. The relaxation accuracy (the run's own evaluation: T_eval free
steps from the initial state, :meth:`EnergyGradients.predict`) is measured on the same images
and, for T ≥ T_eval, compared prediction by prediction with the spiking network's at step
T_eval (``identical_predictions_at_eval_steps``).

Python::

    from binlearn.artifacts.spiking_ep import spiking_ep_run
    summary = spiking_ep_run("runs/RUN", timesteps=40)

``binlearn convert`` of such a run takes the same record through the ``"spiking"`` route of
``EnergyNet`` (:mod:`binlearn.artifacts.spiking`), and both write it with
:func:`~binlearn.artifacts.spiking_record.write_spiking`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from binlearn.artifacts.spiking_record import steps_within, write_spiking
from binlearn.artifacts.trained import TrainedRun, load_trained
from binlearn.energy.network import EnergyNet
from binlearn.experiment.config import ConfigError, ExperimentConfig
from binlearn.experiment.loglines import progress
from binlearn.experiment.registry import kind_and_rule
from binlearn.experiment.rundir import read_metrics
from binlearn.spiking.ep import READOUTS, SpikingEPError, check_spiking, fan_outs, simulate_ep

__all__ = ["spiking_ep_run", "spiking_ep_record", "check_ep_settings", "is_spiking_ep"]


def spiking_ep_run(run_dir: str | Path, *, timesteps: int | None = None, batch_size: int | None = None,
                   check: bool = False, split: str = "test", output: str | Path | None = None,
                   quiet: bool = False) -> dict[str, Any]:
    """Run a binary EP run's network as a spiking network on ``split``; write spiking.json and
    latency.png (into ``output``, default ``run_dir``) and return the record, with the two
    paths under ``"outputs"``. The arguments are those of :func:`spiking_ep_record`."""
    trained = load_trained(run_dir, device="cpu", quiet=quiet)
    summary = spiking_ep_record(trained, timesteps=timesteps, batch_size=batch_size, check=check, split=split,
                                quiet=quiet)
    written = write_spiking(summary, Path(output) if output else Path(run_dir))
    summary["outputs"] = [str(path) for path in written]
    return summary


def spiking_ep_record(trained: TrainedRun, *, timesteps: int | None = None, batch_size: int | None = None,
                      check: bool = False, split: str = "test", quiet: bool = False) -> dict[str, Any]:
    """The spike record of a binary EP run's network run as a spiking network on ``split``.

    Args:
        trained: a run of a binary-weight, binary-activation fully connected energy network
            (loaded on the CPU).
        timesteps: T, time steps per inference (default: the run's evaluation steps T_eval).
        batch_size: images per batch (default: the run's ``data.eval_batch_size``).
        check: recompute every step's currents by row adds and count mismatching steps (slower).
        split: ``"test"`` (the official test set), ``"validation"`` or ``"train"``.
        output: folder for the two files (default: ``run_dir``).
    Returns:
        the record (:mod:`binlearn.artifacts.spiking_record`), as spiking.json holds it.
    """
    run_dir = trained.run_dir
    net = trained.model
    if not isinstance(net, EnergyNet):
        raise SpikingEPError(f"{run_dir} trains model.kind = {trained.model_kind!r}; the EP spiking view "
                             "reads energy (EP / BPTT) runs")
    config, data, learner = trained.config, trained.data, trained.learner
    check_spiking(net)
    rule: Any = config.rule  # an energy rule's config: eval_steps (None: free_steps T), relaxation
    eval_steps = int(rule.eval_steps or rule.free_steps)
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
    schedule = rule.relaxation
    count = net.num_layers
    correct = {name: torch.zeros(steps, dtype=torch.int64) for name in READOUTS}
    relaxation_correct = identical = mismatches = input_ops = 0
    spikes = torch.zeros(steps + 1, count, dtype=torch.int64)
    synops = torch.zeros(steps, count, dtype=torch.int64)
    delta = torch.zeros(steps, count, dtype=torch.int64)
    started = time.perf_counter()
    with progress(len(x), "spiking", "image", quiet=quiet) as bar:
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
        **trained.learning_memory_fields(),
    }
    if check:
        summary["steps_with_membrane_mismatch"] = mismatches
    return summary


def _recorded_accuracy(run_dir: Path, epoch: int) -> float | None:
    """The test accuracy metrics.jsonl recorded for ``epoch`` during training (None if absent)."""
    records = [r for r in read_metrics(run_dir / "metrics.jsonl", epoch).records if r["epoch"] == epoch]
    return records[-1].get("test_accuracy") if records else None


_CONVERSION_ONLY = {"percentile": "--percentile", "reset": "--reset", "one_step": "--one-step",
                    "init_half": "--init-half", "encoding": "--encoding",
                    "calibration_images": "--calibration-images"}
"""``binlearn convert`` options that set how a feed-forward source is converted; a binary EP
network is already spiking (its thresholds, resets and delays are its own dynamics)."""


def is_spiking_ep(config: ExperimentConfig) -> bool:
    """True for a run config of a fully connected energy network with binary weights and binary
    neurons: the runs :func:`spiking_ep_record` reads."""
    if kind_and_rule(config)[0] != "energy":
        return False
    model: Any = config.model
    return model.architecture == "fc" and model.neuron == "binary" and model.weights == "binary"


def check_ep_settings(settings: Any, run_dir: str | Path) -> None:
    """Refuse, in one line, ``binlearn convert`` options that do not apply to a binary EP run:
    a conversion option set away from its default, or a device other than the CPU.

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

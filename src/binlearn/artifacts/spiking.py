"""``binlearn convert``: a trained run → a spiking network, simulated on the test set.

The run is read once (:func:`~binlearn.artifacts.load_trained`, refused from its typed config
before its checkpoint or data are read when it cannot convert), and its model's type picks
the ``"spiking"`` route (:mod:`binlearn.artifacts.registry`):

    nn.Sequential (STE mlp / convnet)   → :func:`binlearn.spiking.convert.convert` (calibrated)
    SignNetwork (local binary rule)     → :func:`binlearn.spiking.local.convert_sign_mlp` (exact)
    EnergyNet (binary EP, FC)           → the EP network read as the spiking network it is
                                          (:mod:`binlearn.artifacts.spiking_ep`)
    CommitteeMachine (CP+R)             → refused (a vote, not a layer of neurons)

Every route returns one spike record (:data:`RECORD_KEYS`: accuracy after every time step,
the source's accuracy, spikes and synaptic operations per inference, firing rate per layer,
the settings), and one writer (:func:`write_spiking`) turns it into ``spiking.json`` and
``latency.png`` in the run directory or ``output``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from binlearn.artifacts.registry import refuse, register, route
from binlearn.artifacts.spiking_ep import check_ep_settings, is_spiking_ep, spiking_ep_record
from binlearn.artifacts.spiking_record import read_spiking_record, steps_within, write_spiking
from binlearn.artifacts.trained import TrainedRun, load_trained
from binlearn.atomic import checked_output
from binlearn.energy.network import EnergyNet
from binlearn.experiment.config import DEVICE_PATTERN, ConfigError, ExperimentConfig
from binlearn.experiment.loglines import progress
from binlearn.experiment.registry import kind_and_rule
from binlearn.experiment.runner import RunError
from binlearn.rules.cpr import CommitteeMachine
from binlearn.rules.local_binary import SignNetwork
from binlearn.spiking.convert import ConversionError, convert
from binlearn.spiking.encode import ENCODINGS, encoding_from_name
from binlearn.spiking.functional import RESETS
from binlearn.spiking.local import convert_sign_mlp, input_spikes
from binlearn.spiking.network import SpikingNetwork
from binlearn.spiking.simulate import simulate
from binlearn.spiking.synops import spiking_summary, totals

__all__ = ["ConvertSettings", "convert_run", "check_convertible", "calibration_images"]

CONVERTIBLE_KINDS = ("mlp", "convnet")
_VOTE = "its prediction is a vote over committees, not a layer of neurons"
"""Why a committee (CP+R) has no spiking form: refused from its config and by the registry alike."""


@dataclass
class ConvertSettings:
    """How a run is converted and simulated (the ``binlearn convert`` options).

    timesteps: T ≥ 1; percentile: p in (0, 100] of each ReLU layer's activations on the
    calibration images (100: the max); reset: subtract | zero; one_step: no layer-to-layer
    delay; init_half: membranes start at θ/2; encoding: direct | poisson (seeded by
    ``seed``); calibration_images: training images for threshold balancing; batch_size:
    test images per simulated batch; device: auto | cpu | cuda[:N].
    """

    timesteps: int = 32
    percentile: float = 99.7
    reset: str = "subtract"
    one_step: bool = False
    init_half: bool = False
    encoding: str = "direct"
    seed: int = 0
    calibration_images: int = 10000
    batch_size: int = 500
    device: str = "auto"

    def __post_init__(self) -> None:
        for name, low, high in _BOUNDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer, got {value!r}")
            if value < low:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
            if value > high:
                raise ConfigError(f"--{name.replace('_', '-')} must be <= {high:,}, got {value:,}")
        if not (isinstance(self.percentile, int | float) and 0 < self.percentile <= 100):
            raise ConfigError(f"--percentile must be in (0, 100], got {self.percentile}")
        if self.reset not in RESETS:
            raise ConfigError(f"--reset {self.reset!r}; valid: {', '.join(RESETS)}")
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"--encoding {self.encoding!r}; valid: {', '.join(ENCODINGS)}")
        if not isinstance(self.device, str) or not re.fullmatch(DEVICE_PATTERN, self.device):
            raise ConfigError(f"--device {self.device!r}; valid: auto, cpu, cuda, cuda:N")


_BOUNDS = (("timesteps", 1, 100_000), ("seed", 0, 2**63 - 1), ("calibration_images", 1, 10**9),
           ("batch_size", 1, 10**7))
"""The integer settings' bounds: what the simulation's tensors (T × batch × classes outputs),
torch's generator (a 64-bit seed) and the arithmetic can hold; beyond them one line, not a
traceback (issue 25)."""


_CALIBRATION_SETTINGS = ("percentile", "calibration_images")  # threshold balancing of ReLU layers


def _used_settings(settings: ConvertSettings, *, local: bool, device: torch.device) -> dict[str, Any]:
    """The settings a conversion used, as recorded: a local-binary network's integer thresholds
    come from its weights, so the calibration settings (and the seed of a direct encoding,
    which only picks calibration images there) are left out rather than recorded unused."""
    used = {**asdict(settings), "delay": not settings.one_step,
            "init": "half" if settings.init_half else "zero", "device": str(device)}
    if local:
        for key in _CALIBRATION_SETTINGS:
            del used[key]
        if settings.encoding == "direct":
            del used["seed"]
    return used


def check_convertible(config: ExperimentConfig, run_dir: Path) -> None:
    """Refuse, in one line naming why, a run that cannot be converted — from its typed config
    alone, before its checkpoint or data are read: STE-trained ``mlp`` / ``convnet`` runs
    without max pooling, local-binary runs (``binary_mlp``) and binary fully connected EP runs
    (:func:`~binlearn.artifacts.spiking_ep.is_spiking_ep`) convert."""
    kind, rule = kind_and_rule(config)
    model: Any = config.model
    if kind == "energy":
        if is_spiking_ep(config):
            return
        what = "a float-weight EP network" if model.weights == "float" else "an EP network"
        raise ConversionError(f"{run_dir}: {what} (model.kind = \"energy\") cannot be converted: its units "
                              "are relaxed to a fixed point of an energy, not computed layer by layer; "
                              "binlearn convert takes feed-forward STE runs (model.kind = mlp or convnet)")
    if kind == "binary_mlp" and rule == "local_binary":
        return  # a ±1 sign network: binlearn.spiking.local
    if kind == "committee" or rule == "cpr":
        raise ConversionError(f"{run_dir}: a committee run (model.kind = \"{kind}\", rule.name = "
                              f"\"{rule}\") cannot be converted: {_VOTE}; binlearn convert takes STE runs "
                              "(model.kind = mlp or convnet) and local-binary runs (binary_mlp)")
    if kind not in CONVERTIBLE_KINDS or rule != "ste":
        raise ConversionError(f"{run_dir}: model.kind = \"{kind}\" trained by rule \"{rule}\" cannot be "
                              "converted; binlearn convert takes STE runs (model.kind = mlp or convnet)")
    if kind == "convnet" and model.pool == "max":
        raise ConversionError(f"{run_dir}: the convnet uses max pooling (model.pool = \"max\"), which "
                              "integrate-and-fire neurons cannot compute; train it with model.pool = \"avg\"")


def convert_run(run_dir: Path, settings: ConvertSettings, output: Path | None = None, *,
                quiet: bool = False, compare: list[Path] | None = None) -> dict[str, Any]:
    """Convert ``run_dir``'s network, simulate it on the whole test set, write the results.

    Returns the ``spiking.json`` record. ``compare``: other ``spiking.json`` files drawn on
    the same latency plot (read, and refused in one line when they are not spike records,
    before anything is simulated). Raises ConversionError / RunError / ConfigError (one line each).
    """
    run_dir = Path(run_dir)
    others = [read_spiking_record(Path(p), option="--compare") for p in (compare or [])]
    if output is not None:
        output = checked_output(output, directory=True)  # refused now, not after the simulation

    def check(config: ExperimentConfig) -> None:
        if is_spiking_ep(config):
            check_ep_settings(settings, run_dir)
        else:
            check_convertible(config, run_dir)

    def device(config: ExperimentConfig) -> str:  # the EP spiking view runs on the CPU (row adds)
        return "cpu" if is_spiking_ep(config) else settings.device

    trained = load_trained(run_dir, device=device, quiet=quiet, check=check)
    converter = route(trained.model, "spiking").converter
    assert converter is not None  # route() raises for refused pairs
    record = converter(trained, settings, quiet=quiet)
    folder = Path(output) if output is not None else run_dir
    write_spiking(record, folder, others)
    return record


def calibration_images(trained: TrainedRun, count: int, seed: int) -> torch.Tensor:
    """``count`` training images (at most all of them) drawn without replacement with ``seed``:
    the images threshold balancing measures the ReLU activations on."""
    images = trained.data.x_train
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(images), generator=generator)[:min(count, len(images))]
    return images[chosen.to(images.device)]


Inputs = Callable[[torch.Tensor], torch.Tensor]
"""How a data batch becomes a spiking network's input."""


def _calibrated_network(trained: TrainedRun, settings: ConvertSettings) -> tuple[SpikingNetwork, Inputs]:
    """An STE ``nn.Sequential``: threshold balancing on ``settings.calibration_images``
    training images drawn with ``settings.seed``; fed the data as it is."""
    images = calibration_images(trained, settings.calibration_images, settings.seed)
    network = convert(trained.model, images, percentile=settings.percentile, reset=settings.reset,
                      batch_size=settings.batch_size)
    return network.to(trained.device), _same


def _sign_network(trained: TrainedRun, settings: ConvertSettings) -> tuple[SpikingNetwork, Inputs]:
    """A local-binary :class:`~binlearn.rules.local_binary.SignNetwork`: integer thresholds,
    exact at T = 1; fed the data's bits."""
    model = trained.model
    network = convert_sign_mlp(model.hidden, model.classifier, tuple(trained.data.x_test.shape[1:]),
                               reset=settings.reset)
    return network.to(trained.device), input_spikes


def _feed_forward_record(trained: TrainedRun, settings: ConvertSettings, *, quiet: bool = False,
                         build: Callable[[TrainedRun, ConvertSettings], tuple[SpikingNetwork, Inputs]],
                         source: str) -> dict[str, Any]:
    """The spike record of a feed-forward run's spiking network (made by ``build``) on the
    whole test set; the source's own predictions are made once, beside the simulation."""
    data, learner, device = trained.data, trained.learner, trained.device
    start = time.perf_counter()
    if len(data.x_test) == 0:
        raise RunError(f"{trained.run_dir}: its dataset has no test images to convert on")
    network, inputs = build(trained, settings)
    local = source == "local_binary"
    encoding = encoding_from_name(settings.encoding, settings.seed)
    steps = settings.timesteps
    correct = torch.zeros(steps, dtype=torch.int64)
    agree = torch.zeros(steps, dtype=torch.int64)
    source_correct = 0
    rows_sum: list[dict] | None = None
    seen = 0
    with progress(len(data.x_test), f"simulating T={steps}", "image", quiet=quiet) as bar:
        for x, y in zip(data.x_test.split(settings.batch_size), data.y_test.split(settings.batch_size),
                        strict=True):
            with torch.no_grad():
                expected = learner.predict(x)
            source_correct += int((expected == y).sum())
            result = simulate(network, inputs(x), steps, encoding=encoding, delay=not settings.one_step,
                              init="half" if settings.init_half else "zero")
            predictions = result.predictions()
            correct += (predictions == y.to(device)).sum(1).cpu()
            agree += (predictions == expected).sum(1).cpu()
            rows = spiking_summary(network, result)
            rows_sum = rows if rows_sum is None else [_add_rows(a, b, seen, len(y)) for a, b in
                                                      zip(rows_sum, rows, strict=True)]
            seen += len(y)
            bar.update(len(y))
    assert rows_sum is not None
    source_accuracy = source_correct / seen
    accuracy = [int(c) / seen for c in correct]  # exact ratios, as the source's accuracy is
    total = totals(rows_sum)
    return {
        "run_dir": str(trained.run_dir), "epoch": trained.epoch, "dataset": trained.config.data.dataset,
        "test_images": seen,
        "source": source,
        "source_accuracy": source_accuracy,
        "accuracy_per_step": accuracy,
        "agreement_with_source_per_step": [int(a) / seen for a in agree],
        "final_accuracy": accuracy[-1],
        "best_accuracy": max(accuracy),
        "steps_to_within_1_point": steps_within(accuracy, source_accuracy),
        "spikes_per_inference": total["spikes"],
        "synaptic_ops_per_inference": total["synaptic_ops"],
        "input_macs_per_inference": total["input_macs"],
        "source_macs_per_inference": total["source_macs"],
        "firing_rate_per_layer": {r["layer"]: r["firing_rate"] for r in rows_sum
                                  if r["firing_rate"] is not None},
        "layers": rows_sum,
        "thresholds": {layer.name: layer.spike_value for layer in network.layers if layer.spiking},
        "settings": _used_settings(settings, local=local, device=device),
        **trained.learning_memory_fields(),
        "seconds": time.perf_counter() - start,
    }


def _ep_record(trained: TrainedRun, settings: ConvertSettings, *, quiet: bool = False) -> dict[str, Any]:
    return spiking_ep_record(trained, timesteps=settings.timesteps, batch_size=settings.batch_size,
                             quiet=quiet)


register(nn.Sequential, "spiking", partial(_feed_forward_record, build=_calibrated_network, source="ste"),
         what="STE mlp / convnet runs")
register(SignNetwork, "spiking", partial(_feed_forward_record, build=_sign_network, source="local_binary"),
         what="local-binary runs (binary_mlp)")
register(EnergyNet, "spiking", _ep_record, what="binary fully connected EP runs")
refuse(CommitteeMachine, "spiking", f"a committee (CP+R) model cannot be converted: {_VOTE}")


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def _add_rows(total: dict, rows: dict, seen: int, batch: int) -> dict:
    """Running mean (per inference) of two summary rows, weighted by images."""
    merged = dict(total)
    for key in ("input_spikes", "synaptic_ops", "spikes", "firing_rate"):
        if total[key] is not None:
            merged[key] = (total[key] * seen + rows[key] * batch) / (seen + batch)
    return merged

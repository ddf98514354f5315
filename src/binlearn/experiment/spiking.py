"""``binlearn convert``: a trained STE or local-binary run → a spiking network, simulated on the
test set (STE runs: :mod:`binlearn.spiking.convert`; local-binary runs, ±1 sign layers:
:mod:`binlearn.spiking.local`; binary EP runs are read as the spiking networks they are,
:mod:`binlearn.experiment.spiking_ep`).

Writes ``spiking.json`` (accuracy after every time step, spikes and synaptic operations per
inference, firing rate per layer, the settings) and ``latency.png`` (accuracy against time
steps with the source's accuracy as a line) into the run directory or ``output``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from binlearn.atomic import write_json
from binlearn.experiment.config import DEVICE_PATTERN, ConfigError, config_from_dict, read_config_file
from binlearn.experiment.plots import pyplot, save_png
from binlearn.experiment.runner import RunError, evaluate
from binlearn.experiment.spiking_ep import convert_ep_run, is_spiking_ep_config
from binlearn.experiment.trained import load_trained
from binlearn.spiking.convert import ConversionError, convert
from binlearn.spiking.encode import ENCODINGS, encoding_from_name
from binlearn.spiking.functional import RESETS
from binlearn.spiking.local import convert_sign_mlp, input_spikes
from binlearn.spiking.simulate import simulate
from binlearn.spiking.synops import spiking_summary, totals

__all__ = ["ConvertSettings", "convert_run", "check_convertible", "plot_latency"]

CONVERTIBLE_KINDS = ("mlp", "convnet")


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
        if self.timesteps < 1:
            raise ConfigError(f"--timesteps must be >= 1, got {self.timesteps}")
        if not 0 < self.percentile <= 100:
            raise ConfigError(f"--percentile must be in (0, 100], got {self.percentile}")
        if self.reset not in RESETS:
            raise ConfigError(f"--reset {self.reset!r}; valid: {', '.join(RESETS)}")
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"--encoding {self.encoding!r}; valid: {', '.join(ENCODINGS)}")
        if self.calibration_images < 1 or self.batch_size < 1:
            raise ConfigError("--calibration-images and --batch-size must be >= 1")
        if not isinstance(self.device, str) or not re.fullmatch(DEVICE_PATTERN, self.device):
            raise ConfigError(f"--device {self.device!r}; valid: auto, cpu, cuda, cuda:N")


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


def check_convertible(run_dir: Path) -> None:
    """Refuse, in one line naming why, a run that cannot be converted — from its config alone
    (before any data is read): only STE-trained ``mlp`` / ``convnet`` runs without max pooling."""
    if not run_dir.is_dir():
        raise RunError(f"run directory not found: {run_dir}")
    if not (run_dir / "config.toml").is_file():
        raise RunError(f"{run_dir} is not a binlearn run directory (no config.toml)")
    raw = read_config_file(run_dir / "config.toml")
    kind = raw.get("model", {}).get("kind", "mlp")
    rule = raw.get("rule", {}).get("name", "ste")
    if kind == "energy":
        weights = raw.get("model", {}).get("weights", "float")
        what = "a float-weight EP network" if weights == "float" else "an EP network"
        raise ConversionError(f"{run_dir}: {what} (model.kind = \"energy\") cannot be converted: its units "
                              "are relaxed to a fixed point of an energy, not computed layer by layer; "
                              "binlearn convert takes feed-forward STE runs (model.kind = mlp or convnet)")
    if kind == "binary_mlp" and rule == "local_binary":
        config_from_dict(raw)  # a ±1 sign network: binlearn.spiking.local
        return
    if kind == "committee" or rule == "cpr":
        raise ConversionError(f"{run_dir}: a committee run (model.kind = \"{kind}\", rule.name = "
                              f"\"{rule}\") cannot be converted: its prediction is a vote over "
                              "committees, not a layer of neurons; binlearn convert takes STE runs "
                              "(model.kind = mlp or convnet) and local-binary runs (binary_mlp)")
    if kind not in CONVERTIBLE_KINDS or rule != "ste":
        raise ConversionError(f"{run_dir}: model.kind = \"{kind}\" trained by rule \"{rule}\" cannot be "
                              "converted; binlearn convert takes STE runs (model.kind = mlp or convnet)")
    if kind == "convnet" and raw.get("model", {}).get("pool", "avg") == "max":
        raise ConversionError(f"{run_dir}: the convnet uses max pooling (model.pool = \"max\"), which "
                              "integrate-and-fire neurons cannot compute; train it with model.pool = \"avg\"")
    config_from_dict(raw)  # the rest of the config must be valid too


def _steps_within(accuracy: list[float], target: float, points: float = 0.01) -> int | None:
    """The first step from which the accuracy stays within ``points`` of ``target``."""
    for step in range(len(accuracy)):
        if all(a >= target - points for a in accuracy[step:]):
            return step + 1
    return None


def convert_run(run_dir: Path, settings: ConvertSettings, output: Path | None = None, *,
                quiet: bool = False, compare: list[Path] | None = None) -> dict[str, Any]:
    """Convert ``run_dir``'s network, simulate it on the whole test set, write the results.

    Returns the ``spiking.json`` record. ``compare``: other ``spiking.json`` files drawn on
    the same latency plot. Raises ConversionError / RunError / ConfigError (one line each).
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.toml"
    if config_path.is_file() and is_spiking_ep_config(read_config_file(config_path)):
        # a binary EP network is already a spiking network: read it as one (binlearn.spiking.ep)
        return convert_ep_run(run_dir, settings, output, quiet=quiet)
    check_convertible(run_dir)
    trained = load_trained(run_dir, device=settings.device, quiet=quiet)
    config, learner, epoch, data, device = (trained.config, trained.learner, trained.epoch, trained.data,
                                            trained.device)
    start = time.perf_counter()
    source_accuracy = evaluate(learner, data.x_test, data.y_test, settings.batch_size)
    if source_accuracy is None:
        raise RunError(f"{run_dir}: its dataset has no test images to convert on")
    inputs: Callable[[torch.Tensor], torch.Tensor] = _same
    local = trained.model_kind == "binary_mlp"  # the local binary rule's ±1 sign layers (LocalLearner)
    if local:  # ±1 sign layers: integer thresholds, exact at T = 1
        layers = learner.model  # the LocalLearner's list of BinaryLayers
        network = convert_sign_mlp([layer.hidden for layer in layers], layers[-1].classifier,
                                   tuple(data.x_test.shape[1:]), reset=settings.reset).to(device)
        inputs = input_spikes
    elif isinstance(learner.model, nn.Sequential):  # STE's feed-forward nets
        generator = torch.Generator().manual_seed(settings.seed)
        count = min(settings.calibration_images, len(data.x_train))
        chosen = torch.randperm(len(data.x_train), generator=generator)[:count].to(data.x_train.device)
        network = convert(learner.model, data.x_train[chosen], percentile=settings.percentile,
                          reset=settings.reset, batch_size=settings.batch_size).to(device)
    else:  # check_convertible lets only STE and local-binary runs through
        raise RunError(f"{run_dir}: only runs trained by the STE or the local binary rule convert to "
                       "spiking networks")
    encoding = encoding_from_name(settings.encoding, settings.seed)
    steps = settings.timesteps
    correct = torch.zeros(steps)
    agree = torch.zeros(steps)
    rows_sum: list[dict] | None = None
    seen = 0
    batches = list(zip(data.x_test.split(settings.batch_size), data.y_test.split(settings.batch_size),
                       strict=True))
    for x, y in tqdm(batches, desc=f"simulating T={steps}", unit="batch", disable=quiet, leave=False):
        result = simulate(network, inputs(x), steps, encoding=encoding, delay=not settings.one_step,
                          init="half" if settings.init_half else "zero")
        predictions = result.predictions()
        correct += (predictions == y.to(device)).sum(1).float().cpu()
        agree += (predictions == learner.predict(x)).sum(1).float().cpu()
        rows = spiking_summary(network, result)
        rows_sum = rows if rows_sum is None else [_add_rows(a, b, seen, len(y)) for a, b in
                                                  zip(rows_sum, rows, strict=True)]
        seen += len(y)
    assert rows_sum is not None
    accuracy = (correct / seen).tolist()
    total = totals(rows_sum)
    record: dict[str, Any] = {
        "run_dir": str(run_dir), "epoch": epoch, "dataset": config.data.dataset, "test_images": seen,
        "source": "local_binary" if local else "ste",
        "source_accuracy": source_accuracy,
        "accuracy_per_step": accuracy,
        "agreement_with_source_per_step": (agree / seen).tolist(),
        "final_accuracy": accuracy[-1],
        "best_accuracy": max(accuracy),
        "steps_to_within_1_point": _steps_within(accuracy, source_accuracy),
        "spikes_per_inference": total["spikes"],
        "synaptic_ops_per_inference": total["synaptic_ops"],
        "input_macs_per_inference": total["input_macs"],
        "source_macs_per_inference": total["source_macs"],
        "firing_rate_per_layer": {r["layer"]: r["firing_rate"] for r in rows_sum
                                  if r["firing_rate"] is not None},
        "layers": rows_sum,
        "thresholds": {layer.name: layer.spike_value for layer in network.layers if layer.spiking},
        "settings": _used_settings(settings, local=local, device=device),
        "seconds": time.perf_counter() - start,
    }
    out = Path(output) if output is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "spiking.json", record)
    others = [(Path(p), _read_json(Path(p))) for p in (compare or [])]
    plot_latency([(_label(record), record), *[(_label(r), r) for _, r in others]], out / "latency.png",
                 title=f"{run_dir.name}: accuracy vs time steps")
    return record


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def _add_rows(total: dict, rows: dict, seen: int, batch: int) -> dict:
    """Running mean (per inference) of two summary rows, weighted by images."""
    merged = dict(total)
    for key in ("input_spikes", "synaptic_ops", "spikes", "firing_rate"):
        if total[key] is not None:
            merged[key] = (total[key] * seen + rows[key] * batch) / (seen + batch)
    return merged


def _read_json(path: Path) -> dict[str, Any]:
    import json

    if not path.is_file():
        raise RunError(f"--compare: {path} not found (a spiking.json written by binlearn convert)")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunError(f"--compare: {path} is not a spiking.json file") from None
    if not isinstance(record, dict) or "accuracy_per_step" not in record:
        raise RunError(f"--compare: {path} has no accuracy_per_step (not written by binlearn convert)")
    return record


def _label(record: dict[str, Any]) -> str:
    s = record.get("settings", {})
    parts = [Path(record.get("run_dir", "?")).name,
             *([f"p={s['percentile']}"] if "percentile" in s else []), s.get("reset", "?")]
    parts += ["one-step" if not s.get("delay", True) else "delay", f"v0={s.get('init', '?')}"]
    return " ".join(str(p) for p in parts)


def plot_latency(curves: list[tuple[str, dict[str, Any]]], path: Path, title: str = "") -> None:
    """Accuracy against time steps, one line per conversion, each source's accuracy dashed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, record in curves:
        accuracy = record["accuracy_per_step"]
        line, = ax.plot(range(1, len(accuracy) + 1), accuracy, marker=".", label=label)
        ax.axhline(record["source_accuracy"], color=line.get_color(), linestyle="--", linewidth=1)
    ax.set_xlabel("time step T")
    ax.set_ylabel("test accuracy (dashed: source network)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, path)

"""``binlearn export RUN_DIR --format nir``: a trained run's spiking network written as a NIR
graph (:mod:`binlearn.spiking.nir`), by the ``"nir"`` routes of :mod:`binlearn.artifacts.registry`:

    nn.Sequential (STE mlp / convnet)  → converted as ``binlearn convert --reset zero`` converts it
                                         (threshold balancing at the 99.7th percentile of each ReLU
                                         layer's activations on 10,000 training images, seed 0),
                                         written by :func:`~binlearn.spiking.nir.to_nir`
    SignNetwork (local binary rule)    → its ±1 synapses and integer thresholds
                                         (:func:`~binlearn.spiking.local.convert_sign_mlp`, reset
                                         zero), written by :func:`~binlearn.spiking.nir.sign_mlp_to_nir`
                                         with the data's binarization as its first node
    EnergyNet (binary EP)              → refused in one line (:func:`~binlearn.spiking.nir.ep_to_nir`
                                         says why; docs/nir.md)

The graph reproduces binlearn's simulation with the one-step propagation, membranes starting
at 0 and the direct encoding (docs/nir.md). With ``verify`` the written file is read back and
must be the same graph, or the export fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from binlearn.artifacts.registry import ArtifactError, register, route
from binlearn.artifacts.spiking import calibration_images, check_convertible
from binlearn.artifacts.trained import TrainedRun
from binlearn.atomic import remove_stale_temporaries
from binlearn.energy.network import EnergyNet
from binlearn.rules.local_binary import SignNetwork
from binlearn.spiking.convert import convert
from binlearn.spiking.local import convert_sign_mlp, input_spikes
from binlearn.spiking.network import SpikingNetwork
from binlearn.spiking.nir import (
    NIRExportError,
    describe,
    ep_to_nir,
    graph_differences,
    read_nir,
    sign_mlp_to_nir,
    to_nir,
    write_nir,
)

__all__ = ["DEFAULT_NIR_NAME", "NIR_MEMORY_KEY", "NIR_CONVERSION", "LOCAL_NIR_CONVERSION", "NIRForm",
           "nir_form",
           "convert_for_nir", "export_nir"]

DEFAULT_NIR_NAME = "model.nir"
NIR_MEMORY_KEY = "binlearn_learning_memory"
"""The graph's metadata key holding the run's learning memory as a JSON string (``"null"``
with a ``binlearn_learning_memory_note`` when the learner does not report it)."""
PERCENTILE, CALIBRATION_IMAGES, SEED, RESET = 99.7, 10000, 0, "zero"
NIR_CONVERSION = {"percentile": PERCENTILE, "calibration_images": CALIBRATION_IMAGES, "seed": SEED,
                  "reset": RESET}
"""How an STE run is converted before it is written (what ``binlearn convert --reset zero`` does)."""
LOCAL_NIR_CONVERSION = {"source": "local_binary", "reset": RESET, "input": "spikes [x > 0] (input.threshold)"}
"""How a local-binary run is converted (its thresholds come from its weights: nothing to calibrate)."""


@dataclass(frozen=True)
class NIRForm:
    """A run's spiking network as the ``nir`` export writes it.

    network: the converted network (CPU, reset to zero); graph: ``graph(network, **options)``
    writes it as a ``nir.NIRGraph``; conversion: how it was converted (recorded in the summary);
    inputs: what binlearn's own simulator is fed for a batch of data (the image itself, or
    the data's bits, which the graph computes in its first node).
    """

    network: SpikingNetwork
    graph: Callable[..., Any]
    conversion: dict[str, Any]
    inputs: Callable[[torch.Tensor], torch.Tensor]


def _feed_forward_for_nir(trained: TrainedRun) -> NIRForm:
    images = calibration_images(trained, CALIBRATION_IMAGES, SEED)
    network = convert(trained.model, images, percentile=PERCENTILE, reset=RESET)
    return NIRForm(network, to_nir, dict(NIR_CONVERSION), _same)


def _sign_network_for_nir(trained: TrainedRun) -> NIRForm:
    model = trained.model
    network = convert_sign_mlp(model.hidden, model.classifier, tuple(trained.data.x_test.shape[1:]),
                               reset=RESET)
    return NIRForm(network, sign_mlp_to_nir, dict(LOCAL_NIR_CONVERSION), input_spikes)


def _energy_for_nir(trained: TrainedRun) -> NIRForm:
    ep_to_nir(trained.model)  # raises, saying why NIR cannot hold the relaxation
    raise NIRExportError("binary EP networks have no NIR form")  # pragma: no cover - ep_to_nir raises


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


register(nn.Sequential, "nir", _feed_forward_for_nir, what="STE mlp / convnet runs")
register(SignNetwork, "nir", _sign_network_for_nir, what="local-binary runs (binary_mlp)")
register(EnergyNet, "nir", _energy_for_nir, what="(binary EP runs: refused, docs/nir.md)")


def nir_form(trained: TrainedRun) -> NIRForm:
    """The run's spiking network as the ``nir`` export converts and writes it, on the CPU;
    one-line errors for runs that cannot convert (:func:`check_convertible`) or have no NIR form."""
    check_convertible(trained.config, trained.run_dir)
    try:
        converter = route(trained.model, "nir").converter
        assert converter is not None  # route() raises for refused pairs
        return converter(trained)
    except (ArtifactError, NIRExportError) as error:
        raise NIRExportError(f"{trained.run_dir}: {error}") from None


def convert_for_nir(trained: TrainedRun) -> SpikingNetwork:
    """The run converted as the ``nir`` export converts it (:data:`NIR_CONVERSION`,
    :data:`LOCAL_NIR_CONVERSION`), on the CPU."""
    return nir_form(trained).network


def export_nir(trained: TrainedRun, output: Path | None, *, verify: bool = True,
               quiet: bool = False) -> dict[str, Any]:  # noqa: ARG001 - the exporter signature
    """The ``nir`` format: ``output`` (default ``RUN_DIR/model.nir``); returns the summary."""
    form = nir_form(trained)
    graph = form.graph(form.network)
    memory = trained.learning_memory_fields()
    # NIR metadata is HDF5: strings, numbers and arrays, no lists of tables; the figure as JSON
    graph.metadata[NIR_MEMORY_KEY] = json.dumps(memory["learning_memory"])
    if "learning_memory_note" in memory:
        graph.metadata[NIR_MEMORY_KEY + "_note"] = memory["learning_memory_note"]
    target = Path(output or trained.run_dir / DEFAULT_NIR_NAME)
    remove_stale_temporaries(target.parent, [target.name])  # a killed export's leftovers
    path = write_nir(graph, target)
    summary: dict[str, Any] = {
        "run_dir": str(trained.run_dir), "format": "nir", "epoch": trained.epoch,
        "conversion": dict(form.conversion), "nodes": describe(graph), **memory,
        "reproduces": "binlearn.spiking.simulate with reset zero, delay=False (one step), init zero, "
                      "direct encoding; prediction = argmax of the output integrator (docs/nir.md)",
    }
    if verify:
        differences = graph_differences(graph, read_nir(path))
        if differences:
            path.unlink(missing_ok=True)
            raise NIRExportError(f"{path} does not read back as the graph written ({differences[0]}); "
                                 "nothing kept")
        summary["verified"] = {"round_trip": "nir.read gives the same nodes, edges and arrays"}
    summary.update(output=str(path), bytes=path.stat().st_size)
    return summary

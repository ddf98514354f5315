"""``binlearn export RUN_DIR --format nir``: a trained STE run, converted to a reset-to-zero
spiking network, written as a NIR graph (:mod:`binlearn.spiking.nir`).

The run is converted as ``binlearn convert`` converts it with ``--reset zero`` (the reset NIR's
IF expresses): threshold balancing at the 99.7th percentile of each ReLU layer's activations on
10,000 training images drawn with seed 0. The graph reproduces binlearn's simulation with the
one-step propagation, membranes starting at 0 and the direct encoding (docs/nir.md). With
``verify`` the written file is read back and must be the same graph, or the export fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from binlearn.experiment.spiking import check_convertible
from binlearn.experiment.trained import TrainedRun
from binlearn.spiking.convert import convert
from binlearn.spiking.network import SpikingNetwork
from binlearn.spiking.nir import NIRExportError, describe, graph_differences, read_nir, to_nir, write_nir

__all__ = ["DEFAULT_NIR_NAME", "NIR_CONVERSION", "convert_for_nir", "export_nir"]

DEFAULT_NIR_NAME = "model.nir"
PERCENTILE, CALIBRATION_IMAGES, SEED, RESET = 99.7, 10000, 0, "zero"
NIR_CONVERSION = {"percentile": PERCENTILE, "calibration_images": CALIBRATION_IMAGES, "seed": SEED,
                  "reset": RESET}
"""How the run is converted before it is written (what ``binlearn convert --reset zero`` does)."""


def convert_for_nir(trained: TrainedRun) -> SpikingNetwork:
    """The run converted as the ``nir`` export converts it (:data:`NIR_CONVERSION`), on the CPU."""
    check_convertible(trained.run_dir)
    learner = trained.learner
    if not isinstance(learner.model, nn.Sequential):  # pragma: no cover - check_convertible admits STE only
        raise NIRExportError(f"{trained.run_dir}: not an STE run")
    images = trained.data.x_train
    generator = torch.Generator().manual_seed(SEED)
    count = min(CALIBRATION_IMAGES, len(images))
    chosen = torch.randperm(len(images), generator=generator)[:count].to(images.device)
    return convert(learner.model, images[chosen], percentile=PERCENTILE, reset=RESET)


def export_nir(trained: TrainedRun, output: Path | None, *, verify: bool = True,
               quiet: bool = False) -> dict[str, Any]:  # noqa: ARG001 - the exporter signature
    """The ``nir`` format: ``output`` (default ``RUN_DIR/model.nir``); returns the summary."""
    network = convert_for_nir(trained)
    graph = to_nir(network)
    path = write_nir(graph, output or trained.run_dir / DEFAULT_NIR_NAME)
    summary: dict[str, Any] = {
        "run_dir": str(trained.run_dir), "format": "nir", "epoch": trained.epoch,
        "conversion": dict(NIR_CONVERSION), "nodes": describe(graph),
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

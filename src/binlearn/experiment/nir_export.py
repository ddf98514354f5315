"""``binlearn export RUN_DIR --format nir``: a trained STE or local-binary run, converted to a
reset-to-zero spiking network, written as a NIR graph (:mod:`binlearn.spiking.nir`).

The run is converted as ``binlearn convert`` converts it with ``--reset zero`` (the reset NIR's
IF expresses): an STE run by threshold balancing at the 99.7th percentile of each ReLU layer's
activations on 10,000 training images drawn with seed 0; a local-binary run into its ±1
synapses and integer thresholds (:func:`~binlearn.spiking.local.convert_sign_mlp`), written by
:func:`~binlearn.spiking.nir.sign_mlp_to_nir` with the data's binarization as its first node.
The graph reproduces binlearn's simulation with the one-step propagation, membranes starting
at 0 and the direct encoding (docs/nir.md). A binary EP run is refused in one line
(:func:`~binlearn.spiking.nir.ep_to_nir`). With ``verify`` the written file is read back and
must be the same graph, or the export fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from binlearn.experiment.learners.energy import EnergyLearner
from binlearn.experiment.learners.local_binary import LocalBinaryLearner
from binlearn.experiment.learners.ste import STELearner
from binlearn.experiment.spiking import check_convertible
from binlearn.experiment.trained import TrainedRun
from binlearn.spiking.convert import convert
from binlearn.spiking.ep import SpikingEPError
from binlearn.spiking.local import convert_sign_mlp
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

__all__ = ["DEFAULT_NIR_NAME", "NIR_CONVERSION", "LOCAL_NIR_CONVERSION", "convert_for_nir", "export_nir"]

DEFAULT_NIR_NAME = "model.nir"
PERCENTILE, CALIBRATION_IMAGES, SEED, RESET = 99.7, 10000, 0, "zero"
NIR_CONVERSION = {"percentile": PERCENTILE, "calibration_images": CALIBRATION_IMAGES, "seed": SEED,
                  "reset": RESET}
"""How an STE run is converted before it is written (what ``binlearn convert --reset zero`` does)."""
LOCAL_NIR_CONVERSION = {"source": "local_binary", "reset": RESET, "input": "spikes [x > 0] (input.threshold)"}
"""How a local-binary run is converted (its thresholds come from its weights: nothing to calibrate)."""


def convert_for_nir(trained: TrainedRun) -> SpikingNetwork:
    """The run converted as the ``nir`` export converts it (:data:`NIR_CONVERSION`,
    :data:`LOCAL_NIR_CONVERSION`), on the CPU."""
    learner = trained.learner
    if isinstance(learner, EnergyLearner):  # a binary EP network is refused, saying why
        try:
            ep_to_nir(learner.net)
        except SpikingEPError:
            pass  # not a spiking network at all: check_convertible says why
        except NIRExportError as error:
            raise NIRExportError(f"{trained.run_dir}: {error}") from None
    check_convertible(trained.run_dir)
    if isinstance(learner, LocalBinaryLearner):
        return convert_sign_mlp([layer.hidden for layer in learner.layers], learner.layers[-1].classifier,
                                tuple(trained.data.x_test.shape[1:]), reset=RESET)
    if not isinstance(learner, STELearner):  # pragma: no cover - check_convertible admits STE and local runs
        raise NIRExportError(f"{trained.run_dir}: not an STE or local-binary run")
    images = trained.data.x_train
    generator = torch.Generator().manual_seed(SEED)
    count = min(CALIBRATION_IMAGES, len(images))
    chosen = torch.randperm(len(images), generator=generator)[:count].to(images.device)
    return convert(learner.model, images[chosen], percentile=PERCENTILE, reset=RESET)


def export_nir(trained: TrainedRun, output: Path | None, *, verify: bool = True,
               quiet: bool = False) -> dict[str, Any]:  # noqa: ARG001 - the exporter signature
    """The ``nir`` format: ``output`` (default ``RUN_DIR/model.nir``); returns the summary."""
    network = convert_for_nir(trained)
    local = isinstance(trained.learner, LocalBinaryLearner)
    graph = sign_mlp_to_nir(network) if local else to_nir(network)
    path = write_nir(graph, output or trained.run_dir / DEFAULT_NIR_NAME)
    summary: dict[str, Any] = {
        "run_dir": str(trained.run_dir), "format": "nir", "epoch": trained.epoch,
        "conversion": dict(LOCAL_NIR_CONVERSION if local else NIR_CONVERSION), "nodes": describe(graph),
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

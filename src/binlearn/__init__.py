"""binlearn: binary neural networks trained with local learning rules and run as spiking
networks.

The public API, re-exported here from the packages that define it (``from binlearn import
EP, Bop, fully_connected`` is the same as ``from binlearn.rules import EP, Bop`` and
``from binlearn.energy import fully_connected``)::

    errors      BinlearnError (the base class of every one-line user error)
    data        load_dataset, Dataset, DataError, SOURCES
    binary      sign, heaviside, Sign, Heaviside, BinarySign, pack_signs, unpack_signs,
                binary_dense, PackedModel, PackedFormatError
    nn          BinaryLinear, mlp, summary, mlp_to_packed
    energy      EnergyNet, fully_connected, convolutional, FloatWeights, BinaryWeights,
                HardSigmoid, BinaryAccumulator, SquaredError, CrossEntropyReadout,
                EnergyState, Nudge, DriveNudge, StateNudge, FreeDriveNudge, relax,
                relax_step, prepare, energy_to_packed
    spiking     convert, simulate, simulate_ep (binary EP as a spiking network), IF, Integrator,
                SpikingNetwork, to_nir, write_nir, read_nir
    rules       EP, BPTT, STE, Bop, LocalBinary, LocalBinaryParameters, CPR,
                CommitteeParameters, GradientRule, LocalRule
    experiment  ExperimentConfig, load_config, train, Learner, ConfigError, RunError,
                CheckpointError
    artifacts   load_trained, TrainedRun, evaluate_run, export_run

Names are imported on first use, so ``import binlearn`` (and ``binlearn --version``) stays
light; each package's ``__all__`` lists the rest of its public names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from binlearn.kernel_cache import place_kernel_cache
from binlearn.version import __version__

place_kernel_cache()  # before any binlearn module imports numba (binlearn.kernel_cache says why)

_EXPORTS: dict[str, str] = {
    "BinlearnError": "binlearn.errors",
    **dict.fromkeys(["load_dataset", "Dataset", "DataError", "SOURCES"], "binlearn.data"),
    **dict.fromkeys(["sign", "heaviside", "Sign", "Heaviside", "BinarySign", "pack_signs", "unpack_signs",
                     "binary_dense"], "binlearn.binary"),
    **dict.fromkeys(["PackedModel", "PackedFormatError"], "binlearn.binary.packed_format"),
    **dict.fromkeys(["BinaryLinear", "mlp", "summary"], "binlearn.nn"),
    "mlp_to_packed": "binlearn.nn.packed",
    **dict.fromkeys(["EnergyNet", "fully_connected", "convolutional", "FloatWeights", "BinaryWeights",
                     "HardSigmoid", "BinaryAccumulator", "SquaredError", "CrossEntropyReadout",
                     "EnergyState", "Nudge", "DriveNudge", "StateNudge", "FreeDriveNudge", "relax",
                     "relax_step", "prepare"], "binlearn.energy"),
    "energy_to_packed": "binlearn.energy.packed",
    **dict.fromkeys(["convert", "simulate", "simulate_ep", "IF", "Integrator", "SpikingNetwork", "to_nir",
                     "write_nir", "read_nir"], "binlearn.spiking"),
    **dict.fromkeys(["EP", "BPTT", "STE", "Bop", "LocalBinary", "LocalBinaryParameters", "CPR",
                     "CommitteeParameters", "GradientRule", "LocalRule"], "binlearn.rules"),
    **dict.fromkeys(["ExperimentConfig", "load_config", "train", "Learner", "ConfigError", "RunError",
                     "CheckpointError"], "binlearn.experiment"),
    **dict.fromkeys(["evaluate_run", "load_trained", "TrainedRun", "export_run"], "binlearn.artifacts"),
}
"""Public name -> the package that defines (and itself exports) it."""

__all__ = [
    "__version__", "BinlearnError", "load_dataset", "Dataset", "DataError", "SOURCES", "sign", "heaviside",
    "Sign",
    "Heaviside", "BinarySign", "pack_signs", "unpack_signs", "binary_dense", "PackedModel",
    "PackedFormatError", "BinaryLinear", "mlp", "summary", "mlp_to_packed", "EnergyNet", "fully_connected",
    "convolutional", "FloatWeights", "BinaryWeights", "HardSigmoid", "BinaryAccumulator", "SquaredError",
    "CrossEntropyReadout", "EnergyState", "Nudge", "DriveNudge", "StateNudge", "FreeDriveNudge", "relax",
    "relax_step", "prepare", "energy_to_packed", "convert", "simulate", "simulate_ep", "IF", "Integrator",
    "SpikingNetwork", "to_nir", "write_nir", "read_nir", "EP", "BPTT",
    "STE", "Bop", "LocalBinary", "LocalBinaryParameters", "CPR", "CommitteeParameters", "GradientRule",
    "LocalRule", "ExperimentConfig", "load_config", "train", "evaluate_run", "load_trained", "TrainedRun",
    "export_run", "Learner", "ConfigError", "RunError", "CheckpointError",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its package on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'binlearn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and IDEs see
    from binlearn.artifacts import TrainedRun, evaluate_run, export_run, load_trained
    from binlearn.binary import (
        BinarySign,
        Heaviside,
        Sign,
        binary_dense,
        heaviside,
        pack_signs,
        sign,
        unpack_signs,
    )
    from binlearn.binary.packed_format import PackedFormatError, PackedModel
    from binlearn.data import SOURCES, DataError, Dataset, load_dataset
    from binlearn.energy import (
        BinaryAccumulator,
        BinaryWeights,
        CrossEntropyReadout,
        DriveNudge,
        EnergyNet,
        EnergyState,
        FloatWeights,
        FreeDriveNudge,
        HardSigmoid,
        Nudge,
        SquaredError,
        StateNudge,
        convolutional,
        fully_connected,
        prepare,
        relax,
        relax_step,
    )
    from binlearn.energy.packed import energy_to_packed
    from binlearn.errors import BinlearnError
    from binlearn.experiment import (
        CheckpointError,
        ConfigError,
        ExperimentConfig,
        Learner,
        RunError,
        load_config,
        train,
    )
    from binlearn.nn import BinaryLinear, mlp, summary
    from binlearn.nn.packed import mlp_to_packed
    from binlearn.rules import (
        BPTT,
        CPR,
        EP,
        STE,
        Bop,
        CommitteeParameters,
        GradientRule,
        LocalBinary,
        LocalBinaryParameters,
        LocalRule,
    )
    from binlearn.spiking import (
        IF,
        Integrator,
        SpikingNetwork,
        convert,
        read_nir,
        simulate,
        simulate_ep,
        to_nir,
        write_nir,
    )

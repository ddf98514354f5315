"""Training: typed configs, the runner (run directories, checkpoints, metrics, plots, resume,
torchrun), the learner contract and the learners. The only place that wires data + model +
rule for training; what a trained run becomes (packed, spiking, NIR) is
:mod:`binlearn.artifacts`, the paper rows are :mod:`binlearn.reproduce`."""

from binlearn.experiment.checkpoint import CheckpointError
from binlearn.experiment.config import (
    ConfigError,
    DataConfig,
    ExperimentConfig,
    TrainConfig,
    load_config,
)
from binlearn.experiment.learner import Learner, LocalReducer, Reducer, StepStats
from binlearn.experiment.runner import (
    RunError,
    TrainingDiverged,
    load_run,
    resolve_device,
    train,
)

__all__ = [
    "ConfigError", "CheckpointError", "RunError", "TrainingDiverged", "DataConfig",
    "ExperimentConfig", "TrainConfig", "load_config", "train", "load_run",
    "resolve_device", "Learner", "Reducer", "LocalReducer", "StepStats",
]

"""Experiments: typed configs, the runner (run directories, checkpoints, metrics, plots,
resume, torchrun), the learner contract, reading a trained run back and exporting it. The
only place that wires data + model + rule."""

from binlearn.experiment.checkpoint import CheckpointError
from binlearn.experiment.config import (
    ConfigError,
    DataConfig,
    ExperimentConfig,
    TrainConfig,
    load_config,
)
from binlearn.experiment.export import EXPORT_FORMATS, export_run, infer_export
from binlearn.experiment.learner import Learner, LocalReducer, Reducer, StepStats
from binlearn.experiment.runner import (
    RunError,
    TrainingDiverged,
    load_run,
    resolve_device,
    train,
)
from binlearn.experiment.trained import TrainedRun, evaluate_run, load_trained

__all__ = [
    "ConfigError", "CheckpointError", "RunError", "TrainingDiverged", "DataConfig",
    "ExperimentConfig", "TrainConfig", "load_config", "train", "evaluate_run", "load_run", "load_trained",
    "TrainedRun", "resolve_device", "Learner", "Reducer", "LocalReducer", "StepStats", "export_run",
    "infer_export", "EXPORT_FORMATS",
]

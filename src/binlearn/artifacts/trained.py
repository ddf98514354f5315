"""A trained run read back, the one entry of every command that uses a run's result
(``binlearn eval``, ``binlearn export``, ``binlearn convert``):

    run_dir/{config.toml, checkpoint.pt}  →  TrainedRun(config, learner with the checkpoint's
                                             state, the data encoded as in training, epoch)

Every problem with the run directory, its config or its checkpoint is one line
(:class:`~binlearn.experiment.RunError`, :class:`~binlearn.experiment.CheckpointError`,
:class:`~binlearn.experiment.ConfigError`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from binlearn.data import Dataset, load_dataset
from binlearn.experiment.checkpoint import CheckpointError
from binlearn.experiment.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    eval_keys,
)
from binlearn.experiment.learner import Learner, learner_memory
from binlearn.experiment.registry import build_learner, check_memory, kind_and_rule
from binlearn.experiment.runner import evaluate, load_learner_state, load_run, resolve_device

__all__ = ["TrainedRun", "load_trained", "evaluate_run", "NO_LEARNING_MEMORY"]

NO_LEARNING_MEMORY = ("not reported: this run's learner does not say how many bits of learning state "
                      "it keeps per synapse")
"""The ``learning_memory_note`` an artefact carries when :attr:`TrainedRun.learning_memory` is None."""


@dataclass(frozen=True)
class TrainedRun:
    """A run's latest checkpoint, rebuilt.

    run_dir: the run directory; config: its config (with the read-back overrides applied);
    epoch: the epochs the checkpoint has trained; learner: the model and its rule with the
    checkpoint's state, on ``device``; data: the dataset split and encoded as in training
    (``data.x_train`` etc. on ``device``; ``data.input_shape``, ``data.num_classes``).
    """

    run_dir: Path
    config: ExperimentConfig
    epoch: int
    learner: Learner
    data: Dataset
    device: torch.device

    @property
    def model(self) -> Any:
        """The trained model, typed (``nn.Sequential``, ``EnergyNet``, ``SignNetwork``,
        ``CommitteeMachine``): what its artefacts are made from
        (:mod:`binlearn.artifacts.registry`, keyed by this type)."""
        return self.learner.model

    @property
    def model_kind(self) -> str:
        """``[model] kind`` of the run (e.g. "energy", "mlp")."""
        return kind_and_rule(self.config)[0]

    @property
    def rule_name(self) -> str:
        """``[rule] name`` of the run (e.g. "ep", "ste")."""
        return kind_and_rule(self.config)[1]

    @property
    def learning_memory(self) -> dict[str, Any] | None:
        """The bits of learning state per synapse and the network's total on-chip learning
        memory, as meta.json and summary.json give them
        (:func:`~binlearn.experiment.learner.memory_totals`): what the checkpoint's optimizers
        (or local rule) keep for the model exported, read from the learner rebuilt from the
        run's config — so runs written before binlearn recorded the figure have it too. None
        for a learner that does not say (an artefact then carries ``learning_memory: null``
        and :data:`NO_LEARNING_MEMORY` as ``learning_memory_note``, never an estimate)."""
        return learner_memory(self.learner)

    def learning_memory_fields(self) -> dict[str, Any]:
        """``{"learning_memory": ...}`` for an artefact's metadata, with the note when None."""
        memory = self.learning_memory
        if memory is None:
            return {"learning_memory": None, "learning_memory_note": NO_LEARNING_MEMORY}
        return {"learning_memory": memory}


def load_trained(run_dir: str | Path, *, overrides: list[str] | None = None,
                 device: str | Callable[[ExperimentConfig], str] | None = None,
                 quiet: bool = False, check: Callable[[ExperimentConfig], None] | None = None) -> TrainedRun:
    """Read ``run_dir``'s config and latest checkpoint, load its data and rebuild its learner.

    Args:
        run_dir: a run directory written by ``binlearn train``.
        overrides: ``KEY=VALUE`` items, keys of :func:`~binlearn.experiment.config.eval_keys`: the
            fields declared ``setting(evaluation=True)``, how the model runs, not what was trained
            (e.g. ``rule.eval_steps=50`` relaxes the free phase for 50 steps instead of the trained T).
        device: where to build the learner and put the data (``"cpu"``, ``"auto"``, ``"cuda:1"``,
            or a function of the run's config that returns one); None: the run's ``train.device``.
        quiet: no progress bars while loading data.
        check: called with the run's typed config before its checkpoint and data are read
            (e.g. to refuse a run that cannot be converted, in one line and at once).
    Raises:
        RunError, CheckpointError, ConfigError, DataError: one line each.
    """
    run_dir = Path(run_dir)
    config, checkpoint = load_run(run_dir, check)
    epoch = checkpoint.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise CheckpointError(f"{run_dir}/checkpoint.pt has no epoch count: not written by binlearn train")
    overrides = list(overrides or [])
    allowed = eval_keys(config)
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key not in allowed:
            raise ConfigError(f"eval accepts --set {', '.join(allowed)}; not {key!r}")
    if overrides:
        config = config_from_dict(apply_overrides(config_to_dict(config), overrides))
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    if callable(device):
        device = device(config)
    where = (resolve_device(config.train.device) if device is None
             else resolve_device(device, option="--device"))
    data = load_dataset(config.data, quiet=quiet).to(where)
    check_memory(config, data.input_shape, data.num_classes, where)
    learner = build_learner(config, data.input_shape, data.num_classes, where)
    load_learner_state(learner, checkpoint, run_dir)
    return TrainedRun(run_dir, config, epoch, learner, data, where)


def evaluate_run(run_dir: Path, *, split: str = "test", quiet: bool = False,
                 overrides: list[str] | None = None) -> dict[str, Any]:
    """Rebuild a run's learner from its checkpoint (:func:`load_trained`) and measure its
    accuracy on ``split`` (test | train | validation)."""
    trained = load_trained(run_dir, overrides=overrides, quiet=quiet)
    data = trained.data
    x, y = {"test": (data.x_test, data.y_test), "train": (data.x_train, data.y_train),
            "validation": (data.x_val, data.y_val)}[split]
    accuracy = evaluate(trained.learner, x, y, trained.config.data.eval_batch_size)
    result: dict[str, Any] = {"run_dir": str(run_dir), "split": split, "epoch": trained.epoch,
                              "accuracy": accuracy, "samples": len(x)}
    if overrides:
        result["overrides"] = list(overrides)
    return result

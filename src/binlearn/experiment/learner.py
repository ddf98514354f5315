"""The contract between the runner and what it trains.

A *rule* acts on a *model* (:mod:`binlearn.rules`); the runner only ever talks to a
:class:`Learner`, the small adapter (in :mod:`binlearn.experiment.learners`) that owns a
model, the rule that trains it and the rule's optimizer state. Keeping this surface tiny is
what lets EP, BPTT, the STE baseline and the local binary rules share one runner, one
checkpoint format and one distributed code path.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["Reducer", "LocalReducer", "Learner", "StepStats", "memory_totals", "learner_memory"]

StepStats = dict[str, float]
"""What one training step reports: at least ``loss`` (summed over the batch, as a float)
and ``correct`` (number of correctly classified samples in the batch)."""


@runtime_checkable
class Reducer(Protocol):
    """How per-process updates are combined (identity for a single process).

    Data-parallel training is correct when every learner reduces its *update* (gradient
    estimate, integer weight increment, flip statistics) before applying it, so every rank
    applies the same update and weights stay identical across ranks.
    """

    world_size: int

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """Element-wise mean over ranks (returns a tensor; may be the input, modified)."""
        ...

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks."""
        ...


class LocalReducer:
    """The single-process reducer: every reduction is the identity."""

    world_size = 1

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor


@runtime_checkable
class Learner(Protocol):
    """A model plus the rule (and optimizer state) that trains it: what the runner drives.

    The runner calls, per epoch: ``train_step`` for each mini-batch (on this rank's shard),
    then ``end_epoch``; ``predict`` for evaluation; ``state_dict``/``load_state_dict`` for
    checkpoints. Randomness inside a learner must come from ``torch``'s global generator
    (the runner re-seeds it at every epoch start, which makes resumed runs bit-identical)
    or from state saved in ``state_dict``.
    """

    model: Any
    """What is trained, typed (an ``nn.Sequential``, an ``EnergyNet``, a
    :class:`~binlearn.rules.local_binary.SignNetwork`, a ``CommitteeMachine``): its type says
    what a trained run can become (packed, spiking, NIR; :mod:`binlearn.artifacts.registry`)."""

    def train_step(self, x: torch.Tensor, y: torch.Tensor, reducer: Reducer) -> StepStats:
        """One update from a mini-batch. ``x``: (batch, ...) on the learner's device,
        ``y``: (batch,) int64 class labels. Returns ``{"loss": float, "correct": float, ...}``
        with sums over this rank's batch (the runner aggregates)."""
        ...

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class predictions, (batch,) int64, for evaluation (no learning)."""
        ...

    def end_epoch(self, epoch: int, train_accuracy: float, reducer: Reducer) -> dict[str, Any]:
        """Called after each epoch; returns extra metrics for metrics.jsonl (e.g. flips per
        layer). May adapt rule state (e.g. the reinforcement probability)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...


def memory_totals(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """The learning memory of a network from its rows ``{"parameter", "synapses", "optimizer",
    "bits_per_synapse"}`` (one per trained synapse tensor)::

        {"layers": rows, "synapses": N, "bits": Σ synapses · bits_per_synapse,
         "bytes": ⌈bits / 8⌉, "kib": bytes / 1024 (3 decimals)}
    """
    bits = sum(row["synapses"] * row["bits_per_synapse"] for row in layers)
    return {"layers": layers, "synapses": sum(row["synapses"] for row in layers), "bits": bits,
            "bytes": (bits + 7) // 8, "kib": round((bits + 7) // 8 / 1024, 3)}


def learner_memory(learner: Any) -> dict[str, Any] | None:
    """Bits of learning state per synapse and the network's total (:func:`memory_totals`'s
    layout) for a learner that says (a ``learning_memory()`` method: the gradient learner, the
    local learner); None for one that does not."""
    report = getattr(learner, "learning_memory", None)
    return report() if callable(report) else None

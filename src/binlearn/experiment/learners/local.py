"""The local learner: one learner for every :class:`~binlearn.rules.base.LocalRule` (the local
binary rule and CP+R).

It drives the rule and reports on it; the rule owns its state (integer hidden weights, frozen
error-signal weights, reinforcement counters), sets it at each epoch start
(``rule.start_epoch``) and saves it (``rule.state_dict``), as an optimizer owns its slots. The
learner keeps only what it measures: the signs at the epoch start (saved, so a resumed run
reports the same sign changes) and the unit updates of the epoch.

Inputs must be binary (``data.encoding = "binarize"`` or ``"thermometer"``, signed or not);
they become ±1 bits once per batch at this boundary. The rules run on the CPU with the numba
kernels whatever ``train.device`` says (tensors are moved at the boundary). Randomness: every
step draws its reinforcement seed from torch's global generator (re-seeded by the runner at
each epoch start), so a resumed run is bit-identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from binlearn.binary.packing import to_numpy_words
from binlearn.experiment.learner import Reducer, memory_totals
from binlearn.rules.base import LocalRule
from binlearn.rules.local_binary import input_signs

__all__ = ["LocalLearner"]


def _step_seed() -> int:
    return int(torch.randint(0, 2**62, (), dtype=torch.int64))


def _reduce(reducer: Reducer):
    return reducer.sum if reducer.world_size > 1 else None


def _layer_metrics(layers: list[Any], start_words: list[torch.Tensor], bits: int) -> dict[str, Any]:
    """Mean |H| per layer and the fraction of binary weights whose sign changed this epoch."""
    mean_abs, changed = [], []
    for layer, before in zip(layers, start_words, strict=True):
        mean_abs.append(round(float(layer.hidden.abs().double().mean()), 3))
        flips = np.bitwise_count(to_numpy_words(layer.weight_words) ^ to_numpy_words(before)).sum()
        changed.append(float(flips) / layer.hidden.numel())
    return {"mean_abs_hidden": mean_abs, "sign_change_fraction": changed,
            "reinforcement_probability": [layer.reinforcement_numerator / 2**bits for layer in layers]}


class LocalLearner:
    """A model trained by a local rule (the runner's :class:`~binlearn.experiment.learner.Learner`).

    model: what the rule trains (a :class:`~binlearn.rules.local_binary.SignNetwork`, the
    sequence of its ±1 layers, for the local binary rule, a
    :class:`~binlearn.rules.cpr.CommitteeMachine` for CP+R);
    rule: :class:`~binlearn.rules.LocalBinary` or :class:`~binlearn.rules.CPR`.
    """

    def __init__(self, model: Any, rule: LocalRule, device: torch.device) -> None:
        self.model, self.rule, self.device = model, rule, device
        self.rule.start_epoch(model, 0.0)
        self._epoch_start = self._words()
        self._updates = [0] * len(self._epoch_start)

    @property
    def params(self) -> Any:
        """The rule's hyper-parameters."""
        return self.rule.params  # type: ignore[attr-defined]  # both local rules have them

    def _words(self) -> list[torch.Tensor]:
        return [layer.weight_words.clone() for layer in self.rule.layers(self.model)]

    def train_step(self, x: torch.Tensor, y: torch.Tensor, reducer: Reducer) -> dict[str, float]:
        result = self.rule.step(self.model, input_signs(x), y.cpu(), seed=_step_seed(),
                                reduce=_reduce(reducer))
        self._updates = [a + b for a, b in zip(self._updates, result.updates, strict=True)]
        return {"loss": float(result.mistakes), "correct": float(result.correct)}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.rule.predict(self.model, input_signs(x)).to(x.device)

    def end_epoch(self, epoch: int, train_accuracy: float, reducer: Reducer) -> dict[str, Any]:
        layers = self.rule.layers(self.model)
        metrics = _layer_metrics(layers, self._epoch_start, self.params.probability_bits)
        metrics["unit_updates"] = self._updates
        self.rule.start_epoch(self.model, train_accuracy)  # p_r for the next epoch
        self._epoch_start = self._words()
        self._updates = [0] * len(self._epoch_start)
        return metrics

    def learning_memory(self) -> dict[str, Any]:
        """The bits of learning state per synapse and the network's total
        (:func:`~binlearn.experiment.learner.memory_totals`): each trained layer's integer hidden
        weights H, b bits per synapse (b = 16 or 32, ``model.hidden_dtype``; the ±1 weight is
        sign(H), so no bit more). The frozen classifiers or readout (±1, never learned) and the
        per-layer reinforcement counter are not learning state per synapse; a ``rule.clip``
        bounds |H| but the stored integer keeps its b bits."""
        rows = [{"parameter": f"layers.{index}.hidden", "synapses": layer.hidden.numel(),
                 "optimizer": type(self.rule).__name__, "bits_per_synapse": 8 * layer.hidden.element_size()}
                for index, layer in enumerate(self.rule.layers(self.model))]
        return memory_totals(rows)

    def state_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.state_dict(self.model),
                "epoch_start_words": [w.clone() for w in self._epoch_start]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The state of :meth:`state_dict`, or the layout written before the rule saved its own
        state (the rule's keys beside ``epoch_start_words``, a single tensor for CP+R)."""
        words = state["epoch_start_words"]
        rule_state = state["rule"] if "rule" in state else \
            {key: value for key, value in state.items() if key != "epoch_start_words"}
        self.rule.load_state_dict(self.model, rule_state)
        words = [words] if isinstance(words, torch.Tensor) else list(words)
        self._epoch_start = [w.clone() for w in words]

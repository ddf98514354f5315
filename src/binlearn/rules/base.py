"""The two kinds of learning rule, as protocols a rule implements and a caller relies on.

    GradientRule.gradients(model, x, y) -> {parameter name: ∂L/∂θ estimate}
    LocalRule.step(model, x, y, *, seed, reduce) -> result with mistakes, correct, updates

A gradient rule (EP, BPTT, STE) only estimates; any optimizer (SGD,
:class:`~binlearn.rules.bop.Bop`) applies the estimate. A local rule (the binary-native
rule, CP+R) updates its model's integer weights itself, in place, from information local to
each layer. How a model, a rule and its optimizers are driven through training is the
runner's contract, :class:`binlearn.experiment.learner.Learner`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["GradientRule", "LocalRule", "LocalStepResult"]


@runtime_checkable
class GradientRule(Protocol):
    """A rule that estimates gradients of the loss for every trainable parameter.

    ``EP`` and ``BPTT`` both return ``{parameter_name: tensor}`` with the same names and
    shapes, so comparing them (the GDU test) is a plain dictionary comparison, and any
    optimizer (SGD, :class:`~binlearn.rules.bop.Bop`) can consume either.
    """

    def gradients(self, model: Any, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        ...


class LocalStepResult(Protocol):
    """What a local step reports: ``mistakes`` (samples wrong or below the margin),
    ``correct`` (samples whose argmax is the label) and ``updates`` (per layer)."""

    @property
    def mistakes(self) -> int: ...

    @property
    def correct(self) -> int: ...

    @property
    def updates(self) -> tuple[int, ...]: ...


@runtime_checkable
class LocalRule(Protocol):
    """A rule that updates its model in place from layer-local signals, one mini-batch at a time.

    ``step(model, x, y, seed=, reduce=)``: ``model`` the rule's network (its integer weights
    are the rule state), ``x`` (batch, n_in) int8 ±1 inputs, ``y`` (batch,) int64 labels;
    ``seed`` a 64-bit seed of the step's randomness (the caller draws it, so a resumed run
    draws the same); ``reduce`` None, or a function summing an integer increment tensor
    over data-parallel ranks before it is applied (so every rank applies the same update).

    The rule owns its state as an optimizer owns its slots (integer hidden weights, frozen
    error-signal weights, reinforcement counters): kept in the model's arrays, written only by
    the rule. ``start_epoch(model, train_accuracy)`` sets what depends on the last epoch;
    ``state_dict(model)`` / ``load_state_dict(model, state)`` save and restore it (a resumed
    run is the same run); ``layers(model)`` lists the trained layers (``hidden``,
    ``weight_words``, ``reinforcement_numerator``); ``predict(model, x)`` reads the model out.
    """

    def step(self, model: Any, x: torch.Tensor, y: torch.Tensor, *, seed: int,
             reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> LocalStepResult:
        ...

    def predict(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        ...

    def layers(self, model: Any) -> list[Any]:
        ...

    def start_epoch(self, model: Any, train_accuracy: float) -> None:
        ...

    def state_dict(self, model: Any) -> dict[str, Any]:
        ...

    def load_state_dict(self, model: Any, state: dict[str, Any]) -> None:
        ...

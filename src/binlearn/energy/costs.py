"""Output costs: how the output is read, how it is nudged, and what loss it reports.

Two costs, both passed to the network as objects:

- :class:`SquaredError` — C = ½ ‖t − s_out‖², the output is the last dynamical layer.
  With ``group_size > 1`` each class owns a group of output neurons ("expand_output" of
  Laydevant et al. 2021, needed for binary outputs): the target sets the whole group to 1
  and the prediction is the group with the highest mean activity.
- :class:`CrossEntropyReadout` — C = CE(softmax(W_ro a_L + b_ro), y): a readout outside
  the dynamics on top of the last dynamical layer (Laborieux et al. 2021). Its weights are
  trained by the cost's own derivative at the nudged states.

A nudge is the extra drive −β ∂C/∂s added to the output layer during a nudged phase.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SquaredError", "CrossEntropyReadout", "Cost"]


def _group_means(values: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean of each class's group of outputs, summed in one defined order: the relaxation's
    output may be a transposed view, and a strided mean adds in another order (last-bit
    differences that the packed engine, and batch layouts, would not reproduce)."""
    return values.contiguous().reshape(values.shape[0], num_classes, -1).mean(dim=2)


class SquaredError:
    """C = ½ ‖t − s_out‖²,  nudge = β (t − s_out).

    Args:
        num_classes: number of classes.
        group_size: output neurons per class (1: one neuron per class); the output layer
            has ``num_classes * group_size`` neurons, class k owning neurons
            ``[k·group_size, (k+1)·group_size)``.
    """

    readout = False
    tie_break = 1e-3
    """Weight of the group-mean accumulator in the score of binary outputs (breaks ties)."""

    def __init__(self, num_classes: int, group_size: int = 1) -> None:
        if num_classes < 2 or group_size < 1:
            raise ValueError(f"SquaredError needs num_classes >= 2 and group_size >= 1, "
                             f"got {num_classes}, {group_size}")
        self.num_classes, self.group_size = int(num_classes), int(group_size)

    def __repr__(self) -> str:
        return f"SquaredError(num_classes={self.num_classes}, group_size={self.group_size})"

    @property
    def num_outputs(self) -> int:
        return self.num_classes * self.group_size

    def target(self, labels: torch.Tensor) -> torch.Tensor:
        """t: (batch, num_outputs) in {0, 1}, the labelled class's whole group set to 1."""
        one_hot = F.one_hot(labels, self.num_classes).to(torch.float32)
        return one_hot.repeat_interleave(self.group_size, dim=1)

    def add_nudge(self, drive: torch.Tensor, state: torch.Tensor, activation: torch.Tensor,
                  target: torch.Tensor, beta: float, inplace: bool = False) -> torch.Tensor:
        """drive + β (t − s_out); ``state``: (batch, num_outputs) output accumulators."""
        if inplace:
            return drive.add_(target, alpha=beta).sub_(state, alpha=beta)
        return drive + beta * (target - state)

    def loss(self, state: torch.Tensor, activation: torch.Tensor,
             target: torch.Tensor) -> torch.Tensor:
        """C per sample, (batch,)."""
        return 0.5 * (target - state).pow(2).sum(dim=1)

    def scores(self, state: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
        """Class scores, (batch, classes): the group-mean activity; for binary outputs plus
        ``tie_break`` × the group-mean accumulator, which breaks the ties that coarse {0, 1}
        outputs make frequent."""
        scores = _group_means(activation, self.num_classes)
        if activation is not state:
            scores = scores + self.tie_break * _group_means(state, self.num_classes)
        return scores

    def predict(self, state: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
        """argmax over classes of :meth:`scores` (first on ties), (batch,) int64."""
        return self.scores(state, activation).argmax(dim=1)

    def derivatives(self, activation: torch.Tensor, target: torch.Tensor) -> dict:
        return {}


class CrossEntropyReadout(nn.Module):
    """C = CE(softmax(W_ro a + b_ro), y),  nudge = β (onehot(y) − softmax(·)) W_ro.

    Args:
        in_features: size of the (flattened) last dynamical layer.
        num_classes: number of classes.
    """

    readout = True
    group_size = 1

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.in_features, self.num_classes = int(in_features), int(num_classes)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(num_classes, in_features).uniform_(-bound, bound),
                                   requires_grad=False)
        self.bias = nn.Parameter(torch.empty(num_classes).uniform_(-bound, bound),
                                 requires_grad=False)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.num_classes}"

    def target(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels, self.num_classes).to(torch.float32)

    def logits(self, activation: torch.Tensor, weight=None, bias=None) -> torch.Tensor:
        weight = self.weight if weight is None else weight
        bias = self.bias if bias is None else bias
        return torch.addmm(bias, activation.flatten(1), weight.t())

    def add_nudge(self, drive: torch.Tensor, state: torch.Tensor, activation: torch.Tensor,
                  target: torch.Tensor, beta: float, inplace: bool = False) -> torch.Tensor:
        error = target - torch.softmax(self.logits(activation), dim=1)
        push = (error @ self.weight).view(drive.shape)
        if inplace:
            return drive.add_(push, alpha=beta)
        return drive + beta * push

    def loss(self, state: torch.Tensor, activation: torch.Tensor, target: torch.Tensor,
             weight=None, bias=None) -> torch.Tensor:
        logits = self.logits(activation, weight, bias)
        return -(target * torch.log_softmax(logits, dim=1)).sum(dim=1)

    def predict(self, state: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
        return self.logits(activation).argmax(dim=1)

    def derivatives(self, activation: torch.Tensor, target: torch.Tensor) -> dict:
        """∂C/∂W_ro, ∂C/∂b_ro summed over the batch."""
        error = torch.softmax(self.logits(activation), dim=1) - target
        return {"cost.weight": error.t() @ activation.flatten(1), "cost.bias": error.sum(dim=0)}


Cost = SquaredError | CrossEntropyReadout

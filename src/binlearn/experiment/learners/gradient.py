"""The gradient learner: one learner for every gradient rule (EP and BPTT on energy nets, STE
back-propagation on feed-forward nets).

Per mini-batch: the model family's :class:`GradientSource` estimates ∂L/∂θ by parameter name;
every estimate is averaged over ranks (``reducer.mean``) before any optimizer step, so
data-parallel replicas stay identical; every optimizer steps; the family's post-step checks
run. The optimizers are **routed by weight precision** (:func:`route`): a parameter the
family marks binary (±1 signs, e.g. a binary-weight coupling) always goes to
:class:`~binlearn.rules.Bop`, every float parameter (float weights, STE latent weights,
biases, a readout) to the family's float optimizer (SGD or Adam), the learned scaling factors
α to their own SGD. One :class:`~binlearn.experiment.schedule.Schedule` drives every rate (and
Bop's τ and γ); the state saved is the model's, every optimizer's and the epochs done.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from binlearn.experiment.config import ScheduleConfig
from binlearn.experiment.learner import Reducer, StepStats, memory_totals
from binlearn.experiment.learners.optimizer_state import load_optimizer_state
from binlearn.experiment.schedule import Schedule
from binlearn.rules import Bop
from binlearn.rules.integer_synapse import IntegerSynapseOptimizer

__all__ = ["ParameterGroup", "GradientSource", "route", "GradientLearner", "BOP", "FLOAT", "SCALE",
           "state_bits", "learning_memory"]

BOP = "weights"
"""The optimizer of the binary (±1) weights: Bop or an integer synapse optimizer (its key in
``optimizers`` and checkpoints)."""
FLOAT = "float"
"""The optimizer of the float parameters: the family's SGD or Adam."""
SCALE = "scale"
"""The SGD of the learned scaling factors α (float, with their own rate and decay)."""


@dataclass
class ParameterGroup:
    """Parameters with their optimizer settings, as the model family declares them.

    binary: the parameters hold ±1 signs (decided by their layer): they go to Bop, and
    ``options`` are Bop's (``gamma``, ``threshold``); otherwise ``options`` are the float
    optimizer's (``lr``, ``weight_decay``, ...) and ``scaling`` says the parameters are learned
    scaling factors α (their own SGD). scale: Bop's α for the scaled threshold (binary only).
    """

    params: list[torch.Tensor]
    binary: bool
    options: dict[str, Any]
    scaling: bool = False
    scale: torch.Tensor | None = None


OptimizerFactory = Callable[[str, list[dict[str, Any]], list[Any]], torch.optim.Optimizer]
"""(BOP | FLOAT | SCALE, torch parameter groups, Bop scales) -> the optimizer."""


def route(groups: list[ParameterGroup], build: OptimizerFactory) -> dict[str, torch.optim.Optimizer]:
    """One optimizer per precision, in step order: Bop for the binary groups, the float
    optimizer for the float ones, SGD for the scaling factors (each only if it has groups).
    Groups keep their declared order within an optimizer (checkpoints index them by it)."""
    optimizers: dict[str, torch.optim.Optimizer] = {}
    for key, chosen in ((BOP, [g for g in groups if g.binary]),
                        (FLOAT, [g for g in groups if not g.binary and not g.scaling]),
                        (SCALE, [g for g in groups if g.scaling])):
        if chosen:
            optimizers[key] = build(key, [{"params": g.params, **g.options} for g in chosen],
                                    [g.scale for g in chosen])
    return optimizers


class GradientSource(Protocol):
    """What a model family brings to the gradient learner (e.g. energy nets with EP or BPTT,
    feed-forward nets with STE)."""

    @property
    def model(self) -> nn.Module:
        """What is trained (e.g. an EnergyNet, an ``nn.Sequential``)."""
        ...

    @property
    def rule(self) -> Any:
        """The gradient estimator (EP, BPTT, STE)."""
        ...

    @property
    def lr_metric(self) -> str:
        """``"trained"``: the ``lr`` metric is the rate the epoch trained with; ``"next"``: the
        rate after the schedule's update (what each family has always reported)."""
        ...

    def parameter_groups(self) -> list[ParameterGroup]:
        """Every trained parameter, with its precision and settings, in a fixed order."""
        ...

    def build_optimizer(self, key: str, groups: list[dict[str, Any]],
                        scales: list[Any]) -> torch.optim.Optimizer:
        ...

    def estimate(self, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[dict[str, torch.Tensor], Callable[[], StepStats]]:
        """{parameter name: gradient estimate} for one batch, and the batch's stats (read after
        the step: loss summed over the batch, correct count)."""
        ...

    def after_step(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        """Checks and projections after every optimizer stepped (e.g. clip latent weights)."""
        ...

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        ...

    def end_epoch(self, reducer: Reducer) -> dict[str, Any]:
        """The family's metrics of the epoch (and per-rank buffers made equal)."""
        ...


class GradientLearner:
    """A model, its gradient rule and the optimizers routed by weight precision (the runner's
    :class:`~binlearn.experiment.learner.Learner`)."""

    def __init__(self, source: GradientSource, schedule: ScheduleConfig | None = None) -> None:
        self.source, self.model, self.rule = source, source.model, source.rule
        self.optimizers = route(source.parameter_groups(), source.build_optimizer)
        self.schedule = Schedule(schedule or ScheduleConfig())
        for key, optimizer in self.optimizers.items():
            if isinstance(optimizer, Bop):
                self.schedule.drive_flips(optimizer)
            elif key != BOP:  # integer synapse state has no rate (the config refuses a flip schedule)
                self.schedule.drive_rates(optimizer)
        self._parameters = dict(self.model.named_parameters())
        self.epochs_done = 0

    def train_step(self, x: torch.Tensor, y: torch.Tensor, reducer: Reducer) -> dict[str, float]:
        gradients, stats = self.source.estimate(x, y)
        trained = [self._parameters[name] for name in gradients]
        for param, gradient in zip(trained, gradients.values(), strict=True):
            param.grad = reducer.mean(gradient)
        for optimizer in self.optimizers.values():
            optimizer.step()
        for param in trained:
            param.grad = None
        self.source.after_step(self.optimizers)
        return stats()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.source.predict(x)

    def end_epoch(self, epoch: int, train_accuracy: float, reducer: Reducer) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        bop = self.optimizers.get(BOP)
        if isinstance(bop, Bop | IntegerSynapseOptimizer):
            metrics["flips"] = bop.flip_counts(reset=True)
        metrics.update(self.source.end_epoch(reducer))
        trained_rate = self.optimizers[FLOAT].param_groups[0]["lr"]  # the rate this epoch trained with
        self.epochs_done += 1
        self.schedule.apply(self.epochs_done)
        metrics["lr"] = trained_rate if self.source.lr_metric == "trained" else \
            self.optimizers[FLOAT].param_groups[0]["lr"]
        if self.schedule.config.anneal_flips:
            metrics["thresholds"] = [g["threshold"] if math.isfinite(g["threshold"]) else None
                                     for g in self.optimizers[BOP].param_groups]
        if self.schedule.config.anneal_gamma:
            metrics["gammas"] = [g["gamma"] for g in self.optimizers[BOP].param_groups]
        return metrics

    def learning_memory(self) -> dict[str, Any]:
        """The bits of learning state per synapse and the network's total (:func:`learning_memory`)."""
        return learning_memory(self.model, self.optimizers)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(),
                "optimizers": {key: optimizer.state_dict() for key, optimizer in self.optimizers.items()},
                "epochs_done": self.epochs_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The state of :meth:`state_dict`; also the STE layout written before there was one
        gradient learner (``optimizer``: the one float optimizer; and before the shared
        schedule, torch's ExponentialLR state, whose ``last_epoch`` counts the epochs done)."""
        self.model.load_state_dict(state["model"])
        saved = state["optimizers"] if "optimizers" in state else {FLOAT: state["optimizer"]}
        for key, optimizer in self.optimizers.items():  # the config's rates, the saved buffers
            load_optimizer_state(optimizer, saved[key])
        self.epochs_done = int(state["epochs_done"] if "epochs_done" in state
                               else state["scheduler"]["last_epoch"])
        self.schedule.apply(self.epochs_done)  # this config's schedule over the epochs done


def state_bits(optimizer: torch.optim.Optimizer, group: dict[str, Any]) -> int:
    """Bits of learning state per synapse of an optimizer's parameter group: what a chip must
    store to go on learning (the weight and the optimizer's state).

    Bop: 32 + 1 (float32 m and the sign); counter: b + 1; hidden_int: b (the weight is h's
    sign); SGD: 32 (the float32 weight), + 32 with momentum (its buffer); Adam / AdamW: 32 · 3.
    """
    if isinstance(optimizer, IntegerSynapseOptimizer):
        return optimizer.state_bits(group)
    if isinstance(optimizer, Bop):
        return 32 + 1
    if isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
        return 3 * 32
    if isinstance(optimizer, torch.optim.SGD):
        return 32 * (2 if group.get("momentum", 0.0) else 1)
    raise TypeError(f"no bit count for {type(optimizer).__name__}")


def learning_memory(model: nn.Module, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
    """Synapses (every trained matrix or kernel whose name ends in ``weight``: couplings, layers,
    a readout; biases, scaling factors and a batch norm's γ are not synapses) with their optimizer and bits of
    learning state each (:func:`state_bits`), and the total on-chip learning memory::

        {"layers": [{"parameter", "synapses", "optimizer", "bits_per_synapse"}, ...],
         "synapses": N, "bits": Σ synapses · bits, "bytes": ⌈bits / 8⌉, "kib": bytes / 1024}
    """
    names = {id(param): name for name, param in model.named_parameters()}
    layers = []
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            for param in group["params"]:
                name = names.get(id(param), "")
                if not name.endswith("weight") or param.dim() < 2:  # a norm layer's γ is 1-D
                    continue
                layers.append({"parameter": name, "synapses": param.numel(),
                               "optimizer": type(optimizer).__name__,
                               "bits_per_synapse": state_bits(optimizer, group)})
    return memory_totals(layers)

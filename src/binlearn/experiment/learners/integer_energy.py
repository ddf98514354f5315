"""The energy learner in integer arithmetic: ``rule.arithmetic = "integer"``.

:class:`IntegerEnergyLearner` is the :class:`~binlearn.experiment.learners.gradient.GradientLearner`
of an :class:`~binlearn.experiment.learners.energy.EnergyGradients` source (the same checks,
parameter groups, optimizers and checkpoint layout) whose training step and prediction are
:func:`~binlearn.rules.integer_ep.integer_ep_step` and
:func:`~binlearn.rules.integer_ep.integer_predict`. The integers live where a checkpoint keeps
them:

- signs and biases: the net's own ±1 weights and float32 biases, written after every step as
  exact copies of the int8 signs and of Bias_l · 2^−F (|Bias_l| < 2^24, so float32 is exact), and
  read back as integers whenever a parameter was changed from outside (a checkpoint loaded);
  between steps the learner keeps the integers (no conversion per step);
- the synapse state (counter c or hidden h, int8/int16), the step count and the flips: the
  integer synapse optimizer's state, as for the float route;
- the biases' learning rates: the SGD optimizer's groups (so the [schedule] drives them), turned
  into the integer rates R_l every step (:func:`~binlearn.rules.integer_ep.bias_rate`).

Randomness: the sign of β from torch's global generator (as :class:`~binlearn.rules.EP` draws
it); the stochastic rounding from the optimizer's seed and its step count, both in the
checkpoint, so a resumed run is the uninterrupted one bit for bit.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import numpy as np
import torch

from binlearn.binary.kernels.bernoulli import mix_seed
from binlearn.energy import Dense, EnergyNet
from binlearn.experiment.config import ConfigError, ScheduleConfig
from binlearn.experiment.learner import Reducer, StepStats
from binlearn.experiment.learners.gradient import BOP, FLOAT, GradientLearner, GradientSource
from binlearn.rules import EP
from binlearn.rules.integer_ep import (
    IntegerEPParameters,
    IntegerNetwork,
    IntegerSynapseRule,
    bias_rate,
    check_range,
    integer_ep_step,
    integer_parameters,
    integer_predict,
    network_integers,
    with_transposed,
)
from binlearn.rules.integer_synapse import IntegerCounter, IntegerSynapseOptimizer

__all__ = ["IntegerEnergyLearner"]


class EnergySource(GradientSource, Protocol):
    """What this learner reads of its source beyond :class:`GradientSource`: the energy
    learner's :class:`~binlearn.experiment.learners.energy.EnergyGradients`, named by its
    attributes here so that the two modules do not import each other (that module builds this
    learner)."""

    optimizer_cfg: Any
    eval_steps: int


class IntegerEnergyLearner(GradientLearner):
    """The gradient learner of an EnergyNet with EP's step in integers (module docstring).

    Args:
        source: an :class:`~binlearn.experiment.learners.energy.EnergyGradients` with an EP rule
            and an integer synapse optimizer (counter or hidden_int).
        fraction_bits: F.
        schedule: the rates' schedule.
    """

    def __init__(self, source: EnergySource, fraction_bits: int,
                 schedule: ScheduleConfig | None = None) -> None:
        super().__init__(source, schedule)
        if not isinstance(self.rule, EP):
            raise ConfigError("rule.arithmetic = \"integer\" needs rule.name = \"ep\"")
        if not isinstance(self.optimizers.get(BOP), IntegerSynapseOptimizer):
            raise ConfigError("rule.arithmetic = \"integer\" needs optimizer.name = \"counter\" or "
                              "\"hidden_int\" (integer synapse state)")
        if source.optimizer_cfg.update_shift:
            raise ConfigError("rule.arithmetic = \"integer\" applies the exact integer update D (no "
                              "optimizer.update_shift yet); remove optimizer.update_shift or use "
                              "rule.arithmetic = \"float\"")
        try:
            self.params: IntegerEPParameters = integer_parameters(self.model, self.rule, fraction_bits)
            check_range(self.params, network_integers(self.model, fraction_bits))
        except ValueError as error:
            raise ConfigError(f"rule.arithmetic = \"integer\": {error}") from None
        self.fraction_bits = fraction_bits
        self._network: IntegerNetwork | None = None
        self._versions: tuple[int, ...] = ()

    @property
    def synapse_optimizer(self) -> IntegerSynapseOptimizer:
        return cast(IntegerSynapseOptimizer, self.optimizers[BOP])

    def _couplings(self) -> list[Dense]:
        # fully connected: integer_parameters checked it
        return [cast(Dense, c) for c in cast(EnergyNet, self.model).couplings]

    def _mirrored(self) -> list[torch.Tensor]:
        return [t for c in self._couplings() for t in (c.weight, c.bias)]

    def integers(self) -> IntegerNetwork:
        """The signs and biases as integers: kept from the last step, or read from the net when
        a parameter changed since (a loaded checkpoint, a user's edit)."""
        versions = tuple(t._version for t in self._mirrored())
        if self._network is None or versions != self._versions:
            self._network = with_transposed(network_integers(self.model, self.fraction_bits))
            self._versions = versions
        return self._network

    def _write(self, network: IntegerNetwork) -> None:
        unit = 2.0 ** -self.fraction_bits
        with torch.no_grad():
            for coupling, signs, bias in zip(self._couplings(), network.signs, network.biases, strict=True):
                coupling.weight.copy_(signs)
                coupling.bias.copy_(bias.to(torch.float64).mul_(unit))
        self._network = network
        self._versions = tuple(t._version for t in self._mirrored())

    def _rule(self, batch: int) -> IntegerSynapseRule:
        optimizer = self.synapse_optimizer
        rates = {id(p): group["lr"] for group in self.optimizers[FLOAT].param_groups for p in group["params"]}
        rule = cast(EP, self.rule)
        bias_rates = tuple(bias_rate(rates[id(c.bias)], self.fraction_bits, rule.beta, batch, rule.symmetric)
                           for c in self._couplings())
        group = optimizer.param_groups[0]
        if isinstance(optimizer, IntegerCounter):
            return IntegerSynapseRule("counter", int(group["bits"]), int(group["leak_shift"]),
                                      tuple(int(g["threshold"]) for g in optimizer.param_groups), bias_rates)
        return IntegerSynapseRule("hidden_int", int(group["bits"]), 0,
                                  tuple(0 for _ in optimizer.param_groups), bias_rates)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, reducer: Reducer) -> StepStats:
        if reducer.world_size != 1:
            raise ConfigError("rule.arithmetic = \"integer\" trains in one process (no torchrun)")
        if x.device.type != "cpu":
            raise ConfigError("rule.arithmetic = \"integer\" runs on the CPU (train.device = \"cpu\")")
        optimizer = self.synapse_optimizer
        weights = [c.weight for c in self._couplings()]
        states = []
        for weight, group in zip(weights, optimizer.param_groups, strict=True):
            state = optimizer.state[weight]
            if not state:  # as the optimizer's own first step creates it
                state[optimizer.STATE] = optimizer._initial(weight.data, group["bits"])
                state["flips"] = torch.zeros((), dtype=torch.int64)
                state["step"] = torch.zeros((), dtype=torch.int64)
            state["step"] += 1
            states.append(state)
        step_seed = int(mix_seed(np.uint64(optimizer.seed), np.uint64(int(states[0]["step"]))))
        sign = 1
        rule = cast(EP, self.rule)
        if rule.random_sign and not rule.symmetric:  # EP's draw, from the same generator
            sign = 1 if int(torch.randint(0, 2, (1,))) == 1 else -1
        network = self.integers()
        result = integer_ep_step(self.params, self._rule(x.shape[0]), network,
                                 tuple(s[optimizer.STATE] for s in states), x, y, sign, step_seed,
                                 inplace=True)
        for state, synapse, flips in zip(states, result.synapses, result.flips, strict=True):
            state[optimizer.STATE] = synapse
            state["flips"] += flips
        self._write(result.network)
        output = result.free[-1]
        target = torch.nn.functional.one_hot(y, self.params.num_classes).repeat_interleave(
            self.params.group_size, dim=1).to(torch.float64)
        loss = 0.5 * float((target - output.to(torch.float64) * 2.0 ** -self.fraction_bits).pow(2).sum())
        correct = float((result.scores.argmax(dim=1) == y).sum())
        return {"loss": loss, "correct": correct}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        steps = cast(EnergySource, self.source).eval_steps
        return integer_predict(self.params, self.integers(), x.cpu(), steps).to(x.device)

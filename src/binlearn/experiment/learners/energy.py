"""Energy-based networks wired as learners: ``[model] kind = "energy"``, ``[rule] name =
"ep" | "bptt"``.

The learner owns an :class:`~binlearn.energy.EnergyNet`, a gradient rule
(:class:`~binlearn.rules.EP` or :class:`~binlearn.rules.BPTT`) and the optimizers that
consume its gradient dict: SGD for float weights, :class:`~binlearn.rules.Bop` (per-layer
γ and threshold) for binary weights, SGD for biases (per-layer rates), the learned
scaling factors α and a cross-entropy readout. Every gradient is averaged over ranks
(``reducer.mean``) before any optimizer step, so data-parallel replicas stay identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from binlearn.energy import (
    NUDGE_PLACEMENTS,
    SCHEDULES,
    BinaryAccumulator,
    BinaryWeights,
    EnergyNet,
    FloatWeights,
    HardSigmoid,
    convolutional,
    fully_connected,
)
from binlearn.experiment.config import ConfigError, register_model_config, register_rule_config
from binlearn.experiment.learner import Reducer
from binlearn.experiment.learners.optimizer_state import load_optimizer_state
from binlearn.experiment.registry import register_learner
from binlearn.rules import BPTT, EP, Bop

__all__ = ["EnergyModelConfig", "EPConfig", "BPTTConfig", "EnergyLearner", "build_energy_net",
           "build_energy_learner"]

_ARCHITECTURES = ("fc", "conv")
_NEURONS = ("hard_sigmoid", "binary")
_WEIGHTS = ("float", "binary")
_READOUTS = ("mse", "cross_entropy")
_OPTIMIZERS = ("sgd", "bop")


def _choice(value: str, valid: tuple[str, ...], key: str) -> None:
    if value not in valid:
        raise ConfigError(f"{key}={value!r}; valid: {', '.join(valid)}")


@dataclass
class EnergyModelConfig:
    """An energy-based network (see :mod:`binlearn.energy`).

    ``architecture``: fc (``hidden`` sizes) | conv (``channels``, ``kernel_size``,
    ``padding``/``pool`` one value or one per conv layer, then a dense output layer).
    ``neuron``: hard_sigmoid (``slope``) | binary (accumulator: ``neuron_gamma`` γ_neur,
    ``neuron_threshold``). ``initial_state``: starting value of every neuron (default 0
    for hard sigmoid, 1 for binary). ``weights``: float | binary (α ⊙ sign, ``learn_scale``,
    ``scale`` "mean" or a number). ``group_size``: output neurons per class. ``readout``:
    mse | cross_entropy. ``gain`` multiplies the default initialisation.
    """

    architecture: str = "fc"
    hidden: list[int] = field(default_factory=lambda: [500])
    channels: list[int] = field(default_factory=lambda: [32, 64])
    kernel_size: int = 5
    padding: list[int] = field(default_factory=lambda: [2])
    pool: list[int] = field(default_factory=lambda: [2])
    neuron: str = "hard_sigmoid"
    slope: float = 1.0
    neuron_gamma: float = 0.5
    neuron_threshold: float = 0.5
    initial_state: float | None = None
    weights: str = "float"
    learn_scale: bool = False
    scale: float | str = "mean"
    group_size: int = 1
    readout: str = "mse"
    gain: float = 1.0

    def __post_init__(self) -> None:
        _choice(self.architecture, _ARCHITECTURES, "model.architecture")
        _choice(self.neuron, _NEURONS, "model.neuron")
        _choice(self.weights, _WEIGHTS, "model.weights")
        _choice(self.readout, _READOUTS, "model.readout")
        if self.architecture == "fc" and any(h < 1 for h in self.hidden):
            raise ConfigError(f"model.hidden sizes must be >= 1, got {self.hidden}")
        if self.architecture == "conv" and (not self.channels or any(c < 1 for c in self.channels)):
            raise ConfigError(f"model.channels must be positive channel counts, got {self.channels}")
        if self.group_size < 1:
            raise ConfigError(f"model.group_size must be >= 1, got {self.group_size}")
        if self.readout == "cross_entropy" and self.group_size != 1:
            raise ConfigError("model.group_size > 1 needs readout = \"mse\"")
        if not self.slope > 0:
            raise ConfigError(f"model.slope must be > 0, got {self.slope}")
        if not 0 < self.neuron_gamma <= 1:
            raise ConfigError(f"model.neuron_gamma must be in (0, 1], got {self.neuron_gamma}")
        if isinstance(self.scale, str) and self.scale != "mean":
            raise ConfigError(f"model.scale must be \"mean\" or a positive number, got {self.scale!r}")
        if not isinstance(self.scale, str) and not self.scale > 0:
            raise ConfigError(f"model.scale must be > 0, got {self.scale}")


@dataclass
class _EnergyRuleConfig:
    free_steps: int = 50
    """T, free-phase relaxation steps (training)."""
    eval_steps: int | None = None
    """Free steps at evaluation (default: free_steps)."""
    schedule: str = "synchronous"
    """synchronous | even_odd."""
    optimizer: str = "sgd"
    """sgd (float weights) | bop (binary weights)."""
    learning_rates: list[float] = field(default_factory=lambda: [0.05])
    """SGD weight learning rate per coupling, input to output (one value: all layers)."""
    bias_learning_rates: list[float] | None = None
    """Bias learning rate per layer (default: learning_rates; required with bop)."""
    momentum: float = 0.0
    weight_decay: float = 0.0
    gamma: list[float] | None = None
    """Bop γ per coupling, input to output (bop only)."""
    threshold: list[float] | None = None
    """Bop threshold τ per coupling, input to output (bop only)."""
    flip_on_equal: bool = False
    scaled_threshold: bool = False
    """Bop flips when (m · w) · α > τ (the effective weight) instead of m · w > τ."""
    scale_learning_rate: float = 0.0
    """Learning rate of the scaling factors α (model.learn_scale)."""
    scale_decay: float = 0.0
    readout_learning_rate: float | None = None
    """Cross-entropy readout learning rate (default: the last weight learning rate)."""
    lr_decay: float = 1.0
    """Multiply every learning rate by this after each epoch."""
    cosine_epochs: int = 0
    """> 0: cosine-anneal every learning rate to 0 over this many epochs."""
    decay_start: int = 0
    """Epochs at constant rates before ``lr_decay`` and the cosine schedule begin."""
    anneal_flips: bool = False
    """Bop: divide every threshold τ by the factor that scales the learning rates, so
    flips become rarer as the schedule decays (none once the cosine factor reaches 0)."""
    anneal_gamma: bool = False
    """Bop: multiply every γ by the factor that scales the learning rates, as a learning-rate
    decay of the filtered update m (Helwegen et al. 2019 decay γ): m moves in smaller steps,
    so flips need a steadier push (none once the cosine factor reaches 0: m stops moving)."""

    def _validate(self) -> None:
        if self.free_steps < 1:
            raise ConfigError(f"rule.free_steps (T) must be >= 1, got {self.free_steps}")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise ConfigError(f"rule.eval_steps must be >= 1, got {self.eval_steps}")
        _choice(self.schedule, SCHEDULES, "rule.schedule")
        _choice(self.optimizer, _OPTIMIZERS, "rule.optimizer")
        lists = {"learning_rates": self.learning_rates,
                 "bias_learning_rates": self.bias_learning_rates,
                 "gamma": self.gamma, "threshold": self.threshold}
        for key, values in lists.items():
            if values is not None and (not values or any(v < 0 for v in values)):
                raise ConfigError(f"rule.{key} must be a non-empty list of values >= 0, got {values}")
        if self.optimizer == "bop":
            for key in ("gamma", "threshold", "bias_learning_rates"):
                if lists[key] is None:
                    raise ConfigError(f"rule.optimizer = \"bop\" needs rule.{key} (one per layer)")
            if any(not 0 < g <= 1 for g in self.gamma):
                raise ConfigError(f"rule.gamma (γ) values must be in (0, 1], got {self.gamma}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"rule.lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.cosine_epochs < 0:
            raise ConfigError(f"rule.cosine_epochs must be >= 0, got {self.cosine_epochs}")
        if self.decay_start < 0:
            raise ConfigError(f"rule.decay_start must be >= 0, got {self.decay_start}")
        for key in ("anneal_flips", "anneal_gamma"):
            if getattr(self, key) and self.optimizer != "bop":
                raise ConfigError(f"rule.{key} needs rule.optimizer = \"bop\"")
            if getattr(self, key) and self.lr_decay == 1.0 and self.cosine_epochs == 0:
                raise ConfigError(f"rule.{key} needs a schedule: rule.cosine_epochs > 0 "
                                  "or rule.lr_decay < 1")


@dataclass
class EPConfig(_EnergyRuleConfig):
    """Equilibrium Propagation: ``nudged_steps`` K, ``beta`` β > 0, ``random_sign`` of β per
    batch, ``symmetric`` ±β nudging; optimizer settings as in every energy rule."""

    nudged_steps: int = 10
    beta: float = 0.3
    random_sign: bool = True
    symmetric: bool = False
    nudge_placement: str = "drive"
    """drive (s ← ρ(u + β(t − s)), the energy gradient) | state (s ← ρ(u) + β(t − s),
    Laydevant et al.'s code for float neurons) | free_drive (s ← step(s, u + β(t − s⁰_out)):
    a constant push from the free equilibrium's output, Laydevant et al.'s code for binary
    neurons; needs model.readout = "mse"): the objects DriveNudge, StateNudge, FreeDriveNudge
    of :mod:`binlearn.energy.relax`."""

    def __post_init__(self) -> None:
        self._validate()
        _choice(self.nudge_placement, NUDGE_PLACEMENTS, "rule.nudge_placement")
        if self.nudged_steps < 1:
            raise ConfigError(f"rule.nudged_steps (K) must be >= 1, got {self.nudged_steps}")
        if not self.beta > 0:
            raise ConfigError(f"rule.beta (β) must be > 0, got {self.beta}")


@dataclass
class BPTTConfig(_EnergyRuleConfig):
    """BPTT through the same dynamics; gradients flow through the last ``truncation``
    steps (default: all ``free_steps``)."""

    truncation: int | None = None

    def __post_init__(self) -> None:
        self._validate()
        if self.truncation is not None and not 1 <= self.truncation <= self.free_steps:
            raise ConfigError(f"rule.truncation must be in [1, free_steps={self.free_steps}], "
                              f"got {self.truncation}")


def build_energy_net(cfg: EnergyModelConfig, input_shape: tuple[int, ...],
                     num_classes: int) -> EnergyNet:
    """The EnergyNet a model config describes (ConfigError on impossible shapes)."""
    if cfg.neuron == "binary":
        initial = 1.0 if cfg.initial_state is None else cfg.initial_state
        neuron = BinaryAccumulator(cfg.neuron_gamma, cfg.neuron_threshold, initial)
    else:
        initial = 0.0 if cfg.initial_state is None else cfg.initial_state
        neuron = HardSigmoid(cfg.slope, initial)
    weight = (BinaryWeights(cfg.learn_scale, cfg.scale) if cfg.weights == "binary"
              else FloatWeights())
    try:
        if cfg.architecture == "fc":
            return fully_connected(input_shape, cfg.hidden, num_classes, neuron, weight,
                                   cfg.group_size, cfg.readout, cfg.gain)
        padding = cfg.padding[0] if len(cfg.padding) == 1 else cfg.padding
        pool = cfg.pool[0] if len(cfg.pool) == 1 else cfg.pool
        return convolutional(input_shape, cfg.channels, num_classes, cfg.kernel_size, padding,
                             pool, neuron, weight, cfg.group_size, cfg.readout, cfg.gain)
    except ValueError as error:
        raise ConfigError(f"model: {error}") from None


def _per_layer(values: list[float], count: int, key: str) -> list[float]:
    if len(values) == 1:
        return list(values) * count
    if len(values) != count:
        raise ConfigError(f"rule.{key} has {len(values)} values but the network has {count} "
                          f"layers of weights (give 1 or {count})")
    return list(values)


class EnergyLearner:
    """EnergyNet + EP/BPTT rule + optimizers (the runner's :class:`~binlearn.experiment.learner.Learner`)."""

    def __init__(self, net: EnergyNet, rule: EP | BPTT, cfg: _EnergyRuleConfig) -> None:
        self.net, self.rule, self.cfg = net, rule, cfg
        self.eval_steps = cfg.eval_steps or cfg.free_steps
        count = net.num_layers
        binary = [c.binary_weights for c in net.couplings]
        if cfg.optimizer == "bop" and not all(binary):
            raise ConfigError("rule.optimizer = \"bop\" needs model.weights = \"binary\"")
        if cfg.optimizer == "sgd" and any(binary):
            raise ConfigError("model.weights = \"binary\" needs rule.optimizer = \"bop\"")
        weight_rates = _per_layer(cfg.learning_rates, count, "learning_rates")
        bias_rates = _per_layer(cfg.bias_learning_rates or cfg.learning_rates, count,
                                "bias_learning_rates")
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        if cfg.optimizer == "bop":
            gammas = _per_layer(cfg.gamma, count, "gamma")
            thresholds = _per_layer(cfg.threshold, count, "threshold")
            self._thresholds, self._gammas = thresholds, gammas
            self.optimizers["weights"] = Bop(
                [{"params": [c.weight], "gamma": g, "threshold": t}
                 for c, g, t in zip(net.couplings, gammas, thresholds, strict=True)],
                flip_on_equal=cfg.flip_on_equal,
                scales=[c.scale for c in net.couplings] if cfg.scaled_threshold else None)
            float_groups = []
        else:
            float_groups = [{"params": [c.weight], "lr": lr, "weight_decay": cfg.weight_decay}
                            for c, lr in zip(net.couplings, weight_rates, strict=True)]
        float_groups += [{"params": [c.bias], "lr": lr, "weight_decay": 0.0}
                         for c, lr in zip(net.couplings, bias_rates, strict=True)]
        if net.output_cost.readout:
            rate = cfg.readout_learning_rate or weight_rates[-1]
            float_groups.append({"params": [net.cost.weight, net.cost.bias], "lr": rate,
                                 "weight_decay": cfg.weight_decay})
        self.optimizers["float"] = torch.optim.SGD(float_groups, lr=weight_rates[0],
                                                   momentum=cfg.momentum)
        scales = [c.scale for c in net.couplings if c.scale is not None]
        self.learn_scale = bool(scales) and net.couplings[0].behaviour.learn_scale
        if self.learn_scale:
            if not cfg.scale_learning_rate > 0:
                raise ConfigError("model.learn_scale = true needs rule.scale_learning_rate > 0")
            self.optimizers["scale"] = torch.optim.SGD(
                scales, lr=cfg.scale_learning_rate, weight_decay=cfg.scale_decay)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group.get("lr", 0.0))
        self.epochs_done = 0
        self._trained = {name: self.net.get_parameter(name) for name in net.gradient_names()
                         if self.learn_scale or not name.endswith(".scale")}

    def _estimate(self, x: torch.Tensor, y: torch.Tensor):
        if isinstance(self.rule, EP):
            result = self.rule.estimate(self.net, x, y)
            return result.gradients, result.free_state
        result = self.rule.estimate(self.net, x, y)
        return result.gradients, result.final_state

    def train_step(self, x: torch.Tensor, y: torch.Tensor, reducer: Reducer) -> dict[str, float]:
        gradients, free = self._estimate(x, y)
        for name, param in self._trained.items():
            param.grad = reducer.mean(gradients[name])
        for optimizer in self.optimizers.values():
            optimizer.step()
        for param in self._trained.values():
            param.grad = None
        if self.learn_scale:
            self._check_scales()
        with torch.no_grad():
            cost = self.net.output_cost
            output = free.layers[-1]
            activation = self.net.neurons[-1].activation(output)
            loss = cost.loss(output, activation, cost.target(y)).sum()
            correct = (cost.predict(output, activation) == y).sum()
        return {"loss": float(loss), "correct": float(correct)}

    def _check_scales(self) -> None:
        """Learned α must stay > 0: at α ≤ 0 a coupling's signs invert (or vanish) and the
        network silently falls to chance, so the run stops like a diverging one."""
        from binlearn.energy import DivergenceError

        couplings = self.net.couplings
        for index, coupling in enumerate(couplings, start=1):
            if coupling.scale is None:
                continue
            low = float(coupling.scale.min())
            if not low > 0:
                rate = self.optimizers["scale"].param_groups[0]["lr"]
                raise DivergenceError(
                    f"the learned scaling factor α of coupling {index} of {len(couplings)} "
                    f"fell to {low:.3g} (it must stay > 0); lower rule.scale_learning_rate "
                    f"(now {rate:g})")

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        from binlearn.energy import prepare, relax

        initial = self.net.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        state = relax(self.net, x, initial, self.eval_steps, schedule=self.cfg.schedule,
                      context=prepare(self.net, x))
        return self.net.predict(state)

    def _schedule_factor(self) -> float:
        """What scales the learning rates after ``epochs_done`` epochs (1: no decay yet)."""
        decayed = max(self.epochs_done - self.cfg.decay_start, 0)
        factor = self.cfg.lr_decay ** decayed
        if self.cfg.cosine_epochs > 0:
            progress = min(decayed, self.cfg.cosine_epochs) / self.cfg.cosine_epochs
            factor *= 0.5 * (1.0 + math.cos(math.pi * progress))
        return factor

    def _set_learning_rates(self) -> None:
        factor = self._schedule_factor()
        for name, optimizer in self.optimizers.items():
            if name == "weights":  # Bop has no learning rate: its thresholds may anneal
                for group, threshold, gamma in zip(optimizer.param_groups, self._thresholds,
                                                   self._gammas, strict=True):
                    if self.cfg.anneal_flips:
                        threshold = threshold / factor if factor > 0 else math.inf
                    group["threshold"] = threshold
                    group["gamma"] = gamma * factor if self.cfg.anneal_gamma else gamma
                continue
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor

    def end_epoch(self, epoch: int, train_accuracy: float, reducer: Reducer) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        if "weights" in self.optimizers:
            metrics["flips"] = self.optimizers["weights"].flip_counts(reset=True)
        if self.learn_scale:
            metrics["scale"] = [float(c.scale.mean()) for c in self.net.couplings]
        self.epochs_done += 1
        self._set_learning_rates()
        metrics["lr"] = self.optimizers["float"].param_groups[0]["lr"]
        if self.cfg.anneal_flips:
            metrics["thresholds"] = [g["threshold"] if math.isfinite(g["threshold"]) else None
                                     for g in self.optimizers["weights"].param_groups]
        if self.cfg.anneal_gamma:
            metrics["gammas"] = [g["gamma"] for g in self.optimizers["weights"].param_groups]
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.net.state_dict(),
                "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
                "epochs_done": self.epochs_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        for name, optimizer in self.optimizers.items():  # the config's rates, the saved buffers
            load_optimizer_state(optimizer, state["optimizers"][name])
        self.epochs_done = int(state["epochs_done"])
        self._set_learning_rates()


def build_energy_learner(model_cfg: EnergyModelConfig, rule_cfg: _EnergyRuleConfig,
                         input_shape: tuple[int, ...], num_classes: int,
                         device: torch.device) -> EnergyLearner:
    if (isinstance(rule_cfg, EPConfig) and rule_cfg.nudge_placement == "free_drive"
            and model_cfg.readout != "mse"):
        raise ConfigError("rule.nudge_placement = \"free_drive\" needs model.readout = \"mse\" "
                          "(it pushes the output neurons towards their targets)")
    net = build_energy_net(model_cfg, input_shape, num_classes).to(device)
    try:
        if isinstance(rule_cfg, EPConfig):
            rule: EP | BPTT = EP(rule_cfg.free_steps, rule_cfg.nudged_steps, rule_cfg.beta,
                                 rule_cfg.random_sign, rule_cfg.symmetric, rule_cfg.schedule,
                                 rule_cfg.nudge_placement)
        else:
            rule = BPTT(rule_cfg.free_steps, rule_cfg.truncation, rule_cfg.schedule)
    except ValueError as error:
        raise ConfigError(f"rule: {error}") from None
    return EnergyLearner(net, rule, rule_cfg)


register_model_config("energy", EnergyModelConfig)
register_rule_config("ep", EPConfig)
register_rule_config("bptt", BPTTConfig)
register_learner("energy", "ep", build_energy_learner)
register_learner("energy", "bptt", build_energy_learner)

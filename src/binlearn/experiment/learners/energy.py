"""Energy-based networks for the gradient learner: ``[model] kind = "energy"``, ``[rule] name =
"ep" | "bptt"``.

:class:`EnergyGradients` gives the :class:`~binlearn.experiment.learners.gradient.GradientLearner`
an :class:`~binlearn.energy.EnergyNet`, a gradient rule (:class:`~binlearn.rules.EP` or
:class:`~binlearn.rules.BPTT`) and its parameters by precision: binary weights for
:class:`~binlearn.rules.Bop` (per-layer γ and threshold) or the integer synapse optimizers
(:class:`~binlearn.rules.IntegerCounter`, :class:`~binlearn.rules.HiddenInteger`), float weights,
biases (per-layer rates) and a cross-entropy readout for SGD, the learned scaling factors α for their
own SGD.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch

from binlearn.energy import (
    FREE_STOPS,
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
from binlearn.energy.costs import CrossEntropyReadout
from binlearn.energy.neurons import Neuron
from binlearn.experiment.config import (
    RESUME_NEXT_EPOCH,
    ConfigError,
    ScheduleConfig,
    Settings,
    register_model_config,
    register_rule_config,
    setting,
)
from binlearn.experiment.learner import Reducer, StepStats
from binlearn.experiment.learners.gradient import BOP, SCALE, GradientLearner, ParameterGroup
from binlearn.experiment.registry import register_learner
from binlearn.rules import BPTT, EP, Bop, HiddenInteger, IntegerCounter
from binlearn.rules.integer_synapse import IntegerSynapseOptimizer

__all__ = ["EnergyModelConfig", "EPConfig", "BPTTConfig", "EnergyOptimizerConfig", "EnergyGradients",
           "energy_learner", "EnergyLearner", "build_energy_net", "build_energy_learner"]

_ARCHITECTURES = ("fc", "conv")
_NEURONS = ("hard_sigmoid", "binary")
_WEIGHTS = ("float", "binary")
_READOUTS = ("mse", "cross_entropy")
_OPTIMIZERS = ("sgd", "bop", "counter", "hidden_int")
_BINARY_OPTIMIZERS = ("bop", "counter", "hidden_int")
"""What trains binary (±1) weights: Bop's float32 momentum, or integer synapse state."""
_INTEGER_OPTIMIZERS = ("counter", "hidden_int")
_MAX_STEPS = 1_000_000


@dataclass
class EnergyModelConfig(Settings):
    """An energy-based network (see :mod:`binlearn.energy`).

    ``architecture``: fc (``hidden`` sizes) | conv (``channels``, ``kernel_size``,
    ``padding``/``pool`` one value or one per conv layer, then a dense output layer).
    ``neuron``: hard_sigmoid (``slope``) | binary (accumulator: ``neuron_gamma`` γ_neur,
    ``neuron_threshold``). ``initial_state``: starting value of every neuron (default 0
    for hard sigmoid, 1 for binary). ``weights``: float | binary (α ⊙ sign, ``learn_scale``,
    ``scale`` "mean" or a number). ``group_size``: output neurons per class. ``readout``:
    mse | cross_entropy. ``gain`` multiplies the default initialisation.
    """

    SECTION: ClassVar[str] = "model"

    architecture: str = setting("fc", choices=_ARCHITECTURES)
    hidden: list[int] = setting(factory=lambda: [500], ge=1)
    channels: list[int] = setting(factory=lambda: [32, 64], ge=1, nonempty=True)
    kernel_size: int = setting(5, ge=1, le=1024)
    padding: list[int] = setting(factory=lambda: [2], ge=0, le=1024, nonempty=True)
    pool: list[int] = setting(factory=lambda: [2], ge=1, le=1024, nonempty=True)
    neuron: str = setting("hard_sigmoid", choices=_NEURONS)
    slope: float = setting(1.0, gt=0)
    neuron_gamma: float = setting(0.5, gt=0, le=1)
    neuron_threshold: float = setting(0.5, ge=-1e9, le=1e9)
    initial_state: float | None = setting(None, ge=-1e9, le=1e9)
    weights: str = setting("float", choices=_WEIGHTS)
    learn_scale: bool = False
    scale: float | str = setting("mean", gt=0, choices=("mean",))
    group_size: int = setting(1, ge=1, le=1_000_000)
    readout: str = setting("mse", choices=_READOUTS)
    gain: float = setting(1.0, gt=0, le=1e6)  # the init bound gain·√(6/fan) must stay a float32

    def check(self) -> None:
        if self.readout == "cross_entropy" and self.group_size != 1:
            raise ConfigError("model.group_size > 1 needs readout = \"mse\"")


@dataclass
class _EnergyRuleConfig(Settings):
    """The estimator's relaxation: ``free_steps`` T (training), ``eval_steps`` (evaluation,
    default T), ``relaxation`` order synchronous | even_odd."""

    SECTION: ClassVar[str] = "rule"

    free_steps: int = setting(50, ge=1, le=_MAX_STEPS)
    """T, free-phase relaxation steps (training)."""
    eval_steps: int | None = setting(None, ge=1, le=_MAX_STEPS, evaluation=True)
    """Free steps at evaluation (default: free_steps)."""
    relaxation: str = setting("synchronous", choices=SCHEDULES)
    """synchronous | even_odd (the order in which layers are updated)."""


@dataclass
class EPConfig(_EnergyRuleConfig):
    """Equilibrium Propagation: ``nudged_steps`` K, ``beta`` β > 0, ``random_sign`` of β per
    batch, ``symmetric`` ±β nudging."""

    nudged_steps: int = setting(10, ge=1, le=_MAX_STEPS)
    beta: float = setting(0.3, gt=0)
    random_sign: bool = True
    symmetric: bool = False
    nudge_placement: str = setting("drive", choices=NUDGE_PLACEMENTS)
    """drive (s ← ρ(u + β(t − s)), the energy gradient) | state (s ← ρ(u) + β(t − s),
    Laydevant et al.'s code for float neurons) | free_drive (s ← step(s, u + β(t − s⁰_out)):
    a constant push from the free equilibrium's output, Laydevant et al.'s code for binary
    neurons; needs model.readout = "mse"): the objects DriveNudge, StateNudge, FreeDriveNudge
    of :mod:`binlearn.energy.relax`."""
    arithmetic: str = setting("float", choices=("float", "integer"))
    """float (the float32 engine) | integer: the integer-only step of
    :mod:`binlearn.rules.integer_ep` (fixed-point accumulators, int32 drives, integer synapse
    and bias updates; fully connected, binary weights and neurons, γ_neur = 2^−g, an mse output,
    optimizer.name = "counter" or "hidden_int", one process)."""
    fraction_bits: int = setting(16, ge=4, le=24)
    """arithmetic = "integer": F, the fixed-point unit 2^−F of states, drives, α, θ and biases."""
    free_tolerance: float | None = setting(None, gt=0, le=1)
    """Optional convergence test (default off: every free phase runs free_steps T, and
    evaluation eval_steps): stop a free phase, in training and in evaluation, after the first
    step with max |Δs| < free_tolerance (over the batch). Changes the published setting, so
    it is never on by default; the mean free steps run per training epoch are in the metrics
    (``free_steps_mean``)."""
    free_stop: str | None = setting(None, choices=FREE_STOPS)
    """Optional stop test of binary-activation networks (model.neuron = "binary"), whose
    accumulators never meet free_tolerance (default off: every free phase runs free_steps T,
    and evaluation eval_steps): no_flips stops a free phase, in training and in evaluation,
    after the first step in which no unit of the batch flips; settled after the first step in
    which no unit flips and every accumulator is on the side of θ its drive pulls it to, so that
    the free phase's binary activations equal those after all T steps (the accumulators still
    differ); settled_extrapolated as settled, then the accumulators are carried in closed form
    over the steps left to T, which gives the T-step state up to float rounding (the nudged
    phase starts from it, and the output accumulators break ties between equal group
    activities in predictions). Exclusive with free_tolerance; the mean free steps run per
    training epoch are in the metrics (``free_steps_mean``)."""

    def check(self) -> None:
        if self.free_stop is not None and self.free_tolerance is not None:
            raise ConfigError("rule.free_tolerance (hard-sigmoid networks) and rule.free_stop "
                              "(binary-activation networks) are two stop tests; set one")


@dataclass
class BPTTConfig(_EnergyRuleConfig):
    """BPTT through the same dynamics; gradients flow through the last ``truncation``
    steps (default: all ``free_steps``)."""

    truncation: int | None = setting(None, ge=1, le=_MAX_STEPS)

    def check(self) -> None:
        if self.truncation is not None and self.truncation > self.free_steps:
            raise ConfigError(f"rule.truncation must be in [1, free_steps={self.free_steps}], "
                              f"got {self.truncation}")


@dataclass
class EnergyOptimizerConfig(Settings):
    """The optimizers of an energy learner. Each weight's optimizer follows its precision
    (:class:`EnergyGradients`): binary weights are trained by Bop (per-coupling ``gamma`` γ and
    ``threshold`` τ), float weights by SGD (``learning_rates``); SGD also trains the biases, the
    cross-entropy readout and the learned scaling factors α. ``name`` states what the weights
    get, sgd (float weights) | bop | counter | hidden_int (binary weights), and must agree with
    ``model.weights``. counter and hidden_int keep ``bits``-bit integers per synapse instead of
    Bop's float32 m (:mod:`binlearn.rules.integer_synapse`; rule "ep" only): counter a leaky
    counter (``leak_shift`` k, integer ``threshold`` θ per coupling), hidden_int a hidden
    integer weight; the biases stay float32 (SGD, ``bias_learning_rates``), except with
    ``rule.arithmetic = "integer"``, where they learn as integers (the same SGD step, rounded
    stochastically: :mod:`binlearn.rules.integer_ep`).
    Per-layer lists run input to output (one value: every layer)."""

    SECTION: ClassVar[str] = "optimizer"

    name: str = setting("sgd", choices=_OPTIMIZERS)
    learning_rates: list[float] = setting(factory=lambda: [0.05], ge=0, nonempty=True,
                                          resume=RESUME_NEXT_EPOCH)
    """SGD weight learning rate per coupling, input to output (one value: all layers)."""
    bias_learning_rates: list[float] | None = setting(None, ge=0, nonempty=True, resume=RESUME_NEXT_EPOCH)
    """Bias learning rate per layer (default: learning_rates; required with bop)."""
    momentum: float = setting(0.0, ge=0, lt=1, resume=RESUME_NEXT_EPOCH)
    weight_decay: float = setting(0.0, ge=0, resume=RESUME_NEXT_EPOCH)
    gamma: list[float] | None = setting(None, gt=0, le=1, nonempty=True, resume=RESUME_NEXT_EPOCH)
    """Bop γ per coupling, input to output (bop only)."""
    threshold: list[float] | None = setting(None, ge=0, nonempty=True, resume=RESUME_NEXT_EPOCH)
    """Bop threshold τ per coupling, input to output (bop); counter: the integer θ per coupling,
    1 <= θ < 2^(bits − 1)."""
    bits: int = setting(8, ge=2, le=16)
    """counter | hidden_int: bits b of the signed integer state per synapse."""
    leak_shift: int = setting(4, ge=1, le=15, resume=RESUME_NEXT_EPOCH)
    """counter: the leak c ← c − (c >> leak_shift) per step (Bop's γ = 2^(−leak_shift))."""
    update_shift: int = setting(0, ge=0, le=15, resume=RESUME_NEXT_EPOCH)
    """counter | hidden_int: the batch's integer update D is divided by 2^update_shift, rounded
    stochastically (u = ⌊D / 2^s⌋ + [r < frac], E[u] = D / 2^s; a shift with a random carry), so
    that a few bits are not saturated by one batch (|D| ≤ B)."""
    flip_on_equal: bool = setting(False, resume=RESUME_NEXT_EPOCH)
    scaled_threshold: bool = setting(False, resume=RESUME_NEXT_EPOCH)
    """Bop flips when (m · w) · α > τ (the effective weight) instead of m · w > τ."""
    scale_learning_rate: float = setting(0.0, ge=0, resume=RESUME_NEXT_EPOCH)
    """Learning rate of the scaling factors α (model.learn_scale)."""
    scale_decay: float = setting(0.0, ge=0, resume=RESUME_NEXT_EPOCH)
    readout_learning_rate: float | None = setting(None, gt=0, resume=RESUME_NEXT_EPOCH)
    """Cross-entropy readout learning rate (default: the last weight learning rate)."""

    def check(self) -> None:
        needed = {"bop": ("gamma", "threshold", "bias_learning_rates"),
                  "counter": ("threshold", "bias_learning_rates"),
                  "hidden_int": ("bias_learning_rates",)}.get(self.name, ())
        for key in needed:
            if getattr(self, key) is None:
                raise ConfigError(f"optimizer.name = \"{self.name}\" needs optimizer.{key} (one per layer)")
        if self.name not in _INTEGER_OPTIMIZERS:
            if self.update_shift:
                raise ConfigError("optimizer.update_shift is a setting of the integer synapse optimizers "
                                  f"(counter, hidden_int), not of optimizer.name = \"{self.name}\" "
                                  "(remove it)")
            return
        bop_only = ["gamma", *(["threshold"] if self.name == "hidden_int" else []),
                    *[key for key in ("flip_on_equal", "scaled_threshold") if getattr(self, key)]]
        for key in bop_only:
            if getattr(self, key) not in (None, False):
                raise ConfigError(f"optimizer.{key} is Bop's, not a setting of optimizer.name = "
                                  f"\"{self.name}\" (remove it)")
        top = 1 << (self.bits - 1)
        for theta in self.threshold or []:
            if not (float(theta).is_integer() and 1 <= theta < top):
                raise ConfigError(f"optimizer.threshold of counter must be integers in [1, {top}) "
                                  f"for optimizer.bits = {self.bits}, got {self.threshold}")


def build_energy_net(cfg: EnergyModelConfig, input_shape: tuple[int, ...],
                     num_classes: int) -> EnergyNet:
    """The EnergyNet a model config describes (ConfigError on impossible shapes)."""
    neuron: Neuron
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


def _per_layer(values: list[float] | None, count: int, key: str) -> list[float]:
    if values is None:  # the config's checks require the list where it is read
        raise ConfigError(f"rule.{key} is needed (one value, or one per layer)")
    if len(values) == 1:
        return list(values) * count
    if len(values) != count:
        layers = "1 layer of weights (give 1 value)" if count == 1 else \
            f"{count} layers of weights (give 1 or {count})"
        raise ConfigError(f"optimizer.{key} has {len(values)} values but the network has {layers}")
    return list(values)


class EnergyGradients:
    """An EnergyNet and its EP/BPTT rule as the gradient learner's
    :class:`~binlearn.experiment.learners.gradient.GradientSource`.

    Parameters are declared by precision, as their coupling says (``binary_weights``): binary
    weights go to Bop (per-coupling γ and τ) or to an integer synapse optimizer (counter:
    per-coupling θ; hidden_int), float weights (per-layer rates), biases (per-layer rates) and
    the cross-entropy readout to SGD, the learned α to their own SGD. ``optimizer.name`` says
    what the weights get ("bop", "counter" or "hidden_int" exactly when they are binary), so a
    config file names the optimizer that runs. An integer synapse optimizer gets the update
    scale |β|·B (2|β|·B symmetric) of every batch, which makes EP's estimate between 0/1
    units an exact integer (:mod:`binlearn.rules.integer_synapse`).
    """

    lr_metric = "next"

    def __init__(self, net: EnergyNet, rule: EP | BPTT, cfg: _EnergyRuleConfig,
                 optimizer: EnergyOptimizerConfig | None = None) -> None:
        optimizer = optimizer or EnergyOptimizerConfig()
        self.model, self.rule, self.cfg, self.optimizer_cfg = net, rule, cfg, optimizer
        self.eval_steps = cfg.eval_steps or cfg.free_steps
        count = net.num_layers
        binary = [c.binary_weights for c in net.couplings]
        if any(binary) != (optimizer.name in _BINARY_OPTIMIZERS):  # the file names what the weights get
            raise ConfigError("model.weights = \"binary\" needs optimizer.name = \"bop\", \"counter\" or "
                              "\"hidden_int\"" if any(binary)
                              else f"optimizer.name = \"{optimizer.name}\" needs model.weights = \"binary\"")
        if optimizer.name in _INTEGER_OPTIMIZERS and not isinstance(rule, EP):
            raise ConfigError(f"optimizer.name = \"{optimizer.name}\" needs rule.name = \"ep\" (its integer "
                              "update is EP's difference of 0/1 products)")
        self._integer: IntegerSynapseOptimizer | None = None
        self.weight_rates = _per_layer(optimizer.learning_rates, count, "learning_rates")
        self.bias_rates = _per_layer(optimizer.bias_learning_rates or optimizer.learning_rates, count,
                                     "bias_learning_rates")
        self.gammas = self.thresholds = [math.nan] * count
        if optimizer.name == "bop":
            self.gammas = _per_layer(optimizer.gamma, count, "gamma")
        if optimizer.name in ("bop", "counter"):
            self.thresholds = _per_layer(optimizer.threshold, count, "threshold")
        scales = [c.scale for c in net.couplings if c.scale is not None]
        self.learn_scale = bool(scales) and net.couplings[0].behaviour.learn_scale
        if self.learn_scale and not optimizer.scale_learning_rate > 0:
            raise ConfigError("model.learn_scale = true needs optimizer.scale_learning_rate > 0")
        self._free_steps_run, self._free_phases = 0, 0
        self._trained = [name for name in net.gradient_names()
                         if self.learn_scale or not name.endswith(".scale")]

    def parameter_groups(self) -> list[ParameterGroup]:
        net, optimizer = self.model, self.optimizer_cfg
        groups = []
        for coupling, rate, gamma, threshold in zip(net.couplings, self.weight_rates, self.gammas,
                                                    self.thresholds, strict=True):
            if coupling.binary_weights:  # ±1 signs: Bop, or an integer synapse optimizer
                options: dict[str, Any] = {"gamma": gamma, "threshold": threshold}
                if optimizer.name in _INTEGER_OPTIMIZERS:
                    options = {"threshold": int(threshold)} if optimizer.name == "counter" else {}
                groups.append(ParameterGroup([coupling.weight], True, options, scale=coupling.scale))
            else:
                groups.append(ParameterGroup([coupling.weight], False,
                                             {"lr": rate, "weight_decay": optimizer.weight_decay}))
        groups += [ParameterGroup([c.bias], False, {"lr": rate, "weight_decay": 0.0})
                   for c, rate in zip(net.couplings, self.bias_rates, strict=True)]
        if net.output_cost.readout:
            readout = cast(CrossEntropyReadout, net.cost)
            groups.append(ParameterGroup([readout.weight, readout.bias], False,
                                         {"lr": optimizer.readout_learning_rate or self.weight_rates[-1],
                                          "weight_decay": optimizer.weight_decay}))
        if self.learn_scale:
            groups.append(ParameterGroup([c.scale for c in net.couplings if c.scale is not None], False, {},
                                         scaling=True))
        return groups

    def build_optimizer(self, key: str, groups: list[dict[str, Any]],
                        scales: list[Any]) -> torch.optim.Optimizer:
        optimizer = self.optimizer_cfg
        if key == BOP and optimizer.name in _INTEGER_OPTIMIZERS:
            # the rounding stream's seed, from the generator the runner seeded with config.seed
            seed = int(torch.randint(0, 2**62, ()))
            self._integer = (
                IntegerCounter(groups, optimizer.bits, optimizer.leak_shift, seed=seed)
                if optimizer.name == "counter" else HiddenInteger(groups, optimizer.bits, seed=seed))
            return self._integer
        if key == BOP:
            return Bop(groups, flip_on_equal=optimizer.flip_on_equal,
                       scales=scales if optimizer.scaled_threshold else None)
        if key == SCALE:
            return torch.optim.SGD(groups, lr=optimizer.scale_learning_rate,
                                   weight_decay=optimizer.scale_decay)
        return torch.optim.SGD(groups, lr=self.weight_rates[0], momentum=optimizer.momentum)

    def estimate(self, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[dict[str, torch.Tensor], Callable[[], StepStats]]:
        if isinstance(self.rule, EP):
            ep = self.rule.estimate(self.model, x, y)
            self._free_steps_run += ep.free_steps
            self._free_phases += 1
            gradients, free = ep.gradients, ep.free_state
            if self._integer is not None:  # g·|β|B (2|β|B symmetric) is EP's integer product difference
                nudges = 2.0 if self.rule.symmetric else 1.0
                self._integer.set_update_scale(nudges * abs(ep.beta) * x.shape[0]
                                               / (1 << self.optimizer_cfg.update_shift))
        else:
            bptt = self.rule.estimate(self.model, x, y)
            gradients, free = bptt.gradients, bptt.final_state

        def stats() -> StepStats:  # after the step: a cross-entropy readout reads its new weights
            with torch.no_grad():
                cost = self.model.output_cost
                output = free.layers[-1]
                activation = self.model.neurons[-1].activation(output)
                loss = cost.loss(output, activation, cost.target(y)).sum()
                correct = (cost.predict(output, activation) == y).sum()
            return {"loss": float(loss), "correct": float(correct)}

        return {name: gradients[name] for name in self._trained}, stats

    def after_step(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        """Learned α must stay > 0: at α ≤ 0 a coupling's signs invert (or vanish) and the
        network silently falls to chance, so the run stops like a diverging one."""
        if not self.learn_scale:
            return
        from binlearn.energy import DivergenceError

        couplings = self.model.couplings
        for index, coupling in enumerate(couplings, start=1):
            if coupling.scale is None:
                continue
            low = float(coupling.scale.min())
            if not low > 0:
                rate = optimizers[SCALE].param_groups[0]["lr"]
                raise DivergenceError(
                    f"the learned scaling factor α of coupling {index} of {len(couplings)} "
                    f"fell to {low:.3g} (it must stay > 0); lower optimizer.scale_learning_rate "
                    f"(now {rate:g})")

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        from binlearn.energy import prepare, relax_until

        initial = self.model.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        tolerance = self.rule.free_tolerance if isinstance(self.rule, EP) else None
        stop = self.rule.free_stop if isinstance(self.rule, EP) else None
        state, _ = relax_until(self.model, x, initial, self.eval_steps, tolerance,
                               schedule=self.cfg.relaxation, context=prepare(self.model, x), stop=stop)
        return self.model.predict(state)

    def end_epoch(self, reducer: Reducer) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        if self.learn_scale:
            metrics["scale"] = [float(cast(torch.Tensor, c.scale).mean()) for c in self.model.couplings]
        stops = isinstance(self.rule, EP) and (self.rule.free_tolerance is not None
                                               or self.rule.free_stop is not None)
        if stops and self._free_phases:
            metrics["free_steps_mean"] = round(self._free_steps_run / self._free_phases, 2)
        self._free_steps_run, self._free_phases = 0, 0
        return metrics


def energy_learner(net: EnergyNet, rule: EP | BPTT, cfg: _EnergyRuleConfig,
                   optimizer: EnergyOptimizerConfig | None = None,
                   schedule: ScheduleConfig | None = None) -> GradientLearner:
    """The gradient learner of an EnergyNet trained by ``rule``."""
    return GradientLearner(EnergyGradients(net, rule, cfg, optimizer), schedule)


EnergyLearner = energy_learner
"""The name of the energy learner before there was one gradient learner: builds a
:class:`~binlearn.experiment.learners.gradient.GradientLearner` (it is no class to test with
``isinstance``: ask ``learner.model`` its type)."""


def build_energy_learner(model_cfg: EnergyModelConfig, rule_cfg: EPConfig | BPTTConfig,
                         input_shape: tuple[int, ...], num_classes: int, device: torch.device,
                         optimizer: EnergyOptimizerConfig | None = None,
                         schedule: ScheduleConfig | None = None) -> GradientLearner:
    if (isinstance(rule_cfg, EPConfig) and rule_cfg.nudge_placement == "free_drive"
            and model_cfg.readout != "mse"):
        raise ConfigError("rule.nudge_placement = \"free_drive\" needs model.readout = \"mse\" "
                          "(it pushes the output neurons towards their targets)")
    if isinstance(rule_cfg, EPConfig) and rule_cfg.free_stop is not None and model_cfg.neuron != "binary":
        raise ConfigError(f"rule.free_stop = \"{rule_cfg.free_stop}\" needs model.neuron = \"binary\" "
                          f"(hard-sigmoid networks stop with rule.free_tolerance)")
    net = build_energy_net(model_cfg, input_shape, num_classes).to(device)
    try:
        if isinstance(rule_cfg, EPConfig):
            rule: EP | BPTT = EP(rule_cfg.free_steps, rule_cfg.nudged_steps, rule_cfg.beta,
                                 rule_cfg.random_sign, rule_cfg.symmetric, rule_cfg.relaxation,
                                 rule_cfg.nudge_placement, free_tolerance=rule_cfg.free_tolerance,
                                 free_stop=rule_cfg.free_stop)
        else:
            rule = BPTT(rule_cfg.free_steps, rule_cfg.truncation, rule_cfg.relaxation)
    except ValueError as error:
        raise ConfigError(f"rule: {error}") from None
    if isinstance(rule_cfg, EPConfig) and rule_cfg.arithmetic == "integer":
        from binlearn.experiment.learners.integer_energy import IntegerEnergyLearner

        if (optimizer or EnergyOptimizerConfig()).name not in _INTEGER_OPTIMIZERS:
            raise ConfigError("rule.arithmetic = \"integer\" needs optimizer.name = \"counter\" or "
                              "\"hidden_int\" (integer synapse state, not Bop's float m)")
        return IntegerEnergyLearner(EnergyGradients(net, rule, rule_cfg, optimizer), rule_cfg.fraction_bits,
                                    schedule)
    return energy_learner(net, rule, rule_cfg, optimizer, schedule)


def energy_memory(cfg: EnergyModelConfig, input_shape: tuple[int, ...], num_classes: int) -> int:
    """Bytes of a fully connected energy net's float32 weights, their gradient estimate and the
    optimizer's state (Bop's m or SGD's momentum); 0 (not estimated) for convolutional nets."""
    if cfg.architecture != "fc":
        return 0
    sizes = [math.prod(input_shape), *cfg.hidden, num_classes * cfg.group_size]
    return 12 * sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))


register_model_config("energy", EnergyModelConfig)
register_rule_config("ep", EPConfig, optimizer=EnergyOptimizerConfig)
register_rule_config("bptt", BPTTConfig, optimizer=EnergyOptimizerConfig)
register_learner("energy", "ep", build_energy_learner, memory=energy_memory)
register_learner("energy", "bptt", build_energy_learner, memory=energy_memory)

"""Relaxation: minimise the energy layer by layer, with hand-written drives, no autograd.

One step of the dynamics, :func:`relax_step` (pure; the readable definition):

    u_l = ∂Φ/∂a_l = P(W_l ∗ a_{l−1}) + b_l + W_{l+1}ᵀ ∗ P⁻¹(a_{l+1})    (a_0 = x; no second term at l = L)
    s_l ← step_l(s_l, u_l)                  for every l of a group, from the state before the group
    a_l = activation_l(s_l)

with the output's nudge placed by a :class:`NudgePlacement` object (:class:`DriveNudge`,
:class:`StateNudge`, :class:`FreeDriveNudge`). Schedules are data
(:class:`~binlearn.binary.schedules.RelaxationSchedule`, or its name, passed to :func:`relax`;
the packed format's integer relaxation reads the same groups), and fix the groups:

- ``"synchronous"``: one group, every layer from the previous state at once (the
  prototypical dynamics of Ernoult et al. 2019 and Laydevant et al. 2021);
- ``"even_odd"``: layers 1, 3, 5, … then 2, 4, 6, … (1 = first hidden layer), each set to
  its minimiser given its neighbours, which are fixed during the half-sweep (Scellier et
  al., NeurIPS 2023). For slope-1 hard-sigmoid networks with dense couplings every
  half-sweep lowers the energy; it typically needs about half the steps.

:func:`relax` runs the same steps in one fused loop that does not repeat work, and is
tested to equal repeated :func:`relax_step` bit for bit (both schedules, dense and
convolutional couplings, float and binary neurons, every nudge placement, with and without
autograd). :func:`prepare` builds, once per batch, the effective weights (α ⊙ sign), the
clamped input's drive onto the first layer (and its pooling positions), and the execution
plan (:mod:`binlearn.energy.plan`): one typed drive strategy per coupling, the only place
the fast path lives (ordered integer products, row adds, event-driven updates). Each
coupling's up-drive is computed once per change of its bottom layer (and serves both the
top layer's drive and, for max pooling, the positions the bottom layer's drive is routed
through). Under ``torch.no_grad`` the loop reuses scratch buffers in place; under autograd
(BPTT) it is out of place and differentiable, with the plan's reference strategies, the
ones :func:`relax_step` uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, NamedTuple

import torch

from binlearn.binary.schedules import SCHEDULES, RelaxationSchedule, relaxation_schedule
from binlearn.energy.costs import Cost
from binlearn.energy.network import EnergyNet
from binlearn.energy.neurons import BinaryAccumulator
from binlearn.energy.plan import PhaseDrives, RelaxationPlan, ordered_couplings, plan_relaxation
from binlearn.energy.state import EnergyState
from binlearn.errors import BinlearnError

__all__ = [
    "SYNCHRONOUS", "EVEN_ODD", "SCHEDULES", "NUDGE_PLACEMENTS",
    "NudgePlacement", "DriveNudge", "StateNudge", "FreeDriveNudge", "DRIVE_NUDGE", "nudge_placement",
    "Nudge", "RelaxationContext", "DivergenceError",
    "StepRecord", "prepare", "relax", "relax_until", "relax_step", "schedule_groups", "check_schedule",
    "FREE_STOPS", "check_stop", "RelaxationSchedule", "RelaxationPlan",
]

SYNCHRONOUS, EVEN_ODD = SCHEDULES

FREE_STOPS = ("no_flips", "settled", "settled_extrapolated")
"""The stop tests of binary-activation networks (``relax_until(…, stop=…)``, config
``rule.free_stop``), whose accumulators never stop moving, so ``tolerance`` never fires:

- ``"no_flips"``: stop after the first step in which no unit of the batch flips (H(s − θ)
  unchanged for every unit and sample);
- ``"settled"``: stop after the first step in which no unit flips *and* every accumulator
  is on the same side of θ as the target clamp(u, 0, 1) of the drive u the step used. The
  drives then repeat, each accumulator moves monotonically towards its target, and no unit
  can flip again: the activations equal those after any number of further steps;
- ``"settled_extrapolated"``: ``"settled"``, then every accumulator is carried in closed form
  to where the remaining steps would take it under its fixed drive,
  s ← clamp(u + (1 − γ)^n (s − u), 0, 1) for n steps left: the state of the full relaxation
  up to float rounding (so the nudged phase and the accumulators' tie-break start from it).
"""


class DivergenceError(BinlearnError, ValueError):
    """A relaxation produced a non-finite (NaN/inf) state; the message names layer and step."""


class NudgePlacement:
    """Where the output's nudge −β ∂C/∂s_out enters one step (the subclasses below).

    A placement object has three hooks, each the identity unless the placement uses it:

    - :meth:`phase_push` — once per nudged phase, from the phase's starting output;
    - :meth:`drive` — on the output's drive, before the neuron's step;
    - :meth:`state` — on the output's new state, after the neuron's step.

    ``inplace`` (no autograd): the hook may overwrite ``drive`` / ``new``, tensors owned by
    the caller. ``name`` is the placement's name in configuration files
    (``rule.nudge_placement``; :func:`nudge_placement` maps names to objects).
    """

    name: ClassVar[str]

    def phase_push(self, nudge: Nudge, output: torch.Tensor) -> torch.Tensor | None:
        """A force fixed for the whole phase (None: none), from the output at its start."""
        return None

    def drive(self, cost: Cost, drive: torch.Tensor, output: torch.Tensor, activation: torch.Tensor,
              nudge: Nudge, push: torch.Tensor | None, inplace: bool) -> torch.Tensor:
        """The output's drive u_out as the neuron's step receives it."""
        return drive

    def state(self, cost: Cost, new: torch.Tensor, output: torch.Tensor, activation: torch.Tensor,
              nudge: Nudge, inplace: bool) -> torch.Tensor:
        """The output's new state s_out after the neuron's step (``output``: the state before)."""
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))


class DriveNudge(NudgePlacement):
    """s_out ← step(s_out, u_out − β ∂C/∂s_out); for squared error u_out + β(t − s_out).

    The nudge is part of the drive, inside the neuron's step: the gradient of the total
    energy E + βC (Laborieux et al. 2021), the form the GDU property is stated for.
    """

    name = "drive"

    def drive(self, cost, drive, output, activation, nudge, push, inplace):
        return cost.add_nudge(drive, output, activation, nudge.target, nudge.beta, inplace=inplace)


class StateNudge(NudgePlacement):
    """s_out ← clamp(step(s_out, u_out) + β(t − s_out), 0, 1).

    Added after the step and clamped to the neuron's range (Laydevant et al.'s code for
    float neurons): a saturated output still moves towards its target, so outputs cannot die
    at the clamp.

    The price: EP with this placement does *not* approximate ∂L/∂θ as β → 0. An output
    unit saturated against its target (step(s, u) at 0 or 1, the target on the other side)
    moves by β(t − s) all the same, while the loss gradient through the saturated unit is 0,
    so the estimate keeps a straight-through term that does not vanish with β. An
    independent check (issue 23) measured the estimate 39–79 % off the true gradient.
    :class:`DriveNudge` is the energy-gradient form for which the GDU property holds.
    """

    name = "state"

    def state(self, cost, new, output, activation, nudge, inplace):
        new = cost.add_nudge(new, output, activation, nudge.target, nudge.beta, inplace=inplace)
        return new.clamp_(0.0, 1.0) if inplace else new.clamp(0.0, 1.0)


class FreeDriveNudge(NudgePlacement):
    """s_out ← step(s_out, u_out + β(t − s⁰_out)),  s⁰_out the output when the phase starts.

    ``free_drive``: a constant force from the output at the start of the nudged phase (the
    free equilibrium s⁰) added to the drive, so it does not follow the output during the
    phase (Laydevant et al.'s code for binary-activation networks, whose accumulators
    average it in). Needs an output in the dynamics (squared-error cost, ``readout = "mse"``).
    """

    name = "free_drive"

    def phase_push(self, nudge, output):
        return nudge.beta * (nudge.target - output)

    def drive(self, cost, drive, output, activation, nudge, push, inplace):
        return drive.add_(push) if inplace else drive + push


DRIVE_NUDGE = DriveNudge()
"""The default placement, one shared instance (placements hold no state)."""
_PLACEMENTS = {placement.name: placement for placement in (DRIVE_NUDGE, StateNudge(), FreeDriveNudge())}
NUDGE_PLACEMENTS = tuple(_PLACEMENTS)
"""The placements' names in configuration files (``rule.nudge_placement``)."""


def nudge_placement(name: str) -> NudgePlacement:
    """The placement object for a configuration name: ``"drive"`` → :class:`DriveNudge`,
    ``"state"`` → :class:`StateNudge`, ``"free_drive"`` → :class:`FreeDriveNudge` (the one
    place names map to placements)."""
    if name not in _PLACEMENTS:
        raise ValueError(f"unknown nudge placement {name!r}; valid: {', '.join(NUDGE_PLACEMENTS)}")
    return _PLACEMENTS[name]


class Nudge(NamedTuple):
    """The nudging force on the output: −β ∂C/∂s_out, placed by ``placement``.

    Args:
        target: the cost's target, e.g. ``(batch, num_outputs)`` for squared error.
        beta: β, signed; 0 means no nudge.
        placement: a :class:`NudgePlacement` — :class:`DriveNudge` (default, inside the
            neuron's step), :class:`StateNudge` (after the step, clamped) or
            :class:`FreeDriveNudge` (a constant push from the phase's starting output);
            :func:`nudge_placement` maps a configuration name to one.
    """

    target: torch.Tensor
    beta: float
    placement: NudgePlacement = DRIVE_NUDGE


class RelaxationContext(NamedTuple):
    """What stays fixed during every phase of one batch.

    Args:
        weights: weight tensor of each coupling; the effective weight is
            ``alphas[i] * weights[i]`` (α ⊙ sign for binary weights).
        biases: bias of each coupling.
        alphas: scalar factor of each coupling's weight (1.0 unless one α per layer).
        input_drive: ∂Φ/∂a_1 contributed by the clamped input, ``(batch, *layer_shape[0])``.
        input_cache: pooling positions of the input's convolution (None for dense).
        plan: one drive strategy per coupling (:mod:`binlearn.energy.plan`); its event
            strategies keep their trackers for every phase of the batch, so a nudged phase
            starts from the free phase's products and pays only for what changed.
    """

    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]
    input_drive: torch.Tensor
    input_cache: object
    alphas: tuple[float, ...]
    plan: RelaxationPlan


def check_schedule(schedule: str | RelaxationSchedule) -> str:
    """The schedule's name; a one-line ``ValueError`` listing the valid names if unknown."""
    return relaxation_schedule(schedule).name


def schedule_groups(schedule: str | RelaxationSchedule, count: int) -> tuple[tuple[int, ...], ...]:
    """The layers (0-based) updated together, in order, in one step of ``count`` layers:
    synchronous ``((0, 1, …),)``; even/odd ``((0, 2, …), (1, 3, …))`` (layers 1, 3, … first)."""
    return relaxation_schedule(schedule).groups(count)


def prepare(net: EnergyNet, x: torch.Tensor, weights=None, biases=None,
            sparse_products: bool = True) -> RelaxationContext:
    """Build the per-batch context: effective weights, the input's drive and the plan, once.

    Args:
        net: the network.
        x: clamped input, ``(batch, *net.input_shape)``.
        weights, biases: override the couplings' (effective) weights and biases (BPTT
            passes leaves that require gradients); default: the network's own.
        sparse_products: let the plan compute products of sparse binary activations with ±1
            weights as row adds or from the units that changed, on the CPU (bit-identical to
            the GEMM, faster below 25 % activity); False: the GEMM.
    """
    if tuple(x.shape[1:]) != net.input_shape:
        raise ValueError(f"input of shape {tuple(x.shape[1:])} does not match the network's "
                         f"input shape {net.input_shape}")
    if weights is None:
        weights, alphas = zip(*(c.relaxation_weight() for c in net.couplings), strict=True)
        ordered = ordered_couplings(net)
    else:
        alphas = (1.0,) * len(weights)
        ordered = (False,) * len(weights)
    if biases is None:
        biases = tuple(c.bias for c in net.couplings)
    plan = plan_relaxation(net, x, tuple(weights), tuple(biases), tuple(alphas), ordered, sparse_products)
    input_drive, input_cache = plan.strategies[0].up(x)
    # dense drives come back as transposed views; every step adds to this one, and adding a
    # transposed base costs a strided copy per step: lay it out row-major once per batch
    return RelaxationContext(tuple(weights), tuple(biases), input_drive.contiguous(), input_cache,
                             tuple(alphas), plan)


def _first_bad_layer(layers) -> int | None:
    for index, layer in enumerate(layers):
        if not bool(torch.isfinite(layer).all()):
            return index
    return None


#: Called after every relaxation step as ``record(step, layers)``: ``step`` counts from
#: ``step_offset + 1``; ``layers`` are the states s_l after that step, one tensor per layer.
#: The tensors are the loop's working buffers, valid until the next step: clone what you keep.
StepRecord = Callable[[int, tuple[torch.Tensor, ...]], None]


def _owned_drive(net: EnergyNet, context: RelaxationContext, activations, index: int) -> torch.Tensor:
    """u_l = P(W_l ∗ a_{l−1}) + b_l + W_{l+1}ᵀ ∗ P⁻¹(a_{l+1}) for layer ``index`` (0-based),
    a new tensor (the clamped input's drive, a_{−1} = x, comes from ``context``), with the
    plan's reference strategies (the plain GEMM or convolution of each coupling's family)."""
    strategies, last = context.plan.reference, net.num_layers - 1
    up = context.input_drive if index == 0 else strategies[index].up(activations[index - 1])[0]
    if index == last:
        return up if index > 0 else up.clone()
    above = strategies[index + 1]
    cache = None
    if above.coupling.routes_down:  # max pooling routes the down-drive through the maxima of W ∗ a_l
        cache = above.up(activations[index])[1]
    return above.down(activations[index + 1], cache, up)


def _step_layer(net: EnergyNet, index: int, state: torch.Tensor, drive: torch.Tensor,
                activation: torch.Tensor, nudge: Nudge | None, push: torch.Tensor | None,
                inplace: bool) -> torch.Tensor:
    """s_l ← step_l(s_l, u_l), the output's nudge placed around the step (``nudge`` active)."""
    at_output = nudge is not None and index == net.num_layers - 1
    if nudge is not None and at_output:
        drive = nudge.placement.drive(net.output_cost, drive, state, activation, nudge, push, inplace)
    neuron = net.neurons[index]
    new = neuron.step_(state, drive) if inplace else neuron.step(state, drive)
    if nudge is not None and at_output:
        new = nudge.placement.state(net.output_cost, new, state, activation, nudge, inplace)
    return new


def check_stop(net: EnergyNet, stop: str | None) -> str | None:
    """``stop`` if it is None or one of :data:`FREE_STOPS` and every layer of ``net`` has binary
    neurons; a one-line ``ValueError`` otherwise."""
    if stop is None:
        return None
    if stop not in FREE_STOPS:
        raise ValueError(f"unknown stop test {stop!r}; valid: {', '.join(FREE_STOPS)}")
    if not all(getattr(neuron, "binary", False) for neuron in net.neurons):
        raise ValueError(f"the stop test {stop!r} needs binary neurons (BinaryAccumulator) in every "
                         f"layer; hard-sigmoid networks stop with a tolerance on |Δs|")
    return stop


def _target_side(neuron, drive: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """H(clamp(u, 0, 1) − θ) as 0.0 / 1.0 into ``out``: the activation the accumulator tends
    to under a fixed drive u (read before the neuron's in-place step overwrites u)."""
    threshold = neuron.threshold
    if threshold < 0.0 or threshold >= 1.0:  # the clamped target is always / never above θ
        return out.fill_(1.0 if threshold < 0.0 else 0.0)
    return torch.gt(drive, threshold, out=out)  # for θ in [0, 1): clamp(u) > θ ⇔ u > θ


def _extrapolate(net: EnergyNet, layers: list, drives: list, remaining: int) -> None:
    """s ← clamp(u + (1 − γ)^n (s − u), 0, 1) for every layer, n = ``remaining``: n steps of
    s ← clamp((1 − γ)s + γu, 0, 1) under a fixed drive u, in closed form (with u in [0, 1] the
    clamp never acts; beyond, the unclamped sequence is monotone and the clamp, once reached,
    holds)."""
    if remaining <= 0:
        return
    for index, (neuron, drive) in enumerate(zip(net.neurons, drives, strict=True)):
        assert isinstance(neuron, BinaryAccumulator)  # check_stop: every layer is binary
        factor = (1.0 - neuron.gamma) ** remaining
        layers[index] = torch.clamp(drive + factor * (layers[index] - drive), 0.0, 1.0)


def _active(nudge: Nudge | None) -> Nudge | None:
    return nudge if nudge is not None and nudge.beta != 0 else None


def _check_finite(net: EnergyNet, layers: list, group: tuple[int, ...], step: int) -> None:
    bad = _first_bad_layer([layers[i] for i in group])
    if bad is not None:
        layer = group[bad] + 1
        raise DivergenceError(f"relaxation diverged: layer {layer} of {len(layers)} (shape "
                              f"{tuple(net.layer_shapes[layer - 1])}) became NaN/inf at step {step}; "
                              f"lower the learning rates or β")


def relax_step(net: EnergyNet, x: torch.Tensor, state: EnergyState, nudge: Nudge | None = None,
               schedule: str | RelaxationSchedule = SYNCHRONOUS, *, context: RelaxationContext | None = None,
               start: EnergyState | None = None) -> EnergyState:
    """One step of the dynamics; returns a new state (pure: ``state`` is kept).

        for each group G of the schedule, in order, from the state s before G:
            u_l = P(W_l ∗ a_{l−1}) + b_l + W_{l+1}ᵀ ∗ P⁻¹(a_{l+1})     (a_0 = x; a = activation(s))
            u_L ← nudge.placement.drive(u_L)                          (output, when nudged)
            s_l ← step_l(s_l, u_l)                                      for every l in G
            s_L ← nudge.placement.state(s_L)                          (output, when nudged)

    This is the definition :func:`relax` is tested against: ``relax(…, steps=n)`` equals n
    calls of this function bit for bit. Under ``torch.no_grad`` it uses the neurons'
    and costs' in-place arithmetic on tensors it owns (as :func:`relax` does), under
    autograd their out-of-place twins.

    Args:
        net: the network.
        x: clamped input, ``(batch, *net.input_shape)``.
        state: the state before the step.
        nudge: output nudge (None or β = 0: a free step).
        schedule: a :class:`~binlearn.binary.schedules.RelaxationSchedule` or its name,
            ``"synchronous"`` or ``"even_odd"`` (:func:`schedule_groups`).
        context: per-batch context from :func:`prepare` (built here when None).
        start: the state the nudged phase started from (:class:`FreeDriveNudge` reads its
            output; default: ``state``).
    """
    groups = schedule_groups(schedule, net.num_layers)
    context = context if context is not None else prepare(net, x)
    inplace = not torch.is_grad_enabled()
    layers = list(state.layers)
    active = _active(nudge)
    push = None
    if active is not None:
        push = active.placement.phase_push(active, (start if start is not None else state).layers[-1])
    for group in groups:
        activations = net.activations(EnergyState(tuple(layers)))
        updated = {}
        for index in group:
            drive = _owned_drive(net, context, activations, index)
            updated[index] = _step_layer(net, index, layers[index], drive, activations[index], active, push,
                                         inplace)
        for index, new in updated.items():
            layers[index] = new
    return EnergyState(tuple(layers))


def _run(net: EnergyNet, context: RelaxationContext, layers: list, steps: int,
         nudge: Nudge | None, schedule: str | RelaxationSchedule, check_each_step: bool, step_offset: int,
         record: StepRecord | None = None, tolerance: float | None = None,
         stop: str | None = None) -> tuple[list, int]:
    """The fused relaxation loop on ``layers`` (working copies owned by this call): the
    steps of :func:`relax_step`, with the plan's strategies and each up-drive computed once per
    change of its bottom layer (:class:`~binlearn.energy.plan.PhaseDrives`). Returns the layers
    and the number of steps run (fewer than ``steps`` only when ``tolerance`` is met: the
    step after which max |s_{t+1} − s_t| < tolerance over every layer and sample; or when the
    binary stop test ``stop`` of :data:`FREE_STOPS` is met)."""
    inplace = not torch.is_grad_enabled()
    drives = PhaseDrives(net, context.plan, context.input_drive, context.input_cache, layers, inplace)
    active = _active(nudge)
    push = None if active is None else active.placement.phase_push(active, layers[-1])  # fixed for the phase
    change = [torch.empty_like(s) for s in layers] if tolerance is not None else None
    settles = stop in ("settled", "settled_extrapolated")
    targets = [torch.empty_like(s) for s in layers] if settles else None
    # the drives the step used, kept to carry the accumulators forward once settled
    used = [torch.empty_like(s) for s in layers] if stop == "settled_extrapolated" else None
    groups = schedule_groups(schedule, len(layers))
    for step in range(steps):
        largest = 0.0
        flipped = unsettled = False
        for group in groups:
            updated = []
            for index in group:
                drive = drives.drive(index)
                if targets is not None:  # the step may overwrite the drive: read its side of θ first
                    _target_side(net.neurons[index], drive, targets[index])
                if used is not None:
                    used[index].copy_(drive)
                updated.append((index, _step_layer(net, index, layers[index], drive,
                                                   drives.activations[index], active, push, inplace)))
            for index, new in updated:
                if change is not None:
                    difference = torch.sub(new, layers[index], out=change[index])
                    largest = max(largest, float(difference.abs_().max()))
                before = drives.activations[index]
                drives.commit(index, new)
                if stop is not None and not flipped:
                    after = drives.activations[index]
                    flipped = not torch.equal(before, after)
                    if targets is not None and not flipped and not unsettled:
                        unsettled = not torch.equal(after, targets[index])
            if check_each_step:
                _check_finite(net, layers, group, step_offset + step + 1)
        if record is not None:
            record(step_offset + step + 1, tuple(layers))
        if tolerance is not None and largest < tolerance:
            return layers, step + 1
        if stop is not None and not flipped and not unsettled:
            if used is not None:
                _extrapolate(net, layers, used, steps - step - 1)
            return layers, step + 1
    return layers, steps


def relax(net: EnergyNet, x: torch.Tensor, state: EnergyState, steps: int,
          nudge: Nudge | None = None, schedule: str | RelaxationSchedule = SYNCHRONOUS,
          context: RelaxationContext | None = None, step_offset: int = 0,
          record: StepRecord | None = None) -> EnergyState:
    """Run ``steps`` relaxation steps from ``state``; returns a new state (``state`` is kept).

    :func:`relax_until` is the same loop with an optional convergence test.

    Args:
        net: the network.
        x: clamped input, ``(batch, *net.input_shape)``.
        state: starting state, as from ``net.initial_state(batch)`` or a previous phase.
        steps: number of steps (T for the free phase, K for a nudged phase), >= 0.
        nudge: output nudge (None or β = 0: free phase), its placement an object
            (:class:`DriveNudge`, :class:`StateNudge`, :class:`FreeDriveNudge`).
        schedule: a :class:`~binlearn.binary.schedules.RelaxationSchedule` or its name,
            ``"synchronous"`` or ``"even_odd"``.
        context: per-batch context from :func:`prepare` (built here when None; pass
            ``prepare(net, x, sparse_products=False)`` to keep every product a GEMM).
        step_offset: added to step numbers in divergence messages and records (phases after
            the first).
        record: optional per-step hook, ``record(step, layers)`` after every step (see
            :data:`StepRecord`); e.g. the spiking view of a binary network reads its spikes
            from it. It does not change the relaxation.

    Raises:
        DivergenceError: a layer became NaN/inf (message names the layer and the step).
    """
    return relax_until(net, x, state, steps, None, nudge, schedule, context, step_offset, record)[0]


def relax_until(net: EnergyNet, x: torch.Tensor, state: EnergyState, steps: int,
                tolerance: float | None = None, nudge: Nudge | None = None,
                schedule: str | RelaxationSchedule = SYNCHRONOUS, context: RelaxationContext | None = None,
                step_offset: int = 0, record: StepRecord | None = None, stop: str | None = None
                ) -> tuple[EnergyState, int]:
    """:func:`relax` with a convergence test: stop after the first step t with

        max over layers, samples and units of |s_{t} − s_{t−1}| < tolerance

    and return ``(state, steps run)``; ``tolerance=None`` runs all ``steps`` (then it is
    :func:`relax`, bit for bit, and so are the first t steps of any run). The test costs one
    elementwise pass and one device-to-host read per step. Other arguments as in :func:`relax`.

    Binary-activation networks never meet ``tolerance`` (their accumulators s keep moving
    geometrically towards the drive); for them ``stop`` names one of the tests of
    :data:`FREE_STOPS`, for free phases only (no nudge), with every layer binary:

    - ``"no_flips"``: stop after the first step t with H(s_t − θ) = H(s_{t−1} − θ) for every
      layer, sample and unit (it can stop early: an accumulator on its way to θ flips later);
    - ``"settled"``: stop after the first step t with no flip and, for every layer, sample and
      unit, H(s_t − θ) = H(clamp(u_t, 0, 1) − θ), u_t the drive the step used. Then the next
      step's drives equal u_t (they are functions of the binary activations, which did not
      change; under ``"even_odd"`` too, as no unit flipped during the whole step), each
      clamp((1 − γ)s + γu) lies between s and clamp(u), both on the same side of θ, and by
      induction no unit ever flips again: the activations equal those of the full ``steps``
      relaxation exactly (the accumulators differ, still on their way to clamp(u));
    - ``"settled_extrapolated"``: ``"settled"``, and the accumulators are then carried in
      closed form over the steps left, s ← clamp(u + (1 − γ)^n (s − u), 0, 1): the state of
      the full relaxation up to float rounding (``record`` sees only the steps run).

    Each costs one comparison per layer and step (``"settled"`` one more); ``tolerance`` and
    ``stop`` are exclusive.
    """
    check_schedule(schedule)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if tolerance is not None and not tolerance > 0:
        raise ValueError(f"tolerance must be > 0 (or None: run every step), got {tolerance}")
    check_stop(net, stop)
    if stop is not None and tolerance is not None:
        raise ValueError("give a tolerance (hard-sigmoid networks) or a binary stop test, not both")
    if stop is not None and _active(nudge) is not None:
        raise ValueError(f"the stop test {stop!r} is for free phases (no nudge): the nudge moves the "
                         f"output's drive with its accumulator")
    if nudge is not None and not isinstance(nudge.placement, NudgePlacement):
        raise TypeError(f"nudge placement must be a NudgePlacement (DriveNudge(), StateNudge(), "
                        f"FreeDriveNudge(); nudge_placement(name) maps the names "
                        f"{', '.join(NUDGE_PLACEMENTS)}), got {nudge.placement!r}")
    if len(state.layers) != net.num_layers:
        raise ValueError(f"state has {len(state.layers)} layers, network has {net.num_layers}")
    if context is None:
        context = prepare(net, x)
    working = [s.clone() for s in state.layers]
    layers, run = _run(net, context, working, steps, nudge, schedule, False, step_offset, record,
                       tolerance, stop)
    if _first_bad_layer(layers) is not None:
        # rare path: replay with a check after every step to name the layer and step
        _run(net, context, [s.clone() for s in state.layers], run, nudge, schedule, True,
             step_offset)
        raise DivergenceError(f"relaxation diverged within {run} steps")
    return EnergyState(tuple(layers)), run

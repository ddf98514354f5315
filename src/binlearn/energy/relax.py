"""Relaxation: minimise the energy layer by layer, with hand-written drives, no autograd.

One step of the dynamics, :func:`relax_step` (pure; the readable definition):

    u_l = ∂Φ/∂a_l = P(W_l ∗ a_{l−1}) + b_l + W_{l+1}ᵀ ∗ P⁻¹(a_{l+1})    (a_0 = x; no second term at l = L)
    s_l ← step_l(s_l, u_l)                  for every l of a group, from the state before the group
    a_l = activation_l(s_l)

with the output's nudge placed by a :class:`NudgePlacement` object (:class:`DriveNudge`,
:class:`StateNudge`, :class:`FreeDriveNudge`). Schedules are data (a string passed to
:func:`relax`), and fix the groups:

- ``"synchronous"``: one group, every layer from the previous state at once (the
  prototypical dynamics of Ernoult et al. 2019 and Laydevant et al. 2021);
- ``"even_odd"``: layers 1, 3, 5, … then 2, 4, 6, … (1 = first hidden layer), each set to
  its minimiser given its neighbours, which are fixed during the half-sweep (Scellier et
  al., NeurIPS 2023). For slope-1 hard-sigmoid networks with dense couplings every
  half-sweep lowers the energy; it typically needs about half the steps.

:func:`relax` runs the same steps in one fused loop that does not repeat work, and is
tested to equal repeated :func:`relax_step` bit for bit (both schedules, dense and
convolutional couplings, float and binary neurons, every nudge placement, with and without
autograd). The clamped input's drive onto the first layer (and its pooling positions) is
computed once by :func:`prepare` and shared by every phase of a batch; effective weights
(α ⊙ sign) are built once per batch; each coupling's up-drive is computed once per change of
its bottom layer (and serves both the top layer's drive and, for max pooling, the positions
the bottom layer's drive is routed through). Under ``torch.no_grad`` the loop reuses
scratch buffers in place; under autograd (BPTT) it is out of place and differentiable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, NamedTuple

import torch

from binlearn.energy.costs import Cost
from binlearn.energy.couplings import ConvPool, Dense
from binlearn.energy.events import event_tables as build_event_tables
from binlearn.energy.events import event_tracker
from binlearn.energy.network import EnergyNet
from binlearn.energy.state import EnergyState
from binlearn.errors import BinlearnError

__all__ = [
    "SYNCHRONOUS", "EVEN_ODD", "SCHEDULES", "NUDGE_PLACEMENTS",
    "NudgePlacement", "DriveNudge", "StateNudge", "FreeDriveNudge", "DRIVE_NUDGE", "nudge_placement",
    "Nudge", "RelaxationContext", "DivergenceError",
    "StepRecord", "prepare", "relax", "relax_until", "relax_step", "schedule_groups", "check_schedule",
    "steps_to_fixed_point", "ordered_couplings", "tracked_couplings",
]

SYNCHRONOUS = "synchronous"
EVEN_ODD = "even_odd"
SCHEDULES = (SYNCHRONOUS, EVEN_ODD)


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
        ordered: per coupling, whether its drives are computed as (integer product)·α + base
            in separate float32 operations (:func:`ordered_couplings`).
        rows_up: per coupling, its ±1 matrix transposed and row-major for the up-drives of
            the relaxation loop (ordered dense couplings above the input when
            ``sparse_products``; None elsewhere): sparse binary activations then cost one row
            add each (:func:`~binlearn.binary.kernels.sparse.sparse_binary_product`).
        sparse_products: let ordered products of sparse binary activations be row adds
            (the same numbers as the GEMM; False: always the GEMM).
        event_tables: per coupling, the scatter tables of its event-driven drives (ordered
            convolutions on the CPU when ``sparse_products``; None elsewhere): the relaxation
            loop then updates those drives from the units that changed
            (:class:`~binlearn.energy.events.EventConvPool`, the same numbers).
        trackers: the event trackers themselves, per coupling (filled by the first
            no-autograd phase that needs them): every phase of the batch reuses them, so a
            nudged phase starts from the free phase's products and pays only for what
            changed (a tracker compares its inputs with the last ones it saw, whatever
            state a phase starts from).
    """

    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]
    input_drive: torch.Tensor
    input_cache: object
    alphas: tuple[float, ...]
    ordered: tuple[bool, ...]
    rows_up: tuple[torch.Tensor | None, ...] = ()
    sparse_products: bool = False
    event_tables: tuple[tuple | None, ...] = ()
    trackers: list | None = None


def check_schedule(schedule: str) -> str:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown relaxation schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    return schedule


def schedule_groups(schedule: str, count: int) -> list[list[int]]:
    """The layers (0-based) updated together, in order, in one step of ``count`` layers:
    synchronous ``[[0, 1, …]]``; even/odd ``[[0, 2, …], [1, 3, …]]`` (layers 1, 3, … first)."""
    check_schedule(schedule)
    if schedule == SYNCHRONOUS:
        return [list(range(count))]
    return [list(range(0, count, 2)), list(range(1, count, 2))]


def ordered_couplings(net: EnergyNet) -> tuple[bool, ...]:
    """Per coupling: True for a dense coupling with ±1 weights and one α between binary
    neurons (the input side counts as binary: the input is data), and for a convolution
    with ±1 weights between two binary hidden layers whose float64 down-drive is exact
    (:meth:`~binlearn.energy.couplings.ConvPool.ordered_exact`).

    Its products are then exact integers, and the relaxation computes each drive as
    fl(fl(α·n) + base) in separate float32 operations instead of one fused ``addmm``, so
    that the packed format's integer relaxation reproduces the states bit for bit; an ordered
    convolution's up-drive is fl(fl(α_c·n) + b_c) from the integer convolution n and its
    down-drive the float64-exact transposed convolution rounded once, so that its
    event-driven twin (:mod:`binlearn.energy.events`) gives the same numbers. Couplings
    between float neurons keep the fused (faster) product.
    """
    flags = []
    for index, coupling in enumerate(net.couplings):
        binary_sides = net.neurons[index].binary and (index == 0 or net.neurons[index - 1].binary)
        if isinstance(coupling, ConvPool):
            flags.append(bool(index > 0 and binary_sides and coupling.ordered_exact()))
            continue
        single_alpha = coupling.scale is not None and coupling.scale.numel() == 1
        flags.append(bool(single_alpha and binary_sides))
    return tuple(flags)


def prepare(net: EnergyNet, x: torch.Tensor, weights=None, biases=None,
            sparse_products: bool = True) -> RelaxationContext:
    """Build the per-batch context: effective weights and the input's drive, computed once.

    Args:
        net: the network.
        x: clamped input, ``(batch, *net.input_shape)``.
        weights, biases: override the couplings' (effective) weights and biases (BPTT
            passes leaves that require gradients); default: the network's own.
        sparse_products: products of sparse binary activations with ±1 weights as row adds
            on the CPU (bit-identical to the GEMM, faster below 25 % activity); False: the GEMM.
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
    input_drive, input_cache = net.couplings[0].drive_up(x, weights[0], biases[0],
                                                         alpha=alphas[0], ordered=ordered[0])
    # dense drives come back as transposed views; every step adds to this one, and adding a
    # transposed base costs a strided copy per step: lay it out row-major once per batch
    input_drive = input_drive.contiguous()
    rows_up = tuple(weight.detach().t().contiguous()
                    if index > 0 and ordered[index] and isinstance(coupling, Dense)
                    and weight.device.type == "cpu" and sparse_products else None
                    for index, (coupling, weight) in enumerate(zip(net.couplings, weights, strict=True)))
    # event-driven drives between binary hidden layers (not from the clamped input); dense
    # couplings only in convnets: in the fully connected rows (T = 20, many flips per step)
    # the row adds of sparse_binary_product measure faster than events
    convnet = any(isinstance(coupling, ConvPool) for coupling in net.couplings)
    event_tables = tuple(build_event_tables(coupling)
                         if index > 0 and ordered[index] and x.device.type == "cpu"
                         and x.dtype == torch.float32 and sparse_products
                         and (convnet or isinstance(coupling, ConvPool)) else None
                         for index, coupling in enumerate(net.couplings))
    return RelaxationContext(tuple(weights), tuple(biases), input_drive, input_cache,
                             tuple(alphas), ordered, rows_up, bool(sparse_products), event_tables,
                             [None] * len(event_tables))


def tracked_couplings(net: EnergyNet, context: RelaxationContext) -> list:
    """The context's event trackers, one per coupling (None: the coupling's dense drives),
    created on first use (no autograd only: the trackers update their products in place)."""
    count = net.num_layers
    tables = context.event_tables or (None,) * count
    trackers = context.trackers if context.trackers is not None else [None] * count
    for index, table in enumerate(tables):
        if table is not None and trackers[index] is None:
            trackers[index] = event_tracker(net.couplings[index], table)
    return list(trackers)


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
    a new tensor (the clamped input's drive, a_{−1} = x, comes from ``context``)."""
    couplings, last = net.couplings, net.num_layers - 1
    weights, biases, alphas, ordered = context.weights, context.biases, context.alphas, context.ordered
    if index == 0:
        up = context.input_drive
    else:
        rows = context.rows_up[index] if context.rows_up else None
        up, _ = couplings[index].drive_up(activations[index - 1], weights[index], biases[index],
                                          alpha=alphas[index], ordered=ordered[index], rows=rows)
    if index == last:
        return up if index > 0 else up.clone()
    above = couplings[index + 1]
    cache = None
    if above.routes_down:  # max pooling routes the down-drive through the maxima of W ∗ a_l
        cache = above.drive_up(activations[index], weights[index + 1], biases[index + 1],
                               alpha=alphas[index + 1], ordered=ordered[index + 1])[1]
    return above.drive_down(activations[index + 1], weights[index + 1], cache, up,
                            alpha=alphas[index + 1], ordered=ordered[index + 1],
                            sparse=context.sparse_products)


def relax_step(net: EnergyNet, x: torch.Tensor, state: EnergyState, nudge: Nudge | None = None,
               schedule: str = SYNCHRONOUS, *, context: RelaxationContext | None = None,
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
        schedule: ``"synchronous"`` or ``"even_odd"`` (:func:`schedule_groups`).
        context: per-batch context from :func:`prepare` (built here when None).
        start: the state the nudged phase started from (:class:`FreeDriveNudge` reads its
            output; default: ``state``).
    """
    groups = schedule_groups(schedule, net.num_layers)
    context = context if context is not None else prepare(net, x)
    inplace = not torch.is_grad_enabled()
    layers = list(state.layers)
    last = len(layers) - 1
    active = nudge if nudge is not None and nudge.beta != 0 else None
    push = None
    if active is not None:
        push = active.placement.phase_push(active, (start if start is not None else state).layers[last])
    for group in groups:
        activations = net.activations(EnergyState(tuple(layers)))
        updated = {}
        for index in group:
            neuron, at_output = net.neurons[index], active is not None and index == last
            drive = _owned_drive(net, context, activations, index)
            if active is not None and at_output:
                drive = active.placement.drive(net.output_cost, drive, layers[index], activations[index],
                                               active, push, inplace)
            new = neuron.step_(layers[index], drive) if inplace else neuron.step(layers[index], drive)
            if active is not None and at_output:
                new = active.placement.state(net.output_cost, new, layers[index], activations[index],
                                             active, inplace)
            updated[index] = new
        for index, new in updated.items():
            layers[index] = new
    return EnergyState(tuple(layers))


def _run(net: EnergyNet, context: RelaxationContext, layers: list, steps: int,
         nudge: Nudge | None, schedule: str, check_each_step: bool, step_offset: int,
         record: StepRecord | None = None, tolerance: float | None = None) -> tuple[list, int]:
    """The fused relaxation loop on ``layers`` (working copies owned by this call): the
    steps of :func:`relax_step`, with each up-drive computed once per change of its bottom
    layer and scratch buffers reused in place under ``torch.no_grad``. Returns the layers
    and the number of steps run (fewer than ``steps`` only when ``tolerance`` is met: the
    step after which max |s_{t+1} − s_t| < tolerance over every layer and sample)."""
    inplace = not torch.is_grad_enabled()
    count = len(layers)
    couplings, neurons = net.couplings, net.neurons
    weights, biases, alphas, ordered = context.weights, context.biases, context.alphas, context.ordered
    sparse = context.sparse_products
    rows_up = context.rows_up or (None,) * count
    cost = net.output_cost
    last = count - 1
    groups = schedule_groups(schedule, count)
    ups: list = [context.input_drive] + [None] * (count - 1)
    caches: list = [context.input_cache] + [None] * (count - 1)
    activations = [n.activation(s) for n, s in zip(neurons, layers, strict=True)]
    active = nudge if nudge is not None and nudge.beta != 0 else None
    push = None
    if active is not None:
        push = active.placement.phase_push(active, layers[last])  # fixed for the whole phase
    scratch = [torch.empty_like(s) for s in layers] if inplace else None
    events = tracked_couplings(net, context) if inplace else [None] * count

    def drive_up(index: int) -> None:  # ups[index], caches[index] from the current state
        tracker = events[index]
        if tracker is not None:
            ups[index], caches[index] = tracker.drive_up(activations[index - 1], biases[index])
        else:
            ups[index], caches[index] = couplings[index].drive_up(
                activations[index - 1], weights[index], biases[index],
                alpha=alphas[index], ordered=ordered[index], rows=rows_up[index])

    change = [torch.empty_like(s) for s in layers] if tolerance is not None else None
    for step in range(steps):
        largest = 0.0
        for group in groups:
            for index in group:  # up-drives this group needs, from the current state
                if index > 0 and ups[index] is None:
                    drive_up(index)
                if index < last and ups[index + 1] is None and couplings[index + 1].routes_down:
                    # max pooling routes the down-drive through the positions of the maxima
                    drive_up(index + 1)
            new_layers = {}
            for index in group:
                tracker = events[index + 1] if index < last else None
                if tracker is not None:
                    drive = tracker.drive_down(activations[index + 1], caches[index + 1], ups[index],
                                               out=scratch[index] if scratch is not None else None)
                elif index < last:
                    drive = couplings[index + 1].drive_down(
                        activations[index + 1], weights[index + 1], caches[index + 1],
                        ups[index], out=scratch[index] if scratch is not None else None,
                        alpha=alphas[index + 1], ordered=ordered[index + 1], sparse=sparse)
                elif index > 0:
                    drive = ups[index]  # computed for this update, ours to overwrite
                else:
                    drive = ups[index].clone()  # the shared input drive is never overwritten
                at_output = active is not None and index == last
                if active is not None and at_output:
                    drive = active.placement.drive(cost, drive, layers[index], activations[index],
                                                   active, push, inplace)
                if inplace:
                    new = neurons[index].step_(layers[index], drive)
                else:
                    new = neurons[index].step(layers[index], drive)
                if active is not None and at_output:
                    new = active.placement.state(cost, new, layers[index], activations[index], active,
                                                 inplace)
                new_layers[index] = new
            for index in group:
                old, new = layers[index], new_layers[index]
                if change is not None:
                    largest = max(largest, float(torch.sub(new, old, out=change[index]).abs_().max()))
                layers[index] = new
                if scratch is not None and new is scratch[index]:
                    scratch[index] = old
                activations[index] = neurons[index].activation(new)
                if index < last:  # the coupling above reads this layer: its up-drive is stale
                    ups[index + 1] = None
                    caches[index + 1] = None
            if check_each_step:
                bad = _first_bad_layer([layers[i] for i in group])
                if bad is not None:
                    layer = group[bad] + 1
                    raise DivergenceError(
                        f"relaxation diverged: layer {layer} of {count} "
                        f"(shape {tuple(net.layer_shapes[layer - 1])}) became NaN/inf at step "
                        f"{step_offset + step + 1}; lower the learning rates or β")
        if record is not None:
            record(step_offset + step + 1, tuple(layers))
        if tolerance is not None and largest < tolerance:
            return layers, step + 1
    return layers, steps


def relax(net: EnergyNet, x: torch.Tensor, state: EnergyState, steps: int,
          nudge: Nudge | None = None, schedule: str = SYNCHRONOUS,
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
        schedule: ``"synchronous"`` or ``"even_odd"``.
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
                schedule: str = SYNCHRONOUS, context: RelaxationContext | None = None,
                step_offset: int = 0, record: StepRecord | None = None
                ) -> tuple[EnergyState, int]:
    """:func:`relax` with a convergence test: stop after the first step t with

        max over layers, samples and units of |s_{t} − s_{t−1}| < tolerance

    and return ``(state, steps run)``; ``tolerance=None`` runs all ``steps`` (then it is
    :func:`relax`, bit for bit, and so are the first t steps of any run). The test costs one
    elementwise pass and one device-to-host read per step. Other arguments as in :func:`relax`.
    """
    check_schedule(schedule)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if tolerance is not None and not tolerance > 0:
        raise ValueError(f"tolerance must be > 0 (or None: run every step), got {tolerance}")
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
                       tolerance)
    if _first_bad_layer(layers) is not None:
        # rare path: replay with a check after every step to name the layer and step
        _run(net, context, [s.clone() for s in state.layers], run, nudge, schedule, True,
             step_offset)
        raise DivergenceError(f"relaxation diverged within {run} steps")
    return EnergyState(tuple(layers)), run


def steps_to_fixed_point(net: EnergyNet, x: torch.Tensor, schedule: str = SYNCHRONOUS,
                         tolerance: float = 1e-5, max_steps: int = 1000,
                         state: EnergyState | None = None) -> tuple[int, EnergyState]:
    """Steps until max |s_{t+1} − s_t| < tolerance (over all layers and samples).

    Returns ``(steps, state)``; ``steps = max_steps`` when not reached. Used to compare the
    synchronous and even/odd schedules on the same network and input.
    """
    with torch.no_grad():
        context = prepare(net, x)
        current = state if state is not None else net.initial_state(x.shape[0], device=x.device)
        for step in range(1, max_steps + 1):
            following = relax(net, x, current, 1, schedule=schedule, context=context)
            change = max(float((a - b).abs().max())
                         for a, b in zip(following.layers, current.layers, strict=True))
            current = following
            if change < tolerance:
                return step, current
    return max_steps, current

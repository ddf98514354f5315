"""Relaxation: minimise the energy layer by layer, with hand-written drives, no autograd.

    s_l ← step_l(s_l, u_l),   u_l = ∂Φ/∂a_l (+ β nudge on the output layer)

Schedules are data (a string passed to :func:`relax`):

- ``"synchronous"``: every layer from the previous state at once (the prototypical
  dynamics of Ernoult et al. 2019 and Laydevant et al. 2021);
- ``"even_odd"``: layers 1, 3, 5, … then 2, 4, 6, … (1 = first hidden layer), each set to
  its minimiser given its neighbours, which are fixed during the half-sweep (Scellier et
  al., NeurIPS 2023). For slope-1 hard-sigmoid networks with dense couplings every
  half-sweep lowers the energy; it typically needs about half the steps.

One step is one update of every layer in both schedules. Work is not repeated: the
clamped input's drive onto the first layer (and its pooling positions) is computed once by
:func:`prepare` and shared by every phase of a batch; effective weights (α ⊙ sign) are
built once per batch; each coupling's up-drive is computed once per change of its bottom
layer (and serves both the top layer's drive and, for max pooling, the positions the
bottom layer's drive is routed through). Under ``torch.no_grad`` the loop reuses scratch
buffers in place; under autograd (BPTT) it is out of place and differentiable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from binlearn.energy import couplings as couplings_module
from binlearn.energy.couplings import Dense
from binlearn.energy.network import EnergyNet
from binlearn.energy.state import EnergyState

__all__ = [
    "SYNCHRONOUS", "EVEN_ODD", "SCHEDULES", "NUDGE_PLACEMENTS",
    "Nudge", "RelaxationContext", "DivergenceError",
    "StepRecord", "prepare", "relax", "check_schedule", "steps_to_fixed_point", "ordered_couplings",
]

SYNCHRONOUS = "synchronous"
EVEN_ODD = "even_odd"
SCHEDULES = (SYNCHRONOUS, EVEN_ODD)


class DivergenceError(ValueError):
    """A relaxation produced a non-finite (NaN/inf) state; the message names layer and step."""


NUDGE_PLACEMENTS = ("drive", "state", "free_drive")


class Nudge(NamedTuple):
    """The nudging force on the output: −β ∂C/∂s_out.

    Args:
        target: the cost's target, e.g. ``(batch, num_outputs)`` for squared error.
        beta: β, signed; 0 means no nudge.
        placement: ``"drive"`` — added to the drive, inside the neuron's step,
            s ← ρ(u + β(t − s)) (the gradient of the total energy E + βC; Laborieux et al.
            2021; what the GDU property is stated for); ``"state"`` — added after the
            step and clamped to the neuron's range, s ← clamp(ρ(u) + β(t − s), 0, 1)
            (Laydevant et al.'s code for float neurons): a saturated output still moves
            towards its target, so outputs cannot die at the clamp; ``"free_drive"`` — a
            constant force β(t − s⁰_out) from the output at the start of the phase (the free
            equilibrium) added to the drive, s ← step(s, u + β(t − s⁰_out)) (Laydevant et
            al.'s code for binary-activation networks, whose accumulators average it in).
    """

    target: torch.Tensor
    beta: float
    placement: str = "drive"


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
            the relaxation loop (ordered dense couplings above the input; None elsewhere):
            sparse binary activations then cost one row add each
            (:func:`~binlearn.energy.couplings.sparse_binary_product`).
    """

    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]
    input_drive: torch.Tensor
    input_cache: object
    alphas: tuple[float, ...]
    ordered: tuple[bool, ...]
    rows_up: tuple[torch.Tensor | None, ...] = ()


def check_schedule(schedule: str) -> str:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown relaxation schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    return schedule


def ordered_couplings(net: EnergyNet) -> tuple[bool, ...]:
    """Per coupling: True for a dense coupling with ±1 weights and one α between binary
    neurons (the input side counts as binary: the input is data).

    Its products are then exact integers, and the relaxation computes each drive as
    fl(fl(α·n) + base) in separate float32 operations instead of one fused ``addmm``, so
    that the packed format's integer relaxation reproduces the states bit for bit. Couplings
    between float neurons keep the fused (faster) product.
    """
    flags = []
    for index, coupling in enumerate(net.couplings):
        single_alpha = coupling.scale is not None and coupling.scale.numel() == 1
        binary_sides = net.neurons[index].binary and (index == 0 or net.neurons[index - 1].binary)
        flags.append(bool(single_alpha and binary_sides))
    return tuple(flags)


def prepare(net: EnergyNet, x: torch.Tensor, weights=None, biases=None) -> RelaxationContext:
    """Build the per-batch context: effective weights and the input's drive, computed once.

    Args:
        net: the network.
        x: clamped input, ``(batch, *net.input_shape)``.
        weights, biases: override the couplings' (effective) weights and biases (BPTT
            passes leaves that require gradients); default: the network's own.
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
                    and weight.device.type == "cpu" and couplings_module.SPARSE_PRODUCTS else None
                    for index, (coupling, weight) in enumerate(zip(net.couplings, weights, strict=True)))
    return RelaxationContext(tuple(weights), tuple(biases), input_drive, input_cache,
                             tuple(alphas), ordered, rows_up)


def _first_bad_layer(layers) -> int | None:
    for index, layer in enumerate(layers):
        if not bool(torch.isfinite(layer).all()):
            return index
    return None


#: Called after every relaxation step as ``record(step, layers)``: ``step`` counts from
#: ``step_offset + 1``; ``layers`` are the states s_l after that step, one tensor per layer.
#: The tensors are the loop's working buffers, valid until the next step: clone what you keep.
StepRecord = Callable[[int, tuple[torch.Tensor, ...]], None]


def _run(net: EnergyNet, context: RelaxationContext, layers: list, steps: int,
         nudge: Nudge | None, schedule: str, check_each_step: bool, step_offset: int,
         record: StepRecord | None = None) -> list:
    """The relaxation loop on ``layers`` (working copies owned by this call)."""
    inplace = not torch.is_grad_enabled()
    count = len(layers)
    couplings, neurons = net.couplings, net.neurons
    weights, biases, alphas, ordered = context.weights, context.biases, context.alphas, context.ordered
    rows_up = context.rows_up or (None,) * count
    cost = net.output_cost
    last = count - 1
    groups = ([list(range(count))] if schedule == SYNCHRONOUS
              else [list(range(0, count, 2)), list(range(1, count, 2))])
    ups: list = [context.input_drive] + [None] * (count - 1)
    caches: list = [context.input_cache] + [None] * (count - 1)
    activations = [n.activation(s) for n, s in zip(neurons, layers, strict=True)]
    free_push = None
    if nudge is not None and nudge.beta != 0 and nudge.placement == "free_drive":
        free_push = nudge.beta * (nudge.target - layers[last])  # fixed for the whole phase
    scratch = [torch.empty_like(s) for s in layers] if inplace else None
    for step in range(steps):
        for group in groups:
            for index in group:  # up-drives this group needs, from the current state
                if index > 0 and ups[index] is None:
                    ups[index], caches[index] = couplings[index].drive_up(
                        activations[index - 1], weights[index], biases[index],
                        alpha=alphas[index], ordered=ordered[index], rows=rows_up[index])
                if index < last and ups[index + 1] is None and couplings[index + 1].routes_down:
                    # max pooling routes the down-drive through the positions of the maxima
                    ups[index + 1], caches[index + 1] = couplings[index + 1].drive_up(
                        activations[index], weights[index + 1], biases[index + 1],
                        alpha=alphas[index + 1], ordered=ordered[index + 1])
            new_layers = {}
            for index in group:
                if index < last:
                    drive = couplings[index + 1].drive_down(
                        activations[index + 1], weights[index + 1], caches[index + 1],
                        ups[index], out=scratch[index] if inplace else None,
                        alpha=alphas[index + 1], ordered=ordered[index + 1])
                elif index > 0:
                    drive = ups[index]  # computed for this update, ours to overwrite
                else:
                    drive = ups[index].clone()  # the shared input drive is never overwritten
                nudged = index == last and nudge is not None and nudge.beta != 0
                if nudged and nudge.placement == "drive":
                    drive = cost.add_nudge(drive, layers[index], activations[index],
                                           nudge.target, nudge.beta, inplace=inplace)
                elif nudged and nudge.placement == "free_drive":
                    drive = drive.add_(free_push) if inplace else drive + free_push
                if inplace:
                    new = neurons[index].step_(layers[index], drive)
                else:
                    new = neurons[index].step(layers[index], drive)
                if nudged and nudge.placement == "state":
                    new = cost.add_nudge(new, layers[index], activations[index],
                                         nudge.target, nudge.beta, inplace=inplace)
                    new = new.clamp_(0.0, 1.0) if inplace else new.clamp(0.0, 1.0)
                new_layers[index] = new
            for index in group:
                old, new = layers[index], new_layers[index]
                layers[index] = new
                if inplace and new is scratch[index]:
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
    return layers


def relax(net: EnergyNet, x: torch.Tensor, state: EnergyState, steps: int,
          nudge: Nudge | None = None, schedule: str = SYNCHRONOUS,
          context: RelaxationContext | None = None, step_offset: int = 0,
          record: StepRecord | None = None) -> EnergyState:
    """Run ``steps`` relaxation steps from ``state``; returns a new state (``state`` is kept).

    Args:
        net: the network.
        x: clamped input, ``(batch, *net.input_shape)``.
        state: starting state, as from ``net.initial_state(batch)`` or a previous phase.
        steps: number of steps (T for the free phase, K for a nudged phase), >= 0.
        nudge: output nudge (None or β = 0: free phase).
        schedule: ``"synchronous"`` or ``"even_odd"``.
        context: per-batch context from :func:`prepare` (built here when None).
        step_offset: added to step numbers in divergence messages and records (phases after
            the first).
        record: optional per-step hook, ``record(step, layers)`` after every step (see
            :data:`StepRecord`); e.g. the spiking view of a binary network reads its spikes
            from it. It does not change the relaxation.

    Raises:
        DivergenceError: a layer became NaN/inf (message names the layer and the step).
    """
    check_schedule(schedule)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if nudge is not None and nudge.placement not in NUDGE_PLACEMENTS:
        raise ValueError(f"unknown nudge placement {nudge.placement!r}; valid: "
                         f"{', '.join(NUDGE_PLACEMENTS)}")
    if len(state.layers) != net.num_layers:
        raise ValueError(f"state has {len(state.layers)} layers, network has {net.num_layers}")
    if context is None:
        context = prepare(net, x)
    working = [s.clone() for s in state.layers]
    layers = _run(net, context, working, steps, nudge, schedule, False, step_offset, record)
    if _first_bad_layer(layers) is not None:
        # rare path: replay with a check after every step to name the layer and step
        _run(net, context, [s.clone() for s in state.layers], steps, nudge, schedule, True,
             step_offset)
        raise DivergenceError(f"relaxation diverged within {steps} steps")
    return EnergyState(tuple(layers))


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

"""Equilibrium Propagation: a gradient estimate from two (or three) relaxations.

    g_θ = −(1/(β B)) [∂Φ/∂θ(x, s^β) − ∂Φ/∂θ(x, s⁰)]                 (one-sided)
    g_θ = −(1/(2β B)) [∂Φ/∂θ(x, s^{+β}) − ∂Φ/∂θ(x, s^{−β})]         (symmetric)

s⁰ is the free fixed point after T free steps from the initial state; s^β follows from
s⁰ after K nudged steps with the output force −β ∂C/∂s. With the nudge inside the neuron's
step (:class:`~binlearn.energy.DriveNudge`, the default) g approximates ∂L/∂θ (the loss
gradient, batch mean) as β → 0, so ``θ ← θ − lr · g`` is a descent step; with the nudge
after the step (:class:`~binlearn.energy.StateNudge`, ``nudge_placement = "state"``, the
Laydevant configs) it does not: outputs saturated against their targets add a
straight-through term that stays as β → 0 (see :class:`~binlearn.energy.StateNudge`). The gradient dict
has exactly the names and shapes that :class:`~binlearn.rules.bptt.BPTT` returns
(the GDU property of Ernoult et al. 2019 is then a plain comparison). For binary weights
the estimate is with respect to the effective weight α ⊙ s, and ∂L/∂α follows by the
chain rule; a cross-entropy readout (outside the dynamics) gets ∂C/∂θ at the nudged
state(s).

Reference: Scellier & Bengio 2017; Ernoult et al. 2019 (GDU); Laborieux et al. 2021
(random sign of β, symmetric nudging); Laydevant et al. 2021 (binary networks).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from binlearn.energy.network import EnergyNet
from binlearn.energy.relax import (
    DRIVE_NUDGE,
    FREE_STOPS,
    Nudge,
    NudgePlacement,
    RelaxationContext,
    check_schedule,
    prepare,
    relax,
    relax_until,
)
from binlearn.energy.relax import nudge_placement as placement_named
from binlearn.energy.state import EnergyState

__all__ = ["EP", "EPResult", "parameter_derivative_difference"]


class EPResult(NamedTuple):
    """gradients: {name: tensor} (loss gradients, batch mean); free_state: s⁰; beta: the
    β used for this batch (signed, after the random sign); free_steps: the free steps run
    (T, or fewer when ``free_tolerance`` or ``free_stop`` stopped the phase)."""

    gradients: dict[str, torch.Tensor]
    free_state: EnergyState
    beta: float
    free_steps: int = 0


def parameter_derivative_difference(net: EnergyNet, x: torch.Tensor, first: EnergyState,
                                    second: EnergyState, context: RelaxationContext, factor: float
                                    ) -> dict[str, torch.Tensor]:
    """factor · [∂Φ/∂θ(x, first) − ∂Φ/∂θ(x, second)] for every coupling parameter.

    The input layer is the same in both states, so the first coupling's difference is one
    product with the difference of its top layer (one matmul or one convolution instead of
    two, with the input's pooling positions computed once in ``context``). The others come
    from the batch's drive strategies (:meth:`~binlearn.energy.plan.DriveStrategy.derivative_difference`:
    the pooling positions the relaxation used, exact integers between binary layers).
    """
    first_acts = (x, *net.activations(first))
    second_acts = (x, *net.activations(second))
    strategies = context.plan.current()
    gradients: dict[str, torch.Tensor] = {}
    for index, coupling in enumerate(net.couplings):
        if index == 0:  # the factor scales the (small) top layer, not the (large) derivative
            weight_diff, bias_diff = coupling.derivatives(
                x, (first_acts[1] - second_acts[1]).mul_(factor), context.input_cache)
        else:
            weight_diff, bias_diff = strategies[index].derivative_difference(
                first_acts[index], first_acts[index + 1], second_acts[index], second_acts[index + 1], factor)
        prefix = f"couplings.{index}."
        gradients[prefix + "weight"] = weight_diff
        gradients[prefix + "bias"] = bias_diff
        if coupling.learns_scale:
            gradients[prefix + "scale"] = coupling.scale_gradient(weight_diff)
    return gradients


class EP:
    """Equilibrium Propagation gradient estimator (a :class:`~binlearn.rules.base.GradientRule`).

    Args:
        free_steps: T, relaxation steps of the free phase, >= 1.
        nudged_steps: K, steps of each nudged phase, >= 1.
        beta: β > 0, nudging strength.
        random_sign: draw the sign of β per mini-batch (torch's global generator).
        symmetric: two nudged phases at +β and −β ("centered" EP, much lower bias).
        schedule: relaxation schedule, ``"synchronous"`` or ``"even_odd"``.
        nudge_placement: where the nudge enters, a placement object
            (:class:`~binlearn.energy.DriveNudge`: inside the neuron's step, the
            energy-gradient form; :class:`~binlearn.energy.StateNudge`: after the step,
            Laydevant et al.'s code, whose estimate is not ∂L/∂θ as β → 0 (saturated outputs
            add a straight-through term); :class:`~binlearn.energy.FreeDriveNudge`: a constant push
            from the free equilibrium) or its configuration name (``"drive"``, ``"state"``,
            ``"free_drive"``).
        sparse_products: let the batch's plan (:func:`~binlearn.energy.prepare`) compute
            products of sparse binary activations as row adds or from the units that changed
            (bit-identical to the GEMM; False: always the GEMM).
        free_tolerance: None (default: every free phase runs T steps) or a convergence
            test: the free phase stops after the first step with max |Δs| < free_tolerance
            (at most T steps; :func:`~binlearn.energy.relax_until`); the steps run are in
            :attr:`EPResult.free_steps`.
        free_stop: None (default) or the stop test of binary-activation networks, whose
            accumulators never meet a tolerance (:data:`~binlearn.energy.FREE_STOPS`):
            ``"no_flips"`` stops the free phase after the first step in which no unit flips,
            ``"settled"`` after the first step in which no unit flips and every accumulator is
            on the side of θ its drive pulls it to, so that the free phase's activations equal
            those after T steps, ``"settled_extrapolated"`` as ``"settled"`` with the
            accumulators then carried in closed form over the steps left to T (the T-step
            state up to float rounding; :func:`~binlearn.energy.relax_until`). Exclusive with
            ``free_tolerance``; checked against the network when a phase runs.
    """

    def __init__(self, free_steps: int, nudged_steps: int, beta: float,
                 random_sign: bool = False, symmetric: bool = False,
                 schedule: str = "synchronous",
                 nudge_placement: NudgePlacement | str = DRIVE_NUDGE,
                 sparse_products: bool = True, free_tolerance: float | None = None,
                 free_stop: str | None = None) -> None:
        if free_steps < 1:
            raise ValueError(f"free_steps (T) must be >= 1, got {free_steps}")
        if nudged_steps < 1:
            raise ValueError(f"nudged_steps (K) must be >= 1, got {nudged_steps}")
        if not beta > 0:
            raise ValueError(f"beta (β) must be > 0, got {beta}")
        self.free_steps, self.nudged_steps = int(free_steps), int(nudged_steps)
        self.beta = float(beta)
        self.random_sign, self.symmetric = bool(random_sign), bool(symmetric)
        self.schedule = check_schedule(schedule)
        if isinstance(nudge_placement, str):
            nudge_placement = placement_named(nudge_placement)
        if not isinstance(nudge_placement, NudgePlacement):
            raise TypeError(f"nudge_placement must be a NudgePlacement or a name, got {nudge_placement!r}")
        self.nudge_placement: NudgePlacement = nudge_placement
        self.sparse_products = bool(sparse_products)
        if free_tolerance is not None and not free_tolerance > 0:
            raise ValueError(f"free_tolerance must be > 0 (or None), got {free_tolerance}")
        self.free_tolerance = None if free_tolerance is None else float(free_tolerance)
        if free_stop is not None and free_stop not in FREE_STOPS:
            raise ValueError(f"unknown free_stop {free_stop!r}; valid: {', '.join(FREE_STOPS)}")
        if free_stop is not None and free_tolerance is not None:
            raise ValueError("free_tolerance (hard-sigmoid networks) and free_stop (binary-activation "
                             "networks) are two stop tests; give one")
        self.free_stop = free_stop

    def __repr__(self) -> str:
        return (f"EP(free_steps={self.free_steps}, nudged_steps={self.nudged_steps}, "
                f"beta={self.beta}, random_sign={self.random_sign}, "
                f"symmetric={self.symmetric}, schedule={self.schedule!r}, "
                f"nudge_placement={self.nudge_placement!r}"
                + (f", free_tolerance={self.free_tolerance}" if self.free_tolerance is not None else "")
                + (f", free_stop={self.free_stop!r}" if self.free_stop is not None else "")
                + ")")

    @torch.no_grad()
    def free_phase_until(self, net: EnergyNet, x: torch.Tensor, steps: int | None = None,
                         context=None) -> tuple[EnergyState, int]:
        """(s⁰, steps run): at most ``steps`` (default T), fewer when ``free_tolerance`` or
        ``free_stop`` is met."""
        context = context if context is not None else prepare(net, x, sparse_products=self.sparse_products)
        initial = net.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        return relax_until(net, x, initial, self.free_steps if steps is None else steps,
                           self.free_tolerance, schedule=self.schedule, context=context,
                           stop=self.free_stop)

    @torch.no_grad()
    def estimate(self, net: EnergyNet, x: torch.Tensor, y: torch.Tensor) -> EPResult:
        """Run the phases on a mini-batch and return the gradient estimate and s⁰.

        Args:
            net: the network.
            x: ``(batch, *net.input_shape)`` float32 inputs.
            y: ``(batch,)`` int64 class labels.
        """
        context = prepare(net, x, sparse_products=self.sparse_products)
        free, free_steps = self.free_phase_until(net, x, context=context)
        target = net.output_cost.target(y)
        beta = self.beta
        if self.random_sign and not self.symmetric:
            beta = beta if int(torch.randint(0, 2, (1,))) == 1 else -beta
        offset = self.free_steps
        first = relax(net, x, free, self.nudged_steps, Nudge(target, beta, self.nudge_placement),
                      self.schedule, context, step_offset=offset)
        if self.symmetric:
            second = relax(net, x, free, self.nudged_steps, Nudge(target, -beta, self.nudge_placement),
                           self.schedule, context, step_offset=offset)
            denominator = 2.0 * beta
        else:
            second, denominator = free, beta
        batch = x.shape[0]
        gradients = parameter_derivative_difference(
            net, x, first, second, context, -1.0 / (denominator * batch))
        cost = net.output_cost
        if cost.readout:
            readout = cost.derivatives(net.neurons[-1].activation(first.layers[-1]), target)
            if self.symmetric:
                other = cost.derivatives(net.neurons[-1].activation(second.layers[-1]), target)
                readout = {k: (v + other[k]) / 2.0 for k, v in readout.items()}
            gradients.update({k: v / batch for k, v in readout.items()})
        return EPResult(gradients, free, beta, free_steps)

    def gradients(self, model: EnergyNet, x: torch.Tensor, y: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
        """{parameter name: ∂L/∂θ estimate}, batch mean (the GradientRule protocol)."""
        return self.estimate(model, x, y).gradients

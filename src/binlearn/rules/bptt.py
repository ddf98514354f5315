"""Backpropagation through time on the same relaxation dynamics (the reference for EP).

    g_θ = ∂/∂θ [ (1/B) Σ_b C(s_T(x_b, θ), y_b) ],  gradients flowing through the last K steps

The first T − K free steps run without autograd; the last K (``truncation``) run the very
same step functions out of place with autograd on leaf copies of the effective weights,
biases and readout. The gradient dict has the names and shapes of
:class:`~binlearn.rules.ep.EP`; for binary weights the gradient is with respect to the
effective weight α ⊙ s and ∂L/∂α follows by the chain rule; binary neurons pass gradients
straight through their Heaviside.

Reference: Ernoult et al. 2019 (GDU: EP updates match the BPTT gradients over the last
K steps when the free phase has converged).
"""

from __future__ import annotations

from typing import NamedTuple, cast

import torch

from binlearn.energy.costs import CrossEntropyReadout
from binlearn.energy.network import EnergyNet
from binlearn.energy.relax import check_schedule, prepare, relax
from binlearn.energy.state import EnergyState

__all__ = ["BPTT", "BPTTResult"]


class BPTTResult(NamedTuple):
    """gradients: {name: tensor} (batch mean); final_state: s_T (detached)."""

    gradients: dict[str, torch.Tensor]
    final_state: EnergyState


class BPTT:
    """Truncated BPTT gradient (a :class:`~binlearn.rules.base.GradientRule`).

    Args:
        free_steps: T, total relaxation steps, >= 1.
        truncation: K, the steps gradients flow through (None: all T), 1 <= K <= T.
        schedule: relaxation schedule, ``"synchronous"`` or ``"even_odd"``.
    """

    def __init__(self, free_steps: int, truncation: int | None = None,
                 schedule: str = "synchronous") -> None:
        if free_steps < 1:
            raise ValueError(f"free_steps (T) must be >= 1, got {free_steps}")
        truncation = free_steps if truncation is None else int(truncation)
        if not 1 <= truncation <= free_steps:
            raise ValueError(f"truncation (K) must be in [1, free_steps={free_steps}], "
                             f"got {truncation}")
        self.free_steps, self.truncation = int(free_steps), truncation
        self.schedule = check_schedule(schedule)

    def __repr__(self) -> str:
        return (f"BPTT(free_steps={self.free_steps}, truncation={self.truncation}, "
                f"schedule={self.schedule!r})")

    def estimate(self, net: EnergyNet, x: torch.Tensor, y: torch.Tensor) -> BPTTResult:
        """Gradients of the batch-mean cost at s_T. x: (batch, *input_shape), y: (batch,)."""
        with torch.no_grad():
            start = relax(net, x, net.initial_state(x.shape[0], device=x.device, dtype=x.dtype),
                          self.free_steps - self.truncation, schedule=self.schedule)
        cost = net.output_cost
        names, leaves = [], []
        weights, biases = [], []
        for index, coupling in enumerate(net.couplings):
            weight = coupling.effective_weight().detach().clone().requires_grad_(True)
            bias = coupling.bias.detach().clone().requires_grad_(True)
            weights.append(weight)
            biases.append(bias)
            names += [f"couplings.{index}.weight", f"couplings.{index}.bias"]
            leaves += [weight, bias]
        readout = {}
        if cost.readout:
            layer = cast(CrossEntropyReadout, cost)
            readout = {"weight": layer.weight.detach().clone().requires_grad_(True),
                       "bias": layer.bias.detach().clone().requires_grad_(True)}
            names += ["cost.weight", "cost.bias"]
            leaves += [readout["weight"], readout["bias"]]
        with torch.enable_grad():
            context = prepare(net, x, weights=tuple(weights), biases=tuple(biases))
            final = relax(net, x, start, self.truncation, schedule=self.schedule,
                          context=context, step_offset=self.free_steps - self.truncation)
            output = final.layers[-1]
            activation = net.neurons[-1].activation(output)
            target = cost.target(y)
            losses = (cost.loss(output, activation, target, **readout) if cost.readout
                      else cost.loss(output, activation, target))
            grads = torch.autograd.grad(losses.mean(), leaves, allow_unused=True)
        gradients = {name: (g if g is not None else torch.zeros_like(leaf))
                     for name, g, leaf in zip(names, grads, leaves, strict=True)}
        for index, coupling in enumerate(net.couplings):
            if coupling.learns_scale:
                gradients[f"couplings.{index}.scale"] = coupling.scale_gradient(
                    gradients[f"couplings.{index}.weight"])
        ordered = {name: gradients[name] for name in net.gradient_names()}
        return BPTTResult(ordered, final.detach())

    def gradients(self, model: EnergyNet, x: torch.Tensor, y: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
        return self.estimate(model, x, y).gradients

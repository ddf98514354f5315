"""Thin modules around :mod:`binlearn.spiking.functional`: they hold the parameters (θ per
unit, the reset), the pure step functions do the work; the state is passed in and out."""

from __future__ import annotations

import torch
from torch import nn

from binlearn.spiking.functional import IFParameters, check_reset, if_step, initial_membrane, integrate_step

__all__ = ["IF", "Integrator"]


class IF(nn.Module):
    """A layer of integrate-and-fire neurons: (current, v) → (spikes, v), see
    :func:`~binlearn.spiking.functional.if_step` (fires when v > θ; reset subtract | zero).

    Args:
        threshold: θ, a scalar or a tensor broadcastable to the layer's units, e.g.
            (features,) or (channels, 1, 1); kept as a buffer (moves with ``.to``).
        reset: ``"subtract"`` | ``"zero"``.
    """

    spiking = True
    threshold: torch.Tensor  # a buffer

    def __init__(self, threshold: torch.Tensor | float = 1.0, reset: str = "subtract") -> None:
        super().__init__()
        self.register_buffer("threshold", torch.as_tensor(threshold, dtype=torch.float32).clone())
        self.reset = check_reset(reset)

    def if_parameters(self) -> IFParameters:
        return IFParameters(self.threshold, self.reset)

    def initial_state(self, shape: tuple[int, ...], init: str = "zero") -> torch.Tensor:
        """v(0) for a batch: ``shape`` = (batch, *units); ``init``: zero | half (θ/2)."""
        return initial_membrane(shape, self.threshold, init, dtype=self.threshold.dtype,
                                device=self.threshold.device)

    def forward(self, current: torch.Tensor, membrane: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if membrane is None:
            membrane = torch.zeros_like(current)
        membrane, spikes = if_step(membrane, current, self.if_parameters())
        return spikes, membrane

    def extra_repr(self) -> str:
        return f"units={tuple(self.threshold.shape)}, reset={self.reset!r}"


class Integrator(nn.Module):
    """Non-spiking output neurons: v ← v + I; the prediction after t steps is argmax v."""

    spiking = False

    def initial_state(self, shape: tuple[int, ...], init: str = "zero",  # noqa: ARG002 - same call as IF
                      *, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.zeros(shape, device=device)

    def forward(self, current: torch.Tensor, membrane: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if membrane is None:
            membrane = torch.zeros_like(current)
        membrane = integrate_step(membrane, current)
        return membrane, membrane

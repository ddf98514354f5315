"""Quantisation-aware activations for sources of spiking conversion.

The quantisation-clip-floor-shift activation (QCFS, Bu et al. 2022, ICLR)::

    a = λ · clip(⌊z·L/λ + ½⌋ / L, 0, 1)

with L levels and a trained threshold λ. It is what an integrate-and-fire neuron with
threshold θ = λ, reset by subtraction and membrane starting at θ/2 computes after L steps
of a constant current z, so a network trained with it converts to a spiking network that
reaches the source's accuracy in a handful of steps. The floor passes the gradient
straight through (d⌊u⌋/du := 1); λ gets its gradient through both λ factors.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["qcfs", "QCFS"]


def _floor_ste(u: torch.Tensor) -> torch.Tensor:
    return u + (torch.floor(u) - u).detach()


def qcfs(z: torch.Tensor, threshold: torch.Tensor, levels: int) -> torch.Tensor:
    """a = λ·clip(⌊z·L/λ + ½⌋/L, 0, 1), straight-through floor.

    Args:
        z: pre-activations, any shape.
        threshold: λ > 0, a scalar tensor (may require grad).
        levels: L ≥ 1 (the activation takes the L + 1 values λ·k/L, k = 0..L).
    """
    scaled = torch.clamp(z / threshold, 0, 1)
    return _floor_ste(scaled * levels + 0.5) / levels * threshold


class QCFS(nn.Module):
    """The QCFS activation with a trained λ (one per layer): see :func:`qcfs`.

    Args:
        levels: L ≥ 1.
        threshold: the initial λ > 0.
    """

    def __init__(self, levels: int = 4, threshold: float = 2.0) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"QCFS levels must be >= 1, got {levels}")
        if not threshold > 0:
            raise ValueError(f"QCFS threshold must be > 0, got {threshold}")
        self.levels = int(levels)
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # λ is kept positive (a step of the optimizer could push it through 0)
        return qcfs(z, self.threshold.clamp(min=1e-3), self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, threshold={float(self.threshold.detach()):.4g}"

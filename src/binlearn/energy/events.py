"""Event-driven drives of a convolution between binary layers: only the units that changed.

A binary EP layer settles within a few steps and then flips a fraction of a percent of its
units per step, so a convolution recomputed from scratch every step repeats almost all of
its work. :class:`EventConvPool` keeps, for one ordered :class:`~binlearn.energy.couplings.ConvPool`
during one relaxation phase,

    n = s ∗ a_bottom                       (up: exact integers, float32, channels-last)
    d = (α ⊙ s)ᵀ ∗ unpool(a_top)           (down: exact in float64, channels-last)

and updates them with the changes Δa_bottom and Δunpool(a_top) ∈ {−1, 0, +1} by
:func:`~binlearn.binary.kernels.event_conv.scatter_events`. Both sums are exact (the
conditions :meth:`ConvPool.ordered_exact` checks), so the drives it returns,

    up   = maxpool(fl(fl(α_c · n) + b_c))          down = fl(fl(d) + base),

equal the ordered dense drives of ``ConvPool.drive_up`` / ``drive_down`` bit for bit
(tested), whatever order the events arrive in. CPU, no autograd.
"""

from __future__ import annotations

import torch

from binlearn.binary.kernels.event_conv import forward_table, scatter_events, transposed_table
from binlearn.energy.couplings import ConvPool

__all__ = ["EventConvPool"]


class EventConvPool:
    """The incremental up- and down-drives of one ordered ConvPool for one phase.

    Args:
        coupling: the coupling (binary weights, :meth:`ConvPool.ordered_exact`).
        tables: (forward, transposed) scatter tables from :meth:`tables_for` (built once
            per batch and shared by the phases).
    """

    def __init__(self, coupling: ConvPool, tables: tuple) -> None:
        self.coupling = coupling
        self.forward, self.transposed = tables
        self.bottom: torch.Tensor | None = None  # the bottom activation n was computed from
        self.integers: torch.Tensor | None = None  # n, (batch, H, W, out_channels)
        self.routed: torch.Tensor | None = None  # unpool(a_top) that d was computed from
        self.down: torch.Tensor | None = None  # d, (batch, H, W, in_channels) float64
        self.deltas: dict[str, torch.Tensor] = {}
        self.events = 0

    @staticmethod
    def tables_for(coupling: ConvPool) -> tuple:
        """(±1 table of the convolution, float64 α ⊙ s table of its transpose)."""
        sign = coupling.weight.detach().float().numpy()
        return forward_table(sign), transposed_table(coupling.ordered_transposed_weight().detach().numpy())

    def _change(self, side: str, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """new − old ∈ {−1, 0, +1} into this side's scratch buffer."""
        if side not in self.deltas:
            self.deltas[side] = torch.empty_like(new)
        return torch.sub(new, old, out=self.deltas[side])

    def drive_up(self, bottom: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """maxpool(fl(fl(α_c · n) + b_c)) and the pooling cache at ``bottom`` ∈ {0, 1}."""
        coupling = self.coupling
        if self.integers is None or self.bottom is None:
            self.integers = coupling.ordered_conv(bottom).permute(0, 2, 3, 1).contiguous()
            self.bottom = bottom.clone()
        else:
            delta = self._change("up", bottom, self.bottom)
            self.events += scatter_events(delta.numpy(), self.forward, self.integers.numpy(),
                                          coupling.kernel_size - 1 - coupling.padding)
            self.bottom.copy_(bottom)
        convolved = self.integers.permute(0, 3, 1, 2)  # NCHW shape, channels-last memory
        return coupling.pool_drive(coupling.scale_integer_drive(convolved, bias))

    def drive_down(self, top: torch.Tensor, cache: tuple, base: torch.Tensor,
                   out: torch.Tensor | None = None) -> torch.Tensor:
        """fl(fl((α ⊙ s)ᵀ ∗ unpool(top)) + base) for ``top`` ∈ {0, 1}, into ``out`` if given."""
        coupling = self.coupling
        routed = coupling.unpool(top, cache).contiguous()
        if self.down is None or self.routed is None:
            size = (routed.shape[0], base.shape[2], base.shape[3], base.shape[1])
            self.down = torch.zeros(size, dtype=torch.float64)
            delta = routed
            self.routed = routed.clone()
        else:
            delta = self._change("down", routed, self.routed)
            self.routed.copy_(routed)
        self.events += scatter_events(delta.numpy(), self.transposed, self.down.numpy(), coupling.padding)
        down = self.down.permute(0, 3, 1, 2).to(base.dtype)
        return torch.add(base, down, out=out) if out is not None else base + down

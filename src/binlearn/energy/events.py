"""Event-driven drives between binary layers: only the units that changed since the last step.

A binary EP layer settles within a few steps and then flips a fraction of a percent of its
units per step, so a product recomputed from scratch every step repeats almost all of its
work. For one relaxation phase, :class:`EventConvPool` keeps for an ordered
:class:`~binlearn.energy.couplings.ConvPool`

    n = s ∗ a_bottom                       (up: exact integers, float32, channels-last)
    d = (α ⊙ s)ᵀ ∗ unpool(a_top)           (down: exact in float64, channels-last)

and :class:`EventDense` for an ordered :class:`~binlearn.energy.couplings.Dense` the two
integer products a_bottom Sᵀ and a_top S, and both update them with the changes of their
inputs, ∈ {−1, 0, +1} (:mod:`binlearn.binary.kernels.event_conv`; a changed maximum's
position counts as a change of the unpooled map). Every sum is exact (the conditions
:meth:`ConvPool.ordered_exact` checks), so the drives they return,

    conv up   = maxpool(fl(fl(α_c · n) + b_c))       conv down  = fl(fl(d) + base)
    dense up  = fl(fl(α · n) + b)                    dense down = fl(fl(α · m) + base),

equal the ordered drives of :class:`~binlearn.energy.plan.ConvOrdered` and
:class:`~binlearn.energy.plan.DenseOrdered` bit for bit (tested), whatever order the events
arrive in. CPU, float32, no autograd. The plan's :class:`~binlearn.energy.plan.ConvEvents`
and :class:`~binlearn.energy.plan.DenseEvents` strategies own one tracker each per batch.
"""

from __future__ import annotations

import numpy as np
import torch

from binlearn.binary.kernels.event_conv import (
    add_rounded,
    forward_table,
    scatter_changes,
    scatter_pooled_changes,
    scatter_row_changes,
    transposed_table,
    weight_change_from_bottom,
    weight_change_from_top,
)
from binlearn.energy.couplings import ConvPool, Dense

__all__ = ["EventConvPool", "EventDense", "event_tables", "DENSE_FRACTION",
           "integer_derivative_difference"]

DENSE_FRACTION = 0.1
"""Fraction of changed bottom units above which a convolution's up-drive is recomputed
densely (oneDNN, exact integers) instead of by events: a speed choice only (the same numbers)."""


def event_tables(coupling: ConvPool | Dense) -> tuple:
    """The tables an event tracker of ``coupling`` reads (built once per batch): for a
    convolution its ±1 scatter table and the float64 α ⊙ s table of its transpose, for a
    dense coupling its ±1 matrix row-major both ways (Sᵀ for the up-drive, S for the down)."""
    sign = coupling.weight.detach().float()
    if isinstance(coupling, ConvPool):
        assert coupling.scale is not None, "event tables need binary weights"
        ones = np.ones(coupling.in_channels, dtype=np.float32)
        alpha = coupling.scale.detach().double().numpy().copy()
        # int8 signs keep the tables in cache (the float64 α ⊙ s table of a 256-512 conv is 26 MB)
        return (forward_table(sign.numpy()), ones), (transposed_table(sign.numpy()), alpha)
    return sign.t().contiguous().numpy(), sign.contiguous().numpy()


def _same_for_every_sample(*tensors: torch.Tensor) -> bool:
    return all(bool(torch.equal(t, t[:1].expand_as(t))) for t in tensors)


class EventConvPool:
    """The incremental up- and down-drives of one ordered ConvPool for one phase.

    Args:
        coupling: the coupling (binary weights, :meth:`ConvPool.ordered_exact`).
        tables: from :func:`event_tables`.
    """

    def __init__(self, coupling: ConvPool, tables: tuple) -> None:
        self.coupling = coupling
        self.forward, self.transposed = tables
        self.bottom: torch.Tensor | None = None  # the bottom activation n was computed from
        self.integers: torch.Tensor | None = None  # n, (batch, H, W, out_channels)
        self.up: tuple | None = None  # the last (pooled drive, cache)
        self.top: torch.Tensor | None = None  # the pooled top and maxima d was computed from
        self.indices: torch.Tensor | None = None
        self.down: torch.Tensor | None = None  # d, (batch, H, W, in_channels) float64
        self.drive: torch.Tensor | None = None  # the last fl(fl(d) + base), and its base
        self.base: torch.Tensor | None = None
        self.last_changes = float("inf")
        self.events = 0

    def drive_up(self, bottom: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """maxpool(fl(fl(α_c · n) + b_c)) and the pooling cache at ``bottom`` ∈ {0, 1}."""
        coupling = self.coupling
        if self.integers is None or self.bottom is None or self.up is None:
            # a free phase starts from the same state for every sample: one sample's convolution
            first = bottom[:1] if _same_for_every_sample(bottom) else bottom
            self.integers = coupling.ordered_conv(first).permute(0, 2, 3, 1).expand(
                bottom.shape[0], -1, -1, -1).contiguous()
            self.bottom = bottom.contiguous().clone()
        elif (self.last_changes > DENSE_FRACTION * bottom.numel()  # many changed last time: count
              and int(torch.count_nonzero(torch.ne(bottom, self.bottom))) > DENSE_FRACTION * bottom.numel()):
            # many changes (the first steps from the initial state): the dense integer
            # convolution is cheaper than its events, and gives the same integers
            self.integers.copy_(coupling.ordered_conv(bottom).permute(0, 2, 3, 1))
            self.bottom.copy_(bottom)
        else:
            changed = scatter_changes(bottom.contiguous().numpy(), self.bottom.numpy(), *self.forward,
                                      self.integers.numpy(), coupling.kernel_size - 1 - coupling.padding)
            self.events += changed
            self.last_changes = changed
            if changed == 0:  # the same drive (a copy: the caller may overwrite it)
                return self.up[0].clone(), self.up[1]
        convolved = self.integers.permute(0, 3, 1, 2)  # NCHW shape, channels-last memory
        self.up = coupling.pool_drive(coupling.scale_integer_drive(convolved, bias))
        return self.up[0].clone(), self.up[1]

    def drive_down(self, top: torch.Tensor, cache: tuple, base: torch.Tensor,
                   out: torch.Tensor | None = None) -> torch.Tensor:
        """fl(fl((α ⊙ s)ᵀ ∗ unpool(top)) + base) for ``top`` ∈ {0, 1}, into ``out`` if given."""
        coupling = self.coupling
        indices, size = cache
        top = top.contiguous()
        if self.down is None or self.top is None or self.indices is None or self.drive is None:
            self.down = torch.zeros((top.shape[0], base.shape[2], base.shape[3], base.shape[1]),
                                    dtype=torch.float64)
            self.top = torch.zeros_like(top)
            self.indices = torch.zeros(top.shape, dtype=torch.int64)
            self.drive = torch.empty_like(base)
            if indices is not None and top.shape[0] > 1 and _same_for_every_sample(top, indices):
                # the free phase's first step: one sample's events, copied to the others
                scatter_pooled_changes(top[:1].numpy(), indices[:1].contiguous().numpy(),
                                       self.top[:1].numpy(), self.indices[:1].numpy(), *self.transposed,
                                       self.down[:1].numpy(), coupling.padding, int(size[-1]),
                                       torch.zeros(1, dtype=torch.uint8).numpy())
                self.down[1:] = self.down[:1]
                self.top[1:] = self.top[:1]
                self.indices[1:] = self.indices[:1]
        touched = torch.zeros(top.shape[0], dtype=torch.uint8)
        if indices is None:  # no pooling: the map itself
            self.events += scatter_changes(top.numpy(), self.top.numpy(), *self.transposed,
                                           self.down.numpy(), coupling.padding)
            touched.fill_(1)
        else:
            self.events += scatter_pooled_changes(top.numpy(), indices.contiguous().numpy(), self.top.numpy(),
                                                  self.indices.numpy(), *self.transposed, self.down.numpy(),
                                                  coupling.padding, int(size[-1]), touched.numpy())
        if base is not self.base:  # a new base (a tensor is never changed in place): every sample
            touched.fill_(1)
            self.base = base
        add_rounded(base.contiguous().numpy(), self.down.numpy(), self.drive.numpy(), touched.numpy())
        return out.copy_(self.drive) if out is not None else self.drive.clone()


class EventDense:
    """The incremental up- and down-drives of one ordered Dense coupling for one phase."""

    def __init__(self, coupling: Dense, tables: tuple) -> None:
        self.coupling = coupling
        self.rows_up, self.rows_down = tables
        self.alpha = float(coupling.scale) if coupling.scale is not None else 1.0
        self.state: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # side: (input, product)
        self.events = 0

    def _product(self, side: str, values: torch.Tensor, rows) -> torch.Tensor:
        values = values.flatten(1).contiguous()
        if side not in self.state:
            product = torch.zeros((values.shape[0], rows.shape[1]), dtype=torch.float32)
            self.state[side] = (torch.zeros_like(values), product)
        old, product = self.state[side]
        self.events += scatter_row_changes(values.numpy(), old.numpy(), rows, product.numpy())
        return product

    def drive_up(self, bottom: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, None]:
        """fl(fl(α · bottom Sᵀ) + b) for ``bottom`` ∈ {0, 1}: (batch, out_features)."""
        return torch.mul(self._product("up", bottom, self.rows_up), self.alpha).add_(bias), None

    def drive_down(self, top: torch.Tensor, cache: None, base: torch.Tensor,
                   out: torch.Tensor | None = None) -> torch.Tensor:
        """fl(fl(α · top S) + base) in ``base``'s shape, into ``out`` if given."""
        down = torch.mul(self._product("down", top, self.rows_down), self.alpha).view(base.shape)
        return torch.add(base, down, out=out) if out is not None else base + down


def integer_derivative_difference(coupling: ConvPool, first_bottom: torch.Tensor, first_top: torch.Tensor,
                                  first_cache: tuple, second_bottom: torch.Tensor, second_top: torch.Tensor,
                                  second_cache: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """∂Φ/∂W(first) − ∂Φ/∂W(second) and the same for b, for {0, 1} layers: exact integers.

    With G(a, U) = Σ U ⋆ a (``conv2d_weight``) and U the unpooled top,

        G(a₁, U₁) − G(a₂, U₂) = G(a₁, U₁ − U₂) + G(a₁ − a₂, U₂),

    two products with the few units that differ between the two equilibria (every sum an
    integer, exact in float32), instead of two dense weight derivatives.
    """
    first_routed = coupling.unpool(first_top, first_cache)
    second_routed = coupling.unpool(second_top, second_cache)
    size, padding = coupling.kernel_size, coupling.padding
    from_top = torch.zeros((coupling.out_channels, size, size, coupling.in_channels))
    from_bottom = torch.zeros((coupling.in_channels, size, size, coupling.out_channels))
    weight_change_from_top((first_routed - second_routed).contiguous().numpy(),
                           first_bottom.permute(0, 2, 3, 1).contiguous().numpy(), from_top.numpy(), padding)
    weight_change_from_bottom((first_bottom - second_bottom).contiguous().numpy(),
                              second_routed.permute(0, 2, 3, 1).contiguous().numpy(), from_bottom.numpy(),
                              padding)
    weight = from_top.permute(0, 3, 1, 2) + from_bottom.permute(3, 0, 1, 2)
    return weight.contiguous(), (first_top - second_top).sum(dim=(0, 2, 3))

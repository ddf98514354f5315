"""The execution plan of one batch's relaxation: one typed drive strategy per coupling.

A coupling (:mod:`binlearn.energy.couplings`) defines its drives once, as math:

    up   = P(W ∗ bottom) + b            down = base + Wᵀ ∗ P⁻¹(top)

A strategy computes them for one batch, fast, with the numbers fixed as follows (the
strategy is a speed choice within each family; the family fixes the rounding):

=================  ========  ===========================================================
strategy           coupling  chosen (per batch, by :func:`plan_relaxation`) when
=================  ========  ===========================================================
``DenseFused``     Dense     not ordered: one ``addmm`` (the BLAS rounds α·n + base)
``DenseOrdered``   Dense     ordered (:func:`ordered_couplings`): fl(fl(α·n) + base) from
                             the exact integer product n, by GEMM
``DenseRowAdds``   Dense     ordered, CPU, above the input, ``sparse_products``: n by row
                             adds of ±1 rows over the active units (same n)
``DenseEvents``    Dense     ordered, CPU float32, in a convnet, ``sparse_products``: n
                             updated from the units that changed (same n)
``ConvFloat``      ConvPool  not ordered: ``conv2d`` / ``conv_transpose2d``
``ConvOrdered``    ConvPool  ordered: maxpool(fl(fl(α_c·n) + b_c)) from the exact integer
                             convolution, the down-drive exact in float64 and rounded once
``ConvEvents``     ConvPool  ordered, CPU float32, ``sparse_products``: both updated from the
                             units that changed (same numbers)
=================  ========  ===========================================================

Each strategy names its ``reference``: the plain strategy of its family (``DenseFused``,
``DenseOrdered``, ``ConvFloat``, ``ConvOrdered``), which :func:`~binlearn.energy.relax.relax_step`
and every autograd relaxation use. A fast strategy equals its reference bit for bit (every
product it replaces is an exact integer), which the tests check for each of them. The event
strategies own their trackers (:mod:`binlearn.energy.events`): built once per batch, shared
by every phase of the batch and by EP's derivative difference, so a nudged phase pays only
for the units that changed since the free phase.

:class:`PhaseDrives` is the fused loop's bookkeeping for one phase: each up-drive computed
once per change of its bottom layer, scratch buffers reused under ``torch.no_grad``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from binlearn.binary.kernels.sparse import sparse_binary_product
from binlearn.energy.couplings import ConvPool
from binlearn.energy.events import EventConvPool, EventDense, event_tables, integer_derivative_difference
from binlearn.energy.network import EnergyNet

__all__ = ["DriveStrategy", "DenseFused", "DenseOrdered", "DenseRowAdds", "EventDrives", "DenseEvents",
           "ConvFloat", "ConvOrdered", "ConvEvents", "RelaxationPlan", "PhaseDrives", "ordered_couplings",
           "plan_relaxation", "ordered_drive"]


def ordered_drive(product: torch.Tensor, alpha: float, base: torch.Tensor) -> torch.Tensor:
    """product · α + base, in place on ``product``, as two separately rounded float32 steps.

    For ±1 weights and {0, 1} or ±1 activations the matrix product is an exact integer in
    float32 whatever the summation order, so the drive is fl(fl(α·n) + base): reproducible
    bit for bit from the integer n (the packed format's EP relaxation does exactly this). A
    fused ``addmm(base, ·, ·, alpha=α)`` instead rounds as the BLAS kernel pleases (FMA,
    blocking over the inner dimension) and differs from it in the last bit.
    """
    return product.mul_(alpha).add_(base)


class DriveStrategy:
    """How one coupling's drives are computed for one batch.

    Args:
        coupling: the coupling (its math).
        weight, bias, alpha: the batch's weight tensor, bias and scalar factor, W = α · weight.
    """

    name: ClassVar[str]
    ordered: ClassVar[bool] = False
    """Whether the drives are fl(fl(α·n) + base) from exact integer products."""
    reference_type: ClassVar[type[DriveStrategy] | None] = None
    """A fast strategy's plain twin (the same numbers); None: the strategy is plain itself."""

    def __init__(self, coupling: Any, weight: torch.Tensor, bias: torch.Tensor, alpha: float) -> None:
        self.coupling, self.weight, self.bias, self.alpha = coupling, weight, bias, alpha
        kind = self.reference_type  # (no self-reference: a batch's strategies are freed by refcount)
        self._reference = None if kind is None else kind(coupling, weight, bias, alpha)

    @property
    def reference(self) -> DriveStrategy:
        """The plain strategy of this one's family (the same numbers; itself unless fast)."""
        return self if self._reference is None else self._reference

    def up(self, bottom: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """(P(W ∗ bottom) + b, pooling cache): a new tensor the caller may overwrite."""
        raise NotImplementedError

    def down(self, top: torch.Tensor, cache: Any, base: torch.Tensor,
             out: torch.Tensor | None = None) -> torch.Tensor:
        """base + Wᵀ ∗ P⁻¹(top), into ``out`` when given (a scratch buffer of base's shape)."""
        raise NotImplementedError

    def derivative_difference(self, first_bottom: torch.Tensor, first_top: torch.Tensor,
                              second_bottom: torch.Tensor, second_top: torch.Tensor,
                              factor: float) -> tuple[torch.Tensor, torch.Tensor]:
        """factor · [∂Φ_c/∂(W, b)(first) − ∂Φ_c/∂(W, b)(second)], summed over the batch, at
        the pooling positions this strategy's up-drive gives."""
        coupling = self.coupling
        first_cache = second_cache = None
        if coupling.routes_down:  # the pooling positions the relaxation used
            first_cache, second_cache = self.up(first_bottom)[1], self.up(second_bottom)[1]
        # the factor scales the (small) top layer, not the (large) derivative
        weight, bias = coupling.derivatives(first_bottom, first_top * factor, first_cache)
        weight_second, bias_second = coupling.derivatives(second_bottom, second_top * factor, second_cache)
        return weight.sub_(weight_second), bias.sub_(bias_second)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# ----------------------------------------------------------------------------- dense
class DenseFused(DriveStrategy):
    """α · bottom Wᵀ + b and base + α · top W as single ``addmm`` calls (float couplings)."""

    name = "fused"

    def up(self, bottom):  # Dense.drive_up inlined: the FC rows' steps are short, calls count
        drive = torch.addmm(self.bias.unsqueeze(1), self.weight, bottom.flatten(1).t(), alpha=self.alpha)
        return drive.t(), None

    def down(self, top, cache, base, out=None):
        if out is None:
            return self.coupling.drive_down(top, self.weight, cache, base, self.alpha)
        if base.dim() == 2:
            return torch.addmm(base, top, self.weight, alpha=self.alpha, out=out)
        down = (top @ self.weight).view(base.shape)
        if self.alpha != 1.0:
            down = down * self.alpha
        return torch.add(base, down, out=out)


class DenseOrdered(DriveStrategy):
    """fl(fl(α·n) + base), n = bottom Sᵀ or top S the exact integer products, by GEMM."""

    name = "ordered"
    ordered = True

    def _up_product(self, bottom: torch.Tensor) -> torch.Tensor:
        return torch.mm(self.weight, bottom.flatten(1).t()).t()

    def _down_product(self, top: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
        return torch.mm(top, self.weight, out=out) if out is not None else top @ self.weight

    def up(self, bottom):
        return ordered_drive(self._up_product(bottom), self.alpha, self.bias), None

    def down(self, top, cache, base, out=None):
        if base.dim() == 2:
            return ordered_drive(self._down_product(top, out), self.alpha, base)
        down = (top @ self.weight).view(base.shape)  # above a convolution: the same two roundings
        if self.alpha != 1.0:
            down = down * self.alpha
        return torch.add(base, down, out=out) if out is not None else base + down


class DenseRowAdds(DenseOrdered):
    """:class:`DenseOrdered` with the products of sparse binary activations as row adds of ±1
    rows (:func:`~binlearn.binary.kernels.sparse.sparse_binary_product`; the GEMM when the
    activity is dense): the same integers."""

    name = "row adds"
    reference_type = DenseOrdered

    def __init__(self, coupling, weight, bias, alpha):
        super().__init__(coupling, weight, bias, alpha)
        self.rows = weight.detach().t().contiguous()  # Sᵀ row-major, for the up-drive
        self.columns = weight if weight.is_contiguous() else weight.contiguous()  # S, for the down-drive

    def _up_product(self, bottom):
        product = sparse_binary_product(bottom.flatten(1), self.rows)
        return product if product is not None else super()._up_product(bottom)

    def _down_product(self, top, out):
        product = sparse_binary_product(top, self.columns, out)
        return product if product is not None else super()._down_product(top, out)


class EventDrives(DriveStrategy):
    """Drives updated from the units that changed since the last call: ``tracker_type`` (of
    :mod:`binlearn.energy.events`, CPU float32, no autograd) over the coupling's event tables,
    owned by the strategy for the batch; the numbers are those of ``reference_type``."""

    ordered = True
    tracker_type: ClassVar[type]

    def __init__(self, coupling, weight, bias, alpha):
        super().__init__(coupling, weight, bias, alpha)
        self.tracker = self.tracker_type(coupling, event_tables(coupling))

    def up(self, bottom):
        return self.tracker.drive_up(bottom, self.bias)

    def down(self, top, cache, base, out=None):
        return self.tracker.drive_down(top, cache, base, out=out)


class DenseEvents(EventDrives):
    """fl(fl(α·n) + base) with n updated from the units that changed
    (:class:`~binlearn.energy.events.EventDense`)."""

    name = "events"
    tracker_type = EventDense
    reference_type = DenseOrdered


# ----------------------------------------------------------------------------- convolutions
class ConvFloat(DriveStrategy):
    """maxpool(conv2d(bottom, αW) + b) and base + conv_transpose2d(unpool(top), αW)."""

    name = "conv float"

    def up(self, bottom):
        return self.coupling.drive_up(bottom, self.weight, self.bias, self.alpha)

    def down(self, top, cache, base, out=None):
        if out is None:
            return self.coupling.drive_down(top, self.weight, cache, base, self.alpha)
        weight = self.weight * self.alpha if self.alpha != 1.0 else self.weight
        down = F.conv_transpose2d(self.coupling.unpool(top, cache), weight, padding=self.coupling.padding)
        return torch.add(base, down, out=out)


class ConvOrdered(DriveStrategy):
    """Binary weights between binary hidden layers (:meth:`ConvPool.ordered_exact`):

        up   = maxpool(fl(fl(α_c · n) + b_c)),   n = s ∗ bottom exact integers (``weight`` unread)
        down = fl(fl(Wᵀ ∗ unpool(top)) + base),  W = α ⊙ s, the sum exact in float64

    so any exact method (the events of :class:`ConvEvents`) gives the same float32 numbers."""

    name = "conv ordered"
    ordered = True

    def __init__(self, coupling, weight, bias, alpha):
        super().__init__(coupling, weight, bias, alpha)
        self._transposed: torch.Tensor | None = None

    def up(self, bottom):
        coupling = self.coupling
        return coupling.pool_drive(coupling.scale_integer_drive(coupling.ordered_conv(bottom), self.bias))

    def down(self, top, cache, base, out=None):
        coupling = self.coupling
        if self._transposed is None:  # α ⊙ s in float64 (exact), once per batch
            assert coupling.scale is not None, "ordered drives need binary weights"
            self._transposed = coupling.weight.double() * coupling.scale.double().view(-1, 1, 1, 1)
        exact = F.conv_transpose2d(coupling.unpool(top, cache).double(), self._transposed,
                                   padding=coupling.padding)
        down = exact.to(base.dtype)
        return torch.add(base, down, out=out) if out is not None else base + down


class ConvEvents(EventDrives):
    """:class:`ConvOrdered`'s numbers from the units that changed
    (:class:`~binlearn.energy.events.EventConvPool`); EP's weight difference as exact
    integers from the units that differ between the two states."""

    name = "conv events"
    tracker_type = EventConvPool
    reference_type = ConvOrdered

    def derivative_difference(self, first_bottom, first_top, second_bottom, second_top, factor):
        # the tracker gives the pooling positions from the few units that changed
        first_cache, second_cache = self.up(first_bottom)[1], self.up(second_bottom)[1]
        weight, bias = integer_derivative_difference(self.coupling, first_bottom, first_top, first_cache,
                                                     second_bottom, second_top, second_cache)
        return weight.mul_(factor), bias.mul_(factor)  # exact integers, scaled once


# ----------------------------------------------------------------------------- the plan
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


class RelaxationPlan:
    """One drive strategy per coupling, for one batch.

    Args:
        strategies: the fast strategies, used by relaxations without autograd.
    Attributes:
        reference: each strategy's :attr:`DriveStrategy.reference` (used by
            :func:`~binlearn.energy.relax.relax_step` and under autograd).
    """

    def __init__(self, strategies: tuple[DriveStrategy, ...]) -> None:
        self.strategies = tuple(strategies)
        self.reference = tuple(strategy.reference for strategy in self.strategies)

    @property
    def names(self) -> tuple[str, ...]:
        """The strategies' names, e.g. ``("conv float", "conv events", "events")``."""
        return tuple(strategy.name for strategy in self.strategies)

    @property
    def ordered(self) -> tuple[bool, ...]:
        return tuple(strategy.ordered for strategy in self.strategies)

    def current(self) -> tuple[DriveStrategy, ...]:
        """The strategies for the current autograd mode: the fast ones under ``torch.no_grad``
        (the event trackers update their products in place), the references otherwise."""
        return self.reference if torch.is_grad_enabled() else self.strategies

    def __repr__(self) -> str:
        return f"RelaxationPlan({', '.join(self.names)})"


def plan_relaxation(net: EnergyNet, x: torch.Tensor, weights: tuple[torch.Tensor, ...],
                    biases: tuple[torch.Tensor, ...], alphas: tuple[float, ...],
                    ordered: tuple[bool, ...], sparse_products: bool) -> RelaxationPlan:
    """Choose each coupling's strategy for the batch ``x`` (see the module's table).

    Row adds above the input only (the input is not binary in general); events between
    binary hidden layers on the CPU in float32, for dense couplings only in convnets: in the
    fully connected rows (T = 20, many flips per step) the row adds measure faster.
    """
    convnet = any(isinstance(coupling, ConvPool) for coupling in net.couplings)
    events_allowed = x.device.type == "cpu" and x.dtype == torch.float32 and sparse_products
    strategies: list[DriveStrategy] = []
    for index, coupling in enumerate(net.couplings):
        hidden = index > 0
        kind: type[DriveStrategy]
        if isinstance(coupling, ConvPool):
            if not ordered[index]:
                kind = ConvFloat
            else:
                kind = ConvEvents if hidden and events_allowed else ConvOrdered
        elif not ordered[index]:
            kind = DenseFused
        elif hidden and events_allowed and convnet:
            kind = DenseEvents
        elif hidden and sparse_products and weights[index].device.type == "cpu":
            kind = DenseRowAdds
        else:
            kind = DenseOrdered
        strategies.append(kind(coupling, weights[index], biases[index], alphas[index]))
    return RelaxationPlan(tuple(strategies))


class PhaseDrives:
    """The drives of one phase of the fused loop, from the layers it updates in turn.

    Each up-drive is computed once per change of its bottom layer (and serves both the top
    layer's drive and, for max pooling, the positions the bottom layer's drive is routed
    through); under ``torch.no_grad`` (``inplace``) each layer's drive is written into a
    scratch buffer that swaps with the layer it replaces.

    Args:
        net: the network.
        plan: the batch's plan (its :meth:`RelaxationPlan.current` strategies are used).
        input_drive, input_cache: the clamped input's drive onto the first layer and its
            pooling positions (computed once per batch).
        layers: the working states, one per layer; :meth:`commit` replaces them in place.
        inplace: reuse scratch buffers (no autograd).
    """

    def __init__(self, net: EnergyNet, plan: RelaxationPlan, input_drive: torch.Tensor, input_cache: Any,
                 layers: list[torch.Tensor], inplace: bool) -> None:
        count = len(layers)
        self.strategies = plan.current()
        self.routes_down = tuple(coupling.routes_down for coupling in net.couplings)
        self.neurons, self.layers, self.last = net.neurons, layers, count - 1
        self.ups: list = [input_drive] + [None] * (count - 1)
        self.caches: list = [input_cache] + [None] * (count - 1)
        self.activations = [n.activation(s) for n, s in zip(net.neurons, layers, strict=True)]
        self.scratch = [torch.empty_like(s) for s in layers] if inplace else None

    def drive(self, index: int) -> torch.Tensor:
        """u_l = P(W_l ∗ a_{l−1}) + b_l + W_{l+1}ᵀ ∗ P⁻¹(a_{l+1}) from the current layers, a
        tensor the caller may overwrite."""
        ups, caches = self.ups, self.caches
        if index > 0 and ups[index] is None:
            ups[index], caches[index] = self.strategies[index].up(self.activations[index - 1])
        if index < self.last:
            # max pooling routes the down-drive through the maxima of W ∗ a_l
            if self.routes_down[index + 1] and ups[index + 1] is None:
                ups[index + 1], caches[index + 1] = self.strategies[index + 1].up(self.activations[index])
            out = self.scratch[index] if self.scratch is not None else None
            return self.strategies[index + 1].down(self.activations[index + 1], caches[index + 1],
                                                   ups[index], out=out)
        # the output layer: its up-drive was computed for this update (ours to overwrite); the
        # shared input drive (a one-layer network) is never overwritten
        return self.ups[index] if index > 0 else self.ups[index].clone()

    def commit(self, index: int, new: torch.Tensor) -> None:
        """Layer ``index`` becomes ``new``; the up-drive of the coupling above it is stale."""
        old, self.layers[index] = self.layers[index], new
        if self.scratch is not None and new is self.scratch[index]:
            self.scratch[index] = old
        self.activations[index] = self.neurons[index].activation(new)
        if index < self.last:
            self.ups[index + 1] = None
            self.caches[index + 1] = None


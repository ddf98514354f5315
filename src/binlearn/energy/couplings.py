"""Two-way couplings between neighbouring layers, and the weight behaviours they take.

A coupling joins a *bottom* layer (input side) to a *top* layer (output side) with one
weight tensor used in both directions (symmetric connections). It contributes

    Φ_c(bottom, top) = top · (P(W ∗ bottom) + b)

to the primitive function, where ``W ∗`` is a matrix product (:class:`Dense`) or a
stride-1 convolution followed by max pooling P (:class:`ConvPool`). Each coupling writes
its three derivatives by hand and keeps ``phi`` as the autograd oracle:

- ``drive_up``   = ∂Φ_c/∂top    = P(W ∗ bottom) + b
- ``drive_down`` = ∂Φ_c/∂bottom = Wᵀ ∗ P⁻¹(top)     (P⁻¹: route to the max positions)
- ``derivatives``= ∂Φ_c/∂W_eff, ∂Φ_c/∂b, summed over the batch.

This module is the math only. How a batch's drives are computed fast (ordered integer
products, row adds, event-driven updates) is a strategy chosen per batch in
:mod:`binlearn.energy.plan`, and no parameter of these methods.

Weight behaviours (passed as ``weight=``): :class:`FloatWeights` (W is the parameter) and
:class:`BinaryWeights` (W = α ⊙ sign pattern, the parameter holds ±1, α one scaling
factor per layer for dense couplings and per output channel for convolutions). Gradients
are always reported with respect to the *effective* weight W, so an optimizer sees the
same numbers whatever the precision (Bop compares them with its threshold).
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
import torch.nn.grad
from torch import nn

from binlearn.binary.quantizers import sign

__all__ = ["FloatWeights", "BinaryWeights", "Coupling", "Dense", "ConvPool"]


class FloatWeights:
    """W = w, a float parameter (full-precision EP)."""

    binary = False
    learn_scale = False

    def __repr__(self) -> str:
        return "FloatWeights()"


class BinaryWeights:
    """W = α ⊙ s, s ∈ {−1, +1} (sign(0) = +1), α > 0 per layer or per output channel.

    α is initialised as the mean absolute value of the default PyTorch initialisation
    (the XNOR-Net rule, Rastegari et al. 2016), s as the sign of that initialisation.

    Args:
        learn_scale: train α with its EP / BPTT gradient (otherwise α stays fixed).
        scale: ``"mean"`` (mean |w_init|) or a positive number used for every α.
    """

    binary = True

    def __init__(self, learn_scale: bool = False, scale: str | float = "mean") -> None:
        if isinstance(scale, str) and scale != "mean":
            raise ValueError(f"BinaryWeights scale must be 'mean' or a number, got {scale!r}")
        if not isinstance(scale, str) and not scale > 0:
            raise ValueError(f"BinaryWeights scale must be > 0, got {scale}")
        self.learn_scale = bool(learn_scale)
        self.scale = scale

    def __repr__(self) -> str:
        return f"BinaryWeights(learn_scale={self.learn_scale}, scale={self.scale!r})"


WeightBehaviour = FloatWeights | BinaryWeights


class Coupling(nn.Module):
    """Base class: parameters ``weight``, ``bias`` and (binary weights) ``scale``."""

    weight: nn.Parameter
    bias: nn.Parameter
    scale: nn.Parameter | None
    routes_down = False
    """True when ``drive_down`` needs the cache of ``drive_up`` at the current bottom."""

    def _set_weights(self, weight: torch.Tensor, bias: torch.Tensor,
                     behaviour: WeightBehaviour, scale_shape: tuple[int, ...]) -> None:
        self.behaviour = behaviour
        if behaviour.binary:
            behaviour = cast(BinaryWeights, behaviour)
            if behaviour.scale == "mean":
                dims = tuple(range(1, weight.dim())) if len(scale_shape) > 1 else None
                magnitude = (weight.abs().mean(dim=dims) if dims else weight.abs().mean())
                alpha = magnitude.reshape(scale_shape[0] if len(scale_shape) > 1 else 1)
            else:
                alpha = torch.full((scale_shape[0] if len(scale_shape) > 1 else 1,),
                                   float(behaviour.scale))
            self.weight = nn.Parameter(sign(weight), requires_grad=False)
            self.scale = nn.Parameter(alpha.clone(), requires_grad=False)
            self._scale_view = scale_shape
        else:
            self.weight = nn.Parameter(weight, requires_grad=False)
            self.scale = None
        self.bias = nn.Parameter(bias, requires_grad=False)

    @property
    def binary_weights(self) -> bool:
        return self.behaviour.binary

    def effective_weight(self) -> torch.Tensor:
        """W = w (float) or α ⊙ s (binary); computed once per relaxation, not per step."""
        if self.scale is None:
            return self.weight
        return self.weight * self.scale.view(self._scale_view)

    @property
    def learns_scale(self) -> bool:
        return self.scale is not None and self.behaviour.learn_scale

    def relaxation_weight(self) -> tuple[torch.Tensor, float]:
        """(tensor, scalar) with W = scalar · tensor, built once per batch for relaxation.

        A single α (dense binary couplings) stays a scalar that the matrix products apply
        for free (``addmm(..., alpha=α)``) instead of materialising α ⊙ s every batch.
        """
        if self.scale is not None and self.scale.numel() == 1:
            return self.weight, float(self.scale)
        return self.effective_weight(), 1.0

    def scale_gradient(self, weight_gradient: torch.Tensor) -> torch.Tensor:
        """∂L/∂α = Σ ∂L/∂W ⊙ s over each α's synapses, shape of ``scale``."""
        product = weight_gradient * self.weight
        if self.scale is not None and self.scale.numel() > 1:
            return product.flatten(1).sum(dim=1)
        return product.sum().reshape(1)

    def gradient_names(self) -> list[str]:
        names = ["weight", "bias"]
        if self.learns_scale:
            names.append("scale")
        return names


class Dense(Coupling):
    """Φ_c = top · (W bottom + b), W: (out_features, in_features).

    Args:
        in_features: size of the (flattened) bottom layer.
        out_features: size of the top layer.
        weight: weight behaviour (:class:`FloatWeights` or :class:`BinaryWeights`).
        gain: multiplies the default PyTorch initialisation U(−1/√in, 1/√in).
    """

    def __init__(self, in_features: int, out_features: int,
                 weight: WeightBehaviour | None = None, gain: float = 1.0) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Dense sizes must be >= 1, got {in_features} -> {out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        bound = gain / math.sqrt(in_features)
        w = torch.empty(out_features, in_features).uniform_(-bound, bound)
        b = torch.empty(out_features).uniform_(-bound, bound)
        self._set_weights(w, b, weight or FloatWeights(), (1,))

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, weight={self.behaviour!r}"

    def top_shape(self, bottom_shape: tuple[int, ...]) -> tuple[int, ...]:
        if math.prod(bottom_shape) != self.in_features:
            raise ValueError(f"Dense coupling expects {self.in_features} bottom features, "
                             f"got shape {bottom_shape}")
        return (self.out_features,)

    def drive_up(self, bottom: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                 alpha: float = 1.0) -> tuple[torch.Tensor, None]:
        """∂Φ_c/∂top = α · bottom Wᵀ + b.  bottom: (batch, *bottom_shape); returns (batch, out).

        Computed as (W bottomᵀ + b)ᵀ, a transposed view: with row-major W this GEMM layout
        is 1.3-1.5× faster on CPU for the thin output layers the relaxation loop is
        dominated by. ``alpha``: the weight's scalar factor (one α per layer), applied by
        the GEMM instead of materialising α ⊙ s.
        """
        return torch.addmm(bias.unsqueeze(1), weight, bottom.flatten(1).t(), alpha=alpha).t(), None

    def drive_down(self, top: torch.Tensor, weight: torch.Tensor, cache: Any,
                   base: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        """base + ∂Φ_c/∂bottom = base + α · top W.  top: (batch, out); base: bottom's shape."""
        if base.dim() == 2:
            return torch.addmm(base, top, weight, alpha=alpha)
        down = (top @ weight).view(base.shape)
        if alpha != 1.0:
            down = down * alpha
        return base + down

    def phi(self, bottom: torch.Tensor, top: torch.Tensor, weight: torch.Tensor,
            bias: torch.Tensor) -> torch.Tensor:
        """Φ_c per sample, (batch,), written with autograd-friendly ops (the oracle)."""
        return (top * (bottom.flatten(1) @ weight.t() + bias)).sum(dim=1)

    def derivatives(self, bottom: torch.Tensor, top: torch.Tensor,
                    cache: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(∂Φ_c/∂W, ∂Φ_c/∂b) summed over the batch: (topᵀ bottom, Σ top)."""
        return top.t() @ bottom.flatten(1), top.sum(dim=0)


class ConvPool(Coupling):
    """Φ_c = top · (maxpool_p(W ∗ bottom) + b), stride-1 convolution, p×p pooling, stride p.

    Args:
        in_channels, out_channels: channel counts of the bottom and top layers.
        kernel_size: square kernel size k.
        padding: zero padding of the convolution.
        pool: pooling window and stride p (1: no pooling).
        weight: weight behaviour; binary weights get one α per output channel.
        gain: multiplies the default PyTorch initialisation U(−1/√fan_in, 1/√fan_in).
    """

    routes_down = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5,
                 padding: int = 0, pool: int = 2, weight: WeightBehaviour | None = None,
                 gain: float = 1.0) -> None:
        super().__init__()
        if min(in_channels, out_channels, kernel_size, pool) < 1 or padding < 0:
            raise ValueError("ConvPool needs channels, kernel_size, pool >= 1 and padding >= 0")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.padding, self.pool = int(kernel_size), int(padding), int(pool)
        fan_in = in_channels * kernel_size * kernel_size
        bound = gain / math.sqrt(fan_in)
        w = torch.empty(out_channels, in_channels, kernel_size, kernel_size).uniform_(-bound, bound)
        b = torch.empty(out_channels).uniform_(-bound, bound)
        self._set_weights(w, b, weight or FloatWeights(), (out_channels, 1, 1, 1))

    def extra_repr(self) -> str:
        return (f"{self.in_channels} -> {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, pool={self.pool}, weight={self.behaviour!r}")

    def _conv_shape(self, bottom_shape: tuple[int, ...]) -> tuple[int, int]:
        height = bottom_shape[1] + 2 * self.padding - self.kernel_size + 1
        width = bottom_shape[2] + 2 * self.padding - self.kernel_size + 1
        return height, width

    def top_shape(self, bottom_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(bottom_shape) != 3 or bottom_shape[0] != self.in_channels:
            raise ValueError(f"ConvPool expects a bottom of shape ({self.in_channels}, H, W), "
                             f"got {bottom_shape}")
        height, width = self._conv_shape(bottom_shape)
        if height // self.pool < 1 or width // self.pool < 1:
            raise ValueError(f"ConvPool: input {bottom_shape} is too small for kernel "
                             f"{self.kernel_size}, padding {self.padding}, pool {self.pool}")
        return (self.out_channels, height // self.pool, width // self.pool)

    def drive_up(self, bottom: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                 alpha: float = 1.0) -> tuple[torch.Tensor, tuple]:
        """∂Φ_c/∂top = maxpool((α · W) ∗ bottom) + b; also returns the pooling cache.

        bottom: (batch, in_channels, H, W); returns (batch, out_channels, H', W').
        """
        if alpha != 1.0:
            weight = weight * alpha
        return self.pool_drive(F.conv2d(bottom, weight, bias, padding=self.padding))

    def ordered_conv(self, bottom: torch.Tensor) -> torch.Tensor:
        """n = s ∗ bottom, the ±1 signs' convolution (no bias): exact integers in float32 for
        {0, 1} or ±1 ``bottom`` (|n| ≤ in_channels·k² < 2^24), whatever the summation order."""
        return F.conv2d(bottom, self.weight.to(bottom.dtype), None, padding=self.padding)

    def scale_integer_drive(self, integers: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """fl(fl(α_c · n) + b_c) per output channel, as two float32 operations (a new tensor
        with ``integers``' memory layout)."""
        assert self.scale is not None, "ordered drives need binary weights"
        shape = (1, -1, 1, 1)
        return (integers * self.scale.view(shape)).add_(bias.view(shape))

    def pool_drive(self, convolved: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """(maxpool(convolved), (indices, conv size)); contiguous NCHW results on any input layout."""
        if self.pool == 1:
            return convolved.contiguous(), (None, convolved.shape[-2:])
        if convolved.device.type == "cpu":
            # the CPU's max pooling with indices is 10-14x faster on channels-last data (it
            # vectorises over channels); the same maxima and the same (first-maximum) indices
            pooled, indices = F.max_pool2d(convolved.contiguous(memory_format=torch.channels_last),
                                           self.pool, return_indices=True)
            return pooled.contiguous(), (indices.contiguous(), convolved.shape[-2:])
        pooled, indices = F.max_pool2d(convolved, self.pool, return_indices=True)
        return pooled, (indices, convolved.shape[-2:])

    def ordered_exact(self) -> bool:
        """Whether the ordered down-drive Σ_c α_c s_c ∗ top (α_c ⊙ s in float64) is exact.

        Every α_c (float32) is a multiple of u = ulp(min α); each output sums at most
        out_channels·k² terms ±α_c, so every partial sum is an integer multiple of u below
        out_channels·k²·max α, exact in float64 while that is ≤ 2^53 u. The float32 result
        is then the correct rounding of the exact sum, the same for any summation order.
        """
        if self.scale is None:
            return False
        alpha = self.scale.detach().double()
        low, high = float(alpha.min()), float(alpha.max())
        if not low > 0:
            return False
        ulp = 2.0 ** (math.floor(math.log2(low)) - 23)
        return self.out_channels * self.kernel_size ** 2 * high <= 2.0 ** 53 * ulp

    def unpool(self, top: torch.Tensor, cache: tuple) -> torch.Tensor:
        indices, size = cache
        if indices is None:
            return top
        return F.max_unpool2d(top, indices, (self.pool, self.pool), output_size=size)

    def drive_down(self, top: torch.Tensor, weight: torch.Tensor, cache: Any,
                   base: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        """base + ∂Φ_c/∂bottom = base + (α · W)ᵀ ∗ unpool(top) (gradient routed to the maxima)."""
        if alpha != 1.0:
            weight = weight * alpha
        return base + F.conv_transpose2d(self.unpool(top, cache), weight, padding=self.padding)

    def phi(self, bottom: torch.Tensor, top: torch.Tensor, weight: torch.Tensor,
            bias: torch.Tensor) -> torch.Tensor:
        convolved = F.conv2d(bottom, weight, bias, padding=self.padding)
        pooled = F.max_pool2d(convolved, self.pool) if self.pool > 1 else convolved
        return (top * pooled).flatten(1).sum(dim=1)

    def derivatives(self, bottom: torch.Tensor, top: torch.Tensor,
                    cache: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(∂Φ_c/∂W, ∂Φ_c/∂b) summed over the batch, at the pooling positions in ``cache``."""
        routed = self.unpool(top, cache)
        weight_derivative = torch.nn.grad.conv2d_weight(
            bottom, self.weight.shape, routed, padding=self.padding)
        return weight_derivative, top.sum(dim=(0, 2, 3))

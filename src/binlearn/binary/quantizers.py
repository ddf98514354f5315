"""Binary quantizers: the one binary convention of binlearn, as functions and classes.

Convention (stated once, tested at zero):
    sign(x)      = +1 if x >= 0 else -1        (sign(0) = +1)
    heaviside(x) =  1 if x >  0 else  0        (Heaviside(0) = 0)
    bit 1 <-> +1, bit 0 <-> -1 when ±1 values are packed.

Straight-through estimators (STE) use the identity gradient inside |x| <= 1
(the "hardtanh" STE of Courbariaux et al. / Hubara et al.) and zero outside.
Each function has a class twin that can be passed as a behaviour object
(``weight_quantizer=BinarySign(scale="mean")``).
"""

from __future__ import annotations

import torch

__all__ = [
    "sign", "heaviside", "sign_ste", "heaviside_ste",
    "Sign", "Heaviside", "BinarySign",
]


def sign(x: torch.Tensor) -> torch.Tensor:
    """sign(x) in {-1, +1} with sign(0) = +1, same dtype as ``x``."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """H(x) in {0, 1} with H(0) = 0, same dtype as ``x``."""
    return (x > 0).to(x.dtype)


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: D102
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class _HeavisideSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: D102
        ctx.save_for_backward(x)
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 0.5).to(grad.dtype)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """Forward sign(x); backward d/dx = 1 for |x| <= 1, else 0."""
    return _SignSTE.apply(x)


def heaviside_ste(x: torch.Tensor) -> torch.Tensor:
    """Forward H(x); backward d/dx = 1 for |x| <= 1/2, else 0 (the hard-sigmoid slope)."""
    return _HeavisideSTE.apply(x)


class Sign(torch.nn.Module):
    """Activation quantizer: sign with a straight-through gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sign_ste(x)


class Heaviside(torch.nn.Module):
    """Activation quantizer: Heaviside with a straight-through gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return heaviside_ste(x)


class BinarySign(torch.nn.Module):
    """Weight quantizer: w_b = α · sign(w), straight-through gradient to the latent w.

    Args:
        scale: ``"mean"``: α = mean |w| of the layer, held constant in the backward pass;
            ``"unit"``: one α per output unit (row / output channel), α_o = mean over
            w[o, ...] of |w| (XNOR-Net's per-filter scale), shape (out, 1, ...);
            ``"none"``: α = 1.
    """

    SCALES = ("mean", "unit", "none")

    def __init__(self, scale: str = "mean") -> None:
        super().__init__()
        if scale not in self.SCALES:
            raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(self.SCALES)}")
        self.scale = scale

    def alpha(self, w: torch.Tensor) -> torch.Tensor:
        if self.scale == "none":
            return torch.ones((), dtype=w.dtype, device=w.device)
        if self.scale == "unit":
            return w.detach().abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)
        return w.detach().abs().mean()

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.alpha(w) * sign_ste(w)

    def extra_repr(self) -> str:
        return f"scale={self.scale!r}"

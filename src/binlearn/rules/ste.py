"""Straight-through-estimator back-propagation: the standard BNN baseline.

The gradient of the cross-entropy loss flows through ``sign`` as if it were the identity
inside |x| <= 1 (see :mod:`binlearn.binary.quantizers`); binary-weight layers keep latent
float weights that the optimizer updates and that are clipped to [-1, 1].
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["STE"]


class STE:
    """``gradients(model, x, y)`` = autograd gradients of mean cross-entropy, by parameter name."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return nn.functional.cross_entropy(logits, y), logits

    def gradients(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        params = dict(model.named_parameters())
        loss, _ = self.loss(model, x, y)
        grads = torch.autograd.grad(loss, list(params.values()))
        return dict(zip(params, grads, strict=True))

"""Activation statistics for threshold balancing (data-based normalisation).

λ_l = max over the calibration images of layer l's activations (``MaxObserver``), or their
p-th percentile (``PercentileObserver(p)``; Rueckauer et al. 2017's robust normalisation,
Lu & Sengupta 2020 use p = 99.7 / 99.9). The percentile is taken over all the layer's
activation values (zeros included), as a single number per layer. A spike of layer l then
stands for activation λ_l: the converted layer's threshold is λ_l (in the source's units)
and activations above it saturate at one spike per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["MaxObserver", "PercentileObserver", "observer_for", "calibrate"]


class MaxObserver:
    """λ = max of every value seen."""

    def __init__(self) -> None:
        self.maximum = float("-inf")

    def update(self, values: torch.Tensor) -> None:
        if values.numel():
            self.maximum = max(self.maximum, float(values.max()))

    def value(self) -> float:
        if self.maximum == float("-inf"):
            raise ValueError("no activations were observed")
        return self.maximum

    def __repr__(self) -> str:
        return "MaxObserver()"


class PercentileObserver:
    """λ = the p-th percentile (0 < p ≤ 100) of the values seen.

    Keeps at most ``per_update`` values of each update (a seeded uniform subsample: the
    percentile of a large layer is estimated from up to ``per_update`` × updates values).
    """

    def __init__(self, percentile: float, per_update: int = 1 << 20, seed: int = 0) -> None:
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        self.percentile, self.per_update = float(percentile), int(per_update)
        self._generator = torch.Generator().manual_seed(seed)
        self._kept: list[np.ndarray] = []

    def update(self, values: torch.Tensor) -> None:
        flat = values.detach().reshape(-1).float().cpu()
        if flat.numel() > self.per_update:
            flat = flat[torch.randperm(flat.numel(), generator=self._generator)[:self.per_update]]
        self._kept.append(flat.numpy())

    def value(self) -> float:
        if not self._kept:
            raise ValueError("no activations were observed")
        return float(np.percentile(np.concatenate(self._kept), self.percentile))

    def __repr__(self) -> str:
        return f"PercentileObserver({self.percentile})"


def observer_for(percentile: float | None) -> MaxObserver | PercentileObserver:
    """``None`` or 100 → :class:`MaxObserver`; otherwise :class:`PercentileObserver`."""
    if percentile is None or percentile == 100:
        return MaxObserver()
    return PercentileObserver(percentile)


@torch.no_grad()
def calibrate(model: nn.Module, modules: Sequence[nn.Module], images: torch.Tensor, *,
              percentile: float | None = 99.7, batch_size: int = 500) -> list[float]:
    """λ of each module's output over ``images``: one value per entry of ``modules``.

    Args:
        model: the source network (evaluated in eval mode, no gradients).
        modules: the activation modules to observe (e.g. each hidden ReLU).
        images: (n, *input_shape) calibration images (the training split's), any device.
        percentile: p in (0, 100) for :class:`PercentileObserver`; None or 100 for the max.
        batch_size: images per forward pass.
    """
    observers = [observer_for(percentile) for _ in modules]
    hooks = [module.register_forward_hook(lambda _m, _i, out, o=observer: o.update(out))
             for module, observer in zip(modules, observers, strict=True)]
    model.eval()
    try:
        for batch in images.split(batch_size):
            model(batch)
    finally:
        for hook in hooks:
            hook.remove()
    return [observer.value() for observer in observers]

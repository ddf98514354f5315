"""The learning-rate schedule shared by every learner with an optimizer (EP, BPTT, STE).

After e finished epochs, d = max(e − decay_start, 0) of them have decayed, and every rate is

    lr(e) = lr₀ · lr_decay^d · ½(1 + cos(π · min(d, C)/C))     (the cosine term only when C > 0)

with C = ``cosine_epochs``; ``lr_decay^d`` is applied one epoch at a time (x ← x · lr_decay, as
torch's ``ExponentialLR`` does), so runs made with it are reproduced bit for bit. Bop has no
learning rate: with ``anneal_flips`` its thresholds become τ₀ / f(e) (∞ once f reaches 0: no
more flips), with ``anneal_gamma`` its γ becomes γ₀ · f(e), f(e) = lr(e)/lr₀ computed the same way.

The schedule owns these values: a learner tells it which optimizers it drives (their groups'
rates as built are lr₀, τ₀, γ₀) and calls :meth:`Schedule.apply` with the epochs done (after each
epoch and after loading a checkpoint); nothing else writes rates into ``param_groups``.
"""

from __future__ import annotations

import math

import torch

from binlearn.experiment.config import ScheduleConfig

__all__ = ["Schedule"]


class Schedule:
    """:class:`~binlearn.experiment.config.ScheduleConfig` applied to optimizers.

    Base values are kept here (per optimizer, per group index), not in the groups: loading an
    optimizer's state replaces its group dicts, the base values stay.
    """

    def __init__(self, config: ScheduleConfig) -> None:
        self.config = config
        self._rates: list[tuple[torch.optim.Optimizer, list[float]]] = []
        self._flips: list[tuple[torch.optim.Optimizer, list[float], list[float]]] = []

    def drive_rates(self, optimizer: torch.optim.Optimizer) -> None:
        """Schedule every group's ``lr`` (its value now is lr₀)."""
        self._rates.append((optimizer, [float(g["lr"]) for g in optimizer.param_groups]))

    def drive_flips(self, optimizer: torch.optim.Optimizer) -> None:
        """Schedule a Bop optimizer's ``threshold`` and ``gamma`` (their values now are τ₀, γ₀)."""
        self._flips.append((optimizer, [float(g["threshold"]) for g in optimizer.param_groups],
                            [float(g["gamma"]) for g in optimizer.param_groups]))

    def _decayed(self, epochs_done: int) -> int:
        return max(epochs_done - self.config.decay_start, 0)

    def _scale(self, value: float, epochs_done: int) -> float:
        """value · lr_decay^d (one multiplication per epoch) · the cosine term."""
        decayed = self._decayed(epochs_done)
        for _ in range(decayed):
            value *= self.config.lr_decay
        if self.config.cosine_epochs > 0:
            progress = min(decayed, self.config.cosine_epochs) / self.config.cosine_epochs
            value *= 0.5 * (1.0 + math.cos(math.pi * progress))
        return value

    def factor(self, epochs_done: int) -> float:
        """f(e): what scales the rates after ``epochs_done`` epochs (1: no decay yet)."""
        return self._scale(1.0, epochs_done)

    def rate(self, base: float, epochs_done: int) -> float:
        """lr(e) for a base rate lr₀."""
        return self._scale(base, epochs_done)

    def apply(self, epochs_done: int) -> None:
        """Set every driven rate, threshold and γ for the epoch after ``epochs_done``."""
        for optimizer, bases in self._rates:
            for group, base in zip(optimizer.param_groups, bases, strict=True):
                group["lr"] = self.rate(base, epochs_done)
        factor = self.factor(epochs_done)
        for optimizer, thresholds, gammas in self._flips:
            for group, threshold, gamma in zip(optimizer.param_groups, thresholds, gammas, strict=True):
                if self.config.anneal_flips:
                    threshold = threshold / factor if factor > 0 else math.inf
                group["threshold"] = threshold
                group["gamma"] = gamma * factor if self.config.anneal_gamma else gamma

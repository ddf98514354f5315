"""Input encodings: how an image becomes the first layer's input at each time step.

* :class:`Direct` — x_t = x for every t: the image is a constant current (the first layer
  computes its current once).
* :class:`Poisson` — x_t ~ Bernoulli(x) independently per pixel and step (discrete-time
  Poisson rate coding): spikes in {0, 1} whose rate is the pixel value; seeded, so a run is
  reproducible (the generator continues across calls: batch after batch of one run draw
  fresh numbers in a fixed order).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

__all__ = ["Direct", "Poisson", "ENCODINGS", "encoding_from_name"]

ENCODINGS = ("direct", "poisson")


class Direct:
    """x_t = x, t = 1..T (direct / constant-current encoding)."""

    constant = True
    name = "direct"

    def steps(self, x: torch.Tensor, steps: int) -> Iterator[torch.Tensor]:
        for _ in range(steps):
            yield x

    def __repr__(self) -> str:
        return "Direct()"


class Poisson:
    """x_t[i] = 1 with probability x[i], else 0, independently per step (rate coding).

    Args:
        seed: seed of the generator (one per device, created on first use).
    Raises ValueError for inputs outside [0, 1] (a rate is a probability).
    """

    constant = False
    name = "poisson"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def steps(self, x: torch.Tensor, steps: int) -> Iterator[torch.Tensor]:
        if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
            raise ValueError("Poisson rate coding needs inputs in [0, 1] (pixel rates); "
                             "use data.encoding = \"unit\" or the direct encoding")
        generator = self._generator(x.device)
        for _ in range(steps):
            yield (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) < x).to(x.dtype)

    def __repr__(self) -> str:
        return f"Poisson(seed={self.seed})"


def encoding_from_name(name: str, seed: int = 0) -> Direct | Poisson:
    """``"direct"`` | ``"poisson"`` (seeded) → the encoding object."""
    if name == "direct":
        return Direct()
    if name == "poisson":
        return Poisson(seed)
    raise ValueError(f"encoding={name!r}; valid: {', '.join(ENCODINGS)}")

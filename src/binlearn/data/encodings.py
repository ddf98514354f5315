"""Input encodings used by the papers, as pure tensor functions.

All take and return float32 tensors ``(n, channels, height, width)``; inputs are pixels
scaled to [0, 1].
"""

from __future__ import annotations

import torch

__all__ = ["ENCODINGS", "normalize", "binarize", "thermometer", "encode", "random_crop_flip"]

ENCODINGS = ("unit", "normalize", "binarize", "thermometer")


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x − mean_c) / std_c per channel. mean, std: (channels,)."""
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def binarize(x: torch.Tensor, threshold: float | torch.Tensor, signed: bool = False) -> torch.Tensor:
    """b = [x > threshold] in {0, 1} (or 2b − 1 in {−1, +1} when ``signed``).

    ``threshold``: a scalar or a tensor broadcastable to one sample (e.g. the per-pixel
    median). Strict ``>``: a pixel equal to the threshold is 0 (off), matching Heaviside(0) = 0.
    """
    bits = (x > threshold).to(torch.float32)
    return bits * 2 - 1 if signed else bits


def thermometer(x: torch.Tensor, bits: int, signed: bool = False,
                levels: list[float] | tuple[float, ...] | None = None) -> torch.Tensor:
    """Thermometer code with ``bits`` levels: channel c·bits + i is [x_c > level_i], the
    levels (i + 1)/(bits + 1) unless given (``levels``: increasing values in [0, 1); then
    ``bits`` is their number, e.g. [0, 0.5] keeps the silhouette bit x > 0 that the evenly
    spaced levels lose).

    Output: (n, channels·bits, height, width); a brighter pixel turns on more bits.
    """
    if levels is not None:
        check_thermometer_levels(levels)
        bits = len(levels)
    if bits < 1:
        raise ValueError(f"thermometer_bits must be >= 1, got {bits}")
    cuts = (torch.arange(1, bits + 1, dtype=x.dtype, device=x.device) / (bits + 1) if levels is None
            else torch.tensor(levels, dtype=x.dtype, device=x.device))
    code = (x.unsqueeze(2) > cuts.view(1, 1, -1, 1, 1)).to(torch.float32)
    code = code.flatten(1, 2)
    return code * 2 - 1 if signed else code


def check_thermometer_levels(levels) -> None:
    """Refuse (ValueError, one line) levels that are not increasing values in [0, 1)."""
    values = list(levels)
    if (not values or any(not 0.0 <= float(v) < 1.0 for v in values)
            or any(b <= a for a, b in zip(values, values[1:], strict=False))):
        raise ValueError(f"thermometer_levels must be a non-empty increasing list of values in [0, 1), "
                         f"got {values}")


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4,
                     flip: bool = True) -> torch.Tensor:
    """Augment a whole batch at once: zero-pad by ``padding``, crop back to the original
    size at a random offset (a random shift of up to ``padding`` pixels) and, if ``flip``,
    flip horizontally with probability 1/2 (the CIFAR recipe; digits want ``flip=False``)."""
    n, _, height, width = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    rows = top[:, None] + torch.arange(height, device=x.device)
    cols = left[:, None] + torch.arange(width, device=x.device)
    if flip:
        flipped = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


def encode(
    x: torch.Tensor,
    encoding: str,
    *,
    train_reference: torch.Tensor,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    threshold: float | str = 0.5,
    thermometer_bits: int = 4,
    thermometer_levels: list[float] | None = None,
    signed: bool = False,
) -> torch.Tensor:
    """Apply the named encoding. Statistics that need data (mean/std when no published
    values, the per-pixel median threshold) come from ``train_reference`` only, never from
    the test set."""
    if encoding == "unit":
        return x
    if encoding == "normalize":
        if mean is None or std is None:
            dims = (0, 2, 3)
            return normalize(x, train_reference.mean(dims), train_reference.std(dims))
        return normalize(x, torch.tensor(mean), torch.tensor(std))
    if encoding == "binarize":
        if threshold == "median":
            return binarize(x, train_reference.median(dim=0).values, signed)
        return binarize(x, float(threshold), signed)
    if encoding == "thermometer":
        return thermometer(x, thermometer_bits, signed, thermometer_levels)
    raise ValueError(f"unknown encoding {encoding!r}; valid: {', '.join(ENCODINGS)}")

"""Mini-batches by indexing in-memory tensors; sharding across data-parallel ranks."""

from __future__ import annotations

from collections.abc import Iterator

import torch

__all__ = ["batch_indices", "iterate_batches"]


def batch_indices(
    n: int,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[torch.Tensor]:
    """Indices of this rank's share of each *global* batch of ``batch_size`` samples.

    Every rank draws the same permutation (same generator state), cuts it into global
    batches, and takes the ``rank``-th of ``world_size`` near-equal chunks of each, so the
    union over ranks of one step is exactly the single-process batch. A final global batch
    smaller than ``world_size`` is dropped (a rank would get no sample).
    """
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        batch = order[start:start + batch_size]
        if world_size == 1:
            yield batch
        elif len(batch) >= world_size:
            yield torch.tensor_split(batch, world_size)[rank]


def iterate_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, **kwargs
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x[idx], y[idx])`` for :func:`batch_indices`; tensors stay on their device."""
    for idx in batch_indices(len(x), batch_size, **kwargs):
        idx = idx.to(x.device)
        yield x[idx], y[idx]

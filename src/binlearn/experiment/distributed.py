"""Data-parallel training under ``torchrun``: process group set-up and the all-reduce reducer.

``torchrun --nproc_per_node=N -m binlearn train CONFIG`` sets ``WORLD_SIZE``/``RANK``;
we then join a process group (``gloo`` on CPU, ``nccl`` on CUDA). Every rank holds the full
model, trains on its shard of each global batch, and reduces its update before applying
it, so all ranks hold identical weights; only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Context", "setup", "teardown", "AllReduce"]


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class AllReduce:
    """:class:`~binlearn.experiment.learner.Reducer` over the default process group."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        if not tensor.is_floating_point():
            raise TypeError("mean over ranks needs a floating-point tensor; use sum for integers")
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.div_(self.world_size)


def setup(device_kind: str) -> Context:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Context()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def teardown(context: Context) -> None:
    if context.world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def broadcast_object(obj, context: Context):
    """Rank 0's value of ``obj`` on every rank."""
    if context.world_size == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]

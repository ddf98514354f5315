"""Data-parallel training under ``torchrun``: process group set-up and the all-reduce reducer.

``torchrun --nproc_per_node=N -m binlearn train CONFIG`` sets ``WORLD_SIZE``/``RANK``;
we then join a process group (``gloo`` on CPU, ``nccl`` on CUDA). Every rank holds the full
model, trains on its shard of each global batch, and reduces its update before applying
it, so all ranks hold identical weights; only rank 0 writes files.

A lost rank (killed, crashed, out of memory) fails the others' next collective: gloo on one
machine at once ("Connection reset by peer"), else when ``train.dist_timeout`` seconds pass
without an answer (torch's default, 30 minutes, would hold the survivors that long). The
failure is a :class:`RankLost`, one line, and the process group is then left without the
closing barrier (it would fail the same way). torchrun also stops the survivors with SIGTERM
once it sees a worker die: whichever comes first, each says what rank 0 keeps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from binlearn.errors import BinlearnError

__all__ = ["Context", "setup", "teardown", "AllReduce", "RankLost", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 300.0
"""Seconds a collective waits for the other ranks (``train.dist_timeout``)."""


class RankLost(BinlearnError, RuntimeError):
    """A collective failed: another process of the torchrun job ended or stopped answering."""


def _collective(call, *args, **kwargs):
    """``call(*args, **kwargs)``, a collective; its failure (a peer gone, a timeout) as a
    :class:`RankLost` naming the reason in one line."""
    try:
        return call(*args, **kwargs)
    except RuntimeError as error:  # DistBackendError, DistNetworkError and gloo's plain ones
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = lines[0] if lines else type(error).__name__
        reason = reason.split("] ", 1)[-1]  # drop gloo's "[source.cc:537] "
        reason = reason.split(". This is typically", 1)[0]
        raise RankLost(f"another rank of this torchrun job was lost ({reason})") from None


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
        _collective(dist.all_reduce, tensor, op=dist.ReduceOp.SUM)
        return tensor

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        if not tensor.is_floating_point():
            raise TypeError("mean over ranks needs a floating-point tensor; use sum for integers")
        _collective(dist.all_reduce, tensor, op=dist.ReduceOp.SUM)
        return tensor.div_(self.world_size)


def setup(device_kind: str, timeout: float = DEFAULT_TIMEOUT) -> Context:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); a collective
    that waits ``timeout`` seconds for the other ranks fails (:class:`RankLost`)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Context()
    if not dist.is_initialized():
        _collective(dist.init_process_group, backend="nccl" if device_kind == "cuda" else "gloo",
                    timeout=timedelta(seconds=timeout))
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def teardown(context: Context, *, clean: bool = True) -> None:
    """Leave the process group: after a barrier when every rank ended well (``clean``), else
    at once (a barrier with a lost rank would fail, or wait for the timeout)."""
    if context.world_size > 1 and dist.is_initialized():
        try:
            if clean:
                _collective(dist.barrier)
        finally:
            dist.destroy_process_group()


def broadcast_object(obj, context: Context):
    """Rank 0's value of ``obj`` on every rank."""
    if context.world_size == 1:
        return obj
    holder = [obj]
    _collective(dist.broadcast_object_list, holder, src=0)
    return holder[0]

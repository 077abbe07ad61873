"""Data-parallel training across processes with ``torch.distributed`` (gloo on CPU).

Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` set) ``Comm.from_env()``
joins the process group; otherwise it is a one-process no-op. Each rank computes its
share of a batch; ``mean_grads`` all-reduces the gradients to their mean over ranks after
every backward pass, which is what DDP's reducer does, done by hand because a DPPO loss
runs the actor K' times before one backward (DDP's hooks expect one forward per backward).

Every rank leaves through ``Comm.joined()``, which waits for the others and destroys the
process group while the interpreter is still whole: a gloo group left to interpreter
shutdown can abort the process (SIGABRT) when its worker threads free tensors late.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist


class Comm:
    def __init__(self, rank: int = 0, world: int = 1) -> None:
        self.rank, self.world = rank, world

    @classmethod
    def from_env(cls) -> Comm:
        if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return cls(dist.get_rank(), dist.get_world_size())

    @classmethod
    @contextmanager
    def joined(cls) -> Iterator[Comm]:
        """``from_env()`` for the length of a ``with`` block; on a normal exit every rank
        meets at a barrier, then (normal exit or not) the group is destroyed."""
        comm = cls.from_env()
        try:
            yield comm
            comm.barrier()
        finally:
            if comm.world > 1 and dist.is_initialized():
                dist.destroy_process_group()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Elementwise sum over ranks (a new tensor; float64 for exact counts)."""
        t = t.detach().clone().double()
        if self.world > 1:
            dist.all_reduce(t)
        return t

    def max(self, value: int) -> int:
        t = torch.tensor([value], dtype=torch.int64)
        if self.world > 1:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t)

    def mean_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        if self.world == 1:
            return
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world

    def share(self, n: int) -> range:
        """This rank's indices of ``n`` items split into contiguous, near-equal parts."""
        return range(self.rank * n // self.world, (self.rank + 1) * n // self.world)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

"""Distributed data-parallel training helpers (``torchrun``; gloo on CPU, nccl on CUDA).

The trainer does not wrap the supernet in ``DistributedDataParallel``: every process runs the
same subnets on its shard of the global batch, gradients are averaged with one all-reduce per
step after all sandwich passes, and batch norms synchronise their statistics across processes
(:class:`SyncBatchNorm2d`). With the same global batch, a run on ``N`` processes then computes
what one process computes, up to floating-point summation order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

__all__ = [
    "DistInfo",
    "SyncBatchNorm2d",
    "all_reduce_gradients",
    "barrier",
    "broadcast_object",
    "init_distributed",
    "shutdown",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "cpu") -> DistInfo:
    """Join the process group ``torchrun`` describes in the environment (single process otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_object(obj: object, info: DistInfo) -> object:
    """Rank 0's ``obj`` on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_gradients(params: list[nn.Parameter], info: DistInfo) -> None:
    """Average the gradients of ``params`` over processes (one flat all-reduce).

    Every process must hold gradients for the same parameters (they run the same subnets).
    """
    if not info.distributed:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(info.world_size)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


class SyncBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose training statistics cover the global batch of all processes.

    Sums and sums of squares are all-reduced with ``torch.distributed.nn``'s differentiable
    all-reduce, so gradients flow through the global statistics exactly as in one process
    holding the whole batch. Outside training or without a process group it is a plain
    ``BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        xf = x.float()
        local = torch.cat(
            [
                xf.sum(dim=(0, 2, 3)),
                (xf * xf).sum(dim=(0, 2, 3)),
                torch.full((1,), float(x.numel() // c), device=x.device),
            ]
        )
        total = all_reduce(local)
        n = total[-1]
        mean = total[:c] / n
        var = (total[c : 2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
                    if self.momentum is None:
                        m = 1.0 / float(self.num_batches_tracked)
                unbiased = var * (n / (n - 1).clamp_min(1.0))
                self.running_mean.mul_(1 - m).add_(mean.detach() * m)
                self.running_var.mul_(1 - m).add_(unbiased.detach() * m)
        shape = (1, c, 1, 1)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.weight is not None:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

"""Data for supernet training and evaluation, with a deterministic batch order.

The data sets themselves are :class:`hwnas.datasets.ImageData` (re-exported here, also under its
old name ``TensorData``): Fashion-MNIST, digits, an ImageFolder tree or an ``.npz`` file, held in
memory or streamed from image files through ``DataLoader`` workers. :func:`data_info` records a
data set in a checkpoint and :func:`load_data_like` loads it again from that record.

The order of an epoch is a function of ``(seed, epoch)`` only: a seeded permutation of the
training set and, for augmentation, a seeded horizontal-flip mask. A run resumed at any step,
and a run split over ``N`` processes (each takes its contiguous share of every global batch),
therefore sees exactly the data an uninterrupted single process sees, whether the images are in
memory or decoded from files by workers (which read the same index lists ahead).
"""

from __future__ import annotations

from collections.abc import Generator

import torch

from hwnas.datasets import (
    DATA_ALIASES,
    DatasetError,
    ImageData,
    data_info,
    load_data,
    load_data_like,
    split_validation,
)
from hwnas.errors import ConfigError

__all__ = [
    "DATA_ALIASES",
    "DataOrder",
    "DatasetError",
    "EpochOrder",
    "ImageData",
    "TensorData",
    "calibration_batches",
    "data_info",
    "load_data",
    "load_data_like",
    "split_validation",
]

TensorData = ImageData
"""The data set type under its former name."""


class EpochOrder:
    """The global batches of one epoch: ``len(data) // batch_size`` full batches (the remainder
    is dropped so that every step has the same global batch)."""

    def __init__(self, data: ImageData, batch_size: int, seed: int, epoch: int, *, flip: bool = True) -> None:
        _check_batch(data, batch_size)
        self.data = data
        self.batch_size = batch_size
        g = torch.Generator().manual_seed(_mix(seed, epoch))
        self.perm = torch.randperm(len(data), generator=g)
        self.flips = (torch.rand(len(data), generator=g) < 0.5) if flip else None

    def __len__(self) -> int:
        return len(self.data) // self.batch_size

    def indices(self, step: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        """The example indices of global batch ``step``, or of this process's contiguous share of it."""
        b = self.batch_size
        idx = self.perm[step * b : (step + 1) * b]
        if world > 1:
            share = b // world
            idx = idx[rank * share : (rank + 1) * share]
        return idx

    def batch(self, step: int, rank: int = 0, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Global batch ``step``, or this process's contiguous share of it."""
        idx = self.indices(step, rank, world)
        x, y = self.data.take(idx)
        return self._flip(x, idx), y

    def batches(
        self, start: int = 0, rank: int = 0, world: int = 1, *, workers: int | None = None
    ) -> Generator[tuple[torch.Tensor, torch.Tensor], None, None]:
        """Batches ``start, start + 1, ...`` to the end of the epoch (this process's shares), equal
        to :meth:`batch` of each step. Streamed data are decoded by DataLoader workers reading ahead
        (``workers``: see :func:`hwnas.datasets.default_workers`)."""
        steps = range(start, len(self))
        if not self.data.streamed:
            for step in steps:
                yield self.batch(step, rank, world)
            return
        index_lists = [self.indices(step, rank, world) for step in steps]
        loaded = self.data.loader(index_lists, workers=workers)
        try:
            for idx, (x, y) in zip(index_lists, loaded):
                yield self._flip(x, idx), y
        finally:
            loaded.close()  # stops the workers when the epoch ends early

    def _flip(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if self.flips is not None:
            f = self.flips[idx]
            if bool(f.any()):
                x = torch.where(f.view(-1, 1, 1, 1), x.flip(3), x)
        return x


class DataOrder:
    """The batches of every epoch of a run over ``data``: :class:`EpochOrder` of ``(seed, epoch)``,
    this process's shares (``rank`` of ``world``). The :class:`quant.loop.BatchOrder` of the
    supernet's training and of the baselines'."""

    def __init__(
        self, data: ImageData, batch_size: int, seed: int, *, flip: bool = True, rank: int = 0, world: int = 1
    ) -> None:
        _check_batch(data, batch_size)
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.flip, self.rank, self.world = flip, rank, world

    @property
    def steps_per_epoch(self) -> int:
        """Full global batches an epoch (the remainder is dropped)."""
        return len(self.data) // self.batch_size

    def batches(self, epoch: int, start: int = 0) -> Generator[tuple[torch.Tensor, torch.Tensor], None, None]:
        """Batches ``start, start + 1, ...`` of ``epoch`` (:meth:`EpochOrder.batches`)."""
        order = EpochOrder(self.data, self.batch_size, self.seed, epoch, flip=self.flip)
        return order.batches(start, self.rank, self.world)


def calibration_batches(data: ImageData, n: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """``n`` fixed training batches (no augmentation) for BN recalibration and PTQ."""
    g = torch.Generator().manual_seed(_mix(seed, 10_007))
    perm = torch.randperm(len(data), generator=g)
    index_lists = []
    for i in range(n):
        idx = perm[i * batch_size : (i + 1) * batch_size]
        if len(idx) == 0:
            break
        index_lists.append(idx)
    return [x for x, _ in data.loader(index_lists)]


def _check_batch(data: ImageData, batch_size: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    if len(data) < batch_size:
        raise ConfigError(f"{data.name}: {len(data)} training examples, fewer than one batch of {batch_size}")


def _mix(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + 12_345) % (2**63 - 1)

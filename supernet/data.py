"""Datasets for supernet training, held in memory, with a deterministic batch order.

The order of an epoch is a function of ``(seed, epoch)`` only: a seeded permutation of the
training set and, for augmentation, a seeded horizontal-flip mask. A run resumed at any step,
and a run split over ``N`` processes (each takes its contiguous share of every global batch),
therefore sees exactly the data an uninterrupted single process sees.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from hwnas.errors import ConfigError

__all__ = ["DATA_ALIASES", "EpochOrder", "TensorData", "calibration_batches", "load_data"]

DATA_ALIASES = {"fashion-mnist": "fashion_mnist", "fashion_mnist": "fashion_mnist", "fmnist": "fashion_mnist",
                "digits": "digits"}


@dataclass(frozen=True)
class TensorData:
    """Normalised images ``float32 (N, C, H, W)`` and labels ``int64 (N,)``."""

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """In order, the last batch possibly smaller (evaluation)."""
        for i in range(0, len(self), batch_size):
            yield self.images[i : i + batch_size], self.labels[i : i + batch_size]


def load_data(name: str, split: str, limit: int | None = None) -> TensorData:
    """``fashion-mnist`` (or ``digits``) ``split`` as tensors; ``limit`` keeps the first examples.

    Pixels are scaled to ``[0, 1]`` and standardised with the training split's mean and standard
    deviation (the normalisation :func:`hwnas.datasets.load_dataset` applies).
    """
    key = DATA_ALIASES.get(name.lower())
    if key is None:
        raise ConfigError(f"unknown dataset {name!r} (known: fashion-mnist, digits)")
    if split not in ("train", "test"):
        raise ConfigError(f"unknown split {split!r} (known: train, test)")
    if key != "fashion_mnist":
        from hwnas.datasets import load_dataset

        ds = load_dataset(key, split, limit=limit)  # type: ignore[arg-type]
        return TensorData(key, split, torch.from_numpy(ds.images.copy()), torch.from_numpy(ds.labels.copy()),
                          ds.num_classes)
    from hwnas.datasets import load_fashion_mnist

    images, labels = load_fashion_mnist(split)  # type: ignore[arg-type]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    mean, std = _fashion_stats()
    x = (torch.from_numpy(images.astype("float32")) / 255.0 - mean) / std
    return TensorData(key, split, x.unsqueeze(1).contiguous(), torch.from_numpy(labels.astype("int64")), 10)


@functools.lru_cache(maxsize=1)
def _fashion_stats() -> tuple[float, float]:
    from hwnas.datasets import load_fashion_mnist

    raw, _ = load_fashion_mnist("train")
    x = raw.astype("float64") / 255.0
    return float(x.mean()), float(x.std())


class EpochOrder:
    """The global batches of one epoch: ``len(data) // batch_size`` full batches (the remainder
    is dropped so that every step has the same global batch)."""

    def __init__(self, data: TensorData, batch_size: int, seed: int, epoch: int, *, flip: bool = True) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {batch_size}")
        if len(data) < batch_size:
            raise ConfigError(f"{data.name}: {len(data)} training examples, fewer than one batch of {batch_size}")
        self.data = data
        self.batch_size = batch_size
        g = torch.Generator().manual_seed(_mix(seed, epoch))
        self.perm = torch.randperm(len(data), generator=g)
        self.flips = (torch.rand(len(data), generator=g) < 0.5) if flip else None

    def __len__(self) -> int:
        return len(self.data) // self.batch_size

    def batch(self, step: int, rank: int = 0, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Global batch ``step``, or this process's contiguous share of it."""
        b = self.batch_size
        idx = self.perm[step * b : (step + 1) * b]
        if world > 1:
            share = b // world
            idx = idx[rank * share : (rank + 1) * share]
        x = self.data.images[idx]
        if self.flips is not None:
            f = self.flips[idx]
            if bool(f.any()):
                x = torch.where(f.view(-1, 1, 1, 1), x.flip(3), x)
        return x, self.data.labels[idx]


def calibration_batches(data: TensorData, n: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """``n`` fixed training batches (no augmentation) for BN recalibration and PTQ."""
    g = torch.Generator().manual_seed(_mix(seed, 10_007))
    perm = torch.randperm(len(data), generator=g)
    out = []
    for i in range(n):
        idx = perm[i * batch_size : (i + 1) * batch_size]
        if len(idx) == 0:
            break
        out.append(data.images[idx])
    return out


def _mix(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + 12_345) % (2**63 - 1)

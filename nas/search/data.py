"""Real data for proxy training and DARTS: small seeded subsets of Fashion-MNIST (or UCI digits).

Uses :mod:`hwnas.datasets` (the Debian package ``dataset-fashion-mnist``; nothing is downloaded).
"""
from __future__ import annotations

import numpy as np

from hwnas.errors import ConfigError

__all__ = ["load_arrays"]


def load_arrays(dataset: str = "fashion_mnist", train_size: int = 2000, test_size: int = 1000,
                *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalised ``float32 (N, 1, H, W)`` images and ``int64`` labels: a seeded random subset of
    ``train_size`` training and ``test_size`` test examples."""
    from hwnas.datasets import load_dataset

    if train_size < 1 or test_size < 1:
        raise ConfigError("train_size and test_size must be positive")
    train = load_dataset(dataset, "train").subset(train_size, seed=seed)
    test = load_dataset(dataset, "test").subset(test_size, seed=seed + 1)
    return (np.ascontiguousarray(train.images), np.ascontiguousarray(train.labels),
            np.ascontiguousarray(test.images), np.ascontiguousarray(test.labels))

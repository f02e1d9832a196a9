"""Real data for proxy training and DARTS: small seeded subsets of a data set, as numpy arrays.

Any data set :func:`hwnas.datasets.load_data` reads (``fashion_mnist``, ``digits``, an
ImageFolder root, an ``.npz`` file); nothing is downloaded. The subsets are thin numpy views of
the one data set type, :class:`hwnas.datasets.ImageData` (streamed folders decode only the
sampled images, through DataLoader workers).
"""
from __future__ import annotations

import numpy as np

from hwnas.errors import ConfigError

__all__ = ["load_arrays"]


def load_arrays(dataset: str = "fashion_mnist", train_size: int = 2000, test_size: int = 1000,
                *, seed: int = 0, resolution: int | None = None, in_chans: int | None = None,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalised ``float32 (N, C, H, W)`` images and ``int64`` labels: a seeded random subset of
    ``train_size`` training and ``test_size`` test examples (both normalised with the training
    split's statistics), converted to ``in_chans`` channels and ``resolution`` when given."""
    from hwnas.datasets import data_info, load_data, load_data_like

    if train_size < 1 or test_size < 1:
        raise ConfigError("train_size and test_size must be positive")
    train_all = load_data(dataset, "train", resolution=resolution, in_chans=in_chans)
    test_all = load_data_like(data_info(train_all), "test")
    xtr, ytr = train_all.subset(train_size, seed=seed).arrays()
    xte, yte = test_all.subset(test_size, seed=seed + 1).arrays()
    return np.ascontiguousarray(xtr), np.ascontiguousarray(ytr), np.ascontiguousarray(xte), np.ascontiguousarray(yte)

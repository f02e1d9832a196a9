"""Real data for proxy training and DARTS: small seeded subsets of a training set, as numpy arrays.

Any data set :func:`hwnas.datasets.load_data` reads (``fashion_mnist``, ``digits``, an
ImageFolder root, an ``.npz`` file); nothing is downloaded. The subsets are thin numpy views of
the one data set type, :class:`hwnas.datasets.ImageData` (streamed folders decode only the
sampled images, through DataLoader workers).
"""

from __future__ import annotations

import numpy as np

from hwnas.errors import ConfigError

__all__ = ["load_arrays"]


def load_arrays(
    dataset: str = "fashion_mnist",
    train_size: int = 2000,
    val_size: int = 1000,
    *,
    seed: int = 0,
    resolution: int | None = None,
    in_chans: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalised ``float32 (N, C, H, W)`` images and ``int64`` labels: ``train_size`` training and
    ``val_size`` validation examples, disjoint seeded subsets of the *training* split (a search
    never looks at the test split: it is kept for the exported model), converted to ``in_chans``
    channels and ``resolution`` when given."""
    from hwnas.datasets import load_data

    if train_size < 1 or val_size < 1:
        raise ConfigError("train_size and val_size must be positive")
    train_all = load_data(dataset, "train", resolution=resolution, in_chans=in_chans)
    if train_size + val_size > len(train_all):
        raise ConfigError(
            f"{dataset}: {train_size} training + {val_size} validation examples asked for, "
            f"the training split holds {len(train_all)}"
        )
    order = np.random.default_rng(seed).permutation(len(train_all))
    xtr, ytr = train_all.select(np.sort(order[:train_size])).arrays()
    xval, yval = train_all.select(np.sort(order[train_size : train_size + val_size])).arrays()
    return np.ascontiguousarray(xtr), np.ascontiguousarray(ytr), np.ascontiguousarray(xval), np.ascontiguousarray(yval)

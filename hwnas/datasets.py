"""Small offline datasets shared by the packages' tests, benchmarks and proxy training.

* **Fashion-MNIST** (60k/10k, 28×28 grey, 10 classes) from the Debian package
  ``dataset-fashion-mnist`` (gzipped IDX files in ``/usr/share/datasets/fashion-mnist``; the
  ``HWNAS_FASHION_MNIST_DIR`` environment variable or ``root=`` points elsewhere).
* **UCI digits** (1,797 images, 8×8 grey, 10 classes) shipped inside scikit-learn, split
  deterministically (stratified) into train and test.

Loaders return numpy arrays; :func:`load_dataset` returns an :class:`ArrayDataset` with
normalised ``float32`` images shaped ``(N, 1, H, W)``, ready for a CNN, convertible to a torch
``TensorDataset``. Nothing is downloaded. This module needs numpy (torch only for ``to_torch``),
so it is not imported by ``hwnas/__init__``.
"""
from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from hwnas.errors import HwnasError, UnknownNameError

if TYPE_CHECKING:  # pragma: no cover
    from torch.utils.data import TensorDataset

__all__ = [
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "ArrayDataset",
    "DatasetError",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "read_idx",
]

Split = Literal["train", "test"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "HWNAS_FASHION_MNIST_DIR"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class DatasetError(HwnasError):
    """A dataset is missing, unreadable or asked for with bad arguments."""


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the format of MNIST and Fashion-MNIST."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise DatasetError(f"{p}: no such file") from None
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{p}: cannot read ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetError(f"{p}: not an IDX file")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise DatasetError(f"{p}: truncated IDX file ({len(data) - header} bytes of data, expected {expected})")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise DatasetError(f"unknown split {split!r} (known: train, test)")


def _fashion_root(root: str | os.PathLike[str] | None) -> Path:
    if root is not None:
        return Path(root)
    env = os.environ.get(FASHION_MNIST_ENV)
    return Path(env) if env else FASHION_MNIST_DIR


@functools.lru_cache(maxsize=4)
def _load_fashion_cached(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_name, labels_name = _FASHION_FILES[split]
    base = Path(root)
    if not (base / images_name).is_file() or not (base / labels_name).is_file():
        raise DatasetError(
            f"Fashion-MNIST not found in {base}: install the Debian package dataset-fashion-mnist "
            f"(apt-get install dataset-fashion-mnist) or set {FASHION_MNIST_ENV}"
        )
    images = read_idx(base / images_name)
    labels = read_idx(base / labels_name)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(f"{base}: Fashion-MNIST {split} files have inconsistent shapes {images.shape}, {labels.shape}")
    images.setflags(write=False)
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def load_fashion_mnist(split: Split = "train", *, root: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images ``uint8 (N, 28, 28)`` and labels ``int64 (N,)`` (read-only arrays).

    Raises :class:`DatasetError` naming the Debian package when the files are absent.
    """
    _check_split(split)
    return _load_fashion_cached(str(_fashion_root(root)), split)


def load_digits(split: Split = "train", *, test_fraction: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """UCI digits from scikit-learn: images ``float32 (N, 8, 8)`` in ``[0, 16]``, labels ``int64``.

    The split is stratified and deterministic for a given ``seed`` and ``test_fraction``.
    """
    _check_split(split)
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction}")
    train_idx, test_idx, images, labels = _digits_split(test_fraction, seed)
    idx = train_idx if split == "train" else test_idx
    return images[idx], labels[idx]


@functools.lru_cache(maxsize=8)
def _digits_split(test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        raise DatasetError("the digits dataset needs scikit-learn (pip install scikit-learn)") from None
    bunch = _sk_load_digits()
    images = np.asarray(bunch.images, dtype=np.float32)
    labels = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        test.append(idx[: int(round(len(idx) * test_fraction))])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx, images, labels


@dataclass(frozen=True)
class ArrayDataset:
    """Normalised images ``float32 (N, C, H, W)`` and labels ``int64 (N,)`` held in memory."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    mean: float
    std: float

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or len(self.images) != len(self.labels):
            raise DatasetError(f"{self.name}: images must be (N, C, H, W) with one label each")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, n: int, *, seed: int = 0) -> ArrayDataset:
        """A random (seeded) subset of ``n`` examples (all of them if ``n >= len``)."""
        if n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return ArrayDataset(self.name, self.split, self.images[idx], self.labels[idx], self.num_classes, self.mean, self.std)

    def to_torch(self) -> TensorDataset:
        """A ``torch.utils.data.TensorDataset`` of ``(image, label)`` tensors (memory shared)."""
        import torch
        from torch.utils.data import TensorDataset

        return TensorDataset(torch.from_numpy(np.ascontiguousarray(self.images)), torch.from_numpy(np.ascontiguousarray(self.labels)))


FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.28604, 0.35302
"""Pixel mean and standard deviation (in [0, 1]) of the Fashion-MNIST train split."""


@functools.lru_cache(maxsize=8)
def _stats(name: str, root: str | None) -> tuple[float, float]:
    if name == "fashion_mnist":
        return FASHION_MNIST_MEAN, FASHION_MNIST_STD  # measured once; recomputing means reading 47M pixels
    raw, _ = _raw(name, "train", root)
    return float(raw.mean()), float(raw.std())


def _raw(name: str, split: str, root: str | None) -> tuple[np.ndarray, np.ndarray]:
    if name == "fashion_mnist":
        images, labels = load_fashion_mnist(split, root=root)  # type: ignore[arg-type]
        return images.astype(np.float32) / 255.0, labels
    images, labels = load_digits(split)  # type: ignore[arg-type]
    return images / 16.0, labels


DATASETS: dict[str, int] = {"fashion_mnist": 10, "digits": 10}
"""Known dataset names and their number of classes."""


def load_dataset(
    name: str, split: Split = "train", *, normalize: bool = True, limit: int | None = None, root: str | None = None
) -> ArrayDataset:
    """A dataset by name (``"fashion_mnist"``, ``"digits"``) as normalised ``(N, 1, H, W)`` arrays.

    Pixels are scaled to ``[0, 1]`` and, with ``normalize``, standardised with the train split's
    mean and standard deviation (fixed constants for Fashion-MNIST). ``limit`` keeps the first ``limit`` examples.
    """
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r} (known: {', '.join(sorted(DATASETS))})")
    _check_split(split)
    images, labels = _raw(name, split, root)
    mean, std = _stats(name, root) if normalize else (0.0, 1.0)
    x = ((images - mean) / std).astype(np.float32)[:, None]
    y = np.array(labels, dtype=np.int64)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return ArrayDataset(name, split, x, y, DATASETS[name], mean, std)

"""Labelled image data sets: the built-in offline ones and your own, as one type.

A data set is named by a *spec* string:

* ``fashion-mnist`` (60k/10k, 28×28 grey, 10 classes) from the Debian package
  ``dataset-fashion-mnist`` (gzipped IDX files in ``/usr/share/datasets/fashion-mnist``; the
  ``HWNAS_FASHION_MNIST_DIR`` environment variable or ``root=`` points elsewhere);
* ``digits`` (UCI digits, 1,797 images, 8×8 grey, 10 classes) shipped inside scikit-learn, split
  deterministically (stratified) into train and test;
* a folder in torchvision ``ImageFolder`` layout: ``train/`` and ``val/`` or ``test/``, one
  subfolder per class, images of any size, grey or RGB. Images are decoded lazily (PIL), streamed
  through a ``torch.utils.data.DataLoader`` with workers, never loaded whole;
* an ``.npz`` file holding ``x_train, y_train, x_test, y_test`` (images ``(N, H, W)``,
  ``(N, H, W, C)`` or ``(N, C, H, W)`` with C = 1 or 3; optionally ``class_names``), read without
  unpickling.

:func:`load_data` returns an :class:`ImageData`: normalised ``float32 (C, H, W)`` images and
``int64`` labels, held in memory (``images``) or streamed from files. Channels, classes and the
per-channel normalisation are inferred (mean and standard deviation of the train split; fixed
constants for Fashion-MNIST); ``resolution`` resizes every image, ``in_chans`` converts grey and
RGB. :func:`data_info` records all of it as JSON, and :func:`load_data_like` loads a split again
from such a record with the recorded normalisation (a checkpoint's data, for evaluation and export).
:func:`split_validation` carves a stratified validation set out of a training set.

The numpy helpers (:func:`load_fashion_mnist`, :func:`load_digits`, :func:`load_dataset`) are thin
views of the same loaders. Nothing is downloaded. This module needs torch, so it is not imported
by ``hwnas/__init__``.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from hwnas.errors import HwnasError, UnknownNameError, one_line

__all__ = [
    "DATASETS",
    "DATA_ALIASES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "ArrayDataset",
    "DatasetError",
    "ImageData",
    "data_info",
    "default_workers",
    "load_data",
    "load_data_like",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "read_idx",
    "split_validation",
]

Split = Literal["train", "test"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "HWNAS_FASHION_MNIST_DIR"
WORKERS_ENV = "HWNAS_DATA_WORKERS"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860405969887955, 0.35302424451492254
"""Pixel mean and standard deviation (in [0, 1]) of the Fashion-MNIST train split (measured once,
in float64; recomputing means reading 47M pixels)."""

DATA_ALIASES = {
    "fashion-mnist": "fashion_mnist",
    "fashion_mnist": "fashion_mnist",
    "fmnist": "fashion_mnist",
    "digits": "digits",
}
"""Spellings of the built-in data sets and their canonical names."""

DATASETS: dict[str, int] = {"fashion_mnist": 10, "digits": 10}
"""Built-in data set names and their number of classes."""

STATS_SAMPLE = 10_000
"""Folders and ``.npz`` files: the normalisation is measured on at most this many training images
(a seeded sample)."""

_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_KNOWN = "fashion-mnist, digits, an ImageFolder root (train/ and val/ or test/) or an .npz file"


class DatasetError(HwnasError):
    """A dataset is missing, unreadable, malformed or asked for with bad arguments."""


# ------------------------------------------------------------------------------------------------
# raw built-in data (numpy)
# ------------------------------------------------------------------------------------------------
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
    dtype = _IDX_DTYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise DatasetError(f"{p}: truncated IDX file ({len(data) - header} bytes of data, expected {expected})")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _check_split(split: str) -> Split:
    """``split``, once it is one of the known splits."""
    if split == "train":
        return "train"
    if split == "test":
        return "test"
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
        raise DatasetError(
            f"{base}: Fashion-MNIST {split} files have inconsistent shapes {images.shape}, {labels.shape}"
        )
    images.setflags(write=False)
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def load_fashion_mnist(
    split: Split = "train", *, root: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
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


@functools.lru_cache(maxsize=2)
def _digits_stats() -> tuple[float, float]:
    raw, _ = load_digits("train")
    x = raw / 16.0
    return float(x.mean()), float(x.std())


# ------------------------------------------------------------------------------------------------
# the data set type
# ------------------------------------------------------------------------------------------------
def default_workers() -> int:
    """DataLoader worker processes for streamed data: ``$HWNAS_DATA_WORKERS``, else one fewer
    than the CPUs (at most 8)."""
    env = os.environ.get(WORKERS_ENV)
    if env:
        try:
            return max(0, int(env))
        except ValueError:
            raise DatasetError(f"{WORKERS_ENV}={env!r} is not a whole number") from None
    return max(0, min(8, (os.cpu_count() or 1) - 1))


@dataclass(frozen=True, eq=False)
class ImageData(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """Normalised images ``float32 (C, H, W)`` and labels ``int64`` of one split.

    In memory (``images`` is an ``(N, C, H, W)`` tensor) or streamed (``files`` lists one image
    file per label; ``images`` is ``None`` and images are decoded on demand, through DataLoader
    workers by :meth:`loader` and :meth:`batches`). Either way it is a map-style torch dataset:
    ``data[i]`` is ``(image, label)``. ``mean`` / ``std`` are the per-channel normalisation applied
    (pixels scaled to [0, 1] first; none given: 0 and 1), ``class_names`` the classes' names (none
    given: their numbers), ``spec`` the data set as it was named (none given: ``name``).
    """

    name: str
    split: str
    images: torch.Tensor | None
    labels: torch.Tensor
    num_classes: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    class_names: tuple[str, ...] = ()
    spec: str = ""
    files: tuple[str, ...] | None = None
    shape: tuple[int, int, int] | None = None
    """``(C, H, W)`` of streamed images (in-memory data take it from ``images``); set by then."""
    resize: bool = False
    """Streamed images: resize to ``shape`` (else an image of another size is an error)."""
    workers: int | None = field(default=None, compare=False)
    """DataLoader worker processes that decode streamed images (``None``: :func:`default_workers`)."""

    def __post_init__(self) -> None:
        labels = self.labels if isinstance(self.labels, torch.Tensor) else torch.as_tensor(np.asarray(self.labels))
        object.__setattr__(self, "labels", labels.long())
        if (self.images is None) == (self.files is None):
            raise DatasetError(f"{self.name}: a data set holds either images or image files")
        if self.images is not None:
            if self.images.dim() != 4 or len(self.images) != len(self.labels):
                raise DatasetError(f"{self.name}: images must be (N, C, H, W) with one label each")
            c, h, w = (int(s) for s in self.images.shape[1:])
        else:
            if self.shape is None or len(self.shape) != 3 or self.files is None or len(self.files) != len(self.labels):
                raise DatasetError(f"{self.name}: streamed data needs a (C, H, W) shape and one label per file")
            c, h, w = (int(s) for s in self.shape)
        object.__setattr__(self, "shape", (c, h, w))
        mean = tuple(float(v) for v in self.mean) if self.mean else (0.0,) * c
        std = tuple(float(v) for v in self.std) if self.std else (1.0,) * c
        if len(mean) != c or len(std) != c:
            raise DatasetError(f"{self.name}: normalisation has {len(mean)} channels, images {c}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        names = self.class_names or range(self.num_classes)
        object.__setattr__(self, "class_names", tuple(str(n) for n in names))
        object.__setattr__(self, "spec", self.spec or self.name)

    # -- basics ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        assert self.shape is not None  # set by __post_init__
        return self.shape

    @property
    def streamed(self) -> bool:
        """Whether images are decoded from files on demand (``images`` is ``None``)."""
        return self.images is None

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.images is not None:
            return self.images[i], int(self.labels[i])
        return self._decode(int(i)), int(self.labels[i])

    def _decode(self, i: int) -> torch.Tensor:
        assert self.files is not None  # only streamed data are decoded
        x = _read_image(self.files[i], self.input_shape, self.resize)
        return _normalise(x, self.mean, self.std)

    # -- batches ---------------------------------------------------------------------------------
    def take(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and labels at ``indices`` (decoded in this process when streamed)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        if self.images is not None:
            return self.images[idx], self.labels[idx]
        if len(idx) == 0:
            return torch.empty((0, *self.input_shape)), self.labels[idx]
        return torch.stack([self._decode(int(i)) for i in idx]), self.labels[idx]

    def loader(
        self, index_batches: Iterable[Sequence[int] | torch.Tensor], *, workers: int | None = None
    ) -> Generator[tuple[torch.Tensor, torch.Tensor], None, None]:
        """``(images, labels)`` for each list of indices, in order. Streamed data are decoded by a
        ``DataLoader`` with ``workers`` processes (default :func:`default_workers`) reading ahead;
        closing the generator early stops them."""
        if self.images is not None:
            return (self.take(idx) for idx in index_batches)
        n_workers = (
            workers if workers is not None else (self.workers if self.workers is not None else default_workers())
        )
        batches = [torch.as_tensor(b, dtype=torch.long).tolist() for b in index_batches]
        return _stream(self, batches, n_workers)

    def batches(
        self, batch_size: int, *, workers: int | None = None
    ) -> Generator[tuple[torch.Tensor, torch.Tensor], None, None]:
        """All examples in order, ``batch_size`` at a time, the last batch possibly smaller (evaluation)."""
        if batch_size < 1:
            raise DatasetError(f"batch size must be positive, got {batch_size}")
        if self.images is not None:
            return (
                (self.images[i : i + batch_size], self.labels[i : i + batch_size])
                for i in range(0, len(self), batch_size)
            )
        return self.loader(
            (range(i, min(i + batch_size, len(self))) for i in range(0, len(self), batch_size)), workers=workers
        )

    # -- views -----------------------------------------------------------------------------------
    def select(self, indices: Sequence[int] | np.ndarray | torch.Tensor, *, split: str | None = None) -> ImageData:
        """The examples at ``indices`` (in that order), same normalisation and classes."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        files = None if self.files is None else tuple(self.files[int(i)] for i in idx)
        images = None if self.images is None else self.images[idx]
        return replace(self, split=split or self.split, images=images, labels=self.labels[idx], files=files)

    def head(self, n: int | None) -> ImageData:
        """The first ``n`` examples (all of them for ``None`` or ``n >= len``)."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise DatasetError(f"{self.name}: a limit must be positive, got {n}")
        return self.select(range(n))

    def subset(self, n: int, *, seed: int = 0) -> ImageData:
        """A random (seeded) subset of ``n`` examples in their original order (all if ``n >= len``)."""
        if n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return self.select(idx)

    def in_memory(self, *, workers: int | None = None) -> ImageData:
        """The same examples held in memory (streamed data decoded once, through the DataLoader)."""
        if self.images is not None:
            return self
        parts = [x for x, _ in self.batches(512, workers=workers)]
        images = torch.cat(parts) if parts else torch.empty((0, *self.input_shape))
        return replace(self, images=images, files=None, resize=False)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Images ``float32 (N, C, H, W)`` and labels ``int64 (N,)`` as numpy arrays."""
        images, labels = self.tensors()
        return images.numpy(), labels.numpy()

    def to_arrays(self) -> ArrayDataset:
        """The numpy view (:class:`ArrayDataset`) of these examples."""
        x, y = self.arrays()
        return ArrayDataset(
            self.name,
            self.split,
            x,
            y,
            self.num_classes,
            self.mean,
            self.std,
            self.class_names,
            self,
        )

    def to_torch(self) -> torch.utils.data.TensorDataset:
        """A ``torch.utils.data.TensorDataset`` of ``(image, label)`` tensors."""
        return torch.utils.data.TensorDataset(*self.tensors())

    def tensors(self, *, workers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """All images ``(N, C, H, W)`` and labels ``(N,)`` as tensors (streamed data decoded once)."""
        data = self.in_memory(workers=workers)
        assert data.images is not None  # held in memory
        return data.images, data.labels


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """A numpy view of an :class:`ImageData` (held in memory): images ``float32 (N, C, H, W)``,
    labels ``int64 (N,)``."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = ()
    data: ImageData | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, n: int, *, seed: int = 0) -> ArrayDataset:
        """A random (seeded) subset of ``n`` examples (all of them if ``n >= len``)."""
        return self if n >= len(self) else self._image_data().subset(n, seed=seed).to_arrays()

    def to_torch(self) -> torch.utils.data.TensorDataset:
        """A ``torch.utils.data.TensorDataset`` of ``(image, label)`` tensors (memory shared)."""
        return torch.utils.data.TensorDataset(
            torch.from_numpy(np.ascontiguousarray(self.images)), torch.from_numpy(np.ascontiguousarray(self.labels))
        )

    def _image_data(self) -> ImageData:
        if self.data is not None:
            return self.data
        return ImageData(
            self.name,
            self.split,
            torch.from_numpy(np.ascontiguousarray(self.images)),
            torch.from_numpy(np.ascontiguousarray(self.labels)),
            self.num_classes,
            self.mean,
            self.std,
            self.class_names,
        )


# ------------------------------------------------------------------------------------------------
# decoding and streaming
# ------------------------------------------------------------------------------------------------
def _normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel of ``(..., C, H, W)`` pixels in [0, 1]."""
    if len(set(mean)) == 1 and len(set(std)) == 1:  # one scalar: the arithmetic of the old loaders
        return (x - mean[0]) / std[0]
    m = torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(-1, 1, 1)
    return (x - m) / s


def _open_image(path: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file vanished") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"{path}: cannot read image ({one_line(exc)})") from None
    return img


def _read_image(path: str, shape: tuple[int, int, int], resize: bool) -> torch.Tensor:
    """One image file as ``float32 (C, H, W)`` in [0, 1]: converted to grey (C = 1) or RGB (C = 3),
    resized to ``H×W`` when ``resize``."""
    from PIL import Image

    c, h, w = shape
    img = _open_image(path)
    mode = "L" if c == 1 else "RGB"
    scale = 255.0
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N") and mode == "L":
        img, scale = img.convert("I"), 65535.0
    elif img.mode == "F" and mode == "L":
        scale = 1.0
    elif img.mode != mode:
        if img.mode == "P":  # palette (possibly with transparency): through RGBA, as PIL advises
            img = img.convert("RGBA")
        img = img.convert(mode)
    if img.size != (w, h):
        if not resize:
            raise DatasetError(
                f"{path}: image is {img.size[1]}x{img.size[0]}, the others {h}x{w} (give a resolution to resize them)"
            )
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    x = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
    return x / scale if scale != 1.0 else x


def _worker_message(exc: BaseException) -> str:
    """The original message of an error raised in a DataLoader worker (torch re-raises it with
    the worker's traceback appended)."""
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    if len(lines) <= 1:
        return str(exc)
    last = lines[-1]
    marker = "DatasetError: "
    return last.split(marker, 1)[1] if marker in last else last


def _stream(
    data: ImageData, batches: list[list[int]], workers: int
) -> Generator[tuple[torch.Tensor, torch.Tensor], None, None]:
    from torch.utils.data import DataLoader

    if not batches:
        return
    # its own generator: a DataLoader otherwise draws its workers' base seed from the global torch RNG,
    # which training runs (and resumed runs) must find exactly as they left it
    loader: DataLoader[tuple[torch.Tensor, int]] = DataLoader(
        data,
        batch_sampler=batches,
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),
        prefetch_factor=4 if workers > 0 else None,
        persistent_workers=False,
    )
    try:
        for x, y in loader:
            yield x, y.long()
    except DatasetError as exc:
        raise DatasetError(_worker_message(exc)) from None


# ------------------------------------------------------------------------------------------------
# folders
# ------------------------------------------------------------------------------------------------
def _split_dir(root: Path, split: str) -> Path:
    if split == "train":
        return root / "train"
    for name in ("val",) if split == "val" else ("test", "val"):
        if (root / name).is_dir():
            return root / name
    raise DatasetError(
        f"{root}: no {'val' if split == 'val' else 'test/ or val'}/ folder next to train/ "
        "(an ImageFolder data set has train/ and val/ or test/, one subfolder per class)"
    )


def _signature(folder: Path) -> tuple[tuple[str, int], ...]:
    """Names and modification times of a split folder and its class folders (the cache key: a
    file added or removed changes its folder's time)."""
    try:
        entries = [(folder.name, folder.stat().st_mtime_ns)]
        entries += sorted(
            (e.name, e.stat().st_mtime_ns) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")
        )
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list ({one_line(exc)})") from None
    return tuple(entries)


def _scan_split(folder: Path) -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
    """Class names (sorted subfolders), files and labels of one split folder, torchvision's way."""
    return _scan_cached(str(folder), _signature(folder))


@functools.lru_cache(maxsize=16)
def _scan_cached(folder: str, signature: tuple) -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    base = Path(folder)
    classes = tuple(name for name, _ in signature[1:])
    if not classes:
        raise DatasetError(f"{base}: no class folders (ImageFolder layout: one subfolder of images per class)")
    samples = make_dataset(
        str(base), {c: i for i, c in enumerate(classes)}, extensions=IMG_EXTENSIONS, allow_empty=True
    )
    # ordered by file name across classes (ties by class), so that a data set written out with
    # numbered names (benchmarks/write_image_folder.py) keeps its original order, and a limit keeps its first images
    samples.sort(key=lambda s: (os.path.basename(s[0]), s[1], s[0]))
    counts = np.bincount(np.asarray([s[1] for s in samples], dtype=np.int64), minlength=len(classes))
    for c, n in zip(classes, counts):
        if n == 0:
            raise DatasetError(f"{base / c}: empty class folder (no image files: {', '.join(IMG_EXTENSIONS[:4])}, ...)")
    return classes, tuple(s[0] for s in samples), tuple(int(s[1]) for s in samples)


def _folder_split(root: Path, split: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
    train_classes, files, labels = _scan_split(root / "train")
    if split == "train":
        return train_classes, files, labels
    folder = _split_dir(root, split)
    classes, files, labels = _scan_split(folder)
    if classes != train_classes:
        missing = sorted(set(train_classes) - set(classes))
        extra = sorted(set(classes) - set(train_classes))
        what = "; ".join(
            p
            for p in (
                f"missing {', '.join(missing)}" if missing else "",
                f"not in train/: {', '.join(extra)}" if extra else "",
            )
            if p
        )
        raise DatasetError(f"{folder}: classes differ from train/'s ({what})")
    return classes, files, labels


def _folder_format(root: Path, in_chans: int | None, resolution: int | None) -> tuple[tuple[int, int, int], bool]:
    """``(C, H, W)`` and whether to resize: channels and size from a seeded sample of the train
    images (any colour image makes the set RGB) unless given."""
    train = root / "train"
    return _format_cached(str(train), _signature(train), in_chans, resolution)


@functools.lru_cache(maxsize=16)
def _format_cached(
    train: str, signature: tuple, in_chans: int | None, resolution: int | None
) -> tuple[tuple[int, int, int], bool]:
    from PIL import Image

    _, files, labels = _scan_cached(train, signature)
    first: dict[int, str] = {}
    for f, y in zip(files, labels):
        first.setdefault(y, f)
    rng = np.random.default_rng(0)
    sample = list(first.values()) + [files[i] for i in rng.choice(len(files), size=min(64, len(files)), replace=False)]
    sizes: dict[tuple[int, int], str] = {}
    colour = False
    for f in dict.fromkeys(sample):
        try:
            with Image.open(f) as img:
                sizes.setdefault(img.size, f)
                colour = colour or img.mode not in _GREY_MODES
        except (OSError, ValueError, SyntaxError) as exc:
            raise DatasetError(f"{f}: cannot read image ({one_line(exc)})") from None
    c = in_chans if in_chans is not None else (3 if colour else 1)
    if resolution is not None:
        return (c, resolution, resolution), True
    if len(sizes) > 1:
        ((w0, h0), f0), ((w1, h1), f1) = list(sizes.items())[:2]
        raise DatasetError(
            f"{f1}: image is {h1}x{w1}, {Path(f0).name} is {h0}x{w0} (give a resolution to resize them all)"
        )
    (w, h), f = next(iter(sizes.items()))
    if w != h:
        raise DatasetError(f"{f}: images are {h}x{w}, not square (give a resolution to resize them)")
    return (c, h, w), False


def _load_folder(
    spec: str,
    root: Path,
    split: str,
    resolution: int | None,
    in_chans: int | None,
    norm: tuple[tuple[float, ...], tuple[float, ...]] | None,
    limit: int | None,
) -> ImageData:
    if not (root / "train").is_dir():
        raise DatasetError(
            f"{root}: not an ImageFolder data set (no train/ folder; expected train/ and val/ or "
            "test/, one subfolder of images per class)"
        )
    classes, files, labels = _folder_split(root, split)
    shape, resize = _folder_format(root, in_chans, resolution)
    norm = _fit(norm, shape[0]) if norm is not None else _folder_stats(root, shape, resize)
    data = ImageData(
        spec,
        split,
        None,
        torch.tensor(labels, dtype=torch.long),
        len(classes),
        norm[0],
        norm[1],
        classes,
        spec,
        files,
        shape,
        resize,
    )
    _check_size(data)
    return data.head(limit)


def _folder_stats(root: Path, shape: tuple[int, int, int], resize: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    train = root / "train"
    return _stats_cached(str(train), _signature(train), shape, resize)


@functools.lru_cache(maxsize=16)
def _stats_cached(
    train: str, signature: tuple, shape: tuple[int, int, int], resize: bool
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    classes, files, labels = _scan_cached(train, signature)
    raw = ImageData(
        train, "train", None, torch.tensor(labels), len(classes), (), (), classes, train, files, shape, resize
    )
    _check_size(raw)
    idx = _stats_sample(len(raw))
    total = torch.zeros(shape[0], dtype=torch.float64)
    squares = torch.zeros(shape[0], dtype=torch.float64)
    count = 0
    for x, _ in raw.loader(idx[i : i + 256] for i in range(0, len(idx), 256)):
        x = x.double()
        total += x.sum((0, 2, 3))
        squares += (x * x).sum((0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    return _mean_std(total, squares, count)


def _stats_sample(n: int) -> list[int]:
    if n <= STATS_SAMPLE:
        return list(range(n))
    return sorted(np.random.default_rng(0).choice(n, size=STATS_SAMPLE, replace=False).tolist())


def _mean_std(total: torch.Tensor, squares: torch.Tensor, count: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean = total / count
    var = (squares / count - mean * mean).clamp_min(0.0)
    std = var.sqrt()
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant channel: no scaling
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


# ------------------------------------------------------------------------------------------------
# .npz files
# ------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _read_npz(path: str, mtime_ns: int, size: int) -> dict[str, np.ndarray]:  # noqa: ARG001 - cache key
    import zipfile

    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path}: not a readable .npz file (not a zip archive of arrays)")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            missing = [k for k in _NPZ_KEYS if k not in keys]
            if missing:
                raise DatasetError(f"{path}: .npz lacks {', '.join(missing)} (needs {', '.join(_NPZ_KEYS)})")
            out = {k: z[k] for k in (*_NPZ_KEYS, *(("class_names",) if "class_names" in keys else ()))}
    except DatasetError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DatasetError(
                f"{path}: holds object arrays, which would need unpickling (never done); save "
                "numeric arrays and class_names as a string array"
            ) from None
        raise DatasetError(f"{path}: cannot read .npz ({one_line(exc)})") from None
    except (OSError, EOFError, KeyError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({one_line(exc)})") from None
    return out


def _npz_images(path: str, key: str, x: np.ndarray) -> torch.Tensor:
    """``(N, C, H, W)`` float32 pixels in [0, 1] (uint8 divided by 255, other types as stored)."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
        raise DatasetError(
            f"{path}: {key} has shape {x.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3"
        )
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DatasetError(f"{path}: {key} has dtype {x.dtype}, not numbers")
    t = torch.from_numpy(np.ascontiguousarray(x).astype(np.float32, copy=False))
    if x.dtype == np.uint8:
        t = t / 255.0
    if not bool(torch.isfinite(t).all()):
        raise DatasetError(f"{path}: {key} holds NaN or infinite values")
    return t


def _npz_labels(path: str, key: str, y: np.ndarray, n_images: int, num_classes: int | None) -> torch.Tensor:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetError(f"{path}: {key} has shape {y.shape}; expected one integer label per image")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
            raise DatasetError(f"{path}: {key} holds non-integer labels ({y.dtype})")
    if len(y) != n_images:
        raise DatasetError(f"{path}: {len(y)} labels in {key} for {n_images} images")
    y = y.astype(np.int64)
    if len(y) and int(y.min()) < 0:
        raise DatasetError(f"{path}: {key} holds label {int(y.min())}, outside 0..{(num_classes or 1) - 1}")
    if num_classes is not None and len(y) and int(y.max()) >= num_classes:
        raise DatasetError(
            f"{path}: {key} holds label {int(y.max())}, outside 0..{num_classes - 1} ({num_classes} classes)"
        )
    return torch.from_numpy(y)


@functools.lru_cache(maxsize=4)
def _npz_split(path: str, mtime_ns: int, size: int, split: str) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    z = _read_npz(path, mtime_ns, size)
    names = None
    if "class_names" in z:
        cn = z["class_names"]
        if cn.ndim != 1 or not len(cn):
            raise DatasetError(f"{path}: class_names must be a non-empty 1-D array of names")
        names = tuple(str(v) for v in cn.tolist())
    x_train = _npz_images(path, "x_train", z["x_train"])
    y_train = _npz_labels(path, "y_train", z["y_train"], len(x_train), len(names) if names else None)
    if names is None:
        names = tuple(str(i) for i in range(int(y_train.max()) + 1 if len(y_train) else 0))
    if split == "train":
        return x_train, y_train, names
    x_test = _npz_images(path, "x_test", z["x_test"])
    y_test = _npz_labels(path, "y_test", z["y_test"], len(x_test), len(names))
    if x_test.shape[1:] != x_train.shape[1:]:
        raise DatasetError(f"{path}: x_test images are {tuple(x_test.shape[1:])}, x_train's {tuple(x_train.shape[1:])}")
    return x_test, y_test, names


def _load_npz(
    spec: str,
    path: Path,
    split: str,
    resolution: int | None,
    in_chans: int | None,
    norm: tuple[tuple[float, ...], tuple[float, ...]] | None,
    limit: int | None,
) -> ImageData:
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    x, y, names = _npz_split(*key, split)
    x = _convert(x, in_chans, resolution)
    if x.shape[2] != x.shape[3]:
        raise DatasetError(
            f"{path}: images are {x.shape[2]}x{x.shape[3]}, not square (give a resolution to resize them)"
        )
    norm = _fit(norm, x.shape[1]) if norm is not None else _npz_stats(*key, in_chans, resolution)
    data = ImageData(spec, split, _normalise(x, *norm), y, len(names), norm[0], norm[1], names, spec)
    _check_size(data)
    return data.head(limit)


@functools.lru_cache(maxsize=4)
def _npz_stats(
    path: str, mtime_ns: int, size: int, in_chans: int | None, resolution: int | None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x, _, _ = _npz_split(path, mtime_ns, size, "train")
    x = _convert(x[torch.as_tensor(_stats_sample(len(x)))], in_chans, resolution).double()
    return _mean_std(x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), x.shape[0] * x.shape[2] * x.shape[3])


# ------------------------------------------------------------------------------------------------
# in-memory conversion
# ------------------------------------------------------------------------------------------------
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, PIL's RGB -> L


def _convert(x: torch.Tensor, in_chans: int | None, resolution: int | None) -> torch.Tensor:
    """``(N, C, H, W)`` pixels converted to ``in_chans`` channels and resized to ``resolution``²
    (bilinear, antialiased when shrinking), in chunks to bound memory."""
    c = x.shape[1]
    if in_chans is not None and in_chans != c:
        if c == 1:
            x = x.expand(-1, in_chans, -1, -1)
        else:
            x = (x * torch.tensor(_LUMA, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if resolution is not None and tuple(x.shape[2:]) != (resolution, resolution):
        import torch.nn.functional as F

        x = (
            torch.cat(
                [
                    F.interpolate(
                        x[i : i + 4096].float(),
                        size=(resolution, resolution),
                        mode="bilinear",
                        align_corners=False,
                        antialias=True,
                    )
                    for i in range(0, len(x), 4096)
                ]
            )
            if len(x)
            else x.new_empty((0, x.shape[1], resolution, resolution))
        )
    return x.contiguous()


def _load_builtin(
    key: str,
    split: str,
    resolution: int | None,
    in_chans: int | None,
    norm: tuple[Sequence[float], Sequence[float]] | None,
    normalize: bool,
    root: str | None,
    limit: int | None,
) -> ImageData:
    known = _check_split(split)
    names: tuple[str, ...]
    if key == "fashion_mnist":
        raw, labels = load_fashion_mnist(known, root=root)
        if limit is not None:
            raw, labels = raw[:limit], labels[:limit]
        x = torch.from_numpy(raw.astype(np.float32)) / 255.0
        mean, std, names = FASHION_MNIST_MEAN, FASHION_MNIST_STD, FASHION_MNIST_CLASSES
    else:
        raw, labels = load_digits(known)
        if limit is not None:
            raw, labels = raw[:limit], labels[:limit]
        x = torch.from_numpy(raw / 16.0)
        mean, std = _digits_stats()
        names = tuple(str(i) for i in range(10))
    x = _convert(x.unsqueeze(1), in_chans, resolution)
    c = x.shape[1]
    if norm is None:
        norm = ((mean,) * c, (std,) * c) if normalize else ((0.0,) * c, (1.0,) * c)
    spec = "fashion-mnist" if key == "fashion_mnist" else key
    return ImageData(
        key,
        split,
        _normalise(x, *norm).contiguous(),
        torch.from_numpy(np.array(labels, dtype=np.int64)),
        DATASETS[key],
        tuple(norm[0]),
        tuple(norm[1]),
        names,
        spec,
    )


# ------------------------------------------------------------------------------------------------
# public loaders
# ------------------------------------------------------------------------------------------------
def _check_size(data: ImageData) -> None:
    if len(data) < 2:
        raise DatasetError(
            f"{data.spec}: the {data.split} split holds {len(data)} image"
            f"{'' if len(data) == 1 else 's'}; a data set needs at least 2"
        )
    if data.split == "train" and data.num_classes < 2:
        raise DatasetError(f"{data.spec}: {data.num_classes} class; a classification data set needs at least 2")


def load_data(
    name_or_path: str,
    split: str,
    limit: int | None = None,
    *,
    resolution: int | None = None,
    in_chans: int | None = None,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    normalize: bool = True,
    root: str | None = None,
) -> ImageData:
    """One split (``train`` or ``test``; folders also ``val``) of a data set named by a spec.

    ``limit`` keeps the first examples (a folder's files are ordered by name across classes, ties
    by class). ``resolution`` resizes every image to a square of that
    side, ``in_chans`` (1 or 3) converts grey and RGB; by default both come from the images.
    ``normalization`` (per-channel ``(mean, std)``) replaces the inferred one (the train split's;
    fixed for Fashion-MNIST), ``normalize=False`` keeps pixels in [0, 1]. ``root``: where the
    Fashion-MNIST files lie. Bad data raise one-line :class:`DatasetError` s.
    """
    if not isinstance(name_or_path, str) or not name_or_path:
        raise DatasetError(f"a data set is {_KNOWN}; got {name_or_path!r}")
    if resolution is not None and (not isinstance(resolution, int) or resolution < 1):
        raise DatasetError(f"resolution must be a positive number of pixels, got {resolution!r}")
    if in_chans not in (None, 1, 3):
        raise DatasetError(f"in_chans must be 1 (grey) or 3 (RGB), got {in_chans!r}")
    if limit is not None and limit < 1:
        raise DatasetError(f"{name_or_path}: a limit must be positive, got {limit}")
    if split not in ("train", "test", "val"):
        raise DatasetError(f"unknown split {split!r} (known: train, test)")
    if not normalize and normalization is None:
        normalization = ((0.0,) * 3, (1.0,) * 3)  # trimmed to the channels below
    norm = None
    if normalization is not None:
        norm = (tuple(float(v) for v in normalization[0]), tuple(float(v) for v in normalization[1]))
        if any(s <= 0 for s in norm[1]) or len(norm[0]) != len(norm[1]):
            raise DatasetError(f"{name_or_path}: normalisation needs one mean and one positive std per channel")
    key = DATA_ALIASES.get(name_or_path.lower())
    if key is not None:  # a built-in name wins over a folder of that name (write ./digits for the folder)
        if split == "val":
            raise DatasetError(f"unknown split 'val' for {name_or_path} (known: train, test)")
        c = in_chans if in_chans is not None else 1
        return _load_builtin(
            key, split, resolution, in_chans, None if norm is None else _fit(norm, c), normalize, root, limit
        )
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _load_folder(str(path.resolve()), path, split, resolution, in_chans, norm, limit)
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise DatasetError(f"{path}: not a data set (expected {_KNOWN})")
        return _load_npz(str(path.resolve()), path, split, resolution, in_chans, norm, limit)
    if os.sep in name_or_path or "." in name_or_path:
        raise DatasetError(f"{name_or_path}: no such file or folder (a data set is {_KNOWN})")
    raise UnknownNameError(f"unknown dataset {name_or_path!r} (known: {_KNOWN})")


def _fit(
    norm: tuple[tuple[float, ...], tuple[float, ...]], channels: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A given normalisation sized to the data's channels (one value for all channels is repeated)."""
    if len(norm[0]) == channels:
        return norm
    if len(set(norm[0])) == 1 and len(set(norm[1])) == 1:
        return (norm[0][:1] * channels, norm[1][:1] * channels)
    raise DatasetError(f"the normalisation has {len(norm[0])} channels, the images {channels}")


def data_info(data: ImageData) -> dict[str, Any]:
    """A JSON-able record of a data set (the spec as given, input shape, classes and normalisation),
    enough for :func:`load_data_like` to load any split again the same way."""
    return {
        "data": data.spec,
        "input_shape": list(data.input_shape),
        "num_classes": int(data.num_classes),
        "mean": list(data.mean),
        "std": list(data.std),
        "class_names": list(data.class_names),
    }


def load_data_like(
    info: Mapping[str, Any] | str, split: str, limit: int | None = None, *, spec: str | None = None
) -> ImageData:
    """``split`` of the data set a :func:`data_info` record describes, converted to its input shape
    and normalised with its recorded statistics (not recomputed). ``spec`` reads another data set
    in its place (the same classes are required). A plain spec string (records of older
    checkpoints) loads that data set as :func:`load_data` does."""
    if isinstance(info, str):
        return load_data(spec or info, split, limit)
    try:
        c, h, w = (int(v) for v in info["input_shape"])
        norm = (tuple(float(v) for v in info["mean"]), tuple(float(v) for v in info["std"]))
        names = tuple(str(n) for n in info["class_names"])
        source = spec or str(info["data"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"incomplete data record ({one_line(exc)}); expected the keys of data_info") from None
    data = load_data(source, split, limit, resolution=h, in_chans=c, normalization=norm)
    if data.class_names != names:
        if len(data.class_names) != len(names):
            raise DatasetError(f"{source}: {len(data.class_names)} classes, the recorded data set has {len(names)}")
        diff = next(i for i, (a, b) in enumerate(zip(data.class_names, names)) if a != b)
        raise DatasetError(
            f"{source}: class {diff} is {data.class_names[diff]!r}, the recorded data set's {names[diff]!r}"
        )
    return data


def split_validation(data: ImageData, fraction: float = 0.1, seed: int = 0) -> tuple[ImageData, ImageData]:
    """A deterministic, stratified split of a *training* set into ``(train, val)`` parts: in every
    class, a seeded ``fraction`` of the examples (at least one where the class has two) goes to
    ``val``. Both keep the training set's normalisation; each part keeps the original order."""
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"validation fraction must be in (0, 1), got {fraction}")
    if data.split == "test":
        raise DatasetError(f"{data.spec}: a validation set is carved from the train split, not the test split")
    labels = data.labels.numpy()
    rng = np.random.default_rng(_seed_of(seed, "split_validation"))
    val: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        val.append(idx[:k])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise DatasetError(f"{data.spec}: cannot carve a {fraction:.0%} validation set out of {len(labels)} images")
    return data.select(train_idx, split="train"), data.select(val_idx, split="val")


def _seed_of(seed: int, purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{purpose}:{int(seed)}".encode()).digest()[:8], "little")


def load_dataset(
    name: str, split: Split = "train", *, normalize: bool = True, limit: int | None = None, root: str | None = None
) -> ArrayDataset:
    """A data set (any :func:`load_data` spec) as numpy arrays: the :class:`ArrayDataset` view.

    Pixels are scaled to ``[0, 1]`` and, with ``normalize``, standardised with the train split's
    mean and standard deviation (fixed constants for Fashion-MNIST). ``limit`` keeps the first
    ``limit`` examples.
    """
    return load_data(name, split, limit, normalize=normalize, root=root).to_arrays()

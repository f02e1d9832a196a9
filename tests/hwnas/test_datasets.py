from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from hwnas.datasets import (
    FASHION_MNIST_DIR,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    ArrayDataset,
    DatasetError,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    read_idx,
)
from hwnas.errors import HwnasError, UnknownNameError


def _write_idx(path, array: np.ndarray, code: int = 0x08, compress: bool = True) -> None:  # noqa: ANN001
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if compress:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def _fake_fashion(root, n_train: int = 6, n_test: int = 4) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _write_idx(root / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))


def test_read_idx_round_trips_gzipped_and_plain_files(tmp_path) -> None:  # noqa: ANN001
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", a)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), a)
    b = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    _write_idx(tmp_path / "b.idx", b, code=0x0C, compress=False)
    out = read_idx(tmp_path / "b.idx")
    assert np.array_equal(out, b) and out.dtype == np.int32


def test_read_idx_rejects_bad_files(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "x").write_bytes(b"not an idx file")
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(tmp_path / "x")
    _write_idx(tmp_path / "t", np.zeros((4, 4), np.uint8), compress=False)
    (tmp_path / "t").write_bytes((tmp_path / "t").read_bytes()[:-3])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(tmp_path / "t")
    with pytest.raises(DatasetError, match="no such file"):
        read_idx(tmp_path / "missing.gz")


def test_missing_fashion_mnist_names_the_debian_package(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist") as info:
        load_fashion_mnist("train", root=tmp_path)
    assert isinstance(info.value, HwnasError) and "\n" not in str(info.value)


def test_fashion_mnist_from_a_given_root_and_the_environment(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    _fake_fashion(tmp_path)
    x, y = load_fashion_mnist("test", root=tmp_path)
    assert x.shape == (4, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    assert not x.flags.writeable
    monkeypatch.setenv("HWNAS_FASHION_MNIST_DIR", str(tmp_path))
    assert load_fashion_mnist("train")[0].shape == (6, 28, 28)
    ds = load_dataset("fashion_mnist", "train", root=str(tmp_path))
    assert ds.images.shape == (6, 1, 28, 28) and ds.mean == (FASHION_MNIST_MEAN,)
    expected = (load_fashion_mnist("train")[0][0] / 255.0 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
    assert np.allclose(ds.images[0, 0], expected, atol=1e-5)


@pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed"
)
def test_installed_fashion_mnist() -> None:
    x, y = load_fashion_mnist("test")
    assert x.shape == (10_000, 28, 28) and sorted(set(y.tolist())) == list(range(10))
    ds = load_dataset("fashion_mnist", "test", limit=100)
    assert len(ds) == 100 and ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert abs(float(x.mean()) / 255.0 - FASHION_MNIST_MEAN) < 0.01  # the test split looks like the train split


def test_digits_split_is_deterministic_stratified_and_disjoint() -> None:
    xtr, ytr = load_digits("train")
    xte, yte = load_digits("test")
    assert xtr.shape[1:] == (8, 8) and len(xtr) + len(xte) == 1797
    assert np.array_equal(load_digits("test")[1], yte)
    counts = np.bincount(yte, minlength=10)
    assert counts.min() >= 40 and counts.max() <= 50
    assert not np.array_equal(load_digits("test", seed=1)[1], yte)
    train_rows = {r.tobytes() for r in xtr.reshape(len(xtr), -1)}
    overlap = sum(r.tobytes() in train_rows for r in xte.reshape(len(xte), -1))
    assert overlap < 5  # the UCI set has a few duplicate images, nothing more


def test_load_dataset_normalises_and_converts_to_torch() -> None:
    ds = load_dataset("digits", "train")
    assert ds.images.dtype == np.float32 and ds.images.shape[1:] == (1, 8, 8)
    assert abs(float(ds.images.mean())) < 1e-4 and abs(float(ds.images.std()) - 1.0) < 1e-3
    raw = load_dataset("digits", "test", normalize=False)
    assert float(raw.images.min()) >= 0.0 and float(raw.images.max()) <= 1.0
    sub = ds.subset(10, seed=1)
    assert len(sub) == 10 and isinstance(sub, ArrayDataset)
    x, y = ds.to_torch()[0]
    assert tuple(x.shape) == (1, 8, 8) and int(y) == int(ds.labels[0])


def test_bad_names_and_splits() -> None:
    with pytest.raises(UnknownNameError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(DatasetError, match="unknown split 'val'"):
        load_digits("val")  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="test_fraction"):
        load_digits("train", test_fraction=1.5)


def test_image_data_fills_its_defaults_and_is_a_torch_dataset() -> None:
    import torch

    from hwnas.datasets import ImageData

    data = ImageData("toy", "train", torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]), 2)
    assert data.mean == (0.0, 0.0, 0.0) and data.std == (1.0, 1.0, 1.0)
    assert data.class_names == ("0", "1") and data.spec == "toy" and data.input_shape == (3, 4, 4)
    assert isinstance(data, torch.utils.data.Dataset) and int(data[1][1]) == 1
    images, labels = data.tensors()
    assert images.shape == (2, 3, 4, 4) and labels.tolist() == [0, 1]


def test_streamed_image_data_needs_a_chw_shape() -> None:
    import torch

    from hwnas.datasets import ImageData

    with pytest.raises(DatasetError, match=r"needs a \(C, H, W\) shape"):
        ImageData("toy", "train", None, torch.tensor([0]), 1, files=("a.png",), shape=(4, 4))  # type: ignore[arg-type]

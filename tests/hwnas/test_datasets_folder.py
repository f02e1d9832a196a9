"""Your own data: ImageFolder trees and .npz files as the one data set type, ImageData.

Folders are written with PIL into tmp_path (a few dozen tiny PNGs); everything runs in seconds.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import hwnas.datasets as hd
from hwnas.datasets import (
    FASHION_MNIST_DIR,
    FASHION_MNIST_MEAN,
    DatasetError,
    ImageData,
    data_info,
    load_data,
    load_data_like,
    load_dataset,
    split_validation,
)
from hwnas.errors import HwnasError, UnknownNameError
from tests.hwnas.folder_helpers import write_folder, write_image, write_npz


def _raw_pixels(path) -> np.ndarray:  # noqa: ANN001
    from PIL import Image

    return np.asarray(Image.open(path), dtype=np.float32) / 255.0


# -- folders ---------------------------------------------------------------------------------------
def test_grey_folder_of_mixed_sizes_is_resized_and_streamed(tmp_path) -> None:  # noqa: ANN001
    root = write_folder(tmp_path / "grey", size=[12, 20, 9], n_train=5, n_test=2, test_name="val")
    train = load_data(str(root), "train", resolution=16)
    assert train.streamed and train.images is None
    assert train.input_shape == (1, 16, 16) and len(train) == 15 and train.num_classes == 3
    assert train.class_names == ("ant", "bee", "cat") and train.labels.dtype == torch.int64
    assert sorted(train.labels.tolist()) == [0] * 5 + [1] * 5 + [2] * 5
    test = load_data(str(root), "test", resolution=16)  # test/ missing: val/ serves
    assert len(test) == 6 and test.mean == train.mean and test.std == train.std
    x, y = next(iter(test.batches(4)))
    assert x.shape == (4, 1, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_colour_is_inferred_and_in_chans_converts(tmp_path) -> None:  # noqa: ANN001
    rgb = write_folder(tmp_path / "rgb", rgb=True, size=10)
    grey = write_folder(tmp_path / "grey", size=10)
    assert load_data(str(rgb), "train").input_shape == (3, 10, 10)
    assert load_data(str(grey), "train").input_shape == (1, 10, 10)
    assert load_data(str(rgb), "train", in_chans=1).input_shape == (1, 10, 10)
    as_rgb = load_data(str(grey), "train", in_chans=3, normalize=False).in_memory()
    assert as_rgb.input_shape == (3, 10, 10)
    assert torch.equal(as_rgb.images[:, 0], as_rgb.images[:, 2])  # grey copied into every channel


def test_pixels_are_decoded_exactly_and_normalised_with_the_train_statistics(tmp_path) -> None:  # noqa: ANN001
    root = write_folder(tmp_path / "rgb", rgb=True, size=8, n_train=4, n_test=2)
    raw = load_data(str(root), "train", normalize=False).in_memory()
    assert isinstance(raw, ImageData) and raw.files is None and raw.images is not None
    files = load_data(str(root), "train").files
    assert torch.allclose(raw.images[0], torch.from_numpy(_raw_pixels(files[0])).permute(2, 0, 1))
    train = load_data(str(root), "train")
    pixels = raw.images.double()
    mean = pixels.mean((0, 2, 3))
    std = pixels.permute(1, 0, 2, 3).reshape(3, -1).std(1, unbiased=False)
    assert np.allclose(train.mean, mean.numpy()) and np.allclose(train.std, std.numpy())
    x = train.in_memory().images
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(x.permute(1, 0, 2, 3).reshape(3, -1).std(1, unbiased=False), torch.ones(3), atol=1e-4)
    test = load_data(str(root), "test").in_memory()  # the train split's statistics, not its own
    test_raw = load_data(str(root), "test", normalize=False).in_memory().images
    m, s = torch.tensor(train.mean).view(3, 1, 1), torch.tensor(train.std).view(3, 1, 1)
    assert torch.allclose(test.images, (test_raw - m) / s, atol=1e-5)


def test_data_info_is_json_and_load_data_like_reuses_the_recorded_normalisation(tmp_path) -> None:  # noqa: ANN001
    root = write_folder(tmp_path / "rgb", rgb=True, size=[10, 14])
    train = load_data(str(root), "train", resolution=12)
    info = json.loads(json.dumps(data_info(train)))
    assert info == {
        "data": str(root),
        "input_shape": [3, 12, 12],
        "num_classes": 3,
        "mean": list(train.mean),
        "std": list(train.std),
        "class_names": ["ant", "bee", "cat"],
    }
    test = load_data_like(info, "test")
    assert test.input_shape == (3, 12, 12) and test.mean == train.mean
    # the recorded statistics are used as they are, not measured again
    info["mean"], info["std"] = [0.5, 0.25, 0.0], [2.0, 1.0, 0.5]
    again = load_data_like(info, "test").in_memory().images
    raw = load_data(str(root), "test", resolution=12, normalize=False).in_memory().images
    expected = (raw - torch.tensor([0.5, 0.25, 0.0]).view(3, 1, 1)) / torch.tensor([2.0, 1.0, 0.5]).view(3, 1, 1)
    assert torch.allclose(again, expected, atol=1e-6)
    # a plain spec (a checkpoint from before data records) loads as load_data does
    assert torch.equal(load_data_like("digits", "test", 5).images, load_data("digits", "test", 5).images)


def test_load_data_like_refuses_other_classes(tmp_path) -> None:  # noqa: ANN001
    a = write_folder(tmp_path / "a", size=8)
    b = write_folder(tmp_path / "b", size=8, classes=("ant", "bee", "cow"))
    info = data_info(load_data(str(a), "train"))
    with pytest.raises(DatasetError, match=r"class 2 is 'cow', the recorded data set's 'cat'"):
        load_data_like(info, "test", spec=str(b))


def test_folder_files_are_ordered_by_name_across_classes_and_limit_keeps_the_first(tmp_path) -> None:  # noqa: ANN001
    for i, cls in enumerate(["b", "a", "b", "a", "a"]):
        write_image(tmp_path / "f" / "train" / cls / f"{i:02d}.png", np.full((6, 6), 50 * i))
        write_image(tmp_path / "f" / "test" / cls / f"{i:02d}.png", np.full((6, 6), 50 * i))
    d = load_data(str(tmp_path / "f"), "train")
    assert d.labels.tolist() == [1, 0, 1, 0, 0] and d.class_names == ("a", "b")
    assert [os.path.basename(f) for f in d.files] == ["00.png", "01.png", "02.png", "03.png", "04.png"]
    assert load_data(str(tmp_path / "f"), "train", 3).labels.tolist() == [1, 0, 1]


def test_streaming_decodes_in_dataloader_workers(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    root = write_folder(tmp_path / "g", size=8, n_train=6)
    data = load_data(str(root), "train")
    log = tmp_path / "pids.txt"
    real = hd._read_image

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(hd, "_read_image", spy)
    in_workers = list(data.batches(5, workers=2))
    pids = {int(p) for p in log.read_text().split()}
    assert os.getpid() not in pids and len(pids) >= 1
    in_process = list(data.batches(5, workers=0))
    assert [len(y) for _, y in in_workers] == [5, 5, 5, 3]
    for (x0, y0), (x1, y1) in zip(in_workers, in_process):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)
    idx = [[17, 2], [5]]
    assert [y.tolist() for _, y in data.loader(idx, workers=1)] == [
        data.labels[[17, 2]].tolist(),
        [int(data.labels[5])],
    ]


# -- .npz ------------------------------------------------------------------------------------------
def test_npz_layouts_classes_and_normalisation(tmp_path) -> None:  # noqa: ANN001
    nhwc = write_npz(tmp_path / "rgb.npz", shape=(8, 8, 3), class_names=np.array(["x", "y", "z"]))
    d = load_data(str(nhwc), "train")
    assert not d.streamed and d.input_shape == (3, 8, 8) and d.class_names == ("x", "y", "z") and len(d) == 12
    assert torch.allclose(d.images.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    raw = np.load(nhwc)["x_train"].astype(np.float32) / 255.0
    assert np.allclose(d.mean, raw.mean((0, 1, 2)), atol=1e-6)
    grey = write_npz(tmp_path / "grey.npz", shape=(10, 10))
    g = load_data(str(grey), "test", resolution=16)
    assert g.input_shape == (1, 16, 16) and g.class_names == ("0", "1", "2") and len(g) == 6
    x = np.random.default_rng(1).random((6, 3, 8, 8), dtype=np.float32)
    nchw = write_npz(tmp_path / "nchw.npz", x_train=x, x_test=x[:4], y_train=np.arange(6) % 2, y_test=np.arange(4) % 2)
    n = load_data(str(nchw), "train", 4)
    assert n.input_shape == (3, 8, 8) and n.num_classes == 2 and len(n) == 4
    assert load_data(str(nchw), "train", in_chans=1).input_shape == (1, 8, 8)


def test_builtins_keep_their_behaviour_and_convert_on_request() -> None:
    d = load_data("digits", "train", resolution=32, in_chans=3)
    assert d.input_shape == (3, 32, 32) and d.num_classes == 10 and len(d.mean) == 3
    plain = load_data("digits", "test")
    arrays = load_dataset("digits", "test")
    assert np.array_equal(arrays.images, plain.images.numpy()) and arrays.mean == plain.mean
    assert data_info(plain)["data"] == "digits"


@pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed"
)
def test_fashion_mnist_keeps_its_fixed_normalisation() -> None:
    d = load_data("fashion-mnist", "test", 50)
    raw, _ = hd.load_fashion_mnist("test")
    expected = (torch.from_numpy(raw[:50].astype("float32")) / 255.0 - FASHION_MNIST_MEAN) / hd.FASHION_MNIST_STD
    assert torch.equal(d.images[:, 0], expected) and d.mean == (FASHION_MNIST_MEAN,)
    assert data_info(d)["data"] == "fashion-mnist" and d.class_names[0] == "T-shirt/top"


# -- split_validation ------------------------------------------------------------------------------
def test_split_validation_is_deterministic_stratified_and_disjoint(tmp_path) -> None:  # noqa: ANN001
    root = write_folder(tmp_path / "f", size=6, n_train=10)
    data = load_data(str(root), "train")
    tr, va = split_validation(data, 0.2, seed=3)
    assert tr.split == "train" and va.split == "val" and tr.streamed and va.streamed
    assert len(tr) + len(va) == len(data) == 30 and np.bincount(va.labels.numpy()).tolist() == [2, 2, 2]
    assert not set(tr.files) & set(va.files) and set(tr.files) | set(va.files) == set(data.files)
    tr2, va2 = split_validation(data, 0.2, seed=3)
    assert va2.files == va.files and tr2.files == tr.files
    assert split_validation(data, 0.2, seed=4)[1].files != va.files
    assert va.mean == data.mean and va.class_names == data.class_names
    mem = load_data("digits", "train")
    mtr, mva = split_validation(mem, 0.1)
    assert len(mva) + len(mtr) == len(mem) and abs(len(mva) - 0.1 * len(mem)) <= 10
    with pytest.raises(DatasetError, match="not the test split"):
        split_validation(load_data("digits", "test"), 0.1)
    with pytest.raises(DatasetError, match=r"fraction must be in \(0, 1\)"):
        split_validation(mem, 1.0)


# -- bad data: one line each, naming what is wrong and where ------------------------------------
def _one_line_error(match: str, fn, *args, **kwargs) -> str:  # noqa: ANN001
    with pytest.raises(DatasetError, match=match) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert isinstance(info.value, HwnasError) and "\n" not in msg and len(msg) < 300, msg
    return msg


def test_empty_class_folder(tmp_path) -> None:  # noqa: ANN001
    root = write_folder(tmp_path / "f", size=6)
    (root / "train" / "dog").mkdir()
    msg = _one_line_error("empty class folder", load_data, str(root), "train")
    assert str(root / "train" / "dog") in msg


def test_train_test_class_mismatch(tmp_path) -> None:  # noqa: ANN001
    root = write_folder(tmp_path / "f", size=6)
    (root / "test" / "cat").rename(root / "test" / "cow")
    msg = _one_line_error("classes differ from train/'s", load_data, str(root), "test")
    assert "missing cat" in msg and "not in train/: cow" in msg


def test_unreadable_image_is_named_when_measuring_and_when_streaming(tmp_path) -> None:  # noqa: ANN001
    root = write_folder(tmp_path / "f", size=6)
    bad = root / "train" / "bee" / "001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    msg = _one_line_error("cannot read image", load_data, str(root), "train")
    assert str(bad) in msg
    root2 = write_folder(tmp_path / "g", size=6)
    bad2 = root2 / "test" / "cat" / "000.png"
    bad2.write_text("text, not pixels")
    test = load_data(str(root2), "test")  # the test split is decoded only when read: by a worker
    msg = _one_line_error("cannot read image", lambda: list(test.batches(4, workers=1)))
    assert str(bad2) in msg and "Traceback" not in msg


def test_mismatched_sizes_without_a_resolution(tmp_path) -> None:  # noqa: ANN001
    root = write_folder(tmp_path / "f", size=[8, 8, 8, 10])
    msg = _one_line_error(r"image is 10x10, .* is 8x8 \(give a resolution", load_data, str(root), "train")
    assert str(root / "train") in msg
    assert load_data(str(root), "train", resolution=8).input_shape == (1, 8, 8)


def test_one_image_data_set(tmp_path) -> None:  # noqa: ANN001
    root = write_folder(tmp_path / "f", classes=("only",), n_train=1, n_test=1, size=6)
    _one_line_error("holds 1 image; a data set needs at least 2", load_data, str(root), "train")
    npz = write_npz(tmp_path / "one.npz", n_train=1, n_test=1, classes=1)
    _one_line_error("holds 1 image", load_data, str(npz), "train")


def test_npz_labels_out_of_range(tmp_path) -> None:  # noqa: ANN001
    npz = write_npz(tmp_path / "d.npz", y_test=np.array([0, 1, 2, 3, 0, 1]))
    msg = _one_line_error(r"y_test holds label 3, outside 0\.\.2", load_data, str(npz), "test")
    assert str(npz) in msg
    neg = write_npz(tmp_path / "n.npz", y_train=np.array([0, 1, -1] * 4))
    _one_line_error("y_train holds label -1", load_data, str(neg), "train")
    named = write_npz(tmp_path / "c.npz", class_names=np.array(["a", "b"]))
    _one_line_error(r"y_train holds label 2, outside 0\.\.1 \(2 classes\)", load_data, str(named), "train")


def test_npz_missing_keys_and_bad_shapes(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.arange(4) % 2)
    _one_line_error(
        r"\.npz lacks x_test, y_test \(needs x_train, y_train, x_test, y_test\)", load_data, str(path), "train"
    )
    bad = write_npz(tmp_path / "shape.npz", x_train=np.zeros((12, 8, 8, 5), np.uint8))
    _one_line_error(r"x_train has shape \(12, 8, 8, 5\)", load_data, str(bad), "train")
    mixed = write_npz(tmp_path / "mixed.npz", x_test=np.zeros((6, 9, 9), np.uint8))
    _one_line_error(r"x_test images are \(1, 9, 9\), x_train's \(1, 8, 8\)", load_data, str(mixed), "test")
    count = write_npz(tmp_path / "count.npz", y_train=np.arange(5) % 3)
    _one_line_error("5 labels in y_train for 12 images", load_data, str(count), "train")
    pickled = write_npz(tmp_path / "obj.npz", class_names=np.array(["a", None, "c"], dtype=object))
    _one_line_error("object arrays, which would need unpickling", load_data, str(pickled), "train")
    fractional = write_npz(tmp_path / "frac.npz", y_train=np.linspace(0, 2, 12))
    _one_line_error("y_train holds non-integer labels", load_data, str(fractional), "train")


def test_not_a_folder_nor_an_npz_file(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "notes.txt").write_text("hello")
    _one_line_error("not a data set", load_data, str(tmp_path / "notes.txt"), "train")
    (tmp_path / "empty").mkdir()
    _one_line_error(r"not an ImageFolder data set \(no train/ folder", load_data, str(tmp_path / "empty"), "train")
    root = write_folder(tmp_path / "f", size=6)
    (root / "test").rename(root / "holdout")
    _one_line_error("no test/ or val/ folder next to train/", load_data, str(root), "test")
    _one_line_error("no such file or folder", load_data, str(tmp_path / "missing.npz"), "train")
    (tmp_path / "fake.npz").write_text("not a zip")
    _one_line_error("not a readable .npz file", load_data, str(tmp_path / "fake.npz"), "train")
    with pytest.raises(UnknownNameError, match="unknown dataset 'cifar'"):
        load_data("cifar", "train")


def test_non_square_images_and_bad_arguments(tmp_path) -> None:  # noqa: ANN001
    for split in ("train", "test"):
        for c in ("a", "b"):
            for i in range(2):
                write_image(tmp_path / "r" / split / c / f"{i}.png", np.zeros((6, 9)))
    _one_line_error(r"images are 6x9, not square", load_data, str(tmp_path / "r"), "train")
    assert load_data(str(tmp_path / "r"), "train", resolution=7).input_shape == (1, 7, 7)
    _one_line_error("in_chans must be 1", load_data, "digits", "train", in_chans=2)
    _one_line_error("unknown split 'dev'", load_data, "digits", "dev")
    _one_line_error("a limit must be positive", load_data, "digits", "train", 0)

"""Supernet training on your own data: streamed folders keep the deterministic batch order,
checkpoints record the data, resume and older checkpoints load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hwnas.datasets import FASHION_MNIST_DIR
from supernet.checkpoint import read_checkpoint, write_checkpoint
from supernet.data import EpochOrder, calibration_batches, data_info, load_data, load_data_like
from supernet.train import Trainer, load_supernet
from tests.helpers import TINY_MOBILENET, run_cli, tiny_config
from tests.hwnas.folder_helpers import write_folder, write_npz

pytestmark = pytest.mark.usefixtures("one_thread")


def _quiet(msg: str) -> None:
    pass


@pytest.fixture
def rgb_folder(tmp_path):  # noqa: ANN001, ANN201
    """3 classes, 8 training and 3 test RGB images each, 20x20 and 24x24 (resized to 16 by the runs)."""
    return write_folder(tmp_path / "rgb", rgb=True, n_train=8, n_test=3, size=[20, 24])


def test_epoch_order_of_streamed_data_equals_in_memory_and_resumes_anywhere(rgb_folder) -> None:  # noqa: ANN001
    data = load_data(str(rgb_folder), "train", resolution=16)
    mem = data.in_memory()
    assert data.streamed and not mem.streamed
    order, mem_order = EpochOrder(data, 6, 3, 1), EpochOrder(mem, 6, 3, 1)
    full = list(order.batches(workers=1))
    assert len(full) == len(order) == 4
    for step, (x, y) in enumerate(full):
        mx, my = mem_order.batch(step)
        assert torch.equal(x, mx) and torch.equal(y, my)  # flips included
    tail = list(order.batches(2, workers=0))  # resumed at step 2
    assert all(torch.equal(a[0], b[0]) for a, b in zip(tail, full[2:])) and len(tail) == 2
    shares = [list(order.batches(0, rank, 2, workers=1)) for rank in range(2)]
    for step in range(len(order)):  # two processes' shares make up the global batch
        assert torch.equal(torch.cat([shares[0][step][0], shares[1][step][0]]), full[step][0])
    assert not torch.equal(full[0][1], list(EpochOrder(data, 6, 3, 2).batches(workers=0))[0][1])
    calib = calibration_batches(data, 2, 5, 0)
    assert [tuple(c.shape) for c in calib] == [(5, 3, 16, 16)] * 2
    assert all(torch.equal(a, b) for a, b in zip(calib, calibration_batches(mem, 2, 5, 0)))


def _folder_config(folder, **overrides):  # noqa: ANN001, ANN202
    base = dict(
        data=str(folder),
        space_kwargs={**TINY_MOBILENET, "resolution": 16},
        epochs=1,
        qat_epochs=1,
        batch_size=8,
        train_limit=None,
        test_limit=None,
        eval_every=0,
        bn_calib_batches=1,
        calib_batch_size=8,
        warmup_epochs=0.5,
    )
    base.update(overrides)
    return tiny_config(**base)


def test_training_on_a_streamed_folder_records_the_data_and_resumes_bit_exactly(rgb_folder, tmp_path) -> None:  # noqa: ANN001
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    ref = Trainer(_folder_config(rgb_folder), ref_dir, progress=False, log=_quiet)
    assert ref.train_data.streamed and ref.space.input_shape == (3, 16, 16) and ref.space.num_classes == 3
    ref.run()
    Trainer(_folder_config(rgb_folder, max_steps=2), cut_dir, progress=False, log=_quiet).run()  # mid-epoch 1
    for stop in (4, None):  # then inside the QAT epoch, then to the end
        tr = Trainer(_folder_config(rgb_folder), cut_dir, resume=True, progress=False, log=_quiet)
        tr.config.max_steps = stop
        tr.run()
    meta, ref_t = read_checkpoint(ref_dir)
    _, cut_t = read_checkpoint(cut_dir)
    assert set(ref_t) == set(cut_t) and all(torch.equal(ref_t[k], cut_t[k]) for k in ref_t)
    info = meta["data_info"]
    assert info == json.loads(json.dumps(data_info(ref.train_data)))
    assert info["data"] == str(rgb_folder) and info["input_shape"] == [3, 16, 16]
    assert info["class_names"] == ["ant", "bee", "cat"] and len(info["mean"]) == 3
    test = load_data_like(info, "test")  # what evaluation and export read: the recorded normalisation
    assert test.input_shape == (3, 16, 16) and test.mean == ref.train_data.mean and len(test) == 9


def test_npz_data_and_a_checkpoint_without_a_data_record(tmp_path) -> None:  # noqa: ANN001
    npz = write_npz(tmp_path / "d.npz", n_train=24, n_test=6, shape=(16, 16, 3), classes=4)
    out = tmp_path / "run"
    cfg = _folder_config(npz, qat_epochs=0, space_kwargs=dict(TINY_MOBILENET))
    tr = Trainer(cfg, out, progress=False, log=_quiet)
    assert not tr.train_data.streamed and tr.space.input_shape == (3, 16, 16) and tr.space.num_classes == 4
    tr.config.max_steps = 1
    tr.run()
    meta, tensors = read_checkpoint(out)
    assert meta["data_info"]["data"] == str(npz) and meta["data_info"]["num_classes"] == 4
    del meta["data_info"]  # as written before data records existed
    write_checkpoint(out / "checkpoint.safetensors", tensors, meta)
    net, meta2 = load_supernet(out)
    assert "data_info" not in meta2 and net.space.input_shape == (3, 16, 16)
    again = Trainer(cfg, out, resume=True, progress=False, log=_quiet)  # falls back to the spec in the config
    assert torch.equal(again.train_data.images, tr.train_data.images)


@pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed"
)
def test_fashion_mnist_runs_read_as_before(tmp_path) -> None:  # noqa: ANN001
    tr = Trainer(
        tiny_config(train_limit=64, test_limit=32, epochs=1, qat_epochs=0, eval_every=0, val_fraction=0.0),
        tmp_path,
        progress=False,
        log=_quiet,
    )
    from hwnas.datasets import load_fashion_mnist

    raw, labels = load_fashion_mnist("train")
    x = (torch.from_numpy(raw[:64].astype("float32")) / 255.0 - 0.2860405969887955) / 0.35302424451492254
    assert torch.equal(tr.train_data.images, x.unsqueeze(1)) and torch.equal(
        tr.train_data.labels, torch.from_numpy(labels[:64].copy())
    )
    assert data_info(tr.train_data)["data"] == "fashion-mnist" and np.isclose(tr.test_data.mean[0], 0.28604, atol=1e-5)


@pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed"
)
def test_val_fraction_is_held_out_of_training(tmp_path) -> None:  # noqa: ANN001
    """The searchers' validation images (split_validation of the same training set, same seed) are
    never trained on; a checkpoint from before val_fraction reads as having held nothing out."""
    from supernet.data import load_data, split_validation
    from supernet.train import TrainConfig

    cfg = tiny_config(train_limit=200, test_limit=32, epochs=1, qat_epochs=0, eval_every=0, val_fraction=0.2)
    tr = Trainer(cfg, tmp_path, progress=False, log=_quiet)
    full = load_data("fashion-mnist", "train", 200)
    part, val = split_validation(full, 0.2, cfg.seed)
    assert len(tr.train_data) == len(part) == 200 - len(val) and len(val) == 40
    assert torch.equal(tr.train_data.images, part.images) and torch.equal(tr.train_data.labels, part.labels)
    legacy = {k: v for k, v in cfg.to_dict().items() if k != "val_fraction"}
    assert TrainConfig.from_dict(legacy).val_fraction == 0.0


@pytest.mark.slow
def test_cli_trains_and_evaluates_on_an_rgb_folder(rgb_folder, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    space_args = json.dumps({**TINY_MOBILENET, "resolution": 16})
    r = run_cli(
        "train-supernet",
        "--data",
        str(rgb_folder),
        "--space",
        "mobilenet",
        "--space-args",
        space_args,
        "--epochs",
        "1",
        "--qat-epochs",
        "1",
        "--batch-size",
        "8",
        "--max-steps",
        "4",
        "--eval-every",
        "0",
        "--bn-calib-batches",
        "1",
        "--threads",
        "1",
        "--no-progress",
        "--out",
        str(out),
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    meta, _ = read_checkpoint(out)
    assert meta["data_info"]["input_shape"] == [3, 16, 16]
    r = run_cli(
        "eval-subnet", "--checkpoint", str(out), "--arch", "smallest", "--bn-batches", "1", "--json", timeout=300
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["num_test"] == 9 and 0.0 <= res["accuracy"] <= 100.0
    r = run_cli(
        "eval-subnet",
        "--checkpoint",
        str(out),
        "--arch",
        "largest",
        "--bn-batches",
        "1",
        "--int8",
        "--json",
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["precision"] == "int8"
    (rgb_folder / "test" / "cat").rename(rgb_folder / "test" / "cow")  # bad data: one line, exit 2
    r = run_cli("eval-subnet", "--checkpoint", str(out), "--arch", "smallest", timeout=300)
    assert r.returncode == 2 and "classes differ from train/'s" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1

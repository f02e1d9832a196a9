"""BN recalibration and safetensors checkpoints (never unpickled; one-line errors)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from supernet.bn import recalibrate_bn
from supernet.checkpoint import read_checkpoint, write_checkpoint
from supernet.errors import CheckpointError
from supernet.train import load_supernet

pytestmark = pytest.mark.usefixtures("one_thread")


def test_recalibrate_bn_computes_exact_statistics():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    model[1].running_mean.fill_(5.0)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(8, 1, 6, 6, generator=g) for _ in range(3)]
    model.train()
    recalibrate_bn(model, batches)
    assert model.training and model[1].momentum == 0.1
    with torch.no_grad():
        feats = [model[0](b) for b in batches]
    means = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    assert torch.allclose(model[1].running_mean, means, atol=1e-6)


def test_checkpoint_roundtrip(tmp_path):
    t = {"a": torch.arange(6.0).view(2, 3), "b": torch.tensor(True)}
    path = write_checkpoint(tmp_path / "checkpoint.safetensors", t, {"x": 1})
    meta, back = read_checkpoint(tmp_path)
    assert meta["x"] == 1 and torch.equal(back["a"], t["a"]) and bool(back["b"])
    assert path.exists() and not list(tmp_path.glob(".*tmp"))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path)


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "checkpoint.safetensors").write_bytes(b"\x80\x04not a safetensors file" * 10)
    with pytest.raises(CheckpointError) as info:
        load_supernet(tmp_path)
    assert "\n" not in str(info.value)


def test_pickle_is_never_loaded(tmp_path):
    torch.save({"store/x": torch.zeros(2)}, tmp_path / "checkpoint.safetensors")  # a pickle in disguise
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path)


def test_foreign_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "checkpoint.safetensors"))
    with pytest.raises(CheckpointError, match="not a supernet checkpoint"):
        read_checkpoint(tmp_path)

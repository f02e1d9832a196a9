"""nas.baselines: the hand-picked Fashion-MNIST baselines and their training recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from hwnas.errors import ConfigError, UnknownNameError
from nas.baselines import (
    BASELINES,
    BaselineError,
    BaselineRecipe,
    PlainCNN,
    create_baseline,
    normalize_fmnist,
    train_baseline,
)


def test_plain_cnn_is_the_recipe_network():
    m = PlainCNN()
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 32, (3, 3)),
        (32, 32, (3, 3)),
        (32, 64, (3, 3)),
        (64, 64, (3, 3)),
        (64, 128, (3, 3)),
    ]
    assert all(c.bias is None for c in convs)
    layers = list(m.features)
    for i, layer in enumerate(layers):  # every conv is followed by BatchNorm and ReLU
        if isinstance(layer, nn.Conv2d):
            assert isinstance(layers[i + 1], nn.BatchNorm2d) and isinstance(layers[i + 2], nn.ReLU)
    assert sum(isinstance(x, nn.MaxPool2d) for x in layers) == 2
    assert not any(isinstance(x, (nn.Hardswish, nn.SiLU, nn.GELU)) for x in m.modules())
    assert m.eval()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_takes_one_channel_and_gives_ten_logits(name):
    torch.manual_seed(0)
    assert create_baseline(name).eval()(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_unknown_baseline_and_bad_recipe():
    with pytest.raises(UnknownNameError, match="unknown baseline 'vgg16'"):
        create_baseline("vgg16")
    with pytest.raises(ConfigError):
        BaselineRecipe(epochs=0)


def test_normalize_uses_the_recipe_constants():
    x = normalize_fmnist(np.full((2, 28, 28), 255, np.uint8))
    assert x.shape == (2, 1, 28, 28) and x.dtype == np.float32
    assert x[0, 0, 0, 0] == pytest.approx((1.0 - 0.2860) / 0.3530)


def _data(n: int = 256):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n)


class _Stop(Exception):
    pass


def _tiny() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 10),
    )


def test_training_resumes_from_its_checkpoint_as_if_uninterrupted(tmp_path):
    x, y = _data()
    recipe = BaselineRecipe(epochs=2, batch_size=64)
    torch.manual_seed(0)
    whole = _tiny()
    ref = train_baseline(whole, x, y, recipe)
    assert ref["steps"] == 8 and len(ref["epoch_losses"]) == 2 and not whole.training

    ckpt = tmp_path / "ckpt.pt"

    def stop_after_first_epoch(msg: str) -> None:
        if msg.startswith("epoch 1/"):
            raise _Stop

    torch.manual_seed(0)
    with pytest.raises(_Stop):
        train_baseline(_tiny(), x, y, recipe, checkpoint=ckpt, log=stop_after_first_epoch)
    assert ckpt.is_file()
    torch.manual_seed(1)  # a different init: everything must come from the checkpoint
    resumed = _tiny()
    out = train_baseline(resumed, x, y, recipe, checkpoint=ckpt)
    assert out["resumed_from_epoch"] == 1 and out["epoch_losses"][0] == ref["epoch_losses"][0]
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)
    with pytest.raises(BaselineError, match="another schedule"):
        train_baseline(_tiny(), x, y, BaselineRecipe(epochs=3, batch_size=64), checkpoint=ckpt)


def test_too_few_images_for_a_batch():
    x, y = _data(10)
    with pytest.raises(BaselineError, match="fewer than one batch"):
        train_baseline(PlainCNN(), x, y, BaselineRecipe(epochs=1))

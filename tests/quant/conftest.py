"""Fixtures of the quant tests: seeding, the digits data and a trained stand-in model (see ``quant_models``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwnas.datasets import load_dataset

from .quant_models import TinyNet


@pytest.fixture(autouse=True)
def _seed_and_one_thread():  # noqa: ANN202
    """Seeded and single-threaded: deterministic, and fast on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tr = load_dataset("digits", "train")
    te = load_dataset("digits", "test")
    return tr.images, tr.labels, te.images, te.labels


@pytest.fixture(scope="session")
def trained_digits_net(digits):  # noqa: ANN001, ANN201
    """A TinyNet trained on digits (shared by the export / agreement tests; do not mutate)."""
    from quant.training import TrainConfig, train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    xtr, ytr, _, _ = digits
    model = TinyNet()
    train(model, xtr, ytr, TrainConfig(epochs=12, lr=0.05, batch_size=64, seed=0))
    torch.set_num_threads(threads)
    return model.eval()

"""Suite-wide settings: the quiet gate's remembered probe level lives in a per-session folder,
so that tests neither read a level from earlier runs on this machine nor leave one behind."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_noise_cache(tmp_path_factory):
    old = os.environ.get("HWNAS_CACHE_DIR")
    os.environ["HWNAS_CACHE_DIR"] = str(tmp_path_factory.mktemp("hwnas-cache"))
    yield
    if old is None:
        os.environ.pop("HWNAS_CACHE_DIR", None)
    else:
        os.environ["HWNAS_CACHE_DIR"] = old


@pytest.fixture
def one_thread():
    """torch computes on one thread during the test (the number is restored after it): results
    that do not depend on the machine's core count, and no oversubscription of a shared CPU.
    Opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

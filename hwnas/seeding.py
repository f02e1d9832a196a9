"""Seeding helpers: one place that turns "a seed or a generator" into a generator."""

from __future__ import annotations

import os
import random
from typing import Any

__all__ = ["make_rng", "seed_everything"]


def make_rng(rng: Any = None) -> random.Random:
    """Return a :class:`random.Random` from a seed, an existing generator, or ``None``.

    A ``numpy.random.Generator`` is accepted too: a ``random.Random`` is seeded from it,
    so that results stay reproducible for a seeded numpy generator.
    """
    if isinstance(rng, random.Random):
        return rng
    if rng is None or isinstance(rng, int):
        return random.Random(rng)
    if hasattr(rng, "integers"):  # numpy Generator
        return random.Random(int(rng.integers(0, 2**63 - 1)))
    raise TypeError(f"expected a seed, random.Random or numpy Generator, got {type(rng).__name__}")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (those that are installed) for a reproducible run."""
    random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # device side may have no torch
        pass

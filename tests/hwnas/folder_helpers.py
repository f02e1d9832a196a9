"""Tiny image data sets written to disk for the data-loading tests (PNG folders and .npz files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_image(path: Path, array: np.ndarray) -> None:
    """Write a uint8 ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB) array as an image file."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def write_folder(
    root: Path,
    *,
    classes: Sequence[str] = ("ant", "bee", "cat"),
    n_train: int = 4,
    n_test: int = 2,
    size: int | Sequence[int] = 12,
    rgb: bool = False,
    test_name: str = "test",
    seed: int = 0,
) -> Path:
    """An ImageFolder tree: ``root/train/<class>/<i>.png`` and ``root/<test_name>/<class>/<i>.png``.

    Each class has its own brightness level plus noise (learnable); ``size`` is one side or a list
    of sides cycled over the images (mixed sizes)."""
    rng = np.random.default_rng(seed)
    sizes = [size] if isinstance(size, int) else list(size)
    k = 0
    for split, n in (("train", n_train), (test_name, n_test)):
        for c, name in enumerate(classes):
            for i in range(n):
                s = sizes[k % len(sizes)]
                k += 1
                level = 40 + 180 * c / max(1, len(classes) - 1)
                shape = (s, s, 3) if rgb else (s, s)
                a = np.clip(level + rng.normal(0, 25, shape), 0, 255)
                if rgb:
                    a[..., c % 3] = 255 - a[..., c % 3]  # the classes differ in colour too
                write_image(root / split / name / f"{i:03d}.png", a)
    return root


def write_npz(
    path: Path,
    *,
    n_train: int = 12,
    n_test: int = 6,
    shape: tuple[int, ...] = (8, 8),
    classes: int = 3,
    seed: int = 0,
    **extra: np.ndarray,
) -> Path:
    """An ``.npz`` data set with uint8 images of ``shape`` per image and labels cycling over the classes."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": np.arange(n_train) % classes,
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": np.arange(n_test) % classes,
    }
    arrays.update(extra)
    np.savez(path, **arrays)
    return path

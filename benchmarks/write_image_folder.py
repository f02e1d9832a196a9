"""Write a built-in data set out as an ImageFolder tree of PNG files, for issue 16's "your own data"
acceptance runs.

    .venv/bin/python benchmarks/write_image_folder.py fashion-mnist /tmp/fmnist_png
    .venv/bin/python benchmarks/write_image_folder.py digits /tmp/digits_rgb32 --rgb --resolution 32

writes ``OUT/train/<k>_<class>/<index>.png`` and ``OUT/test/<k>_<class>/<index>.png``. Class folders
are numbered so that their sorted order is the data set's label order, and files are named by their
index in the split, so that ``--data OUT`` reads the images in the built-in loader's order: a run on
the folder sees the same batches as a run on the built-in data set. Fashion-MNIST is written as it
is (28×28 grey PNGs: the same pixels). ``--resolution`` resizes (bilinear), ``--rgb`` writes RGB
images: the grey image as the brightness of a seeded, per-image ink colour (channels differ, so
the data are really colour). Then, e.g.::

    nas train-supernet --data /tmp/fmnist_png --out runs/fm_png ...   # vs --data fashion-mnist
    nas train-supernet --data /tmp/digits_rgb32 --out runs/digits_rgb ...
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hwnas.datasets import FASHION_MNIST_CLASSES, load_digits, load_fashion_mnist  # noqa: E402


def _raw(name: str, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """uint8 ``(N, H, W)`` images, labels and class names of a built-in data set."""
    if name in ("fashion-mnist", "fashion_mnist"):
        x, y = load_fashion_mnist(split)  # type: ignore[arg-type]
        return np.asarray(x, dtype=np.uint8), np.asarray(y), FASHION_MNIST_CLASSES
    if name == "digits":
        x, y = load_digits(split)  # type: ignore[arg-type]
        return np.clip(np.rint(x * (255.0 / 16.0)), 0, 255).astype(np.uint8), np.asarray(y), tuple(map(str, range(10)))
    raise SystemExit(f"unknown data set {name!r} (fashion-mnist, digits)")


def write_split(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    out: Path,
    *,
    resolution: int | None = None,
    rgb: bool = False,
    seed: int = 0,
) -> int:
    """Write ``images`` (uint8 ``(N, H, W)``) as ``out/<k>_<class>/<index>.png``; returns the count."""
    from PIL import Image

    width = len(str(len(class_names) - 1))
    digits = len(str(max(len(images) - 1, 1)))
    folders = [out / f"{k:0{width}d}_{name.replace('/', '-').replace(' ', '_')}" for k, name in enumerate(class_names)]
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)
    colours = np.random.default_rng(seed).uniform(0.35, 1.0, size=(len(images), 3))
    for i, (x, y) in enumerate(zip(images, labels)):
        img = Image.fromarray(x)
        if resolution is not None and img.size != (resolution, resolution):
            img = img.resize((resolution, resolution), Image.BILINEAR)
        if rgb:
            grey = np.asarray(img, dtype=np.float32)[:, :, None]
            img = Image.fromarray(np.clip(np.rint(grey * colours[i]), 0, 255).astype(np.uint8))
        img.save(folders[int(y)] / f"{i:0{digits}d}.png", optimize=False)
    return len(images)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="fashion-mnist or digits")
    ap.add_argument("out", help="output folder (gets train/ and test/)")
    ap.add_argument("--resolution", type=int, help="resize to this square size (default: as is)")
    ap.add_argument("--rgb", action="store_true", help="RGB images: each grey image tinted with a seeded colour")
    ap.add_argument("--limit", type=int, help="write the first N images of each split")
    ap.add_argument("--seed", type=int, default=0, help="seed of the ink colours [0]")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if (out / "train").exists() or (out / "test").exists():
        raise SystemExit(f"{out} already holds train/ or test/: pick another folder")
    t0 = time.time()
    for k, split in enumerate(("train", "test")):
        x, y, names = _raw(args.data, split)
        if args.limit is not None:
            x, y = x[: args.limit], y[: args.limit]
        n = write_split(x, y, names, out / split, resolution=args.resolution, rgb=args.rgb, seed=args.seed + k)
        print(f"{out / split}: {n} images, {len(names)} classes", flush=True)
    print(f"done in {time.time() - t0:.1f}s; use --data {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

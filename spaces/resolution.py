"""The input resolution a space can take: none of its blocks may downsample an input smaller than
its stride (a 1×1 map "downsampled" again), else every later block would be measured, trained or
searched at a size that does not exist in any real network of the space.

:func:`check_resolution` is called wherever a resolution is chosen: the ``--resolution`` /
``--space-args`` options of the command line and the ``resolution:`` key of a space YAML file
(:func:`spaces.yaml_io.load_space`)."""

from __future__ import annotations

from typing import Any

from hwnas.errors import ConfigError, SpaceTooLargeError

__all__ = ["check_resolution"]


def _stride(block: Any) -> int:
    stride = dict(block.params).get("stride", 1)
    return stride if isinstance(stride, int) and not isinstance(stride, bool) and stride > 1 else 1


def check_resolution(space: Any, option: str = "--resolution") -> None:
    """Refuse, in one line naming ``option`` (what set the resolution), a ``space`` whose input
    resolution is too small for one of its strided blocks."""
    try:
        blocks = space.enumerate_blocks()
    except SpaceTooLargeError:  # too many variants to list (any later use says so): check the default arch
        blocks = space.blocks(space.default()) if not space.constraints else []
    for b in blocks:
        stride = _stride(b)
        if stride > 1 and min(b.h, b.w) < stride:
            total = 1  # walked only for the message
            for d in space.blocks(space.default()) if not space.constraints else []:
                total *= _stride(d)
            need = f" (its default arch downsamples by {total}: give at least {total})" if total > 1 else ""
            raise ConfigError(
                f"{option} {space.resolution} is too small for space {space.name!r}: block "
                f"{b.path or '<root>'} ({b.op}, stride {stride}) would get a {b.h}x{b.w} input{need}"
            )

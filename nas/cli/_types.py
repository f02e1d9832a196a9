"""Argument types of the ``nas`` command line: every numeric option is checked where it is parsed.

``type=finite_float(0, 1, hi_open=True)`` or ``type=int_range(1)`` on an ``add_argument`` call
refuses NaN, infinities and values out of range with one line naming the option and the allowed
range (argparse prefixes ``argument --lr:``); :class:`OneLineParser` prints argparse's own errors
as one line too (``nas train-supernet: error: argument --lr: ...``), exit code 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

__all__ = ["OneLineParser", "device", "finite_float", "int_range", "quant_scheme"]


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_fmt(lo)}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {_fmt(hi)}"
    return "finite"


def finite_float(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[str], float]:
    """A finite float in ``[lo, hi]`` (``lo_open`` / ``hi_open``: the bound itself excluded)."""
    want = _range_text(lo, hi, lo_open, hi_open)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if (lo is not None and (value < lo or (lo_open and value == lo))) or (
            hi is not None and (value > hi or (hi_open and value == hi))
        ):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An integer in ``[lo, hi]``."""
    want = _range_text(lo, hi, False, False)

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {want}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``, refused when this machine has no such device."""
    value = str(text).strip().lower()
    kind, _, index = value.partition(":")
    if kind == "cpu" and not index:
        return "cpu"
    if kind != "cuda" or (index and not index.isdigit()):
        raise argparse.ArgumentTypeError(f"unknown device {text!r} (cpu, cuda or cuda:N)")
    import torch

    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(
            f"{text!r}: this machine has no CUDA device (torch.cuda.is_available() is false); use cpu"
        )
    if index and int(index) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return value


def quant_scheme(text: str) -> str:
    """A quantization scheme preset name (``ort_cpu``, ``ort_cpu_avx2``, ``tensorrt``)."""
    from quant.scheme import SCHEMES

    if text not in SCHEMES:
        raise argparse.ArgumentTypeError(f"unknown quantization scheme {text!r} (known: {', '.join(sorted(SCHEMES))})")
    return text

"""The ``nas`` command line.

Each sub-command lives in its own module under :mod:`nas.cli.commands` and exposes
``register(subparsers)``; modules are discovered, so adding a command touches no
shared file. Deliberate errors (:class:`hwnas.HwnasError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from hwnas.errors import HwnasError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from nas.cli import commands
    from nas.cli._types import OneLineParser

    parser = OneLineParser(
        prog="nas",
        description="hwnas: hardware-aware neural architecture search with INT8 quantization.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nas`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except HwnasError as exc:
        print(f"nas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nas {args.command}: interrupted; finished work is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `nas spaces show ... | head`
        return 0
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

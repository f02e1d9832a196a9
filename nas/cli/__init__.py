"""The ``nas`` command line.

Each sub-command lives in its own module under :mod:`nas.cli.commands` and exposes
``register(subparsers)``; modules are discovered, so adding a command touches no
shared file. Deliberate errors (:class:`hwnas.HwnasError`) print one line and exit 2; SIGINT and
SIGTERM stop a command alike (its ``finally`` clauses run: temporary folders are removed, a search
worker's trial in flight is failed and queued again), with one line and exit code 130. A command's
temporary files and folders (its libraries' included) live in a folder of its own
(:func:`latency_lut.workdir.private_temp_root`), which a SIGKILL leaves to the next command to remove.
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
    from latency_lut.workdir import private_temp_root, record_sigint, sigterm_as_interrupt

    parser = build_parser()
    args = parser.parse_args(argv)
    signalled: list[int] = []
    try:
        # SIGTERM stops a command as Ctrl-C does (its cleanup runs); its temporary files live in a
        # folder of its own, removed at the end, or by the next command when this one is SIGKILLed
        with record_sigint(signalled), sigterm_as_interrupt(signalled), private_temp_root():
            code = args.func(args)
    except KeyboardInterrupt:
        print(f"nas {args.command}: interrupted; finished work is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `nas spaces show ... | head`
        return 0
    except Exception as exc:
        if signalled:  # the interrupt's consequence (an import it cut short reads as a missing package)
            print(f"nas {args.command}: interrupted; finished work is kept", file=sys.stderr)
            return 130
        if isinstance(exc, HwnasError):
            print(f"nas {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

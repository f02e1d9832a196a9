"""The ``nas`` console script's entry point.

A Ctrl-C (or ``kill -INT``) that lands while Python is still importing hwnas would otherwise print
a ``KeyboardInterrupt`` traceback: :func:`nas.cli.main` installs its own interrupt handling only
once its modules are imported. This module imports nothing of hwnas at import time; :func:`main`
first makes SIGINT a quiet exit (status 130), then imports and runs the CLI, whose handlers take
over (an interrupt inside a command keeps finished work and says so in one line).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _exit_quietly(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    raise SystemExit(128 + signum)


def main() -> int:
    """Run ``nas`` with ``sys.argv``; returns the exit code."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when the caller ignores SIGINT
        signal.signal(signal.SIGINT, _exit_quietly)
    from nas.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

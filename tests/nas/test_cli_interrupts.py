"""SIGINT and SIGTERM stop every ``nas`` command alike (one line, exit code 130), and an error that
follows an interrupt is reported as the interrupt: the kill campaign found Ctrl-C during an import
reported as ``engine onnxruntime is not installed`` (Python's import machinery swallows the
``KeyboardInterrupt``, "Exception ignored in ...", and the half-imported package fails later)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from hwnas.errors import ConfigError


def _interrupted_then(exc: Exception, sig: int = signal.SIGINT):
    def handler(args):
        try:
            os.kill(os.getpid(), sig)
            time.sleep(5)
        except KeyboardInterrupt:
            pass  # swallowed, as an import cut short swallows it
        raise exc

    return handler


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize(
    "exc", [ConfigError("engine onnxruntime is not installed"), ImportError("partially initialized module")]
)
def test_an_error_after_an_interrupt_is_the_interrupt(monkeypatch, capsys, sig, exc):
    import nas.cli.commands.spaces as spaces_cmd
    from nas.cli import main

    monkeypatch.setattr(spaces_cmd, "_list", _interrupted_then(exc, sig))
    assert main(["spaces", "list"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "nas spaces: interrupted; finished work is kept"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_error_without_an_interrupt_is_the_error(monkeypatch, capsys):
    import nas.cli.commands.spaces as spaces_cmd
    from nas.cli import main

    def handler(args):
        raise ConfigError("engine onnxruntime is not installed")

    monkeypatch.setattr(spaces_cmd, "_list", handler)
    assert main(["spaces", "list"]) == 2
    assert capsys.readouterr().err.strip() == "nas spaces: error: engine onnxruntime is not installed"


def test_sigterm_is_an_interrupt(monkeypatch, capsys):
    import nas.cli.commands.spaces as spaces_cmd
    from nas.cli import main

    def handler(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("not interrupted")

    monkeypatch.setattr(spaces_cmd, "_list", handler)
    assert main(["spaces", "list"]) == 130
    assert "interrupted; finished work is kept" in capsys.readouterr().err


_INTERRUPT_WHILE_IMPORTING = """
import builtins, os, signal, sys
import hwnas_entry
real_import = builtins.__import__
def interrupting_import(name, *args, **kwargs):
    if name == "nas.cli":  # Ctrl-C while the command's modules are still being imported
        os.kill(os.getpid(), signal.SIGINT)
    return real_import(name, *args, **kwargs)
builtins.__import__ = interrupting_import
sys.argv = ["nas", "spaces", "list"]
sys.exit(hwnas_entry.main())
"""


def test_an_interrupt_while_the_command_starts_exits_quietly():
    """The kill campaign found a ``KeyboardInterrupt`` traceback from a Ctrl-C landing while the
    ``nas`` script imported hwnas, before ``nas.cli.main`` installed its handlers."""
    import subprocess
    import sys

    from tests.helpers import REPO

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", _INTERRUPT_WHILE_IMPORTING], capture_output=True, text=True, env=env)
    assert res.returncode == 130 and "Traceback" not in res.stderr, res.stderr

"""The static checks, run by the test suite so that CI's one command runs them too: ruff (lint and
format), mypy and import-linter, all configured in ``pyproject.toml``.

Each check runs as a subprocess from the repository root with the tool installed beside the
running interpreter (``.venv/bin``; ``./scripts/install.sh --dev`` installs them); a check whose
tool is missing is skipped, saying so. A failure shows the tool's own report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(tool: str, *args: str, timeout: float = 900) -> None:
    exe = BIN / tool
    if not exe.is_file():
        pytest.skip(f"{tool} is not installed beside {sys.executable} (./scripts/install.sh --dev installs it)")
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}  # plain text for the failure message
    proc = subprocess.run(
        [str(exe), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    command = " ".join([tool, *args])
    assert proc.returncode == 0, f"`{command}` failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"


def test_ruff_lint():
    _run("ruff", "check", "--no-cache", ".")


def test_ruff_format():
    _run("ruff", "format", "--check", "--no-cache", ".")


def test_mypy():
    """The packages and settings of ``[tool.mypy]`` (cache in ``.mypy_cache``)."""
    _run("mypy")


def test_import_layers():
    """The layering contracts of ``[tool.importlinter]`` (README, Layout)."""
    _run("lint-imports", "--no-cache")

"""Helpers for tests that run the real ``nas`` command."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.helpers import nas_command


@pytest.fixture
def run_nas():
    """Run ``nas ARGS...`` as a subprocess; returns the CompletedProcess (text mode)."""

    def run(
        *args: str, timeout: float = 600, cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
        return subprocess.run(
            [*nas_command(), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=full_env
        )

    return run

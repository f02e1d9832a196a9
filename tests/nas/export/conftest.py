"""Fixtures of the export API tests: one tiny supernet checkpoint and one fast target per session."""

from __future__ import annotations

import pytest

from tests.nas.export.helpers import train_supernet, write_arch, write_fast_target


@pytest.fixture(scope="session")
def export_work(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    arch_file, arch = write_arch(root)
    return {
        "root": root,
        "checkpoint": train_supernet(root / "run"),
        "target": write_fast_target(root),
        "arch_file": arch_file,
        "arch": arch,
    }

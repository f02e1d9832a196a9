"""Fixtures for the latency_lut tests: a tiny space, a fast target, an exported folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lut_test_helpers import TINY_SPACE_YAML, write_fast_target  # noqa: E402,F401


@pytest.fixture(scope="session")
def tiny_space_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(TINY_SPACE_YAML)
    return path


@pytest.fixture(scope="session")
def tiny_space(tiny_space_file):
    from spaces import create_space

    return create_space(str(tiny_space_file))


@pytest.fixture(scope="session")
def fast_target(tmp_path_factory) -> Path:
    return write_fast_target(tmp_path_factory.mktemp("targets"))


@pytest.fixture(scope="session")
def fast_fp32_target(tmp_path_factory) -> Path:
    return write_fast_target(tmp_path_factory.mktemp("targets32"), precision="fp32")


@pytest.fixture(scope="session")
def exported(tmp_path_factory, tiny_space) -> Path:
    """The tiny space exported in the default formats (fp32, int8, int8_nhwc), with 3 calibration networks."""
    from latency_lut.export import export_blocks

    out = tmp_path_factory.mktemp("exported") / "blocks"
    export_blocks(tiny_space, out, networks=3)
    return out


@pytest.fixture(scope="session")
def profiled(tmp_path_factory, exported, fast_target) -> Path:
    """A LUT of the exported tiny space on the fast INT8 target."""
    from latency_lut.profiler import profile_folder

    lut = tmp_path_factory.mktemp("lut") / "lut.db"
    profile_folder(exported, str(fast_target), lut, progress=False)
    return lut

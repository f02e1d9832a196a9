"""The device side never imports torch: hw_profiles and the profiling path of latency_lut
run with torch blocked, including a whole ``profile_folder`` run and ``nas profile DIR``'s
command module."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BLOCK_TORCH = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch.") or name in ("timm", "torchvision"):
                raise ImportError(f"{name} is blocked: device-side code must not import it")
            return None
    sys.meta_path.insert(0, _NoTorch())
""")

DEVICE_MODULES = [
    "hw_profiles",
    "hw_profiles.engines.onnxruntime_engine",
    "hw_profiles.engines.openvino_engine",
    "hw_profiles.engines.tensorrt_engine",
    "hw_profiles.harness",
    "hw_profiles.probe",
    "latency_lut",
    "latency_lut.keys",
    "latency_lut.manifest",
    "latency_lut.onnx_models",
    "latency_lut.quantize",
    "latency_lut.db",
    "latency_lut.profiler",
    "latency_lut.progress",
    "latency_lut.correction",
    "latency_lut.predictor",
    "latency_lut.report",
    "latency_lut.metrics",
    "nas.cli.commands.profile",
    "nas.cli.commands.lut",
]


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ},
    )


def test_blocking_works(tmp_path):
    res = _run("import torch", tmp_path)
    assert res.returncode != 0 and "blocked" in res.stderr


def test_device_modules_import_without_torch(tmp_path):
    res = _run(
        f"""
        import importlib
        for name in {DEVICE_MODULES!r}:
            importlib.import_module(name)
        assert "torch" not in sys.modules
        print("ok")
    """,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_profile_folder_without_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "latency_lut"))
    from lut_test_helpers import TINY_SPACE_YAML, write_fast_target

    from latency_lut.export import export_blocks
    from spaces import create_space

    (tmp_path / "tiny.yaml").write_text(TINY_SPACE_YAML)
    space = create_space(str(tmp_path / "tiny.yaml"))
    export_blocks(space, tmp_path / "blocks", formats=("int8_nhwc",), archs=1, networks=1)
    target = write_fast_target(tmp_path)
    res = _run(
        f"""
        from latency_lut.profiler import profile_folder
        from latency_lut.predictor import LatencyPredictor
        r = profile_folder({str(tmp_path / "blocks")!r}, {str(target)!r}, {str(tmp_path / "lut.db")!r}, progress=False)
        assert r.measured > 3 and r.networks == 1 and not r.failed, r
        assert "torch" not in sys.modules
        print(r.measured)
    """,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.strip()) > 3

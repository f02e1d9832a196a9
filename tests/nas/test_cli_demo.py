"""`nas demo`, run as the real command."""
from __future__ import annotations


def test_demo_runs_and_exports(run_nas, tmp_path):
    res = run_nas("demo", "--quick", "--n", "2", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "exports match torch" in res.stdout
    assert len(list(tmp_path.glob("onnx/*.onnx"))) == 2 and len(list(tmp_path.glob("onnx/*.json"))) == 2


def test_demo_rejects_bad_n(run_nas):
    res = run_nas("demo", "--n", "0")
    assert res.returncode == 2 and "--n must be at least 1" in res.stderr and "Traceback" not in res.stderr

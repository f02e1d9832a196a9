"""``compare_files``: several model files timed side by side by the harness, in rotating passes."""

from __future__ import annotations

import pytest

from hw_profiles import compare_files, create_engine, target_from_dict
from hw_profiles.probe import probe_model_bytes
from tests.helpers import FAST_ORT_FP32


def test_compare_files_times_each_model_in_every_pass(tmp_path):
    pytest.importorskip("onnxruntime")
    paths = []
    for precision in ("fp32", "int8"):
        path = tmp_path / f"{precision}.onnx"
        path.write_bytes(probe_model_bytes(8, 8, precision))
        paths.append(path)
    engine = create_engine(target_from_dict(FAST_ORT_FP32))
    try:
        out = compare_files(engine, paths, passes=3)
        with pytest.raises(ValueError, match="passes"):
            compare_files(engine, paths, passes=0)
    finally:
        engine.close()
    assert [c.path for c in out] == [str(p) for p in paths]
    for c in out:
        assert len(c.pass_medians_ms) == 3 and 0 < c.min_ms <= c.median_ms

"""`nas demo`'s supernet stage: train once, deploy subnets in INT8 without retraining (tiny run)."""
from __future__ import annotations

from pathlib import Path

import pytest

from nas.demo import demo_supernet


@pytest.mark.slow
def test_demo_supernet_deploys_largest_smallest_and_random_subnets_in_int8(tmp_path):
    r = demo_supernet(str(tmp_path), train_images=1536, test_images=256, epochs=2, qat_epochs=1, random_subnets=1,
                      progress=False, log=lambda s: None)
    assert [row["subnet"] for row in r["rows"]] == ["largest", "smallest", "random 1"]
    largest, smallest = r["rows"][0], r["rows"][1]
    assert largest["params"] > smallest["params"]
    for row in r["rows"]:
        assert Path(row["onnx"]).is_file()
        assert row["fp32_acc"] > 20.0  # learned something (10 classes)
        assert abs(row["int8_acc"] - row["fp32_acc"]) <= 5.0, row  # the learned scales deploy
    assert (tmp_path / "supernet" / "checkpoint.safetensors").is_file()

"""The device LUT check's plan: shards cover the validation archs, steps run in order."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "device_lut_acceptance.py"


def _module():
    spec = importlib.util.spec_from_file_location("device_lut_acceptance", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_shards_cover_consecutive_seeds_without_overlap():
    shards = _module().shards
    for n, k in [(100, 3), (100, 2), (7, 3), (2, 5), (1, 1)]:
        parts = shards(n, k)
        seeds = [s + i for size, s in parts for i in range(size)]
        assert seeds == list(range(n)) and all(size > 0 for size, _ in parts)


def test_plan_refits_after_every_profile_and_validates_after_the_refit(tmp_path):
    m = _module()
    tasks = m.plan(["mobilenet28", "spaceevo28"], tmp_path, 100, 2, 3, "cpu-ort-int8", 1, ["spaceevo28"], 30)
    by_name = {t.name: t for t in tasks}
    for cfg in ("mobilenet28", "spaceevo28"):
        assert by_name[f"{cfg}.refit"].after == {f"{cfg}.profile0", f"{cfg}.profile1"}
        assert all(by_name[f"{cfg}.validate{i}"].after == {f"{cfg}.refit"} for i in range(3))
        seeds = sorted(int(t.argv[t.argv.index("--seed") + 1]) for t in tasks if t.name.startswith(f"{cfg}.validate"))
        assert seeds == [0, 34, 67]
    assert by_name["spaceevo28.show"].after == {"spaceevo28.fp32_0", "spaceevo28.fp32_1", "spaceevo28.refit"}
    assert "mobilenet28.show" not in by_name
    assert all("cpu-ort-fp32" in t.argv for t in tasks if ".fp32_" in t.name)
    # FP32 work comes last, so it only takes the cores the INT8 work leaves
    assert [t.name for t in tasks][-3:] == ["spaceevo28.fp32_0", "spaceevo28.fp32_1", "spaceevo28.show"]


def test_one_profiler_needs_no_refit(tmp_path):
    tasks = _module().plan(["mobilenet28"], tmp_path, 10, 1, 2, "cpu-ort-int8", 1)
    assert [t.name for t in tasks] == ["mobilenet28.profile0", "mobilenet28.validate0", "mobilenet28.validate1"]
    assert all(t.after == {"mobilenet28.profile0"} for t in tasks[1:])

"""bench_supernet.py rank: scratch results are shared only between identical training recipes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_supernet.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_supernet", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CFG = {
    "data": "fashion-mnist",
    "train_limit": None,
    "test_limit": None,
    "space": "mobilenet",
    "space_kwargs": {"stages": 3, "kernels": [3, 5]},
    "seed": 0,
    "batch_size": 256,
    "lr": 0.2,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-5,
    "warmup_epochs": 1.0,
    "label_smoothing": 0.1,
    "flip": True,
    "num_random": 1,
    "qat_lr": 0.01,
    "distill": True,
}


def test_supernet_only_knobs_share_scratch_results(bench, tmp_path):
    base = bench.scratch_file(tmp_path, "abc", bench.scratch_recipe(CFG, 10, "cpu"))
    other = {**CFG, "num_random": 2, "qat_lr": 0.02, "distill": False, "space_kwargs": {"kernels": [3, 5], "stages": 3}}
    assert bench.scratch_file(tmp_path, "abc", bench.scratch_recipe(other, 10, "cpu")) == base
    assert base.parent == tmp_path and base.name.startswith("abc.scratch-")


@pytest.mark.parametrize(
    "change",
    [
        {"lr": 0.1},
        {"seed": 1},
        {"train_limit": 512},
        {"space_kwargs": {"stages": 2}},
        {"batch_size": 128},
        {"flip": False},
    ],
)
def test_recipe_changes_key_a_new_result(bench, tmp_path, change):
    base = bench.scratch_file(tmp_path, "abc", bench.scratch_recipe(CFG, 10, "cpu"))
    assert bench.scratch_file(tmp_path, "abc", bench.scratch_recipe({**CFG, **change}, 10, "cpu")) != base


def test_epochs_and_device_key_a_new_result(bench, tmp_path):
    base = bench.scratch_file(tmp_path, "abc", bench.scratch_recipe(CFG, 10, "cpu"))
    assert bench.scratch_file(tmp_path, "abc", bench.scratch_recipe(CFG, 8, "cpu")) != base
    assert bench.scratch_file(tmp_path, "abc", bench.scratch_recipe(CFG, 10, "cuda:0")) != base
    assert bench.scratch_file(tmp_path, "abd", bench.scratch_recipe(CFG, 10, "cpu")) != base

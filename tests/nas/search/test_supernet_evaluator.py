"""SupernetEvaluator (validation accuracy of inherited subnets) and the LUT latency evaluator's
fastest-arch bound, on a tiny trained supernet and a synthetic LUT of its space."""

from __future__ import annotations

import hashlib

import pytest
import torch

from hwnas.errors import ConfigError, HwnasError
from nas.search.base import Constraint
from nas.search.evaluators import LutLatencyEvaluator, SupernetEvaluator, check_latency_budget
from tests.nas.hw_search_helpers import TARGET, TRAIN_LIMIT, fake_lut, tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("hw_supernet"))


@pytest.fixture(scope="module")
def evaluator(checkpoint):
    return SupernetEvaluator(checkpoint, threads=1)


@pytest.fixture(scope="module")
def lut(evaluator, tmp_path_factory):
    return fake_lut(tmp_path_factory.mktemp("hw_lut") / "lut.db", evaluator.space)


def _rows(images: torch.Tensor) -> set[str]:
    return {hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in images}


def test_accuracy_is_measured_once_per_arch(evaluator):
    space = evaluator.space
    arch = space.sample(1)
    before = (evaluator.evaluations, evaluator.hits)
    first = evaluator.evaluate(arch)
    assert set(first) == {"accuracy", "params"}
    assert 0.0 <= first["accuracy"] <= 100.0 and first["params"] > 0
    again = evaluator.evaluate(dict(arch))  # a plain dict of the same arch: same id, a cache hit
    assert again == first
    assert (evaluator.evaluations, evaluator.hits) == (before[0] + 1, before[1] + 1)
    assert evaluator.is_cached(arch)


def test_values_do_not_depend_on_order_or_instance(evaluator, checkpoint):
    space = evaluator.space
    a, b = space.sample(3), space.sample(4)
    va, vb = evaluator.evaluate(a), evaluator.evaluate(b)
    fresh = SupernetEvaluator(checkpoint, threads=1)
    assert fresh.evaluate(b) == vb and fresh.evaluate(a) == va


def test_validation_is_carved_from_training_data_never_the_test_split(checkpoint, monkeypatch):
    import hwnas.datasets
    import supernet.data

    splits: list[str] = []
    for module in (hwnas.datasets, supernet.data):
        real = module.load_data

        def spy(name, split, *a, _real=real, **kw):
            splits.append(split)
            return _real(name, split, *a, **kw)

        monkeypatch.setattr(module, "load_data", spy)
    threads = torch.get_num_threads()
    ev = SupernetEvaluator(checkpoint, threads=2)
    ev.evaluate(ev.space.sample(0))
    assert torch.get_num_threads() == threads  # the evaluator's threads are restored after each evaluation
    assert splits and set(splits) == {"train"}
    assert ev.val.split == "val" and abs(len(ev.val) - 0.1 * TRAIN_LIMIT) <= 5  # stratified: per-class rounding
    assert len(ev.train_part) + len(ev.val) == TRAIN_LIMIT
    val_rows, train_rows = _rows(ev.val.images), _rows(ev.train_part.images)
    calib_rows = _rows(torch.cat(ev.calibration))
    assert not val_rows & train_rows
    assert calib_rows <= train_rows and not calib_rows & val_rows  # BN statistics from the train part only
    d = ev.describe()
    assert d["validation"]["split"] == "carved from train" and d["validation"]["images"] == len(ev.val)
    assert d["bn_recalibration"]["from"] == "train part" and d["threads"] == 2


def test_val_limit_and_fp32_precision(checkpoint):
    ev = SupernetEvaluator(checkpoint, precision="fp32", val_limit=16, threads=1)
    assert len(ev.val) == 16 and ev.describe()["precision"] == "fp32"
    v = ev.evaluate(ev.net.largest())
    assert 0.0 <= v["accuracy"] <= 100.0
    assert v["accuracy"] * 16 / 100 == pytest.approx(round(v["accuracy"] * 16 / 100))  # k of 16 images


def test_int8_onnx_agrees_with_fake_quant(checkpoint, evaluator):
    arch = evaluator.space.sample(5)
    fq = evaluator.evaluate(arch)["accuracy"]
    int8 = SupernetEvaluator(checkpoint, precision="int8", threads=1).evaluate(arch)["accuracy"]
    assert abs(int8 - fq) <= 10.0  # 40 images: at most 4 predictions differ between torch and onnxruntime


def test_cache_file_is_shared_and_keyed_by_settings(checkpoint, tmp_path):
    cache = tmp_path / "evals.jsonl"
    first = SupernetEvaluator(checkpoint, threads=1, cache_path=cache)
    arch = first.space.sample(6)
    v = first.evaluate(arch)
    assert first.evaluations == 1 and cache.read_text().count("\n") == 1
    with open(cache, "a") as fh:
        fh.write('{"torn line\n')  # an interrupted writer: ignored
    second = SupernetEvaluator(checkpoint, threads=1, cache_path=cache)
    assert second.evaluate(arch) == v and second.evaluations == 0 and second.hits == 1
    other = SupernetEvaluator(checkpoint, threads=1, cache_path=cache, precision="fp32")
    assert not other.is_cached(arch)


def test_foreign_arch_and_bad_options_are_one_line_errors(checkpoint, evaluator):
    from tests.helpers import tiny_space

    with pytest.raises(HwnasError) as info:
        evaluator.evaluate(tiny_space("resnet").sample(0))
    assert "\n" not in str(info.value)
    for kwargs, text in (
        ({"precision": "int4"}, "unknown precision"),
        ({"val_fraction": 1.5}, "between 0 and 1"),
        ({"val_limit": 0}, "val_limit must be >= 1"),
    ):
        with pytest.raises(ConfigError, match=text):
            SupernetEvaluator(checkpoint, **kwargs)
    with pytest.raises(HwnasError, match="no such checkpoint"):
        SupernetEvaluator(checkpoint / "nowhere")


def test_lut_latency_and_the_fastest_arch(lut, evaluator):
    space = evaluator.space
    lat = LutLatencyEvaluator.from_lut(lut, TARGET, space)
    archs = list(space.enumerate())
    every = lat.predict_many(archs)
    assert lat.evaluate(archs[7])["latency_ms"] == pytest.approx(every[7])
    arch, ms, exact = lat.fastest()
    assert exact and ms == pytest.approx(min(every))
    # the search path (for spaces too large to enumerate) finds the same minimum here
    arch2, ms2, exact2 = lat.fastest(candidates=[evaluator.net.smallest()], samples=16, exact_limit=0)
    assert not exact2 and ms2 == pytest.approx(min(every))


def test_a_budget_no_arch_meets_is_refused_naming_the_minimum(lut, evaluator):
    lat = LutLatencyEvaluator.from_lut(lut, TARGET, evaluator.space)
    _, ms, _ = lat.fastest()
    with pytest.raises(ConfigError) as info:
        check_latency_budget(lat, [Constraint.parse(f"latency_ms<={ms * 0.9}")], where=" on target T")
    msg = str(info.value)
    assert "\n" not in msg and f"{ms:.4g}" in msg and "on target T" in msg
    ok = check_latency_budget(lat, [Constraint.parse(f"latency_ms<={ms * 1.01}")])
    assert ok is not None and ok["latency_ms"] == pytest.approx(ms) and ok["exact"]
    assert check_latency_budget(lat, [Constraint.parse("accuracy>=50")]) is None


def test_lut_errors_are_one_line(tmp_path, evaluator, lut):
    from tests.helpers import tiny_space

    with pytest.raises(ConfigError, match="no such LUT file"):
        LutLatencyEvaluator.from_lut(tmp_path / "none.db", TARGET, evaluator.space)
    with pytest.raises(HwnasError) as info:  # a LUT of another space
        LutLatencyEvaluator.from_lut(lut, TARGET, tiny_space("resnet"))
    assert "\n" not in str(info.value)


def test_benchmark_script_runs_tiny(checkpoint, lut, tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_hw_search.py"
    spec = importlib.util.spec_from_file_location("bench_hw_search", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    common = ["--checkpoint", str(checkpoint), "--lut", str(lut), "--target", TARGET, "--threads", "1", "--no-progress"]
    out = tmp_path / "res.json"
    assert (
        bench.main(
            [
                *common,
                "--budget",
                "3",
                "--seeds",
                "2",
                "--searchers",
                "evolution",
                "--out",
                str(out),
                "--cache",
                str(tmp_path / "evals.jsonl"),
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert [r["searcher"] for r in res["results"]] == ["random", "evolution"]  # random is always the yardstick
    assert len(res["runs"]) == 4 and all(r["queries"] == 3 for r in res["runs"])
    assert (
        res["max_latency_source"].startswith("p25") and res["evaluator"]["validation"]["split"] == "carved from train"
    )
    for r in res["runs"]:
        if r["best_latency_ms"] is not None:
            assert r["best_latency_ms"] <= res["max_latency_ms"]
    assert "RI vs random" in capsys.readouterr().out
    assert bench.main([*common, "--budget", "2", "--seeds", "1", "--max-latency", "0.0001"]) == 2
    err = capsys.readouterr().err
    assert "no arch of space" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("searcher", ["random", "evolution", "mcts", "smbo", "bo", "tpe", "nsga2", "hhnas"])
def test_every_applicable_searcher_runs_on_supernet_and_lut(searcher, evaluator, lut):
    """Budgeted (accuracy under latency_ms <= L) and Pareto (accuracy, latency_ms:min) searches;
    the shared evaluator's cache keeps this fast."""
    from nas.search import create_searcher, run_search
    from nas.search.evaluators import CompositeEvaluator

    space = evaluator.space
    lat = LutLatencyEvaluator.from_lut(lut, TARGET, space)
    every = sorted(lat.predict_many([space.sample(i) for i in range(200)]))
    budget_ms = every[len(every) // 2]
    both = CompositeEvaluator(evaluator, lat)
    s = create_searcher(searcher, space, objectives=["accuracy"], constraints=[f"latency_ms<={budget_ms}"], seed=0)
    res = run_search(s, both, 5)
    assert len(res.trials) == 5
    if res.best is not None:
        assert res.best.values["latency_ms"] <= budget_ms
    m = create_searcher(searcher, space, objectives=["accuracy", "latency_ms:min"], seed=0)
    front = run_search(m, both, 5).front
    assert front and all(
        not any(
            b is not a
            and b.values["accuracy"] >= a.values["accuracy"]
            and b.values["latency_ms"] < a.values["latency_ms"]
            for b in front
        )
        for a in front
    )

"""Models measured while the machine was busy are stored at once and measured again later."""

from __future__ import annotations

from lut_test_helpers import TEST_FP as FP

from hw_profiles import Stats
from latency_lut.db import open_lut
from latency_lut.profiler import BlockJob, NetworkJob, Profiler, schedule


def _stats(ms: float, stable: bool) -> Stats:
    """A measurement taken while the machine was quiet (``stable``) or busy."""
    return Stats(
        median_ms=ms, mean_ms=ms, std_ms=0.0, min_ms=ms, count=10, spread=0.0, rounds=7, stable=stable, busy=not stable
    )


class ScriptedEngine:
    """Returns the scripted statistics of each model file in turn (the last one repeats)."""

    def __init__(self, script: dict[str, list[Stats]]) -> None:
        self.script = script
        self.calls: list[str] = []

    def measure_file(self, path: str) -> Stats:
        self.calls.append(path)
        queue = self.script[path]
        return queue.pop(0) if len(queue) > 1 else queue[0]


def _jobs(tmp_path, names):
    jobs = []
    for name in names:
        path = tmp_path / f"{name}.onnx"
        jobs.append(
            BlockJob(name, "mbconv", "mbconv relu", lambda p=path: (p.write_bytes(b"model"), str(p))[1], cleanup=True)
        )
    return jobs


def _profiler(engine, db, retry_passes):
    return Profiler(engine, db, FP, "sig", target="t", source="test", retry_passes=retry_passes)


def _profile(tmp_path, script, retry_passes):
    engine = ScriptedEngine({str(tmp_path / f"{k}.onnx"): v for k, v in script.items()})
    with open_lut(tmp_path / "lut.db", "w") as db:
        db.register_fingerprint(FP)
        res = _profiler(engine, db, retry_passes).run(_jobs(tmp_path, list(script)))
        rows = {r["block_key"]: (r["median_ms"], r["stable"]) for r in db.rows(FP.id)}
    return res, rows, engine


def test_busy_measurements_are_remeasured_and_improved(tmp_path):
    script = {
        "quiet": [_stats(1.0, True)],
        "busy_then_quiet": [_stats(2.0, False), _stats(1.1, True)],
        "busy_then_busier": [_stats(1.5, False), _stats(3.0, False), _stats(1.4, True)],
    }
    res, rows, engine = _profile(tmp_path, script, retry_passes=3)
    assert rows == {"quiet": (1.0, 1), "busy_then_quiet": (1.1, 1), "busy_then_busier": (1.4, 1)}
    assert res.measured == 3 and res.remeasured == 3 and res.improved == 2 and res.unstable == 0
    assert engine.calls.count(str(tmp_path / "quiet.onnx")) == 1  # a quiet measurement is never repeated
    assert not list(tmp_path.glob("*.onnx"))  # every exported model was cleaned up


def test_retry_passes_are_bounded(tmp_path):
    res, rows, engine = _profile(tmp_path, {"always_busy": [_stats(2.0, False)]}, retry_passes=2)
    assert len(engine.calls) == 3 and res.unstable == 1 and rows == {"always_busy": (2.0, 0)}
    assert not list(tmp_path.glob("*.onnx"))


def test_no_retry_passes_measures_once(tmp_path):
    res, rows, engine = _profile(tmp_path, {"x": [_stats(2.0, False)]}, retry_passes=0)
    assert len(engine.calls) == 1 and res.remeasured == 0 and res.unstable == 1
    assert not list(tmp_path.glob("*.onnx"))


def test_whole_networks_are_measured_in_every_pass_keeping_the_lowest(tmp_path):
    """As `nas lut validate --passes` measures its networks, so that the correction is fitted on
    the statistic validation reports; quiet blocks are still measured once."""
    path = tmp_path / "net.onnx"
    net = NetworkJob("a1", {"d": 1}, ["quiet"], lambda: (path.write_bytes(b"model"), str(path))[1], cleanup=True)
    engine = ScriptedEngine(
        {
            str(path): [_stats(2.0, True), _stats(1.5, True), _stats(1.8, True)],
            str(tmp_path / "quiet.onnx"): [_stats(1.0, True)],
        }
    )
    with open_lut(tmp_path / "lut.db", "w") as db:
        db.register_fingerprint(FP)
        res = _profiler(engine, db, retry_passes=2).run(_jobs(tmp_path, ["quiet"]), [net])
        (row,) = db.networks(FP.id, "sig")
    assert engine.calls.count(str(path)) == 3 and engine.calls.count(str(tmp_path / "quiet.onnx")) == 1
    assert row["median_ms"] == 1.5 and res.networks == 1 and res.unstable == 0
    assert not list(tmp_path.glob("*.onnx"))


def test_network_measurements_are_spread_over_the_pass_through_the_blocks():
    """A network's measurements lie far apart among the blocks, so one slow spell cannot decide them all."""
    blocks = [BlockJob(f"b{i}", "mbconv", "mbconv relu", lambda: "") for i in range(100)]
    nets = [NetworkJob(f"n{i}", {}, [], lambda: "") for i in range(2)]
    order = schedule(blocks, nets, 4)
    assert [j.key for j, _ in order if isinstance(j, BlockJob)] == [b.key for b in blocks]
    for net in nets:
        where = [i for i, (j, _) in enumerate(order) if j is net]
        assert len(where) == 4 and [first for j, first in order if j is net] == [True, False, False, False]
        assert min(b - a for a, b in zip(where, where[1:])) >= 20
    assert [j.key for j, _ in schedule([], nets, 2)] == ["network n0", "network n1"] * 2


def test_a_folder_s_network_models_are_never_deleted(tmp_path):
    """In folder mode (cleanup=False) the exported network models belong to the user's folder."""
    path = tmp_path / "net.onnx"
    path.write_bytes(b"model")
    net = NetworkJob("a1", {}, [], lambda: str(path))
    engine = ScriptedEngine({str(path): [_stats(2.0, False)], str(tmp_path / "b.onnx"): [_stats(1.0, True)]})
    with open_lut(tmp_path / "lut.db", "w") as db:
        db.register_fingerprint(FP)
        res = _profiler(engine, db, retry_passes=1).run(_jobs(tmp_path, ["b"]), [net])
    assert path.exists() and res.networks == 1 and res.unstable == 1
    assert engine.calls.count(str(path)) == 3  # 1 + 1 spread over the pass, then once more while still busy

"""The measurement harness: statistics, re-measuring wide spreads, the quiet gate, timers."""
from __future__ import annotations

import itertools
import time

import pytest

from hw_profiles import MeasureConfig, measure, resolve_timer
from hw_profiles import harness
from hw_profiles.harness import QuietGate, thread_clock_is_fine


class FakeClock:
    """A clock that advances by the next scripted duration at every call pair (start, stop)."""

    def __init__(self, durations_ms):
        self.durations = iter(durations_ms)
        self.now = 0
        self.started = False

    def __call__(self) -> int:
        if self.started:
            self.now += int(next(self.durations) * 1e6)
        self.started = not self.started
        return self.now


def _cfg(**kw):
    base = dict(warmup_runs=0, warmup_s=0.0, min_runs=5, min_time_s=0.0, rounds=3, max_spread=0.05, max_retries=2,
                quiet_gate=False)
    base.update(kw)
    return MeasureConfig(**base)


def test_statistics_of_steady_runs(monkeypatch):
    monkeypatch.setattr(harness, "_clock", lambda timer: FakeClock(itertools.repeat(2.0)))
    s = measure(lambda: None, "wall", _cfg())
    assert (s.median_ms, s.mean_ms, s.std_ms, s.min_ms, s.count, s.rounds, s.stable) == (2.0, 2.0, 0.0, 2.0, 15, 3, True)


def test_disturbed_rounds_are_left_out(monkeypatch):
    # round medians 3.0, 1.0, 1.02: the slow round is not pooled
    script = [3.0] * 5 + [1.0] * 5 + [1.02] * 5
    monkeypatch.setattr(harness, "_clock", lambda timer: FakeClock(script))
    s = measure(lambda: None, "wall", _cfg())
    assert s.count == 10 and s.median_ms == pytest.approx(1.01) and s.stable
    assert s.spread == pytest.approx(2.0)


def test_wide_spread_is_measured_again(monkeypatch):
    # attempt 1: medians 1.0, 2.0, 3.0 (nothing confirms the lowest); attempt 2 confirms it
    script = [1.0] * 5 + [2.0] * 5 + [3.0] * 5 + [1.01] * 5 + [2.5] * 5 + [2.5] * 5
    monkeypatch.setattr(harness, "_clock", lambda timer: FakeClock(script))
    s = measure(lambda: None, "wall", _cfg())
    assert s.rounds == 6 and s.stable and s.count == 10


def test_gives_up_after_max_retries(monkeypatch):
    script = [1.0] * 5 + [2.0] * 5 + [4.0] * 5 + [0.5] * 5 + [2.0] * 5 + [4.0] * 5
    monkeypatch.setattr(harness, "_clock", lambda timer: FakeClock(script))
    s = measure(lambda: None, "wall", _cfg(max_retries=1))
    assert s.rounds == 6 and not s.stable


def test_real_timing_and_min_time():
    calls = []

    def run():
        calls.append(1)
        t = time.perf_counter()
        while time.perf_counter() - t < 1e-4:
            pass

    s = measure(run, "wall", _cfg(min_time_s=0.01, rounds=2, warmup_runs=3))
    assert s.count >= 10 and 0.09 < s.median_ms < 50 and len(calls) >= s.count + 3


def test_quiet_gate():
    slow = {"on": False}

    def probe():
        t = time.perf_counter()
        while time.perf_counter() - t < (4e-4 if slow["on"] else 1e-4):
            pass

    gate = QuietGate(probe, "wall", tolerance=0.5, max_wait_s=0.2, probe_runs=3, calibrate_s=0.02)
    assert gate.wait() is True
    slow["on"] = True
    start = time.perf_counter()
    assert gate.wait() is False
    assert time.perf_counter() - start >= 0.2 and gate.timeouts == 1


def test_timer_resolution():
    assert resolve_timer("wall", True) == "wall"
    assert resolve_timer("auto", False) == "wall"
    assert resolve_timer("thread_cpu", False) == "wall"
    assert resolve_timer("auto", True) == ("thread_cpu" if thread_clock_is_fine() else "wall")


def test_rounds_taken_on_a_busy_machine_are_unstable(monkeypatch):
    class BusyGate:
        calls = 0

        def wait(self, max_wait_s=None):
            BusyGate.calls += 1
            return False

    monkeypatch.setattr(harness, "_clock", lambda timer: FakeClock(itertools.repeat(1.0)))
    s = measure(lambda: None, "wall", _cfg(), gate=BusyGate())
    assert not s.stable and BusyGate.calls == 3 and s.median_ms == 1.0
    assert s.p10_ms == 1.0

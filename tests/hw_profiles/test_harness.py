"""The measurement harness: statistics, re-measuring wide spreads, the quiet gate, timers."""

from __future__ import annotations

import itertools
import time

import pytest

from hw_profiles import MeasureConfig, harness, measure, resolve_timer
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
    base = dict(
        warmup_runs=0,
        warmup_s=0.0,
        min_runs=5,
        min_time_s=0.0,
        rounds=3,
        max_rounds=8,
        target_ci=0.02,
        min_sample_us=0.0,
        quiet_gate=False,
    )
    base.update(kw)
    return MeasureConfig(**base)


def test_statistics_of_steady_runs(monkeypatch):
    monkeypatch.setattr(harness, "_clock", lambda timer: FakeClock(itertools.repeat(2.0)))
    s = measure(lambda: None, "wall", _cfg())
    assert (s.median_ms, s.mean_ms, s.std_ms, s.min_ms, s.count, s.rounds, s.stable) == (
        2.0,
        2.0,
        0.0,
        2.0,
        15,
        3,
        True,
    )
    assert s.ci_rel == 0.0 and not s.busy and s.batch == 1


def test_precise_rounds_stop_early_and_noisy_ones_go_on(monkeypatch):
    # round medians 1.0, 1.005, 0.995: precise after the minimum of three rounds
    script = [1.0] * 5 + [1.005] * 5 + [0.995] * 5
    monkeypatch.setattr(harness, "_clock", lambda timer: FakeClock(script))
    s = measure(lambda: None, "wall", _cfg())
    assert s.rounds == 3 and s.stable and s.ci_rel < 0.02 and s.median_ms == pytest.approx(1.0)
    # medians 1.0, 1.3, 0.8, ...: the interval is wide, rounds go on up to max_rounds
    noisy = itertools.cycle([1.0] * 5 + [1.3] * 5 + [0.8] * 5)
    monkeypatch.setattr(harness, "_clock", lambda timer: FakeClock(noisy))
    s = measure(lambda: None, "wall", _cfg(max_rounds=7))
    assert s.rounds == 7 and not s.stable and not s.busy and s.ci_rel > 0.02 and s.median_ms == pytest.approx(1.0)


def test_estimate_is_the_median_of_round_medians_not_the_minimum(monkeypatch):
    script = [0.5] * 5 + [1.0] * 5 + [1.0] * 5 + [1.01] * 5 + [0.99] * 5
    monkeypatch.setattr(harness, "_clock", lambda timer: FakeClock(script))
    s = measure(lambda: None, "wall", _cfg(max_rounds=5))
    assert s.median_ms == pytest.approx(1.0) and s.spread == pytest.approx(1.02)


def test_tiny_models_are_timed_in_batches(monkeypatch):
    calls = []

    def run():
        calls.append(1)
        t = time.perf_counter()
        while time.perf_counter() - t < 2e-6:
            pass

    s = measure(run, "wall", _cfg(warmup_runs=20, min_sample_us=50.0, rounds=2, max_rounds=2, min_runs=3))
    assert s.batch > 1 and s.count == 6 and len(calls) == 20 + 6 * s.batch
    assert 0.001 < s.median_ms < 0.05  # per run, not per batch


def test_median_ci():
    assert harness.median_ci([1.0]) == float("inf")
    assert harness.median_ci([1.0, 1.0, 1.0]) == 0.0
    wide, narrow = harness.median_ci([1.0, 1.2, 0.8, 1.1, 0.9]), harness.median_ci([1.0, 1.02, 0.98, 1.01, 0.99])
    assert wide > 0.1 > narrow > 0.0


def test_real_timing_and_min_time():
    calls = []

    def run():
        calls.append(1)
        t = time.perf_counter()
        while time.perf_counter() - t < 1e-4:
            pass

    s = measure(run, "wall", _cfg(min_time_s=0.01, rounds=2, warmup_runs=3))
    assert s.count >= 10 and 0.09 < s.median_ms < 50 and len(calls) >= s.count + 3


class SteppedProbe:
    """A probe that spins for ``ms`` milliseconds (wall clock), changeable between calls."""

    def __init__(self, ms: float):
        self.ms = ms

    def __call__(self):
        t = time.perf_counter()
        while time.perf_counter() - t < self.ms / 1e3:
            pass


def _gate(probe, **kw):
    base = dict(tolerance=0.3, max_wait_s=0.2, probe_runs=3, calibrate_s=0.05, settle_s=0.0, measure_idle=False)
    base.update(kw)
    return QuietGate(probe, "wall", **base)


def test_quiet_gate_waits_while_busy_and_gives_up():
    probe = SteppedProbe(0.1)
    gate = _gate(probe)
    # a steady probe reads as quiet (a loaded host may preempt a reading or two of the calibration)
    assert gate.noise.probe_quiet_ms == pytest.approx(0.1, rel=0.5) and gate.noise.disturbed_share < 0.2
    assert gate.wait() is True
    probe.ms = 0.4
    start = time.perf_counter()
    assert gate.wait() is False
    assert time.perf_counter() - start >= 0.2 and gate.timeouts == 1 and gate.busy_checks >= 1
    report = gate.report()
    assert report["gate_timeouts"] == 1 and report["probe_quiet_ms"] > 0 and "probe_noise" in report


def test_quiet_gate_level_is_not_a_ratchet():
    """One lucky fast reading does not make the gate stricter for good (the old minimum did)."""
    probe = SteppedProbe(0.2)
    gate = _gate(probe, tolerance=0.1)
    level = gate.baseline
    probe.ms = 0.05  # one fast spell of a single reading
    gate.quiet()
    probe.ms = 0.2
    assert gate.baseline == pytest.approx(level, rel=0.05)
    assert gate.wait() is True


def test_quiet_gate_follows_a_lasting_change(monkeypatch):
    probe = SteppedProbe(0.1)
    gate = _gate(probe, tolerance=0.3, window_s=1.0)
    monkeypatch.setattr(QuietGate, "BUCKET_S", 0.05)
    probe.ms = 0.3  # a neighbour's lasting load: after a window of it, it is the new normal
    deadline = time.perf_counter() + 5.0
    while not gate.quiet() and time.perf_counter() < deadline:
        time.sleep(0.02)
    assert gate.quiet() and gate.baseline > 0.2


def test_calibration_sees_a_disturbed_host():
    class Bimodal:
        n = 0

        def __call__(self):
            Bimodal.n += 1
            slow = (Bimodal.n // 30) % 3 == 0  # a third of the time 3x slower, in spells
            t = time.perf_counter()
            while time.perf_counter() - t < (3e-4 if slow else 1e-4):
                pass

    gate = _gate(Bimodal(), calibrate_s=0.3)
    assert gate.noise.probe_quiet_ms == pytest.approx(0.1, rel=0.5)
    assert 0.1 < gate.noise.disturbed_share < 0.6 and gate.noise.disturbed_slowdown > 2.0


def test_timer_resolution():
    assert resolve_timer("wall", True) == "wall"
    assert resolve_timer("auto", False) == "wall"
    assert resolve_timer("thread_cpu", False) == "wall"
    assert resolve_timer("auto", True) == ("thread_cpu" if thread_clock_is_fine() else "wall")


def test_rounds_taken_on_a_busy_machine_are_flagged_busy(monkeypatch):
    class BusyGate:
        calls = 0

        def wait(self, max_wait_s=None):
            BusyGate.calls += 1
            return False

        def quiet(self):
            return False

    monkeypatch.setattr(harness, "_clock", lambda timer: FakeClock(itertools.repeat(1.0)))
    s = measure(lambda: None, "wall", _cfg(max_time_s=0.0), gate=BusyGate())
    assert s.busy and not s.stable and BusyGate.calls == 3 and s.median_ms == 1.0
    assert s.p10_ms == 1.0


def test_a_round_disturbed_at_its_end_does_not_count(monkeypatch):
    class Gate:
        ends = iter([True, False, True, True, True])  # the second round ends busy

        def wait(self, max_wait_s=None):
            return True

        def quiet(self):
            return next(Gate.ends)

    script = [1.0] * 5 + [3.0] * 5 + [1.0] * 5 + [1.0] * 5
    monkeypatch.setattr(harness, "_clock", lambda timer: FakeClock(script))
    s = measure(lambda: None, "wall", _cfg(), gate=Gate())
    assert s.rounds == 4 and s.median_ms == 1.0 and s.count == 15 and not s.busy and s.stable


def test_a_gate_started_in_a_disturbed_spell_uses_the_remembered_quiet_level():
    """Calibrated while a neighbour slows the core down, the gate still knows what quiet looks
    like from an earlier process, and flags the spell busy."""
    probe = SteppedProbe(0.3)  # the whole calibration is disturbed: 3x the quiet 0.1 ms
    gate = _gate(probe, tolerance=0.1, known_quiet_ms=0.1)
    assert gate.noise.started_disturbed and gate.noise.prior_quiet_ms == 0.1 and gate.baseline == 0.1
    assert gate.noise.disturbed_share == 1.0
    assert gate.wait(0.05) is False  # the spell is busy
    probe.ms = 0.1
    assert gate.wait() is True
    assert gate.real_buckets() >= 1
    unaware = _gate(SteppedProbe(0.3), tolerance=0.1)  # without the prior the spell looks quiet
    assert not unaware.noise.started_disturbed and unaware.wait() is True


def test_noise_cache_remembers_the_lower_level_for_a_day(tmp_path, monkeypatch):
    from hw_profiles import noise_cache

    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path))
    assert noise_cache.load_quiet_level("k") is None
    noise_cache.save_quiet_level("k", 0.2, now=1000.0)
    noise_cache.save_quiet_level("k", 0.3, now=1001.0)  # higher: kept the lower one
    assert noise_cache.load_quiet_level("k", now=1002.0) == 0.2
    noise_cache.save_quiet_level("k", 0.1, now=1003.0)
    assert noise_cache.load_quiet_level("k", now=1004.0) == 0.1
    assert noise_cache.load_quiet_level("k", now=1003.0 + noise_cache.MAX_AGE_S + 1) is None  # expired
    (tmp_path / "quiet-levels.json").write_text("{not json")
    assert noise_cache.load_quiet_level("k") is None  # a damaged file is ignored
    noise_cache.save_quiet_level("k", 0.5)
    assert noise_cache.load_quiet_level("k") == 0.5
    monkeypatch.setenv("HWNAS_CACHE_DIR", "off")
    assert noise_cache.cache_file() is None and noise_cache.load_quiet_level("k") is None

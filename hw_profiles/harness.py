"""The measurement harness: warm-up, timed rounds, robust statistics, re-measuring.

Works with any zero-argument callable that runs one inference (an engine's runner), so it
has no engine dependency; it needs numpy only.

Timers
    ``wall``        ``time.perf_counter_ns``: wall-clock latency.
    ``thread_cpu``  ``time.thread_time_ns``: CPU time of the calling thread. For an engine
                    that runs a single-threaded inference in the calling thread (onnxruntime
                    with one intra-op thread, torch with one thread) it equals the wall latency
                    on an idle core and leaves out the time the thread is preempted by other
                    processes: the robust choice on a shared machine.
    ``auto``        ``thread_cpu`` where the runner says it computes in the calling thread and
                    the platform's thread clock is fine-grained, else ``wall``.

Estimate
    Other processes only ever make a run slower, so the estimate is taken from the least
    disturbed rounds: the rounds whose median lies within ``max_spread`` of the lowest
    round median are pooled, and the pool's median, mean, std and count are reported.
    When the spread is too wide (no other round confirms the lowest one within
    ``max_spread``), the model is measured again, up to ``max_retries`` more times, and all
    rounds so far are considered.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from hw_profiles.targets import MeasureConfig

__all__ = ["QuietGate", "Stats", "measure", "resolve_timer", "thread_clock_is_fine"]


@dataclass(frozen=True)
class Stats:
    """Latency statistics of one model, in milliseconds."""

    median_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    count: int
    spread: float  # relative spread of all round medians, (max - min) / min
    rounds: int  # rounds measured in all (kept or not)
    stable: bool  # two rounds agreed within max_spread with the lowest one, none taken while the machine was busy
    p10_ms: float = float("nan")  # 10th percentile of every timed run (all rounds, kept or not)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def thread_clock_is_fine() -> bool:
    """True when ``time.thread_time_ns`` resolves at least a microsecond."""
    try:
        return time.get_clock_info("thread_time").resolution <= 1e-6
    except (ValueError, OSError):  # pragma: no cover - platform without a thread clock
        return False


def resolve_timer(timer: str, runs_in_caller_thread: bool) -> str:
    """``auto`` → ``thread_cpu`` or ``wall``; ``thread_cpu`` where invalid → ``wall``."""
    if timer == "wall":
        return "wall"
    if runs_in_caller_thread and thread_clock_is_fine():
        return "thread_cpu"
    return "wall"


def _clock(timer: str) -> Callable[[], int]:
    return time.thread_time_ns if timer == "thread_cpu" else time.perf_counter_ns


def _round(run: Callable[[], Any], clock: Callable[[], int], cfg: MeasureConfig) -> list[float]:
    samples: list[float] = []
    wall = time.perf_counter
    start = wall()
    min_time = cfg.min_time_s
    while len(samples) < cfg.max_runs and (len(samples) < cfg.min_runs or wall() - start < min_time):
        t0 = clock()
        run()
        samples.append((clock() - t0) / 1e6)
    return samples


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])


class QuietGate:
    """Waits until the machine is quiet, judged by a small fixed probe workload.

    The probe's quiet latency is the lowest probe median seen so far (calibrated at
    creation over ~``calibrate_s`` seconds). :meth:`wait` times the probe and, while it runs
    more than ``tolerance`` slower than that, sleeps with a growing back-off, at most
    ``max_wait_s`` in all. Other processes that slow the whole machine down (shared cores,
    memory bandwidth) slow the probe down alike, so rounds are taken in quiet windows and
    measurements made at different times stay comparable.
    """

    def __init__(self, probe: Callable[[], Any], timer: str = "wall", tolerance: float = 0.12,
                 max_wait_s: float = 3.0, probe_runs: int = 15, calibrate_s: float = 0.3) -> None:
        self.probe = probe
        self.clock = _clock(timer)
        self.tolerance = tolerance
        self.max_wait_s = max_wait_s
        self.probe_runs = probe_runs
        self.baseline = float("inf")
        self.waited_s = 0.0
        self.timeouts = 0
        for _ in range(5):
            probe()
        end = time.perf_counter() + calibrate_s
        while True:
            self.baseline = min(self.baseline, self.sample())
            if time.perf_counter() >= end:
                break

    def sample(self) -> float:
        """The probe's median latency (ms) over ``probe_runs`` runs."""
        values = []
        for _ in range(self.probe_runs):
            t0 = self.clock()
            self.probe()
            values.append((self.clock() - t0) / 1e6)
        return _median(values)

    def quiet(self) -> bool:
        value = self.sample()
        self.baseline = min(self.baseline, value)
        return value <= self.baseline * (1.0 + self.tolerance)

    def wait(self, max_wait_s: float | None = None) -> bool:
        """Return once the machine is quiet (True) or ``max_wait_s`` (default: the gate's)
        has passed (False)."""
        limit = self.max_wait_s if max_wait_s is None else max_wait_s
        start = time.perf_counter()
        pause = 0.05
        while not self.quiet():
            if time.perf_counter() - start >= limit:
                self.timeouts += 1
                self.waited_s += time.perf_counter() - start
                return False
            time.sleep(pause)
            pause = min(pause * 1.6, 1.0)
        self.waited_s += time.perf_counter() - start
        return True


def measure(run: Callable[[], Any], timer: str = "wall", config: MeasureConfig | None = None,
            sync: Callable[[], Any] | None = None, gate: QuietGate | None = None) -> Stats:
    """Time ``run`` (one inference per call) and return robust statistics.

    ``timer`` is ``wall`` or ``thread_cpu`` (resolve ``auto`` first with
    :func:`resolve_timer`). ``sync``, when given, is called after each run inside the timed
    region (e.g. a CUDA stream synchronisation for asynchronous engines). ``gate``, when
    given, is waited on before each round (see :class:`QuietGate`).
    """
    cfg = config or MeasureConfig()
    clock = _clock(timer)
    call = run
    if sync is not None:
        def call() -> None:
            run()
            sync()

    start = time.perf_counter()
    n = 0
    while n < cfg.warmup_runs or time.perf_counter() - start < cfg.warmup_s:
        call()
        n += 1
        if n >= max(cfg.warmup_runs, 1) and n >= cfg.max_runs:
            break
    rounds: list[list[float]] = []
    medians: list[float] = []
    need = min(2, cfg.rounds)
    attempts = 0
    gate_budget = cfg.gate_max_wait_s  # waiting for quiet moments, per measured model in all
    noisy_rounds = 0  # rounds taken although the gate found the machine busy
    while True:
        for _ in range(cfg.rounds):
            if gate is not None:
                t0 = time.perf_counter()
                noisy_rounds += not gate.wait(max(gate_budget, 0.0))
                gate_budget -= time.perf_counter() - t0
            samples = _round(call, clock, cfg)
            rounds.append(samples)
            medians.append(_median(samples))
        lowest = min(medians)
        kept = [i for i, m in enumerate(medians) if m <= lowest * (1.0 + cfg.max_spread)]
        if len(kept) >= need or attempts >= cfg.max_retries:
            break
        attempts += 1  # the lowest round is not confirmed by another one: measure again
    pool = [x for i in kept for x in rounds[i]]
    everything = sorted(x for r in rounds for x in r)
    mean = sum(pool) / len(pool)
    var = sum((x - mean) ** 2 for x in pool) / max(len(pool) - 1, 1)
    return Stats(
        median_ms=_median(pool),
        mean_ms=mean,
        std_ms=math.sqrt(var),
        min_ms=min(pool),
        count=len(pool),
        spread=(max(medians) - lowest) / lowest if lowest > 0 else 0.0,
        rounds=len(rounds),
        stable=len(kept) >= need and noisy_rounds == 0,
        p10_ms=everything[int(0.1 * (len(everything) - 1))],
    )

"""The measurement harness: warm-up, timed rounds until the median is precise, a host noise model.

Works with any zero-argument callable that runs one inference (an engine's runner), so it
has no engine dependency.

Timers
    ``wall``        ``time.perf_counter_ns``: wall-clock latency.
    ``thread_cpu``  ``time.thread_time_ns``: CPU time of the calling thread. For an engine
                    that runs a single-threaded inference in the calling thread (onnxruntime
                    with one intra-op thread, torch with one thread) it equals the wall latency
                    on an idle core and leaves out the time the thread is preempted by other
                    processes: the robust choice on a shared machine.
    ``auto``        ``thread_cpu`` where the runner says it computes in the calling thread and
                    the platform's thread clock is fine-grained, else ``wall``.

Effort follows precision
    Rounds are taken until the 95 % confidence interval of the median of the round medians
    is within ``target_ci`` of it (at least ``rounds``, at most ``max_rounds`` rounds or
    ``max_time_s``): a 1 ms block stops after three rounds, a 0.02 ms block on a jittery
    host gets more. A sample is ``k`` back-to-back runs, ``k`` chosen from the warm-up so that
    a sample rises well above the timer's resolution.

Noise model (:class:`QuietGate`)
    Calibrated once per engine: the probe model is run until the CPU settles into its
    sustained state (hosts that run faster right after an idle spell, then slow down under
    steady load, are common), then sampled; the gate's reference is the *median* of recent
    probe readings and its threshold a number of robust deviations (MAD) above it, never a
    ratcheted minimum that one lucky reading makes stricter for good. A lasting shift (a
    neighbour's steady load) moves the median and stops counting as busy; a spell does not.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from hw_profiles.errors import TargetConfigError

__all__ = [
    "MeasureConfig",
    "NoiseModel",
    "QuietGate",
    "Stats",
    "measure",
    "median_ci",
    "resolve_timer",
    "thread_clock_is_fine",
    "timer_resolution_ns",
]

#: 1.4826 × MAD estimates the standard deviation of normal data
MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class MeasureConfig:
    """How one model is timed (see :func:`measure`); a target's ``measure:`` section.

    Warm-up runs ``warmup_runs`` times and at least ``warmup_s`` seconds. Then timed rounds,
    each of at least ``min_runs`` samples and ``min_time_s`` seconds (at most ``max_runs``),
    until the 95 % confidence interval of the median reaches ``target_ci`` (relative half-width)
    after at least ``rounds`` rounds, or ``max_rounds`` rounds / ``max_time_s`` seconds are
    spent: large blocks stop early, tiny ones get more samples. A sample is ``k`` back-to-back
    runs (the per-run figure divides by ``k``), ``k`` chosen so that one sample lasts at least
    ``min_sample_us`` microseconds and 100 timer ticks.

    ``quiet_gate``: before each round, time a small fixed probe model and compare it with the
    host's noise model (calibrated when the engine starts: the probe's median and robust
    spread); a reading more than ``gate_sigmas`` robust deviations (and ``gate_tolerance``
    relatively) above the probe's recent median means the machine is busy, and the gate waits
    (at most ``gate_max_wait_s`` per measured model in all). Rounds still taken while busy
    flag the model as busy, and the profiler measures it again in a later pass.
    """

    warmup_runs: int = 10
    warmup_s: float = 0.03
    min_runs: int = 5
    min_time_s: float = 0.01
    max_runs: int = 5000
    rounds: int = 3
    max_rounds: int = 15
    target_ci: float = 0.02
    max_time_s: float = 1.5
    min_sample_us: float = 20.0
    quiet_gate: bool = True
    gate_sigmas: float = 3.0
    gate_tolerance: float = 0.08
    gate_max_wait_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("warmup_runs", "min_runs", "max_runs", "rounds", "max_rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TargetConfigError(f"measure.{name}: expected a non-negative integer, got {value!r}")
        if not isinstance(self.quiet_gate, bool):
            raise TargetConfigError(f"measure.quiet_gate: expected true or false, got {self.quiet_gate!r}")
        for name in (
            "warmup_s",
            "min_time_s",
            "target_ci",
            "max_time_s",
            "min_sample_us",
            "gate_sigmas",
            "gate_tolerance",
            "gate_max_wait_s",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise TargetConfigError(f"measure.{name}: expected a non-negative number, got {value!r}")
        if self.rounds < 1 or self.min_runs < 1:
            raise TargetConfigError("measure: rounds and min_runs must be at least 1")
        if self.max_rounds < self.rounds:
            raise TargetConfigError(f"measure.max_rounds ({self.max_rounds}) is below rounds ({self.rounds})")
        if self.max_runs < self.min_runs:
            raise TargetConfigError(f"measure.max_runs ({self.max_runs}) is below min_runs ({self.min_runs})")

    def replace(self, **changes: Any) -> MeasureConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Stats:
    """Latency statistics of one model, in milliseconds."""

    median_ms: float  # median of the round medians of the rounds taken while the machine was quiet
    mean_ms: float
    std_ms: float
    min_ms: float
    count: int  # samples pooled (of those rounds)
    spread: float  # relative spread of all round medians, (max - min) / min
    rounds: int  # rounds measured in all
    stable: bool  # precise (ci_rel within the target) and no round taken while the machine was busy
    p10_ms: float = float("nan")  # 10th percentile of every timed sample (all rounds)
    busy: bool = False  # some round was taken while the quiet gate found the machine busy
    ci_rel: float = float("nan")  # half-width of the median's 95 % confidence interval, relative to it
    batch: int = 1  # back-to-back runs per timed sample

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


def timer_resolution_ns(timer: str = "wall", tries: int = 200) -> int:
    """The timer's effective resolution: the smallest step it was seen to advance by (ns)."""
    clock = _clock(timer)
    best = 10**9
    for _ in range(tries):
        a = clock()
        b = clock()
        while b == a:
            b = clock()
        best = min(best, b - a)
    return max(best, 1)


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])


def _robust_sd(values: list[float]) -> float:
    """1.4826 × the median absolute deviation (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    m = _median(values)
    return MAD_TO_SD * _median([abs(v - m) for v in values])


def median_ci(values: list[float]) -> float:
    """Relative half-width of an approximate 95 % confidence interval of the median of
    ``values`` (independent round medians): 1.96 × 1.2533 × robust sd / √n, over the median.
    Infinite for fewer than two values."""
    if len(values) < 2:
        return math.inf
    m = _median(values)
    if m <= 0:
        return math.inf
    sd = _robust_sd(values)
    if sd == 0.0:  # the middle values agree exactly: fall back on the plain deviation of all of them
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return 1.96 * 1.2533 * sd / math.sqrt(len(values)) / m


def _round(run: Callable[[], Any], clock: Callable[[], int], cfg: MeasureConfig, batch: int) -> list[float]:
    """One round: samples of ``batch`` back-to-back runs each, per-run milliseconds."""
    samples: list[float] = []
    wall = time.perf_counter
    start = wall()
    min_time = cfg.min_time_s
    limit = max(cfg.max_runs // batch, cfg.min_runs)
    while len(samples) < limit and (len(samples) < cfg.min_runs or wall() - start < min_time):
        t0 = clock()
        for _ in range(batch):
            run()
        samples.append((clock() - t0) / 1e6 / batch)
    return samples


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(int(q * (len(s) - 1) + 0.5), len(s) - 1)]


@dataclass(frozen=True)
class NoiseModel:
    """What the host's timing noise looks like, measured with the gate's probe model.

    Shared hosts are often bimodal: quiet spells, and spells in which a neighbour (another VM on
    the same physical core, a busy sibling process) slows everything down by a large factor.
    The quiet level is a low quantile of the probe readings, the noise within it the robust
    deviation of the readings near that level; ``disturbed_share`` is the share of calibration
    readings above the busy threshold and ``disturbed_slowdown`` how much slower those ran.
    """

    timer: str
    timer_resolution_us: float
    probe_quiet_ms: float  # the probe's quiet level: 10th percentile of its readings
    probe_sd_ms: float  # robust deviation of the readings within 8 % of the quiet level
    run_cv: float  # run-to-run robust coefficient of variation of single probe runs (quiet readings)
    readings: int
    disturbed_share: float
    disturbed_slowdown: float  # median busy reading over the quiet level (1.0 when none was busy)
    idle_speedup: float  # sustained probe latency over the one right after 1 s idle (>1: a post-idle boost)
    prior_quiet_ms: float | None = None  # the quiet level a recent process saw (hw_profiles.noise_cache)
    started_disturbed: bool = False  # the calibration ran slower than that prior: the gate starts from the prior

    @property
    def probe_noise(self) -> float:
        """The quiet probe readings' robust relative spread."""
        return self.probe_sd_ms / self.probe_quiet_ms if self.probe_quiet_ms > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "probe_noise": self.probe_noise}


class QuietGate:
    """Waits until the machine is quiet, judged by a small fixed probe workload.

    At creation the probe runs for ``settle_s`` seconds (the CPU leaves any post-idle boost),
    then is read for ``calibrate_s`` seconds into the host's :class:`NoiseModel`. Afterwards the
    quiet level is the median, over the half-second buckets of the last ``window_s`` seconds, of
    each bucket's 10th-percentile reading: per bucket, the quiet moments it had (quiet and
    disturbed spells alternate within a second on shared hosts); over buckets, a share of time,
    not of readings (the gate reads more often while it waits), never a single lucky reading;
    and it follows a lasting change of speed either way (one lasting half the window). A reading is
    *busy* when it exceeds the quiet level by more than ``sigmas`` robust deviations and by more
    than ``tolerance`` relatively. :meth:`wait` reads the probe until it is quiet, polling with
    short pauses, at most ``max_wait_s``.
    """

    def __init__(
        self,
        probe: Callable[[], Any],
        timer: str = "wall",
        sigmas: float = 3.0,
        tolerance: float = 0.08,
        max_wait_s: float = 1.0,
        probe_runs: int = 15,
        calibrate_s: float = 1.5,
        settle_s: float = 0.5,
        window_s: float = 90.0,
        measure_idle: bool = True,
        known_quiet_ms: float | None = None,
    ) -> None:
        self.probe = probe
        self.timer = timer
        self.clock = _clock(timer)
        self.sigmas = sigmas
        self.tolerance = tolerance
        self.max_wait_s = max_wait_s
        self.probe_runs = probe_runs
        self.window_s = window_s
        self.waited_s = 0.0
        self.timeouts = 0
        self.checks = 0
        self.busy_checks = 0
        fresh = 0.0
        if measure_idle:  # how much faster the host runs right after an idle spell (reported only)
            for _ in range(3):
                probe()
            time.sleep(1.0)
            for _ in range(3):  # caches refilled
                probe()
            fresh = self.sample()
        end = time.perf_counter() + settle_s
        while time.perf_counter() < end:
            probe()
        readings: list[float] = []
        runs: list[list[float]] = []
        end = time.perf_counter() + calibrate_s
        while True:
            values = self._runs()
            runs.append(values)
            readings.append(_median(values))
            if len(readings) >= 10 and time.perf_counter() >= end:
                break
        quiet = _quantile(readings, 0.1)
        near = [r for r in readings if r <= quiet * 1.08]
        sd = max(_robust_sd(near), 0.005 * quiet)
        self._sd = sd
        self.buckets: deque[tuple[float, list[float]]] = deque()  # (start, readings) per half second
        self._level = quiet
        t = time.monotonic() - calibrate_s
        for i, r in enumerate(readings):  # spread the calibration over its buckets
            self._add(t + calibrate_s * i / len(readings), r)
        self._level = quiet
        started_disturbed = known_quiet_ms is not None and known_quiet_ms * (1.0 + tolerance) < quiet
        if started_disturbed:  # calibrated inside a disturbed spell: start from the remembered level,
            # as half a window of buckets, so that only a change lasting that long outvotes it
            assert known_quiet_ms is not None
            now = time.monotonic()
            for i in range(int(window_s / self.BUCKET_S / 2)):
                self.buckets.appendleft((now - calibrate_s - 1e-3 * (i + 1), [known_quiet_ms]))
            self._level = known_quiet_ms
        limit = self.threshold()
        busy = [r for r in readings if r > limit]
        quiet_runs = [v for vals, r in zip(runs, readings) if r <= limit for v in vals]
        run_med = _median(quiet_runs) if quiet_runs else quiet
        sustained = _median(near)
        self.noise = NoiseModel(
            timer=timer,
            timer_resolution_us=timer_resolution_ns(timer) / 1e3,
            probe_quiet_ms=quiet,
            probe_sd_ms=sd,
            run_cv=_robust_sd(quiet_runs) / run_med if run_med > 0 else math.nan,
            readings=len(readings),
            disturbed_share=len(busy) / len(readings),
            disturbed_slowdown=_median(busy) / quiet if busy else 1.0,
            idle_speedup=sustained / fresh if fresh > 0 else 1.0,
            prior_quiet_ms=known_quiet_ms,
            started_disturbed=started_disturbed,
        )

    def _runs(self) -> list[float]:
        values = []
        for _ in range(self.probe_runs):
            t0 = self.clock()
            self.probe()
            values.append((self.clock() - t0) / 1e6)
        return values

    def sample(self) -> float:
        """The probe's median latency (ms) over ``probe_runs`` runs."""
        return _median(self._runs())

    BUCKET_S = 0.5

    def _add(self, now: float, value: float) -> None:
        if self.buckets and now - self.buckets[-1][0] < self.BUCKET_S:
            self.buckets[-1][1].append(value)
        else:  # a bucket closed: the level is recomputed from the closed ones in the window
            if self.buckets:
                while len(self.buckets) > 3 and self.buckets[0][0] < now - self.window_s:
                    self.buckets.popleft()
                self._level = _median([_quantile(v, 0.1) for _, v in self.buckets])
            self.buckets.append((now, [value]))

    def real_buckets(self) -> int:
        """Half-second buckets of readings this gate took itself (not the remembered prior)."""
        return sum(1 for _, v in self.buckets if not (len(v) == 1 and v[0] == self.noise.prior_quiet_ms))

    @property
    def baseline(self) -> float:
        """The probe's quiet level now (median over recent half-second buckets of their 10th percentile), ms."""
        return self._level

    def threshold(self) -> float:
        """Readings above this (ms) mean the machine is busy."""
        base = self.baseline
        return base + max(self.sigmas * self._sd, self.tolerance * base)

    def quiet(self) -> bool:
        """Read the probe once: is the machine quiet now?"""
        value = self.sample()
        limit = self.threshold()
        self._add(time.monotonic(), value)
        self.checks += 1
        busy = value > limit
        self.busy_checks += busy
        return not busy

    def wait(self, max_wait_s: float | None = None) -> bool:
        """Return once the machine is quiet (True) or ``max_wait_s`` (default: the gate's)
        has passed (False)."""
        limit = self.max_wait_s if max_wait_s is None else max_wait_s
        start = time.perf_counter()
        pause = 0.002
        while not self.quiet():
            if time.perf_counter() - start >= limit:
                self.timeouts += 1
                self.waited_s += time.perf_counter() - start
                return False
            time.sleep(pause)
            pause = min(pause * 1.5, 0.05)
        self.waited_s += time.perf_counter() - start
        return True

    def report(self) -> dict[str, Any]:
        """The noise model and what the gate did so far (for a LUT's run record)."""
        return {
            **self.noise.to_dict(),
            "gate_checks": self.checks,
            "gate_busy_checks": self.busy_checks,
            "gate_timeouts": self.timeouts,
            "gate_waited_s": round(self.waited_s, 3),
            "gate_sigmas": self.sigmas,
            "gate_tolerance": self.tolerance,
        }


def measure(
    run: Callable[[], Any],
    timer: str = "wall",
    config: MeasureConfig | None = None,
    sync: Callable[[], Any] | None = None,
    gate: QuietGate | None = None,
) -> Stats:
    """Time ``run`` (one inference per call) and return robust statistics.

    ``timer`` is ``wall`` or ``thread_cpu`` (resolve ``auto`` first with
    :func:`resolve_timer`). ``sync``, when given, is called after each run inside the timed
    region (e.g. a CUDA stream synchronisation for asynchronous engines). ``gate``, when
    given, is waited on before each round and read again after it: a round counts as quiet
    only when the machine was quiet at both ends. The estimate is the median of the quiet
    rounds' medians; rounds go on until it is precise (``target_ci``) or the caps are reached.
    """
    cfg = config or MeasureConfig()
    clock = _clock(timer)
    call = run
    if sync is not None:

        def call() -> None:
            run()
            sync()

    start = time.perf_counter()
    warm: list[int] = []
    while len(warm) < cfg.warmup_runs or time.perf_counter() - start < cfg.warmup_s:
        t0 = clock()
        call()
        warm.append(clock() - t0)
        if len(warm) >= max(cfg.warmup_runs, 1) and len(warm) >= cfg.max_runs:
            break
    per_run_ns = _median([float(w) for w in warm[len(warm) // 2 :]]) if warm else 0.0
    batch = 1
    if per_run_ns > 0:
        floor_ns = max(cfg.min_sample_us * 1e3, 100 * timer_resolution_ns(timer, tries=20))
        batch = max(1, min(1000, math.ceil(floor_ns / per_run_ns)))
    rounds: list[list[float]] = []
    medians: list[float] = []
    quiet: list[bool] = []
    gate_budget = cfg.gate_max_wait_s  # waiting for quiet moments, per measured model in all
    timed_from = time.perf_counter()
    ci = math.inf
    need = min(cfg.rounds, 2)
    while len(rounds) < cfg.max_rounds:
        calm = True
        if gate is not None:
            waited_from = time.perf_counter()
            calm = gate.wait(max(gate_budget, 0.0))
            gate_budget -= time.perf_counter() - waited_from
        samples = _round(call, clock, cfg, batch)
        if gate is not None and calm:
            calm = gate.quiet()  # still quiet at the end of the round
        rounds.append(samples)
        medians.append(_median(samples))
        quiet.append(calm)
        good = [m for m, q in zip(medians, quiet) if q]
        if len(good) >= cfg.rounds:
            ci = median_ci(good)
            if ci <= cfg.target_ci:
                break
        if time.perf_counter() - timed_from >= cfg.max_time_s and len(rounds) >= cfg.rounds:
            break
    kept = [i for i, q in enumerate(quiet) if q]
    was_busy = len(kept) < need
    if was_busy:  # too few quiet rounds: the least disturbed ones stand in (the profiler measures it again)
        lowest = min(medians)
        kept = [i for i, m in enumerate(medians) if m <= lowest * 1.05]
    ci = median_ci([medians[i] for i in kept])
    pool = [x for i in kept for x in rounds[i]]
    everything = sorted(x for r in rounds for x in r)
    mean = sum(pool) / len(pool)
    var = sum((x - mean) ** 2 for x in pool) / max(len(pool) - 1, 1)
    lowest = min(medians)
    return Stats(
        median_ms=_median([medians[i] for i in kept]),
        mean_ms=mean,
        std_ms=math.sqrt(var),
        min_ms=min(pool),
        count=len(pool),
        spread=(max(medians) - lowest) / lowest if lowest > 0 else 0.0,
        rounds=len(rounds),
        stable=(ci <= cfg.target_ci or cfg.max_rounds == 1) and not was_busy,
        p10_ms=everything[int(0.1 * (len(everything) - 1))],
        busy=was_busy,
        ci_rel=ci,
        batch=batch,
    )

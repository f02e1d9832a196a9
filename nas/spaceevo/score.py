"""SpaceEvo's Q-T score of a candidate space, vectorised with numpy.

For a candidate, sample ``N`` subnets, each stage independently from that stage's measured
sub-stages (the block-wise distillation samples of its block type and width window):

* latency = Σ stage latencies + the fixed parts (stem, head), from the LUT
  (:class:`~nas.spaceevo.latency.StageLatencyModel`; a stage's latency depends on its input
  channels, i.e. on the width the previous stage sampled, which is followed exactly);
* loss = Σ stage NSR losses (block-wise distillation, INT8);

and per latency budget ``T``:

* ``p = (#subnets with latency ≤ T) / N + 1e-5``;
* ``L`` = mean loss of the ``top`` (50) lowest-loss subnets with latency ≤ T (``1e5`` when no
  subnet meets the budget, as the paper's code does);
* ``score_T = 1 / (max(1, (t / p) ** a) · L)`` with ``t`` ≈ 0.08–0.1 and ``a`` = 0.01;

the candidate's score is the sum over the budgets. :func:`qt_score` is the formula on given
arrays; :class:`QTScorer` samples candidates and caches their tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from nas.spaceevo.candidate import Candidate, HyperSpace, SpaceEvoError, stage_choices
from nas.spaceevo.latency import StageLatencyModel

__all__ = [
    "DEFAULT_A",
    "DEFAULT_SAMPLES",
    "DEFAULT_T",
    "DEFAULT_TOP",
    "INFEASIBLE_LOSS",
    "BudgetScore",
    "MissingQualityError",
    "QTScore",
    "QTScorer",
    "StageQuality",
    "qt_score",
]

DEFAULT_T = 0.1
"""The latency-loss threshold ``t`` (the paper's code: 0.1; the paper: 0.08–0.1)."""
DEFAULT_A = 0.01
"""The latency-loss exponent ``a``."""
DEFAULT_TOP = 50
"""Feasible subnets whose mean loss is ``L``."""
DEFAULT_SAMPLES = 100_000
"""Subnets sampled per candidate (the paper's code: 100,000)."""
INFEASIBLE_LOSS = 1e5
"""``L`` of a budget no sampled subnet meets (the paper's code)."""
_P_EPS = 1e-5
_MIN_LOSS = 1e-12


@runtime_checkable
class StageQuality(Protocol):
    """Where the NSR losses of sub-stages come from (block-wise distillation measurements).

    ``samples(stage, block_type, window)``: every measured sub-stage of searchable stage
    ``stage`` (the stage's number, ``N`` of its name ``stageN``: :attr:`StageSpec.number`;
    ``stage1`` of ``spaceevo`` is 1) with block type
    ``block_type`` and width window ``window`` (its widths), as ``(choices, nsr_loss)``;
    ``choices`` are the sub-stage's decisions as the hyper-space's arch names them
    (``{"stage2.resnet.depth": 2, "stage2.w1.width": 24, "stage2.resnet.b0.kernel": 3, ...}``;
    paths relative to the stage, ``resnet.depth``, or to the block type, ``depth``, are accepted;
    the block-type and window decisions may be left out). An empty list means not measured yet.
    """

    def samples(
        self, stage: int, block_type: str, window: tuple[int, ...]
    ) -> list[tuple[dict[str, Any], float]]: ...  # pragma: no cover


class MissingQualityError(SpaceEvoError):
    """A (stage, block type, window) of the hyper-space has no quality measurements yet."""


@dataclass(frozen=True)
class BudgetScore:
    """The Q-T score of one latency budget: ``p``, ``top_loss`` (L), ``latency_loss``
    (max(1, (t/p)^a)), ``score`` and the number of feasible subnets."""

    budget_ms: float
    p: float
    top_loss: float
    latency_loss: float
    score: float
    feasible: int


@dataclass(frozen=True)
class QTScore:
    """A candidate's Q-T score (summed over budgets) with its parts and sample statistics."""

    score: float
    budgets: tuple[BudgetScore, ...]
    n: int
    latency_min: float
    latency_median: float
    latency_max: float
    loss_min: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["budgets"] = [asdict(b) for b in self.budgets]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QTScore:
        return cls(
            float(data["score"]),
            tuple(BudgetScore(**b) for b in data["budgets"]),
            int(data["n"]),
            float(data["latency_min"]),
            float(data["latency_median"]),
            float(data["latency_max"]),
            float(data["loss_min"]),
        )


def qt_score(
    latency: Any,
    loss: Any,
    budgets: Sequence[float],
    *,
    t: float = DEFAULT_T,
    a: float = DEFAULT_A,
    top: int = DEFAULT_TOP,
) -> QTScore:
    """The Q-T score of sampled subnets with latencies ``latency`` (ms) and losses ``loss``
    (1-D arrays of equal length), summed over ``budgets`` (ms)."""
    import numpy as np

    lat = np.asarray(latency, dtype=np.float64)
    los = np.asarray(loss, dtype=np.float64)
    if lat.ndim != 1 or lat.shape != los.shape or lat.size == 0:
        raise SpaceEvoError(f"qt_score needs two non-empty 1-D arrays of equal length, got {lat.shape} and {los.shape}")
    if not budgets:
        raise SpaceEvoError("qt_score needs at least one latency budget")
    n = lat.size
    parts = []
    for budget in budgets:
        feasible = lat <= float(budget)
        k = int(feasible.sum())
        p = k / n + _P_EPS
        if k:
            fl = los[feasible]
            m = min(int(top), k)
            top_loss = float(np.partition(fl, m - 1)[:m].mean()) if m < k else float(fl.mean())
        else:
            top_loss = INFEASIBLE_LOSS
        latency_loss = max(1.0, (t / p) ** a)
        score = 1.0 / (latency_loss * max(top_loss, _MIN_LOSS))
        parts.append(BudgetScore(float(budget), float(p), top_loss, float(latency_loss), float(score), k))
    return QTScore(
        float(sum(b.score for b in parts)),
        tuple(parts),
        int(n),
        float(lat.min()),
        float(np.median(lat)),
        float(lat.max()),
        float(los.min()),
    )


@dataclass
class _Segment:
    """One body child of a candidate: its sample table over its possible input shapes."""

    stage: int | None  # searchable stage index, None for a fixed part
    lat: Any  # (n_rows, n_inputs) float64, ms
    out: Any  # (n_rows, n_inputs) int64: index of the output shape in the next segment's inputs
    nblocks: Any  # (n_rows,) int64
    loss: Any = None  # (n_rows,) float64 for stages


@dataclass
class _StageSamples:
    archs: list[dict[str, Any]]
    loss: Any  # float64 array
    tables: dict[tuple[int, int, int], tuple[Any, list[tuple[int, int, int]], Any]] = field(default_factory=dict)


class QTScorer:
    """Scores candidate spaces of ``hyper`` by the Q-T score under ``budgets`` (ms).

    ``latency``: the LUT's stage latencies; ``quality``: the NSR losses of measured sub-stages;
    ``samples``: subnets sampled per candidate; ``seed``: with the candidate's id, seeds each
    candidate's sampling, so that a candidate's score is a pure function of the settings.
    Stage tables (per sub-stage and input shape: latency, output shape, loss) are built once per
    (stage, block type, window) and cached.
    """

    def __init__(
        self,
        hyper: HyperSpace,
        latency: StageLatencyModel,
        quality: StageQuality,
        budgets: Sequence[float],
        *,
        samples: int = DEFAULT_SAMPLES,
        t: float = DEFAULT_T,
        a: float = DEFAULT_A,
        top: int = DEFAULT_TOP,
        seed: int = 0,
    ) -> None:
        budgets = [float(b) for b in budgets]
        if not budgets or any(not math.isfinite(b) or b <= 0 for b in budgets):
            raise SpaceEvoError(f"latency budgets must be positive numbers of ms, got {budgets}")
        if samples < 1 or top < 1:
            raise SpaceEvoError(f"samples and top must be >= 1, got {samples} and {top}")
        if not (t > 0 and a >= 0):
            raise SpaceEvoError(f"t must be > 0 and a >= 0, got t={t}, a={a}")
        self.hyper = hyper
        self.latency = latency
        self.quality = quality
        self.budgets = budgets
        self.samples = int(samples)
        self.t, self.a, self.top, self.seed = float(t), float(a), int(top), int(seed)
        self._stages: dict[tuple[int, str, tuple[int, ...]], _StageSamples] = {}
        self._scores: dict[str, QTScore] = {}

    def settings(self) -> dict[str, Any]:
        """The settings a score depends on (recorded in evolution states and reports)."""
        return {
            "budgets_ms": list(self.budgets),
            "samples": self.samples,
            "t": self.t,
            "a": self.a,
            "top": self.top,
            "seed": self.seed,
        }

    # -- quality ------------------------------------------------------------------------------
    def stage_samples(self, index: int, block_type: str, window: Sequence[int]) -> _StageSamples:
        """The measured sub-stages of one (stage, block type, window), as hyper-space arch
        entries with their losses (cached; MissingQualityError when there are none)."""
        import numpy as np

        key = (index, block_type, tuple(int(x) for x in window))
        got = self._stages.get(key)
        if got is not None:
            return got
        spec = self.hyper.stage(index)
        raw = self.quality.samples(spec.number, block_type, key[2])
        label = f"{spec.name} block type {block_type!r} window {list(key[2])}"
        if not raw:
            raise MissingQualityError(
                f"{label} has no quality measurements yet (run the block-wise distillation of the hyper-space first)"
            )
        archs, losses = [], []
        for choices, loss in raw:
            value = float(loss)
            if not math.isfinite(value) or value < 0:
                raise SpaceEvoError(f"{label}: NSR loss {loss!r} is not a non-negative number")
            archs.append(stage_choices(self.hyper, index, block_type, key[2], choices))
            losses.append(value)
        got = _StageSamples(archs, np.asarray(losses, dtype=np.float64))
        self._stages[key] = got
        return got

    def check_coverage(self) -> None:
        """Fail (one line: the first missing, and how many) unless every (stage, block type,
        window) of the hyper-space has quality measurements."""
        missing = []
        for spec in self.hyper.stages:
            for bt in spec.block_types:
                for win in spec.windows:
                    try:
                        self.stage_samples(spec.index, bt, win)
                    except MissingQualityError:
                        missing.append((spec, bt, win))
        if missing:
            total = sum(len(s.block_types) * len(s.windows) for s in self.hyper.stages)
            spec, bt, win = missing[0]
            raise MissingQualityError(
                f"{spec.name} block type {bt!r} window {list(win)} has no quality measurements "
                f"yet ({len(missing)} of the hyper-space's {total} stage/block type/window combinations lack them)"
            )

    # -- tables -------------------------------------------------------------------------------
    def stage_table(
        self, index: int, block_type: str, window: tuple[int, ...], shape: tuple[int, int, int]
    ) -> tuple[Any, list[tuple[int, int, int]], Any]:
        """``(latency_ms, output shapes, block counts)`` of the measured sub-stages of one (stage,
        block type, window) fed ``shape`` (cached)."""
        import numpy as np

        st = self.stage_samples(index, block_type, window)
        if shape not in st.tables:
            parts = [self.latency.substage(index, block_type, window, arch, shape) for arch in st.archs]
            st.tables[shape] = (
                np.array([p.latency_ms for p in parts], dtype=np.float64),
                [p.out_shape for p in parts],
                np.array([p.n_blocks for p in parts], dtype=np.int64),
            )
        return st.tables[shape]

    def segments(self, cand: Candidate) -> list[_Segment]:
        """The candidate's sample tables, body child by body child, with input shapes followed."""
        import numpy as np

        stage_of = {s.child: s.index for s in self.hyper.stages}
        shapes: list[tuple[int, int, int]] = [self.hyper.space.input_shape]
        out: list[_Segment] = []
        for child in range(len(self.hyper.children)):
            idx = stage_of.get(child)
            cols_lat, cols_out, nb, loss = [], [], None, None
            for shape in shapes:
                if idx is None:
                    part = self.latency.fixed(child, shape)
                    cols_lat.append(np.array([part.latency_ms]))
                    cols_out.append([part.out_shape])
                    nb = np.array([part.n_blocks], dtype=np.int64)
                else:
                    lat, outs, nb = self.stage_table(idx, cand.blocks[idx], cand.windows[idx], shape)
                    cols_lat.append(lat)
                    cols_out.append(outs)
            if idx is not None:
                loss = self.stage_samples(idx, cand.blocks[idx], cand.windows[idx]).loss
            nxt = sorted({s for col in cols_out for s in col})
            pos = {s: i for i, s in enumerate(nxt)}
            out.append(
                _Segment(
                    idx,
                    np.stack(cols_lat, axis=1),
                    np.array([[pos[s] for s in col] for col in cols_out], dtype=np.int64).T,
                    nb,
                    loss,
                )
            )
            shapes = nxt
        return out

    # -- sampling and scoring -------------------------------------------------------------------
    def rng_for(self, cand: Candidate) -> Any:
        """The numpy generator of a candidate's samples (from the seed and the candidate's id)."""
        import numpy as np

        return np.random.default_rng([self.seed, int(cand.id, 16)])

    def sample(self, cand: Candidate, n: int | None = None, rng: Any = None) -> tuple[Any, Any]:
        """``(latency_ms, loss)`` of ``n`` (default: ``samples``) subnets sampled from ``cand``."""
        import numpy as np

        n = self.samples if n is None else int(n)
        rng = self.rng_for(cand) if rng is None else rng
        segs = self.segments(cand)
        lat = np.zeros(n, dtype=np.float64)
        loss = np.zeros(n, dtype=np.float64)
        nblocks = np.zeros(n, dtype=np.int64)
        at = np.zeros(n, dtype=np.int64)  # index of each subnet's input shape in the current segment
        for seg in segs:
            k = seg.lat.shape[1]
            if seg.stage is None:
                flat = at
                nblocks += int(seg.nblocks[0])
            else:
                rows = rng.integers(0, seg.lat.shape[0], size=n)
                flat = rows * k + at
                loss += seg.loss[rows]
                nblocks += seg.nblocks[rows]
            lat += seg.lat.ravel()[flat]
            at = seg.out.ravel()[flat]
        return self.latency.network_ms(lat, nblocks), loss

    def score(self, cand: Candidate) -> QTScore:
        """The candidate's Q-T score (cached by candidate id)."""
        got = self._scores.get(cand.id)
        if got is None:
            lat, loss = self.sample(cand)
            got = qt_score(lat, loss, self.budgets, t=self.t, a=self.a, top=self.top)
            self._scores[cand.id] = got
        return got

    def latency_range(self, cand: Candidate) -> tuple[float, float]:
        """``(min, max)`` predicted latency (ms) over the candidate's measured sub-stages: every
        stage at its fastest (slowest) sample, following input shapes exactly."""
        import numpy as np

        lo = hi = None
        for pick in (np.min, np.max):
            segs = self.segments(cand)
            # dynamic programming over the (few) input shapes of each segment
            best = {0: (0.0, 0)}  # input-shape index -> (latency, blocks)
            for seg in segs:
                nxt: dict[int, tuple[float, int]] = {}
                for at, (ms, nb) in best.items():
                    for row in range(seg.lat.shape[0]):
                        cand_ms = ms + float(seg.lat[row, at])
                        cand_nb = nb + int(seg.nblocks[row if seg.stage is not None else 0])
                        o = int(seg.out[row, at])
                        if o not in nxt or (cand_ms < nxt[o][0] if pick is np.min else cand_ms > nxt[o][0]):
                            nxt[o] = (cand_ms, cand_nb)
                best = nxt
            values = [float(self.latency.network_ms(np.array([ms]), np.array([nb]))[0]) for ms, nb in best.values()]
            if pick is np.min:
                lo = min(values)
            else:
                hi = max(values)
        return float(lo), float(hi)  # type: ignore[arg-type]

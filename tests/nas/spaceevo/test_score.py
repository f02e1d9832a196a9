"""The Q-T score: the formula on a hand-computed example, and candidate sampling from the LUT."""

from __future__ import annotations

import random

import numpy as np
import pytest

from nas.spaceevo.latency import MissingLatencyError, StageLatencyModel
from nas.spaceevo.score import INFEASIBLE_LOSS, MissingQualityError, QTScorer, StageQuality, qt_score
from tests.nas.spaceevo.spaceevo_helpers import TARGET, FakeQuality, small_hyper, write_lut


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    hyper = small_hyper()
    lut = write_lut(tmp_path_factory.mktemp("lut") / "lut.db", hyper.space)
    return hyper, lut, StageLatencyModel.from_lut(lut, TARGET, hyper)


def test_qt_score_matches_a_hand_computed_example():
    # 8 subnets; budget 2.0 ms admits 5 of them (latency <= 2.0), budget 1.0 admits 2
    lat = [0.5, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 4.0]
    loss = [0.9, 0.8, 0.4, 0.6, 0.3, 0.1, 0.2, 0.05]
    s = qt_score(lat, loss, [2.0, 1.0], t=0.5, a=0.5, top=3)
    b2, b1 = s.budgets
    # budget 2.0: p = 5/8 + 1e-5 = 0.62501 >= t = 0.5 -> latency loss 1; L = mean(0.3, 0.4, 0.6) = 13/30
    assert b2.feasible == 5 and b2.p == pytest.approx(0.62501)
    assert b2.latency_loss == 1.0
    assert b2.top_loss == pytest.approx(13 / 30)
    assert b2.score == pytest.approx(30 / 13)
    # budget 1.0: p = 2/8 + 1e-5 = 0.25001; (0.5 / 0.25001) ** 0.5 = 1.414185...; L = mean(0.9, 0.8) = 0.85
    assert b1.feasible == 2 and b1.p == pytest.approx(0.25001)
    assert b1.latency_loss == pytest.approx(1.414185, abs=1e-6)
    assert b1.top_loss == pytest.approx(0.85)
    assert b1.score == pytest.approx(0.831907, rel=1e-6)  # 1 / (1.414185 * 0.85)
    assert s.score == pytest.approx(30 / 13 + 0.831907, rel=1e-6)
    assert (s.latency_min, s.latency_max, s.loss_min) == (0.5, 4.0, 0.05)


def test_qt_score_defaults_and_an_infeasible_budget():
    rng = np.random.default_rng(0)
    lat, loss = rng.uniform(1, 2, 1000), rng.uniform(0, 1, 1000)
    s = qt_score(lat, loss, [0.5, 1.5])
    none, half = s.budgets
    assert none.feasible == 0 and none.top_loss == INFEASIBLE_LOSS and none.p == pytest.approx(1e-5)
    assert none.latency_loss == pytest.approx((0.1 / 1e-5) ** 0.01)
    feasible = np.sort(loss[lat <= 1.5])[:50]
    assert half.top_loss == pytest.approx(feasible.mean())
    assert half.latency_loss == 1.0  # p ~ 0.5 > t = 0.1
    assert s.score == pytest.approx(none.score + half.score)


def test_sampled_latency_is_the_predictors_whole_network_latency(setup):
    hyper, _, model = setup
    scorer = QTScorer(hyper, model, FakeQuality(hyper), [1.0])
    cand = hyper.random_candidate(0)
    segs = scorer.segments(cand)
    r = random.Random(0)
    for _ in range(10):
        arch, rows = {}, {}
        for spec in hyper.stages:
            st = scorer.stage_samples(spec.index, cand.blocks[spec.index], cand.windows[spec.index])
            rows[spec.index] = r.randrange(len(st.archs))
            arch.update(st.archs[rows[spec.index]])
        at, ms, nb = 0, 0.0, 0
        for seg in segs:
            row = 0 if seg.stage is None else rows[seg.stage]
            ms += seg.lat[row, at]
            nb += seg.nblocks[row]
            at = seg.out[row, at]
        assert float(model.network_ms(np.array([ms]), np.array([nb]))[0]) == pytest.approx(model.predict_arch(arch))
    lat, loss = scorer.sample(cand, 5000)
    lo, hi = scorer.latency_range(cand)
    assert lo <= lat.min() and lat.max() <= hi
    assert loss.min() > 0


def test_scores_are_deterministic_and_cached(setup):
    hyper, _, model = setup
    a = QTScorer(hyper, model, FakeQuality(hyper), [1.0, 2.0], samples=3000, seed=4)
    b = QTScorer(hyper, model, FakeQuality(hyper), [1.0, 2.0], samples=3000, seed=4)
    cand = hyper.random_candidate(1)
    assert a.score(cand) == b.score(cand)
    quality = a.quality
    calls = quality.calls
    assert a.score(cand) is a.score(cand) and quality.calls == calls
    c = QTScorer(hyper, model, FakeQuality(hyper), [1.0, 2.0], samples=3000, seed=5)
    assert c.score(cand).score != a.score(cand).score


def test_fake_quality_meets_the_protocol(setup):
    assert isinstance(FakeQuality(setup[0]), StageQuality)


def test_missing_quality_is_named(setup):
    hyper, _, model = setup
    win = hyper.stages[2].windows[1]
    scorer = QTScorer(hyper, model, FakeQuality(hyper, missing=[(3, "mbv3", win)]), [1.0], samples=100)
    cand = hyper.candidate(
        ["mbv2", "mbv2", "mbv3", "mbv2", "mbv2"],
        [s.windows[0] for s in hyper.stages[:2]] + [win] + [s.windows[0] for s in hyper.stages[3:]],
    )
    with pytest.raises(
        MissingQualityError,
        match=r"stage3 block type 'mbv3' window \[40, 48, 56\] has no quality "
        r"measurements yet",
    ):
        scorer.score(cand)
    with pytest.raises(MissingQualityError, match=r"\(1 of the hyper-space's \d+ stage/block type/window"):
        scorer.check_coverage()


def test_blocks_missing_from_the_lut_are_named_with_the_profile_command(tmp_path):
    hyper = small_hyper()
    other = small_hyper(("mbv2", "resnet"))
    lut = write_lut(tmp_path / "lut.db", other.space)
    with pytest.raises(MissingLatencyError) as info:
        StageLatencyModel.from_lut(lut, TARGET, hyper)
    msg = str(info.value)
    assert "\n" not in msg and "mbconv_hardswish" in msg
    assert "nas profile --space spaceevo --space-args" in msg and f"--target {TARGET} --out {lut}" in msg


def test_hundreds_of_thousands_of_subnets_are_scored_as_arrays(setup):
    """The Q-T score of 200,000 sampled subnets is array work (its speed, >= 100k subnets/s, is
    measured by benchmarks/bench_qt_score.py, not asserted here)."""
    hyper, _, model = setup
    scorer = QTScorer(hyper, model, FakeQuality(hyper), [1.0, 2.0], samples=200_000)
    cand = hyper.random_candidate(2)
    lat, loss = scorer.sample(cand, rng=np.random.default_rng(0))
    assert lat.shape == loss.shape == (200_000,) and np.isfinite(lat).all() and np.isfinite(loss).all()
    again = scorer.sample(cand, rng=np.random.default_rng(0))
    assert np.array_equal(lat, again[0]) and np.array_equal(loss, again[1])
    assert qt_score(lat, loss, scorer.budgets).score == qt_score(*again, scorer.budgets).score

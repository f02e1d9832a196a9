"""Aging evolution over candidate spaces: determinism, resumption, and the report."""

from __future__ import annotations

import json

import pytest

from nas.spaceevo.candidate import SpaceEvoError
from nas.spaceevo.evolution import PAPER_SCALE, AgingEvolution, EvolutionConfig
from nas.spaceevo.latency import StageLatencyModel
from nas.spaceevo.report import report_paths, write_report
from nas.spaceevo.score import QTScorer
from tests.nas.spaceevo.spaceevo_helpers import FP32_TARGET, TARGET, FakeQuality, small_hyper, write_lut

CONFIG = EvolutionConfig(population=12, sample=4, cycles=10, seed=3, checkpoint_every=3)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    hyper = small_hyper()
    lut = write_lut(tmp_path_factory.mktemp("lut") / "lut.db", hyper.space, (TARGET, FP32_TARGET))
    return hyper, lut, StageLatencyModel.from_lut(lut, TARGET, hyper)


def _scorer(setup, seed: int = 3) -> QTScorer:
    hyper, _, model = setup
    return QTScorer(hyper, model, FakeQuality(hyper), [1.0, 2.0], samples=4000, seed=seed)


def _ids(result) -> list[str]:
    return [i.candidate.id for i in result.history]


def test_defaults_are_the_papers_full_scale():
    cfg = EvolutionConfig()
    assert (cfg.population, cfg.sample, cfg.cycles) == (500, 125, 5000)
    assert PAPER_SCALE == {"population": 500, "sample": 125, "cycles": 5000}
    with pytest.raises(SpaceEvoError, match="sample must be between 1 and the population"):
        EvolutionConfig(population=4, sample=5)


def test_evolution_is_deterministic_under_a_seed(setup):
    a = AgingEvolution(setup[0], _scorer(setup), CONFIG).run()
    b = AgingEvolution(setup[0], _scorer(setup), CONFIG).run()
    assert _ids(a) == _ids(b) and a.curve == b.curve and a.best.candidate == b.best.candidate
    c = AgingEvolution(setup[0], _scorer(setup), EvolutionConfig(population=12, sample=4, cycles=10, seed=4)).run()
    assert _ids(c) != _ids(a)


def test_evolution_improves_on_the_initial_population(setup):
    hyper = setup[0]
    res = AgingEvolution(hyper, _scorer(setup), CONFIG).run()
    assert len(res.curve) == CONFIG.cycles + 1
    assert res.curve[-1]["best_ever"] >= res.curve[0]["best_ever"]
    assert all(b["best_ever"] >= a["best_ever"] for a, b in zip(res.curve, res.curve[1:]))
    uniform = {c.id for c in hyper.uniform_candidates()}
    assert uniform <= set(_ids(res)[: CONFIG.population])  # the population starts with them
    assert res.best.score.score == max(i.score.score for i in res.history)
    # children differ from their parent in one stage's block type or one stage's window
    assert len(set(_ids(res))) == len(res.history)


def test_an_interrupted_evolution_resumes_to_the_same_result(setup, tmp_path):
    hyper = setup[0]
    full = AgingEvolution(hyper, _scorer(setup), CONFIG).run()
    state = tmp_path / "state.json"
    scorer = _scorer(setup)
    real, calls = scorer.score, []

    def dying(cand):
        calls.append(cand.id)
        if len(calls) == CONFIG.population + 9:  # in the middle of cycle 5 or so
            raise KeyboardInterrupt
        return real(cand)

    scorer.score = dying  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        AgingEvolution(hyper, scorer, CONFIG, state_path=state).run()
    saved = json.loads(state.read_text())
    assert saved["format"] == "hwnas-spaceevo-state" and saved["cycle"] % CONFIG.checkpoint_every == 0
    assert 0 < saved["cycle"] < CONFIG.cycles
    logged = []
    resumed = AgingEvolution(hyper, _scorer(setup), CONFIG, state_path=state, log=logged.append).run()
    assert resumed.resumed_from == saved["cycle"] and "resuming" in logged[0]
    assert _ids(resumed) == _ids(full) and resumed.curve == full.curve
    # more cycles continue the saved run
    longer = EvolutionConfig(population=12, sample=4, cycles=14, seed=3, checkpoint_every=3)
    cont = AgingEvolution(hyper, _scorer(setup), longer, state_path=state).run()
    fresh = AgingEvolution(hyper, _scorer(setup), longer).run()
    assert _ids(cont) == _ids(fresh)


def test_a_state_of_other_settings_is_refused(setup, tmp_path):
    state = tmp_path / "state.json"
    AgingEvolution(setup[0], _scorer(setup), CONFIG, state_path=state).run()
    with pytest.raises(SpaceEvoError, match=r"the saved evolution has score_seed = 3, this run 9"):
        AgingEvolution(setup[0], _scorer(setup, seed=9), CONFIG, state_path=state).run()


def test_report_explains_the_choice(setup, tmp_path):
    hyper, lut, _ = setup
    scorer = _scorer(setup)
    res = AgingEvolution(hyper, scorer, CONFIG).run()
    out = tmp_path / "evolved.yaml"
    res.best.candidate.write_yaml(out)
    paths = write_report(res, scorer, out, lut=str(lut), target=TARGET, quality="fake")
    assert paths == report_paths(out)
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    md = paths["md"].read_text()
    assert "## Chosen block type and width window per stage" in md
    assert "INT8 speed-up per op type" in md and "mbconv hardswish+se" in md
    data = json.loads(paths["json"].read_text())
    assert data["best"]["id"] == res.best.candidate.id
    assert [s["block"] for s in data["stages"]] == list(res.best.candidate.blocks)
    speed = {r["family"]: r["speedup"] for r in data["op_speedups"]["rows"]}
    assert speed["mbconv relu"] == pytest.approx(3.0, rel=0.01)
    assert speed["mbconv hardswish+se"] == pytest.approx(1.1, rel=0.01)
    stage = data["stages"][0]
    assert {o["block"] for o in stage["options"]} == set(hyper.stages[0].block_types)
    assert all(o["int8_ms"] > 0 and o["nsr"] > 0 for o in stage["options"])
    assert len(data["curve"]) == CONFIG.cycles + 1

"""`nas run` with the evolve stage at toy scale, through the Python API: a tiny `spaceevo`
hyper-space on digits, a random teacher supernet, a synthetic LUT of the hyper-space (given as
``lut.path``); the evolved space is what the supernet trains and the searches search, the LUT
records it, the report shows it, and reruns resume (kept stages, kept distillation, refused
changes, ``--from evolve``, a given LUT of another space)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from nas.pipeline import Experiment, RunConfigError, StageChangedError, run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

#: the hyper-space: two block types, one kernel and expand ratio, at most two windows per stage
HS = {"block_types": ["mbv2", "resnet"], "kernels": [3], "expands": [2.0], "scale": 0.25, "window": 4}
TARGETS = ("cpu-ort-int8", "cpu-ort-fp32")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A teacher (an untrained supernet of the hyper-space on digits) and a synthetic hyper-space LUT."""
    from spaces import create_space
    from tests.helpers import write_random_teacher
    from tests.nas.spaceevo.spaceevo_helpers import write_lut

    root = tmp_path_factory.mktemp("evolve_inputs")
    teacher = write_random_teacher(root / "teacher", HS)
    lut = write_lut(
        root / "hyper.db", create_space("spaceevo", in_chans=1, num_classes=10, resolution=8, **HS), TARGETS
    )
    return teacher, lut


def _config(teacher: Path, lut: Path) -> dict:
    return {
        "name": "evo",
        "space": {"name": "spaceevo", "args": dict(HS)},
        "data": {"name": "digits", "train_limit": 160, "test_limit": 64, "val_fraction": 0.25},
        "lut": {"path": str(lut), "networks": 0, "retry_passes": 0},
        "evolve": {
            "enabled": True,
            "teacher": str(teacher),
            "epochs": 1,
            "qat_epochs": 0,
            "batch_size": 16,
            "train_limit": 48,
            "num_random": 1,
            "eval_samples": 2,
            "eval_images": 32,
            "population": 4,
            "sample": 2,
            "cycles": 3,
            "samples": 2000,
        },
        "supernet": {"epochs": 1, "qat_epochs": 0, "batch_size": 32, "num_random": 1, "threads": 1},
        "search": {"budget": 3, "latency_budgets": ["50%"], "val_limit": 32},
        "export": {"formats": ["onnx-int8"]},
        "report": {"random_subnets": 2},
    }


class Log:
    """A ``log`` callable that keeps the lines (truthy even before the first line)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, msg: str) -> None:
        self.lines.append(msg)

    def __iter__(self):
        return iter(self.lines)


@pytest.fixture(scope="module")
def finished(inputs, tmp_path_factory):
    teacher, lut = inputs
    out = tmp_path_factory.mktemp("evolve_run") / "run"
    cfg = _config(teacher, lut)
    result = run(cfg, out, progress=False, log=Log())
    return cfg, out, result


def _record(out: Path, stage: str) -> dict:
    return json.loads((out / stage / "stage.json").read_text())


def test_the_evolved_space_is_what_the_supernet_trains_and_the_search_searches(finished):
    from nas.search.evaluators import LutLatencyEvaluator
    from spaces import create_space, space_hash
    from supernet.train import load_supernet

    cfg, out, result = finished
    assert list(result["stages"]) == ["lut", "evolve", "supernet", "search", "export", "report"]
    summary = _record(out, "evolve")["summary"]
    evolved = create_space(str(out / "evolve" / "space.yaml"))
    assert summary["space_name"] == evolved.name == f"spaceevo-{summary['candidate']}"
    assert summary["quality"]["trained"] == summary["quality"]["candidate_stages"] > 0
    assert (out / "evolve" / "quality.db").is_file() and (out / "evolve" / "space.report.md").is_file()
    assert [s["block"] for s in summary["stages"]] and all(s["block"] in HS["block_types"] for s in summary["stages"])
    net, _ = load_supernet(out / "supernet")
    assert space_hash(net.space) == space_hash(evolved)
    best = json.loads((out / "search" / "b0" / "best.json").read_text())
    evolved.validate(best["arch"])  # the chosen arch lies in the evolved space
    # the run's LUT records the evolved space (its blocks were the hyper-space's)
    LutLatencyEvaluator.from_lut(out / "lut" / "lut.db", "cpu-ort-int8", evolved)
    # the evolution and the search share the ms budgets ("50%" of the hyper-space's range)
    assert summary["budgets_ms"] == [result["stages"]["search"]["budgets"][0]["budget_ms"]]


def test_report_shows_the_evolved_space(finished):
    _, out, _ = finished
    report = json.loads((out / "report" / "report.json").read_text())
    ev = report["evolve"]
    summary = _record(out, "evolve")["summary"]
    assert ev["candidate"] == summary["candidate"] and ev["score"] == summary["score"]
    assert [s["block"] for s in ev["stages"]] == [s["block"] for s in summary["stages"]]
    assert (out / "report" / ev["report"]["md"]).resolve() == (out / "evolve" / "space.report.md").resolve()
    assert "evolve" in report["timings"]
    md = (out / "report" / "report.md").read_text()
    assert "## Evolved search space (SpaceEvo)" in md and "(../evolve/space.report.md)" in md


def test_rerun_keeps_every_stage(finished, tmp_path):
    cfg, out, _ = finished
    copy_ = tmp_path / "run"
    shutil.copytree(out, copy_)
    log = Log()
    run(None, copy_, progress=False, log=log)  # the saved config continues the run
    assert sum("finished earlier: kept" in m for m in log) == 6


def test_interrupted_evolve_resumes_with_its_finished_units(finished, tmp_path):
    """As after a kill inside the evolve stage: its record unfinished, the space not yet written."""
    from nas.pipeline.state import RunFolder

    cfg, out, _ = finished
    copy_ = tmp_path / "run"
    shutil.copytree(out, copy_)
    folder = RunFolder(copy_)
    rec = folder.record("evolve")
    for stage in ("supernet", "search", "export", "report"):
        shutil.rmtree(copy_ / stage)
    folder.write_record("evolve", rec["inputs"], finished=False)
    (copy_ / "evolve" / "space.yaml").unlink()
    log = Log()
    summary = Experiment(cfg, copy_, progress=False, log=log).stage("evolve")
    assert summary["quality"]["trained"] == 0 and summary["quality"]["kept"] == summary["quality"]["candidate_stages"]
    assert any("resuming from" in m for m in log)  # the evolution state, not a new evolution
    assert summary["candidate"] == rec["summary"]["candidate"]
    assert (copy_ / "evolve" / "space.yaml").read_text() == (out / "evolve" / "space.yaml").read_text()


def test_changed_evolve_config_is_refused_then_redone_with_from(finished, tmp_path):
    cfg, out, _ = finished
    copy_ = tmp_path / "run"
    shutil.copytree(out, copy_)
    changed = copy.deepcopy(cfg)
    changed["evolve"]["cycles"] = 4
    with pytest.raises(StageChangedError) as err:
        run(changed, copy_, progress=False, log=Log())
    msg = str(err.value)
    assert "stage evolve finished with evolve.cycles = 3, the config now says 4" in msg and "--from evolve" in msg
    res = run(changed, copy_, from_stage="evolve", until="evolve", progress=False, log=Log())
    q = res["stages"]["evolve"]["quality"]
    assert q["trained"] == 0 and q["kept"] == q["candidate_stages"]  # the distillation was kept
    assert res["stages"]["evolve"]["cycles"] == 4 and not (copy_ / "supernet").exists()


def test_teacher_of_other_data_and_a_space_without_stages_are_refused(inputs, tmp_path):
    teacher, lut = inputs
    cfg = _config(teacher, lut)
    other = copy.deepcopy(cfg)
    other["data"] = {"name": "fashion-mnist", "train_limit": 64}
    other["lut"] = {"networks": 0}
    with pytest.raises(RunConfigError) as err:
        run(other, tmp_path / "a", progress=False, log=Log())
    assert "evolve.teacher:" in str(err.value) and "was trained on 1x8x8 inputs" in str(err.value)
    plain = copy.deepcopy(cfg)
    plain["space"] = {"name": "mobilenet", "args": {"depths": [1], "kernels": [3], "expands": [2.0], "stages": 2}}
    with pytest.raises(RunConfigError, match="space.name: evolve.enabled needs a hyper-space"):
        run(plain, tmp_path / "b", progress=False, log=Log())
    assert not (tmp_path / "a" / "lut").exists() and not (tmp_path / "b" / "lut").exists()  # refused before any work


def test_given_lut_of_another_space_holding_every_block_is_recorded(finished, inputs, tmp_path):
    """Without the evolve stage: a candidate space searched on the hyper-space's LUT."""
    _, lut = inputs
    _, out, _ = finished
    space_file = tmp_path / "space.yaml"
    shutil.copyfile(out / "evolve" / "space.yaml", space_file)
    cfg = {
        "space": {"name": str(space_file)},
        "data": {"name": "digits", "train_limit": 160},
        "lut": {"path": str(lut), "networks": 0, "retry_passes": 0},
    }
    exp = Experiment(cfg, tmp_path / "run", progress=False, log=Log())
    summary = exp.stage("lut")
    assert list(summary["profiled"]) == ["cpu-ort-int8"] and summary["profiled"]["cpu-ort-int8"]["measured"] == 0
    exp.latency_evaluator()  # accepted now
    exp.latency_evaluator(fp32=True)
    assert exp.budgets()[0]["budget_ms"] > 0

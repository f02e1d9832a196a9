"""The optional evolve stage of `nas run`, fast parts: its config keys and one-line errors, the
stage order, `--from evolve` keeping the block-wise quality file, and the report's section."""

from __future__ import annotations

import pytest

from nas.pipeline.config import STAGES, RunConfigError, default_config_text, validate_config


def test_evolve_is_an_optional_stage_between_lut_and_supernet():
    assert STAGES == ("lut", "evolve", "supernet", "search", "export", "report")
    cfg = validate_config({})
    assert cfg["evolve"]["enabled"] is False and cfg["evolve"]["teacher"] is None
    text = default_config_text()
    section = text[text.index("\nevolve:\n") : text.index("\nsupernet:\n")]
    for key in ("enabled", "teacher", "budgets", "epochs", "qat_epochs", "population", "sample", "cycles", "samples"):
        assert f"\n  {key}: " in section, key


def test_evolve_section_validates(tmp_path):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    cfg = validate_config(
        {"evolve": {"enabled": True, "teacher": "teacher", "budgets": [0.1, "30%"], "cycles": 5}}, base=tmp_path
    )
    assert cfg["evolve"]["teacher"] == str(teacher.resolve())  # relative to the config file's folder
    assert cfg["evolve"]["budgets"] == [0.1, "30%"] and cfg["evolve"]["cycles"] == 5
    # disabled: the other keys are checked but not required
    assert validate_config({"evolve": {"population": 3}})["evolve"]["population"] == 3


@pytest.mark.parametrize(
    "evolve, message",
    [
        ({"enabled": "yes"}, 'evolve.enabled: expected true or false, got "yes"'),
        ({"enabeld": True}, "unknown key evolve.enabeld (did you mean enabled?)"),
        ({"enabled": True}, "evolve.teacher: required when evolve.enabled is true"),
        ({"enabled": True, "teacher": "/no/such/ckpt"}, "evolve.teacher: /no/such/ckpt: no such file or folder"),
        ({"population": 0}, "evolve.population: expected an integer >= 1, got 0"),
        ({"budgets": []}, "evolve.budgets: expected a non-empty list"),
        ({"budgets": ["120%"]}, "evolve.budgets: item 0: a percentage budget must lie in 0%..100%"),
        ({"epochs": -1}, "evolve.epochs: expected a number >= 0"),
    ],
)
def test_evolve_config_errors_are_one_line(evolve, message):
    with pytest.raises(RunConfigError) as err:
        validate_config({"evolve": evolve})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_evolve_cross_checks(tmp_path):
    on = {"enabled": True, "teacher": str(tmp_path)}
    with pytest.raises(RunConfigError, match="evolve.sample 30 exceeds evolve.population 10"):
        validate_config({"evolve": {**on, "population": 10, "sample": 30}})
    with pytest.raises(RunConfigError, match=r"evolve.epochs \+ evolve.qat_epochs must be positive"):
        validate_config({"evolve": {**on, "epochs": 0, "qat_epochs": 0}})


def test_from_evolve_keeps_the_quality_file(tmp_path):
    from nas.pipeline.state import RunFolder

    run = RunFolder(tmp_path)
    for s in ("lut", "evolve", "supernet"):
        run.write_record(s, {}, finished=True)
    evolve = tmp_path / "evolve"
    for name in ("quality.db", "quality.db-wal", "space.yaml", "space.state.json"):
        (evolve / name).write_text("x")
    (evolve / "quality.db.work").mkdir()
    (evolve / "quality.db.work" / "c.safetensors").write_text("x")
    assert run.reset("evolve") == ["evolve", "supernet"]
    assert run.record("evolve") is None and run.record("lut") is not None and not (tmp_path / "supernet").exists()
    assert sorted(p.name for p in evolve.iterdir()) == ["quality.db", "quality.db-wal", "quality.db.work"]
    assert (evolve / "quality.db.work" / "c.safetensors").is_file()


EVOLVE = {
    "hyperspace": "spaceevo",
    "candidate": "83f004a415",
    "space": "../evolve/space.yaml",
    "space_name": "spaceevo-83f004a415",
    "score": 0.2183,
    "budgets_ms": [0.0497, 0.08],
    "budget_scores": [0.1, 0.1183],
    "evaluated": 9,
    "stages": [
        {"stage": "stage1", "block": "resnet", "window": [8, 12], "depths": [1, 2]},
        {"stage": "stage2", "block": "mbv2", "window": [8, 12, 16], "depths": [1, 2, 3]},
    ],
    "report": {"md": "../evolve/space.report.md", "json": "../evolve/space.report.json"},
}


def test_report_section_of_the_evolved_space():
    from nas.pipeline.report import render_markdown

    md = render_markdown({"title": "t", "evolve": EVOLVE})
    assert "## Evolved search space (SpaceEvo)" in md
    assert "Q-T score 0.2183 over the INT8 budgets 0.050, 0.080 ms (9 candidate spaces scored)" in md
    assert "| stage1 | resnet | 8, 12 | 1, 2 |" in md and "| stage2 | mbv2 | 8, 12, 16 | 1, 2, 3 |" in md
    assert "[evolve-space report](../evolve/space.report.md)" in md
    assert "Evolved search space" not in render_markdown({"title": "t"})  # runs without the stage: no section

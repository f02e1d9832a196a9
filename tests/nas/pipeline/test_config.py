"""`nas run` configs: defaults, the commented default text, and one-line errors naming the key."""

from __future__ import annotations

import pytest
import yaml

from nas.pipeline.config import (
    RunConfigError,
    default_config,
    default_config_text,
    load_config,
    parse_budget,
    validate_config,
)


def test_default_text_is_the_defaults_and_every_key_is_commented():
    text = default_config_text()
    assert validate_config(yaml.safe_load(text)) == validate_config({}) == validate_config(None)
    for line in text.splitlines():
        if ":" in line and not line.startswith("#") and not line.rstrip().endswith(":"):
            assert "  # " in line, line  # every key says what it means


def test_partial_config_keeps_defaults():
    cfg = validate_config({"search": {"budget": 7}, "seed": 3})
    assert cfg["search"]["budget"] == 7 and cfg["seed"] == 3
    assert cfg["search"]["searcher"] == default_config()["search"]["searcher"]
    assert cfg["supernet"] == default_config()["supernet"]


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"serach": {}}, "unknown key 'serach' (did you mean search?)"),
        ({"search": {"budgt": 3}}, "unknown key search.budgt (did you mean budget?)"),
        ({"search": {"budget": "ten"}}, 'search.budget: expected an integer >= 1, got "ten"'),
        ({"search": {"budget": 0}}, "search.budget: expected an integer >= 1, got 0"),
        ({"supernet": {"epochs": 1.5}}, "supernet.epochs: expected an integer >= 0"),
        ({"supernet": {"lr": -0.1}}, "supernet.lr: expected a number > 0"),
        ({"data": {"val_fraction": 1.5}}, "data.val_fraction: expected a number in (0, 1)"),
        ({"search": {"latency_budgets": ["150%"]}}, "item 0: a percentage budget must lie in 0%..100%"),
        ({"search": {"latency_budgets": [0.2, -1]}}, "item 1: a latency budget in ms must be positive"),
        ({"search": {"latency_budgets": []}}, "search.latency_budgets: expected a non-empty list"),
        ({"search": {"latency_budgets": ["fast"]}}, "expected milliseconds (e.g. 0.2) or a percentage"),
        ({"search": {"searcher": "evolutoin"}}, "unknown searcher (did you mean evolution?)"),
        ({"search": {"searcher": "darts"}}, "it cannot search a supernet's space"),
        ({"search": {"precision": "int4"}}, "search.precision: expected one of fakequant, fp32, int8"),
        ({"export": {"formats": ["onnx-int4"]}}, "export.formats: unknown format 'onnx-int4'"),
        ({"target": {"name": "cpu-ort-fp32"}}, "target.name: 'cpu-ort-fp32' measures fp32, not int8"),
        ({"target": {"fp32": "cpu-ort-int8"}}, "target.fp32: 'cpu-ort-int8' measures int8, not fp32"),
        ({"target": {"name": "no-such-target"}}, "target.name:"),
        ({"space": {"name": "resnett"}}, "space.name: unknown space 'resnett' (did you mean resnet?)"),
        ({"space": "resnet"}, "space: expected a section"),
        ({"lut": {"path": "/no/such/lut.db"}}, "lut.path: /no/such/lut.db: no such file or folder"),
        ({"supernet": {"epochs": 0, "qat_epochs": 0}}, "supernet.epochs + supernet.qat_epochs must be at least 1"),
        ({"supernet": {"epochs": 0, "qat_epochs": 0.5}}, "supernet.qat_epochs below 1 needs FP32 epochs"),
        ({"supernet": {"qat_epochs": -0.5}}, "supernet.qat_epochs: expected a number >= 0"),
        ({"report": {"baselines": ["vgg16"]}}, "unknown baseline 'vgg16'"),
        ({"seed": -1}, "seed: expected an integer >= 0"),
        ({"search": {"options": [1, 2]}}, "search.options: expected a mapping"),
        ([1, 2], "expected a mapping of sections"),
    ],
)
def test_bad_configs_name_the_key(raw, message):
    with pytest.raises(RunConfigError) as err:
        validate_config(raw, "exp.yaml")
    text = str(err.value)
    assert message in text and "\n" not in text and text.startswith("exp.yaml")


def test_space_yaml_takes_no_args(tmp_path):
    space = tmp_path / "s.yaml"
    space.write_text("name: x\n")
    with pytest.raises(RunConfigError, match="space.args: a YAML space takes no arguments"):
        validate_config({"space": {"name": str(space), "args": {"depths": [1]}}})


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "lut.db").write_bytes(b"")
    cfg_file = tmp_path / "sub" / "exp.yaml"
    cfg_file.write_text("lut: {path: lut.db}\ndata: {name: fashion-mnist}\n")
    cfg, where = load_config(cfg_file)
    assert cfg["lut"]["path"] == str((tmp_path / "sub" / "lut.db").resolve())
    assert cfg["data"]["name"] == "fashion-mnist" and where == str(cfg_file)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(RunConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("search: {budget: [1,\n")
    with pytest.raises(Exception, match="invalid YAML at line"):
        load_config(bad)


def test_parse_budget():
    assert parse_budget(0.25).ms == 0.25
    assert parse_budget("0.3 ms").ms == 0.3
    b = parse_budget("40%")
    assert b.fraction == 0.4 and b.resolve(0.1, 0.6) == pytest.approx(0.3)
    assert parse_budget("0%").resolve(0.1, 0.6) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        parse_budget(True)


@pytest.mark.parametrize("name", ["demo.yaml", "demo_quick.yaml"])
def test_bundled_configs_validate_and_their_spaces_load(name, tmp_path):
    """The configs `nas demo` ships (a fresh clone has nothing else): valid, and the demo's space
    file (relative to the config) resolves inside the package."""
    from nas.pipeline import demo_config_path
    from nas.pipeline.experiment import Experiment

    path = demo_config_path().with_name(name)
    cfg, _ = load_config(path)
    exp = Experiment(str(path), out=tmp_path / "run")
    assert exp.space.input_shape == (1, 28, 28) and exp.space.num_classes == 10
    if name == "demo.yaml":
        assert cfg["space"]["name"] == str(path.with_name("demo_space.yaml").resolve())
        assert exp.space.name == "demo_resnet" and len(cfg["search"]["latency_budgets"]) >= 2


def test_keys_added_later_at_their_default_keep_older_stage_records(tmp_path):
    """Runs recorded before ``supernet.schedule`` and ``export.finetune_lr / finetune_distill``
    existed hold none of them: at their defaults the stage inputs leave them out, set they count."""
    from nas.pipeline import Experiment

    exp = Experiment({"space": {"name": "mobilenet"}}, tmp_path / "run", progress=False, log=lambda m: None)
    assert "schedule" not in exp.stage_inputs("supernet")["supernet"]
    export = exp.stage_inputs("export")["export"]
    assert "finetune_lr" not in export and "finetune_distill" not in export
    assert export["finetune_epochs"] == 0.0
    exp = Experiment(
        {"space": {"name": "mobilenet"}, "supernet": {"schedule": "onecycle"}, "export": {"finetune_lr": 0.02}},
        tmp_path / "run2",
        progress=False,
        log=lambda m: None,
    )
    assert exp.stage_inputs("supernet")["supernet"]["schedule"] == "onecycle"
    assert exp.stage_inputs("export")["export"]["finetune_lr"] == 0.02

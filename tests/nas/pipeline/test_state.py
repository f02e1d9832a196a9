"""A run folder's stage records: change detection naming the key, and --from."""

from __future__ import annotations

import pytest

from nas.pipeline.state import RunFolder, StageChangedError, first_difference


def test_first_difference():
    assert first_difference({"a": {"b": 1}}, {"a": {"b": 1}}) is None
    assert first_difference({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == ("a.c", 2, 3)
    assert first_difference({"a": 1}, {"a": 1, "b": 2}) == ("b", "<absent>", 2)


def test_changed_inputs_are_refused_with_the_key(tmp_path):
    run = RunFolder(tmp_path / "run")
    inputs = {"supernet": {"epochs": 5, "lr": 0.2}, "seed": 0}
    assert run.check_inputs("supernet", inputs) is None  # never started
    run.write_record("supernet", inputs, finished=True, summary={"x": 1}, seconds=2.0)
    assert run.check_inputs("supernet", inputs)["summary"] == {"x": 1}
    with pytest.raises(StageChangedError) as err:
        run.check_inputs("supernet", {"supernet": {"epochs": 6, "lr": 0.2}, "seed": 0})
    msg = str(err.value)
    assert "stage supernet finished with supernet.epochs = 5, the config now says 6" in msg
    assert "--from supernet" in msg and "\n" not in msg


def test_torn_record_counts_as_not_started(tmp_path):
    run = RunFolder(tmp_path)
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "stage.json").write_text('{"stage": "sea')
    assert run.record("search") is None


def test_reset_removes_the_stage_and_those_after(tmp_path):
    run = RunFolder(tmp_path)
    for s in ("lut", "supernet", "search", "export"):
        run.write_record(s, {}, finished=True)
    assert run.reset("search") == ["search", "export"]
    assert run.record("supernet") is not None and run.record("search") is None and run.record("export") is None
    with pytest.raises(Exception, match="unknown stage"):
        run.reset("train")


def test_out_must_be_a_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(Exception, match="exists and is not a folder"):
        RunFolder(f)

"""``nas evolve-space``: the evolved space, its report and state, and one-line input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.cli import main
from tests.nas.spaceevo.spaceevo_helpers import BLOCK_TYPES, FP32_TARGET, TARGET, FakeQuality, small_hyper, write_lut

SPACE_ARGS = json.dumps({"block_types": list(BLOCK_TYPES), "kernels": [3, 5], "expands": [3.0, 6.0]})
SMALL = ["--population", "10", "--sample", "3", "--cycles", "6", "--samples", "3000", "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A LUT of the small hyper-space (INT8 and FP32) and its quality file beside it."""
    from nas.spaceevo.quality import QualityStore

    root = tmp_path_factory.mktemp("evolve")
    hyper = small_hyper()
    lut = write_lut(root / "lut.db", hyper.space, (TARGET, FP32_TARGET))
    fake = FakeQuality(hyper, n=10)
    with QualityStore(root / "lut.quality.db") as store:
        store.register_run("fake", {"hyperspace": hyper.name, "hash": hyper.hash})
        for spec in hyper.stages:
            for bt in spec.block_types:
                for win in spec.windows:
                    store.put(
                        "fake", spec.number, bt, win, [(c, v, "random") for c, v in fake.samples(spec.number, bt, win)]
                    )
    return {"root": root, "lut": lut}


def _args(files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "evolve-space",
        "--hyperspace",
        "spaceevo",
        "--space-args",
        SPACE_ARGS,
        "--data",
        "fashion-mnist",
        "--lut",
        str(files["lut"]),
        "--target",
        TARGET,
        "--budgets",
        "1,2",
        "--out",
        str(out),
        *SMALL,
        *extra,
    ]


def test_evolve_space_writes_the_space_report_and_state(files, tmp_path, run_nas):
    out = tmp_path / "evolved.yaml"
    r = run_nas(*_args(files, out, "--json"))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["out"] == str(out) and len(summary["stages"]) == 5
    assert summary["score"] == pytest.approx(sum(summary["budget_scores"]))
    for name in ("evolved.report.md", "evolved.report.json", "evolved.evolution.png", "evolved.state.json"):
        assert (tmp_path / name).is_file(), name
    shown = run_nas("spaces", "show", str(out), "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads((tmp_path / "evolved.report.json").read_text())
    assert report["best"]["id"] == summary["candidate"]
    assert report["evolution"]["cycles"] == 6
    # a rerun resumes the finished state and writes the same space
    before = out.read_text()
    again = run_nas(*_args(files, out))
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stderr and out.read_text() == before
    assert "stage1:" in again.stdout and "report:" in again.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--budgets": "1,x"}, "--budgets: 'x' is not a number of ms"),
        ({"--budgets": "0"}, "--budgets: '0' must be a positive number of ms"),
        ({"--sample": "20"}, "--sample 20 exceeds --population 10"),
        ({"--cycles": "-1"}, "--cycles must be >= 0"),
        ({"--out": "evolved.txt"}, "the evolved space is a YAML file"),
        ({"--lut": "missing.db"}, "--lut missing.db: no such LUT file"),
        ({"--target": "no-such-target"}, "no-such-target"),
        (
            {"--quality": "nothing.db"},
            "nothing.db: no block-wise quality file; measure the sub-stages of hyper-space "
            "'spaceevo' first by block-wise distillation",
        ),
        ({"--hyperspace": "mobilenet", "--space-args": "{}"}, "is not a hyper-space"),
        ({"--space-args": '{"resolution": 32}'}, "--space-args: resolution comes from the data"),
        ({"--data": "no/such/folder"}, "no/such/folder: no such file or folder"),
    ],
)
def test_bad_inputs_fail_in_one_line(files, tmp_path, capsys, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)
    args = _args(files, tmp_path / "evolved.yaml")
    for flag, value in change.items():
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nas evolve-space: error: ") and "\n" not in err, err
    assert message in err
    assert not (tmp_path / "evolved.yaml").exists()


def test_a_lut_lacking_blocks_says_how_to_profile_them(files, tmp_path, capsys):
    lut = write_lut(tmp_path / "partial.db", small_hyper(("mbv2", "resnet")).space)
    args = _args(files, tmp_path / "evolved.yaml", "--quality", str(files["root"] / "lut.quality.db"))
    args[args.index("--lut") + 1] = str(lut)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nas profile --space spaceevo" in err and "mbconv_hardswish" in err


def test_missing_quality_measurements_are_named(files, tmp_path, capsys):
    from nas.spaceevo.quality import QualityStore

    hyper = small_hyper()
    partial = tmp_path / "partial.quality.db"
    fake = FakeQuality(hyper, n=4)
    with QualityStore(partial) as store:
        store.register_run("fake", {"hyperspace": hyper.name})
        spec = hyper.stages[0]
        store.put(
            "fake",
            spec.number,
            "mbv2",
            spec.windows[0],
            [(c, v, "random") for c, v in fake.samples(spec.number, "mbv2", spec.windows[0])],
        )
    assert main(_args(files, tmp_path / "evolved.yaml", "--quality", str(partial))) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has no quality measurements yet" in err

"""`nas search --supernet ... --lut ... --target ...`, run as the real command: budgeted and Pareto
searches over a tiny supernet's space, a shared study, output files, and one-line errors."""

from __future__ import annotations

import json
import subprocess

import pytest

from nas.cli._common import load_arch_file
from tests.nas.hw_search_helpers import TARGET, fake_lut, tiny_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """``(checkpoint, lut, space, budget_ms, fastest_ms)``: the budget admits about a third of the archs."""
    from nas.search.evaluators import LutLatencyEvaluator
    from supernet.train import load_supernet

    ckpt = tiny_checkpoint(tmp_path_factory.mktemp("hw_cli"))
    space = load_supernet(ckpt)[0].space
    lut = fake_lut(tmp_path_factory.mktemp("hw_cli_lut") / "lut.db", space)
    lat = sorted(LutLatencyEvaluator.from_lut(lut, TARGET, space).predict_many(list(space.enumerate())))
    return ckpt, lut, space, round(lat[len(lat) // 3], 4), lat[0]


def _hw(setup, *extra: str) -> list[str]:
    ckpt, lut = setup[:2]
    return ["search", "--supernet", str(ckpt), "--lut", str(lut), "--target", TARGET, "--threads", "1", *extra]


def _one_line_error(res: subprocess.CompletedProcess[str], text: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr and text in lines[0], res.stderr


@pytest.mark.parametrize(
    "searcher",
    ["random", pytest.param("evolution", marks=pytest.mark.slow), pytest.param("tpe", marks=pytest.mark.slow)],
)
def test_best_arch_under_a_latency_budget(run_nas, setup, tmp_path, searcher):
    from spaces import space_hash

    ckpt, lut, space, budget_ms, _ = setup
    out_dir = tmp_path / "out"
    res = run_nas(
        *_hw(
            setup,
            "--searcher",
            searcher,
            "--constraint",
            f"latency_ms<={budget_ms}",
            "--budget",
            "6",
            "--seed",
            "0",
            "--out",
            str(out_dir),
            "--json",
            "--quiet",
        )
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["queries"] == 6 and out["objectives"] == ["accuracy:max"]
    best = out["best"]
    assert best is not None and best["values"]["latency_ms"] <= budget_ms and 0 <= best["values"]["accuracy"] <= 100
    arch = load_arch_file(str(out_dir / "best.json"))
    assert arch.to_dict() == best["arch"] and space.contains(arch)
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["searcher"] == searcher and summary["space"] == {"name": space.name, "hash": space_hash(space)}
    assert summary["supernet"]["checkpoint"] == str(ckpt) and summary["supernet"]["precision"] == "fakequant"
    assert summary["supernet"]["validation"]["split"] == "carved from train"
    assert summary["lut"]["path"] == str(lut) and summary["lut"]["target"] == TARGET
    assert summary["constraints"] == [f"latency_ms<={budget_ms:g}"] and summary["budget"] == 6
    assert len(summary["trials"]) == 6 and all(
        {"accuracy", "latency_ms"} <= set(t["values"]) for t in summary["trials"]
    )
    feasible = [t for t in summary["trials"] if t["values"]["latency_ms"] <= budget_ms]
    assert best["values"]["accuracy"] == max(t["values"]["accuracy"] for t in feasible)
    assert summary["best"]["arch"] == best["arch"] and summary["pareto_front"] is None


def test_pareto_front_files_and_human_output(run_nas, setup, tmp_path):
    out_dir = tmp_path / "pareto_run"
    (out_dir / "pareto").mkdir(parents=True)
    (out_dir / "pareto" / "00_stale.json").write_text("{}")  # a rerun replaces an earlier front
    res = run_nas(
        *_hw(
            setup,
            "--searcher",
            "nsga2",
            "--objective",
            "accuracy",
            "--objective",
            "latency_ms:min",
            "--budget",
            "8",
            "--seed",
            "1",
            "--out",
            str(out_dir),
        )
    )
    assert res.returncode == 0, res.stderr
    assert "best:" in res.stdout and "Pareto front:" in res.stdout and "summary.json" in res.stdout
    assert res.stderr.count("trial ") == 8 and "latency_ms=" in res.stderr
    files = sorted((out_dir / "pareto").glob("*.json"))
    summary = json.loads((out_dir / "summary.json").read_text())
    front = summary["pareto_front"]
    assert files and len(files) == len(front) and not (out_dir / "pareto" / "00_stale.json").exists()
    assert not (out_dir / "best.json").exists()
    points = []
    for f in files:
        rec = json.loads(f.read_text())
        assert f.name.startswith(f"{len(points):02d}_") and f.name.endswith(f"_{rec['arch_id']}.json")
        assert load_arch_file(str(f)).id == rec["arch_id"]
        points.append((rec["values"]["accuracy"], rec["values"]["latency_ms"]))
    assert points == sorted(points, reverse=True)  # best accuracy first
    for a in points:  # mutually non-dominated
        assert not any(b != a and b[0] >= a[0] and b[1] <= a[1] for b in points)


@pytest.mark.slow
def test_shared_study_with_the_supernet_evaluator(run_nas, setup, tmp_path):
    """Two workers (an Optuna searcher and a non-Optuna one) share one SQLite study."""
    import os
    import sys
    from pathlib import Path

    _, _, _, budget_ms, _ = setup
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = [
        "--constraint",
        f"latency_ms<={budget_ms}",
        "--storage",
        storage,
        "--study",
        "hw",
        "--budget",
        "10",
        "--json",
        "--quiet",
    ]
    exe = Path(sys.executable).with_name("nas")
    env = {**os.environ, "COLUMNS": "200"}
    procs = [
        subprocess.Popen(
            [str(exe), *_hw(setup, "--searcher", s, "--seed", str(i), "--out", str(tmp_path / f"w{i}"), *common)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i, s in enumerate(("tpe", "evolution"))
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        outs.append(json.loads(stdout))
    mine = [set(o["trials"]) for o in outs]
    assert not mine[0] & mine[1]  # no trial is recorded twice
    assert max(o["study_evaluated"] for o in outs) >= 10
    summaries = [json.loads((tmp_path / f"w{i}" / "summary.json").read_text()) for i in range(2)]
    assert all(s["study"] == {"storage": storage, "name": "hw"} for s in summaries)
    last = max(summaries, key=lambda s: len(s["trials"]))
    assert len({t["arch_id"] for t in last["trials"]}) >= 10
    best = last["best"]
    assert best["values"]["latency_ms"] <= budget_ms
    assert best["values"]["accuracy"] == max(t["values"]["accuracy"] for t in last["trials"] if t["feasible"])


def test_a_budget_no_arch_meets_is_a_one_line_error(run_nas, setup):
    *_, fastest = setup
    res = run_nas(*_hw(setup, "--constraint", f"latency_ms<={fastest * 0.5:.6f}", "--budget", "3"))
    _one_line_error(res, "no arch of space")
    assert f"{fastest:.4g}" in res.stderr and TARGET in res.stderr


@pytest.mark.parametrize(
    "change, text",
    [
        ({"--supernet": "/nonexistent/run"}, "no such checkpoint"),
        ({"--lut": "/nonexistent/lut.db"}, "no such LUT file"),
        ({"--space": "resnet"}, "hash"),
        ({"--target": None}, "--lut and --target go together"),
        ({"--searcher": "darts"}, "cannot search a supernet's space"),
        ({"--evaluator": "nb201"}, "not the nb201 evaluator's"),
    ],
)
def test_errors_are_one_line(run_nas, setup, change, text):
    args = _hw(setup, "--budget", "2")
    for flag, value in change.items():
        if flag in args:
            i = args.index(flag)
            del args[i : i + 2]
        if value is not None:
            args += [flag, value]
    _one_line_error(run_nas(*args), text)


def test_latency_without_a_lut_is_a_one_line_error(run_nas, setup):
    ckpt = setup[0]
    res = run_nas("search", "--supernet", str(ckpt), "--constraint", "latency_ms<=1", "--budget", "2")
    _one_line_error(res, "give --lut LUT.db --target T")

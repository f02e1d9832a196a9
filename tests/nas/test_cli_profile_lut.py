"""`nas profile` and `nas lut export-blocks|merge|show|validate`, run as real commands.

Includes the required resume test: the profiler is killed with SIGKILL mid-run, rerun,
and the LUT ends complete with no block measured twice.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "latency_lut"))
from lut_test_helpers import TINY_SPACE_YAML, lut_rows, write_fast_target  # noqa: E402


def _cmd() -> list[str]:
    exe = Path(sys.executable).with_name("nas")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nas.cli"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    (root / "tiny.yaml").write_text(TINY_SPACE_YAML)
    write_fast_target(root, "int8", name="fast-int8")
    write_fast_target(root, "fp32", name="fast-fp32")
    write_fast_target(root, "int8", min_time=0.1, name="slow-int8")  # ~0.1 s per block: killable mid-run
    return root


@pytest.fixture(scope="module")
def exported(work):
    res = subprocess.run(
        [
            *_cmd(),
            "lut",
            "export-blocks",
            "--space",
            str(work / "tiny.yaml"),
            "--out",
            str(work / "blocks"),
            "--archs",
            "3",
            "--networks",
            "1",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    manifest = json.loads((work / "blocks" / "manifest.json").read_text())
    assert f"{len(manifest['blocks'])} blocks, 2 pseudo-blocks, 1 networks" in res.stdout
    return work / "blocks"


def _count(folder: Path) -> int:
    """Models per INT8 profile of the folder: its blocks and the 2 pseudo-blocks."""
    return len(json.loads((folder / "manifest.json").read_text())["blocks"]) + 2


def _one_line_error(res) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_profile_show_validate(run_nas, work, exported):
    lut = work / "lut.db"
    res = run_nas("profile", str(exported), "--target", str(work / "fast-int8.yaml"), "--out", str(lut), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    total = _count(exported)
    assert out["measured"] == total and out["networks"] == 1 and out["failed"] == []
    assert "ETA" in res.stderr  # the progress bar
    res = run_nas("profile", str(exported), "--target", str(work / "fast-fp32.yaml"), "--out", str(lut))
    assert res.returncode == 0, res.stderr
    assert f"{total - 1} block(s) measured" in res.stdout  # FP32 has no input-quantize pseudo-block

    res = run_nas("lut", "show", str(lut))
    assert res.returncode == 0, res.stderr
    assert "INT8 speed-up" in res.stdout and "mbconv relu" in res.stdout and "all" in res.stdout
    shown = json.loads(run_nas("lut", "show", str(lut), "--json").stdout)
    assert len(shown["fingerprints"]) == 2 and shown["speedup"][0]["rows"][-1]["n"] == total - 2

    res = run_nas(
        "lut",
        "validate",
        "--lut",
        str(lut),
        "--space",
        str(work / "tiny.yaml"),
        "--target",
        str(work / "fast-int8.yaml"),
        "--n",
        "3",
        "--seed",
        "0",
        "--json",
        "--no-progress",
    )
    assert res.returncode == 0, res.stderr
    obj = json.loads(res.stdout)
    for key in ("n", "within_5pct", "within_10pct", "rmse_ms", "kendall_tau", "target", "space"):
        assert key in obj
    assert obj["n"] == 3 and obj["space"] == "tiny" and obj["target"] == "fast-int8"
    assert 0.0 <= obj["within_10pct"] <= 1.0 and obj["rmse_ms"] >= 0 and len(obj["networks"]) == 3
    res = run_nas(
        "lut",
        "validate",
        "--lut",
        str(lut),
        "--space",
        str(work / "tiny.yaml"),
        "--target",
        str(work / "fast-int8.yaml"),
        "--n",
        "2",
        "--seed",
        "1",
        "--no-progress",
    )
    assert res.returncode == 0 and "Kendall's tau" in res.stdout


def test_sigkill_then_resume_measures_each_block_once(run_nas, work, exported):
    lut = work / "killed.db"
    cmd = [
        *_cmd(),
        "profile",
        str(exported),
        "--target",
        str(work / "slow-int8.yaml"),
        "--out",
        str(lut),
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.05)
        if lut.exists():
            try:
                if len(lut_rows(lut)) >= 4:
                    break
            except sqlite3.Error:
                pass
        assert proc.poll() is None, "the profiler finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = lut_rows(lut)
    total = _count(exported)
    assert 4 <= len(before) < total

    res = run_nas(
        "profile", str(exported), "--target", str(work / "slow-int8.yaml"), "--out", str(lut), "--json", "--no-progress"
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    after = lut_rows(lut)
    assert len(after) == total  # complete: every block and the 2 pseudo-blocks
    assert {k: after[k] for k in before} == before  # finished blocks untouched
    assert out["measured"] == total - len(before) and out["skipped"] >= len(before)
    con = sqlite3.connect(f"file:{lut}?mode=ro", uri=True)
    measured = sum(m for (m,) in con.execute("SELECT measured FROM runs"))
    con.close()
    assert measured == total  # across both runs: every block measured exactly once


def test_one_step_profile_and_merge(run_nas, work):
    a, b, merged = work / "a.db", work / "b.db", work / "merged.db"
    for lut, seed in ((a, "0"), (b, "5")):
        res = run_nas(
            "profile",
            "--space",
            str(work / "tiny.yaml"),
            "--target",
            str(work / "fast-int8.yaml"),
            "--out",
            str(lut),
            "--archs",
            "1",
            "--seed",
            seed,
            "--networks",
            "0",
            "--no-progress",
        )
        assert res.returncode == 0, res.stderr
    rows_a, rows_b = lut_rows(a), lut_rows(b)
    res = run_nas("lut", "merge", str(merged), str(a), str(b))
    assert res.returncode == 0, res.stderr
    assert set(lut_rows(merged)) == set(rows_a) | set(rows_b)


def test_one_line_errors(run_nas, work, exported, tmp_path):
    lut = work / "lut.db"
    if not lut.exists():
        pytest.skip("needs test_profile_show_validate's LUT")
    tiny = str(work / "tiny.yaml")
    msg = _one_line_error(run_nas("profile", str(exported), "--target", "cpu-nope", "--out", str(tmp_path / "x.db")))
    assert "unknown target 'cpu-nope'" in msg
    msg = _one_line_error(
        run_nas("lut", "validate", "--lut", str(lut), "--space", tiny, "--target", "cpu-ort-int8-2t", "--n", "3")
    )
    assert "no measurements for target 'cpu-ort-int8-2t'" in msg  # a LUT from another fingerprint
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(lut.read_bytes()[: lut.stat().st_size // 2])
    for args in (
        ("lut", "show", str(bad)),
        ("lut", "validate", "--lut", str(bad), "--space", tiny, "--target", str(work / "fast-int8.yaml")),
    ):
        assert "corrupt or truncated LUT" in _one_line_error(run_nas(*args))
    garbage = tmp_path / "garbage.db"
    garbage.write_text("hello")
    assert "not an SQLite database" in _one_line_error(run_nas("lut", "show", str(garbage)))
    partial = work / "a.db"  # one-step LUT of one arch: other archs' blocks are missing
    msg = _one_line_error(
        run_nas(
            "lut",
            "validate",
            "--lut",
            str(partial),
            "--space",
            tiny,
            "--target",
            str(work / "fast-int8.yaml"),
            "--n",
            "10",
            "--seed",
            "7",
        )
    )
    assert "has no measurement" in msg
    msg = _one_line_error(
        run_nas("profile", str(exported), "--space", tiny, "--target", "cpu-ort-int8", "--out", str(tmp_path / "x.db"))
    )
    assert "either" in msg
    msg = _one_line_error(
        run_nas("profile", str(tmp_path), "--target", "cpu-ort-int8", "--out", str(tmp_path / "x.db"))
    )
    assert "no manifest.json" in msg


def test_list_targets(run_nas):
    res = run_nas("profile", "--list-targets", "--json")
    assert res.returncode == 0, res.stderr
    names = {t["name"]: t for t in json.loads(res.stdout)["targets"]}
    assert {
        "cpu-ort-int8",
        "cpu-ort-fp32",
        "cpu-ort-int8-2t",
        "cpu-openvino-int8",
        "gpu-trt-int8",
        "gpu-trt-fp16",
    } <= set(names)
    assert names["cpu-ort-int8"]["available"]
    for gpu in ("gpu-trt-int8", "gpu-trt-fp16"):
        assert names[gpu]["available"] or names[gpu]["reason"]


GATED_TARGET_YAML = """\
name: test-gated-int8
engine: onnxruntime
precision: int8
threads: 1
options: {providers: [CPUExecutionProvider]}
measure: {warmup_runs: 2, warmup_s: 0.0, min_runs: 3, min_time_s: 0.002, rounds: 3, max_rounds: 6,
          quiet_gate: true, gate_max_wait_s: 0.2}
"""


def test_profile_reports_the_host_noise_model(run_nas, work, exported, tmp_path):
    """Issue 22: the calibration is printed, stored with the run, and shown by `nas lut show`."""
    target = tmp_path / "gated.yaml"
    target.write_text(GATED_TARGET_YAML)
    lut = tmp_path / "gated.db"
    res = run_nas("profile", str(exported), "--target", str(target), "--out", str(lut), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "host noise model: probe" in res.stderr and "quiet" in res.stderr
    line = next(ln for ln in res.stdout.splitlines() if ln.strip().startswith("calibration:"))
    for part in ("timer", "resolution", "rounds per block", "flagged busy", "median CI"):
        assert part in line, line
    shown = run_nas("lut", "show", str(lut))
    assert shown.returncode == 0 and "calibration (last run): probe" in shown.stdout
    calib = json.loads(run_nas("lut", "show", str(lut), "--json").stdout)["fingerprints"][0]["calibration"]
    assert calib["probe_quiet_ms"] > 0 and calib["timer_resolution_us"] > 0 and 0.0 <= calib["busy_share"] <= 1.0
    assert calib["blocks_measured"] == _count(exported) and calib["rounds_mean"] >= 3
    merged = tmp_path / "merged.db"  # a merge keeps the runs' calibration records
    assert run_nas("lut", "merge", str(merged), str(lut)).returncode == 0
    shown = json.loads(run_nas("lut", "show", str(merged), "--json").stdout)
    assert shown["fingerprints"][0]["calibration"]["blocks_measured"] == calib["blocks_measured"]

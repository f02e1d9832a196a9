"""SIGKILL `nas run` once in each stage, rerun, and check that nothing finished was redone.

    .venv/bin/python benchmarks/run_kill_acceptance.py [--config demo_quick|FILE] [--work DIR]

1. A run of ``--config`` is started in ``WORK/killed`` and killed with SIGKILL while it is in
   the middle of each stage in turn (``lut``: some blocks stored; ``supernet``: an epoch
   finished; ``search``: a few evaluations cached; ``export``: one budget exported;
   ``report``: started), each time rerun with the same command, then run to the end.
2. Units finished before a kill must never be redone: LUT blocks (each stored row was measured
   by exactly one run: the runs' counts add up to the rows), supernet epochs (each epoch has one
   line in ``metrics.jsonl``), search evaluations (each arch once in ``evals.jsonl`` per budget),
   exports (each budget exported once over all attempts' logs). The counts are printed.
3. A reference run of the same config, uninterrupted, reusing the killed run's LUT (``lut.path``:
   latency measurements are never bit-identical, everything after them is), must give a report
   identical in content to the killed run's, except timings, measured latencies and the LUT's
   provenance.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

STAGES = ("lut", "supernet", "search", "export", "report")
#: report.json keys (at any depth) that legitimately differ between two runs of one config: timings,
#: measured latencies and what is derived from them (the measured INT8/FP32 speed-up), provenance
VOLATILE = (
    "seconds",
    "elapsed",
    "time",
    "timing",
    "timestamp",
    "started",
    "finished",
    "measured",
    "speedup",
    "wall",
    "host",
    "path",
    "run_dir",
    "lut",
    "source",
    "created",
    "updated",
    "fingerprint",
    "probe",
    "calibration",
)


def nas_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("nas")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nas.cli"]


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT count(*) FROM latency").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _lines(path: Path) -> list[str]:
    try:
        return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError:
        return []


def in_progress(run: Path, stage: str, log: str) -> bool:
    """Whether the attempt is far enough into ``stage`` that a kill leaves finished units behind."""
    if f"[{stage}] starting" not in log and f"[{stage}] resuming" not in log:
        return False
    if stage == "lut":
        return _rows(run / "lut" / "lut.db") >= 5
    if stage == "supernet":
        return any('"epoch"' in ln for ln in _lines(run / "supernet" / "metrics.jsonl"))
    if stage == "search":
        return len(_lines(run / "search" / "evals.jsonl")) >= 3
    if stage == "export":
        return any(p.name == "model.json" for p in (run / "export").glob("*/model.json"))
    return True


def attempt(cmd: list[str], run: Path, kill_in: str | None, logs: list[str], timeout_s: float) -> dict[str, Any]:
    """One ``nas run`` attempt, killed with SIGKILL once ``kill_in`` is in progress (or run to the end)."""
    log_path = run.parent / f"attempt-{len(logs)}.log"
    with open(log_path, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True)
        start = time.monotonic()
        killed = False
        while proc.poll() is None:
            if time.monotonic() - start > timeout_s:
                proc.kill()
                raise SystemExit(f"attempt timed out after {timeout_s:.0f} s (log {log_path})")
            if kill_in is not None and in_progress(run, kill_in, log_path.read_text(encoding="utf-8")):
                if kill_in == "report":
                    time.sleep(0.3)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                killed = True
                break
            time.sleep(0.1)
    text = log_path.read_text(encoding="utf-8")
    logs.append(text)
    return {"kill_in": kill_in, "killed": killed, "rc": proc.returncode, "seconds": round(time.monotonic() - start, 1)}


def count_units(run: Path, logs: list[str]) -> dict[str, dict[str, int]]:
    """Finished units and those done more than once, per stage."""
    out: dict[str, dict[str, int]] = {}
    db = run / "lut" / "lut.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = int(con.execute("SELECT count(*) FROM latency").fetchone()[0])
        per_run = [int(r[0] or 0) for r in con.execute("SELECT measured FROM runs")]
    finally:
        con.close()
    out["lut"] = {"units": rows, "runs": len(per_run), "redone": sum(per_run) - rows}
    epochs = Counter(
        json.loads(ln).get("epoch") for ln in _lines(run / "supernet" / "metrics.jsonl") if '"epoch"' in ln
    )
    out["supernet"] = {"units": len(epochs), "redone": sum(n - 1 for n in epochs.values())}
    evals = Counter()
    for ln in _lines(run / "search" / "evals.jsonl"):
        rec = json.loads(ln)
        evals[
            json.dumps(
                {k: v for k, v in rec.items() if k in ("key", "arch", "arch_id", "precision", "val_limit")},
                sort_keys=True,
            )
        ] += 1
    out["search"] = {"units": len(evals), "redone": sum(n - 1 for n in evals.values())}
    exports = Counter(
        ln.split(":")[0]
        for text in logs
        for ln in text.splitlines()
        if ln.startswith("[export] ") and "exporting and verifying" in ln
    )
    finished = len(list((run / "export").glob("*/model.json")))
    # an export in flight when killed is started again: count the ones started more often than killed mid-way
    out["export"] = {"units": finished, "started": sum(exports.values())}
    out["export"]["redone"] = max(0, out["export"]["started"] - finished - 1)
    return out


def strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if not any(w in k.lower() for w in VOLATILE)}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def diff(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += diff(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{where}.{k}" if where else k)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="demo_quick", help="demo_quick, demo, or a config YAML file")
    ap.add_argument("--work", default="runs/kill_acceptance")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per attempt")
    args = ap.parse_args()

    from hwnas.io import load_yaml_file
    from nas.pipeline import demo_config_path

    bundled = {"demo": demo_config_path(), "demo_quick": demo_config_path().with_name("demo_quick.yaml")}
    config = bundled.get(args.config) or Path(args.config)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    killed_run = work / "killed" / "run"
    killed_run.parent.mkdir(parents=True)
    cmd = [*nas_cmd(), "run", str(config), "--out", str(killed_run), "--no-progress"]
    logs: list[str] = []
    attempts = []
    t0 = time.monotonic()
    for stage in STAGES:
        res = attempt(cmd, killed_run, stage, logs, args.timeout)
        attempts.append(res)
        print(
            f"attempt {len(attempts)}: SIGKILL in {stage}: {'killed' if res['killed'] else 'ended rc=' + str(res['rc'])} "
            f"after {res['seconds']} s",
            flush=True,
        )
    res = attempt(cmd, killed_run, None, logs, args.timeout)
    attempts.append(res)
    print(f"attempt {len(attempts)}: to the end: rc={res['rc']} after {res['seconds']} s", flush=True)
    killed_s = time.monotonic() - t0
    if res["rc"] != 0:
        print(logs[-1][-3000:])
        return 1
    units = count_units(killed_run, logs)

    cfg = load_yaml_file(config)
    cfg.setdefault("lut", {})["path"] = str((killed_run / "lut" / "lut.db").resolve())
    ref_config = work / "reference.yaml"
    import yaml

    ref_config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    ref_run = work / "reference" / "run"
    ref_run.parent.mkdir(parents=True)
    t0 = time.monotonic()
    ref = attempt(
        [*nas_cmd(), "run", str(ref_config), "--out", str(ref_run), "--no-progress"], ref_run, None, [], args.timeout
    )
    ref_s = time.monotonic() - t0
    if ref["rc"] != 0:
        print("reference run failed")
        return 1
    a = strip(json.loads((killed_run / "report" / "report.json").read_text(encoding="utf-8")))
    b = strip(json.loads((ref_run / "report" / "report.json").read_text(encoding="utf-8")))
    differences = diff(a, b)

    print()
    print(f"config {config}: killed run {killed_s:.0f} s over {len(attempts)} attempts, reference {ref_s:.0f} s")
    print("stage | finished units | redone")
    print("--- | --- | ---")
    for stage in ("lut", "supernet", "search", "export"):
        print(f"{stage} | {units[stage]['units']} | {units[stage]['redone']}")
    print(
        f"report vs uninterrupted run (timings, measured latencies and provenance left out): "
        f"{'identical' if not differences else f'{len(differences)} difference(s)'}"
    )
    for d in differences[:20]:
        print(f"  {d}")
    result = {
        "config": str(config),
        "attempts": attempts,
        "units": units,
        "differences": differences,
        "killed_s": round(killed_s, 1),
        "reference_s": round(ref_s, 1),
    }
    (work / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    ok = not differences and all(u["redone"] == 0 for u in units.values()) and all(x["killed"] for x in attempts[:5])
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

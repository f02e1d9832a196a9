"""Concurrency check (issue 19): several ``nas profile`` processes on one LUT, several ``nas search``
workers on one study per storage (SQLite, journal, PostgreSQL): 0 lost, 0 duplicated.

How to run (from the repository root; about 5 minutes on two cores at the default scale, the
profile part 1 to 1.5 of them)::

    .venv/bin/python benchmarks/bench_concurrency.py [--work DIR] [--json FILE] [--parts profile,search]
        [--space resnet] [--resolution 16] [--profilers 4] [--fp32-profilers 2] [--again 2]
        [--workers 4] [--n-trials 25] [--storages sqlite,journal,postgres]
        [--scenarios random-one-seed,random,tpe] [--postgres-url URL]

``profile``: ``--profilers`` ``nas profile`` processes of a small space (the tiny ResNet space of the
tests at ``--resolution``; ``--space tiny`` is the tests' 21-block YAML space) on a fast INT8 target
and ``--fp32-profilers`` on its FP32 twin, all started at once on one LUT file (``--out`` the same
path, ``$TMPDIR`` a private folder), then ``--again`` more INT8 profilers that find every block
stored. Beside them a reader process holds a read-only connection to the LUT across all the writes
and opens the LUT again and again (as ``nas search --lut`` or a LatencyPredictor does), and another
only opens it again and again (as repeated ``nas lut`` commands do); they report every error they
meet. Checked: every block key and calibration network of the space stored exactly
once per fingerprint (0 lost, 0 duplicated), the runs' ``measured`` counts adding up to the rows and to
what the profilers reported, every run row ``finished``, ``PRAGMA integrity_check`` ok, no WAL left
with content, no work folder left in ``$TMPDIR``, the later profilers measuring nothing, and the
readers: no error, never fewer rows than a query before, the held connection seeing the final LUT.

``search``: per storage and scenario, ``--workers`` ``nas search --space nb201`` workers (table
lookups, ``--delay`` seconds per evaluation) started at once on one study, each asking
``--n-trials``. Scenarios: ``random-one-seed`` (every worker ``--seed 0``: the same proposals, so
workers meet archs another evaluates or has evaluated and reuse its values, the dedupe at work),
``random`` and ``tpe`` (seeds 0..W-1; TPE is Optuna's own sampler on the shared study). Checked: the
study holds exactly W x n-trials COMPLETE trials numbered 0..N-1, the workers' reported trials are
disjoint and together the study (0 lost), no trial RUNNING, WAITING or failed, no arch evaluated
twice (0 duplicated: a trial of an arch already evaluated is marked cached). PostgreSQL is a
throwaway local server (as the test suite's), or ``--postgres-url``; it is skipped, saying why,
where none can start.

Prints a table (one row per part and scenario) and writes ``--json`` (default
``WORK/result.json``); exit status 1 when any check fails. The test-scale versions are
tests/latency_lut/test_concurrent_profilers.py and tests/nas/search/test_concurrent_workers.py
(the checks are tests/helpers.py's).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "latency_lut"))

from lut_test_helpers import TINY_SPACE_YAML, write_fast_target  # noqa: E402

from tests.helpers import (  # noqa: E402
    TINY_SPACES,
    PostgresUnavailable,
    finished,
    local_postgres,
    lut_problems,
    start_lut_reader,
    start_nas,
    study_problems,
)

SCENARIOS = ("random-one-seed", "random", "tpe")
STORAGES = ("sqlite", "journal", "postgres")


def _space_args(args: argparse.Namespace, work: Path) -> tuple[list[str], Any]:
    """The ``nas profile`` space options and the space object."""
    from spaces import create_space

    if args.space == "tiny":
        path = work / "tiny.yaml"
        path.write_text(TINY_SPACE_YAML)
        return ["--space", str(path)], create_space(str(path))
    kwargs = TINY_SPACES[args.space]
    opts = ["--space", args.space, "--space-args", json.dumps(kwargs), "--in-chans", "1", "--num-classes", "10"]
    opts += ["--resolution", str(args.resolution)]
    return opts, create_space(args.space, in_chans=1, num_classes=10, resolution=args.resolution, **kwargs)


def _bad_exits(runs: list[tuple[int, str, str]]) -> list[str]:
    out = []
    for i, (rc, _, err) in enumerate(runs):
        if rc != 0 or "Traceback" in err:
            tail = err.strip().splitlines()[-1] if err.strip() else ""
            out.append(f"process {i} exited {rc}: {tail}")
    return out


def _json_lines(runs: list[tuple[int, str, str]]) -> list[dict[str, Any]]:
    out = []
    for rc, text, _ in runs:
        if rc == 0:
            try:
                out.append(json.loads(text))
            except ValueError:
                pass
    return out


def profile_part(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    folder = work / "profile"
    shutil.rmtree(folder, ignore_errors=True)
    tmp = folder / "tmp"
    tmp.mkdir(parents=True)
    int8 = write_fast_target(folder, "int8")
    fp32 = write_fast_target(folder, "fp32")
    space_opts, space = _space_args(args, folder)
    lut, stop = folder / "lut.db", folder / "reader.stop"
    reports = {mode: folder / f"reader-{mode}.json" for mode in ("hold", "reopen")}
    common = [*space_opts, "--out", str(lut), "--networks", str(args.networks), "--retry-passes", "0"]
    common += ["--no-progress", "--json"]
    start = time.monotonic()
    readers = [start_lut_reader(lut, stop, reports[mode], hold=mode == "hold") for mode in reports]
    procs = [start_nas(["profile", "--target", str(int8), *common], tmp) for _ in range(args.profilers)]
    procs += [start_nas(["profile", "--target", str(fp32), *common], tmp) for _ in range(args.fp32_profilers)]
    first = finished(procs, timeout=args.timeout)
    first_s = time.monotonic() - start
    again = finished(
        [start_nas(["profile", "--target", str(int8), *common], tmp) for _ in range(args.again)], timeout=args.timeout
    )
    stop.touch()
    reader_exits = finished(readers, timeout=120)
    seconds = time.monotonic() - start

    problems = _bad_exits(first + again) + [f"reader: {p}" for p in _bad_exits(reader_exits)]
    outputs = _json_lines(first + again)
    counts: dict[str, Any] = {}
    if lut.exists():
        found, counts = lut_problems(
            lut,
            space,
            {
                name: n
                for name, n in (
                    ("test-fast-int8", args.profilers + args.again),
                    ("test-fast-fp32", args.fp32_profilers),
                )
                if n
            },
            networks=args.networks,
            outputs=outputs,
        )
        problems += found
    else:
        problems.append("no LUT written")
    again_measured = sum(int(o.get("measured", 0)) for o in _json_lines(again))
    if again_measured:
        problems.append(f"the later profilers measured {again_measured} blocks again")
    wal = Path(f"{lut}-wal")
    if wal.exists() and wal.stat().st_size:
        problems.append(f"{wal.name} left with {wal.stat().st_size} bytes")
    left = sorted(p.name for p in tmp.iterdir())
    if left:
        problems.append(f"left in $TMPDIR: {left[:3]}")
    runs = args.profilers + args.fp32_profilers + args.again
    read: dict[str, Any] = {}
    for mode, report in reports.items():
        try:
            got = json.loads(report.read_text())
        except (OSError, ValueError):
            problems.append(f"the {mode} reader wrote no report")
            got = {"counts": {}, "errors": {}, "final": {}}
        read[mode] = got
        if got["errors"]:
            problems.append(f"{mode} reader errors: {sum(got['errors'].values())} ({next(iter(got['errors']))})")
        if got["counts"].get("went_back"):
            problems.append(f"the {mode} reader saw fewer rows than before {got['counts']['went_back']} time(s)")
        want = {"fresh_rows": counts.get("rows"), "fresh_runs": runs}
        if mode == "hold":
            want = {"held_rows": counts.get("rows"), "held_runs": runs, **want}
        if got["final"] != want:
            problems.append(f"the {mode} reader's final view {got['final']}, the LUT {want}")
    return {
        "part": "profile",
        "scenario": f"{args.profilers} int8 + {args.fp32_profilers} fp32, then {args.again} int8",
        "storage": "LUT (SQLite WAL)",
        "processes": len(first) + len(again),
        "units": counts.get("rows", 0) + counts.get("networks", 0),
        "lost": counts.get("lost"),
        "duplicated": counts.get("duplicated"),
        "reader_opens": sum(r["counts"].get("opens", 0) for r in read.values()),
        "reader_errors": sum(sum(r["errors"].values()) for r in read.values()),
        "seconds_first_round": round(first_s, 1),
        "seconds": round(seconds, 1),
        "counts": counts,
        "reader": read,
        "problems": problems,
    }


def _delete_study(url: str, study: str) -> None:
    import optuna

    from nas.search.storage import make_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        optuna.delete_study(study_name=study, storage=make_storage(url))
    except KeyError:
        pass


def search_scenario(url: str, storage: str, scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    searcher = "tpe" if scenario == "tpe" else "random"
    study = f"conc-{scenario}"
    common = ["search", "--space", "nb201", "--searcher", searcher, "--storage", url, "--study", study]
    common += ["--n-trials", str(args.n_trials), "--delay", str(args.delay), "--quiet", "--json"]
    _delete_study(url, study)  # a --postgres-url server may hold the study of an earlier run
    start = time.monotonic()
    seeds = [0 if scenario == "random-one-seed" else w for w in range(args.workers)]
    runs = finished([start_nas([*common, "--seed", str(s)]) for s in seeds], timeout=args.timeout)
    seconds = time.monotonic() - start
    problems = _bad_exits(runs)
    reports = _json_lines(runs)
    counts: dict[str, Any] = {}
    try:
        found, counts = study_problems(url, study, reports, args.workers * args.n_trials)
        problems += found
    except Exception as exc:  # the study cannot be read back
        problems.append(f"cannot check the study: {type(exc).__name__}: {exc}")
    return {
        "part": "search",
        "scenario": scenario,
        "storage": storage,
        "processes": len(runs),
        "units": counts.get("complete", 0),
        "lost": counts.get("lost"),
        "duplicated": counts.get("duplicated"),
        "cached": counts.get("cached"),
        "seconds": round(seconds, 1),
        "counts": counts,
        "problems": problems,
    }


def search_part(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    folder = work / "search"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rows: list[dict[str, Any]] = []
    scenarios = [s for s in args.scenarios.split(",") if s]
    for storage in [s for s in args.storages.split(",") if s]:
        with contextlib.ExitStack() as stack:
            if storage == "sqlite":
                url = f"sqlite:///{folder / 'study.db'}"
            elif storage == "journal":
                url = f"journal:{folder / 'study.log'}"
            elif args.postgres_url:
                url = args.postgres_url
            else:
                try:
                    url = stack.enter_context(local_postgres())
                except (PostgresUnavailable, RuntimeError) as exc:
                    print(f"postgres: skipped ({exc})", flush=True)
                    rows.append({"part": "search", "storage": "postgres", "skipped": str(exc), "problems": []})
                    continue
            for scenario in scenarios:
                row = search_scenario(url, storage, scenario, args)
                print(f"search {storage} {scenario}: {'PASS' if not row['problems'] else 'FAIL'}", flush=True)
                rows.append(row)
    return rows


def _cell(v: Any) -> str:
    return "-" if v is None else str(v)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("part", "storage", "scenario", "procs", "units", "lost", "dup", "cached", "reader err", "s", "result")
    lines = [head]
    for r in rows:
        if r.get("skipped"):
            lines.append((r["part"], r["storage"], "skipped", "", "", "", "", "", "", "", "SKIP"))
            continue
        lines.append(
            (
                r["part"],
                r["storage"],
                r["scenario"],
                _cell(r["processes"]),
                _cell(r["units"]),
                _cell(r["lost"]),
                _cell(r["duplicated"]),
                _cell(r.get("cached")),
                _cell(r.get("reader_errors")),
                _cell(r["seconds"]),
                "PASS" if not r["problems"] else "FAIL",
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        for p in r["problems"]:
            print(f"  {r['part']} {r['storage']} {r.get('scenario', '')}: {p}")
        if r.get("skipped"):
            print(f"  {r['part']} {r['storage']}: skipped: {r['skipped']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "bench_concurrency", help="working folder")
    ap.add_argument("--json", type=Path, default=None, help="result file (default WORK/result.json)")
    ap.add_argument("--parts", default="profile,search", help="profile, search (comma-separated)")
    ap.add_argument("--space", default="resnet", choices=["tiny", *TINY_SPACES], help="space profiled")
    ap.add_argument("--resolution", type=int, default=16, help="its input resolution (not for tiny)")
    ap.add_argument("--networks", type=int, default=2, help="calibration networks of each profile")
    ap.add_argument("--profilers", type=int, default=4, help="INT8 profilers started at once")
    ap.add_argument("--fp32-profilers", type=int, default=2, help="FP32 profilers started with them")
    ap.add_argument("--again", type=int, default=2, help="INT8 profilers started after them")
    ap.add_argument("--workers", type=int, default=4, help="search workers per study")
    ap.add_argument("--n-trials", type=int, default=25, help="trials each worker asks for")
    ap.add_argument("--delay", type=float, default=0.05, help="seconds each evaluation sleeps")
    ap.add_argument("--storages", default=",".join(STORAGES), help="sqlite, journal, postgres (comma-separated)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="random-one-seed, random, tpe")
    ap.add_argument("--postgres-url", default=None, help="a PostgreSQL server to use (default: a local one)")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds a round may take")
    args = ap.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    bad = [p for p in parts if p not in ("profile", "search")] + [
        s for s in args.scenarios.split(",") if s and s not in SCENARIOS
    ]
    bad += [s for s in args.storages.split(",") if s and s not in STORAGES]
    if bad:
        ap.error(f"unknown part, scenario or storage: {', '.join(bad)}")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    if "profile" in parts:
        rows.append(profile_part(args, work))
        print(f"profile: {'PASS' if not rows[-1]['problems'] else 'FAIL'}", flush=True)
    if "search" in parts:
        rows += search_part(args, work)
    print()
    print_table(rows)
    ok = all(not r["problems"] for r in rows)
    print(f"\n{'PASS' if ok else 'FAIL'}: {sum(bool(r['problems']) for r in rows)} failing row(s)")
    out = args.json or work / "result.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "ok": ok}, indent=2))
    print(f"results: {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

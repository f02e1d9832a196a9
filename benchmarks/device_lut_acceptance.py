"""Issue 3's LUT accuracy for several spaces at once on a dedicated many-core CPU (the `device`).

For each configuration (default: mobilenet 1x28x28, spaceevo 1x28x28, mobilenet 3x224x224, all
``cpu-ort-int8``) it profiles the blocks of the N networks that validation measures
(``nas profile --space ... --archs K --seed S``, split into shards of consecutive seeds that
write one LUT), refits the correction once every shard is in, then measures the N networks
(``nas lut validate --n K --seed S`` shards) and pools the shards into one agreement report.
Every process runs pinned to its own physical core (one logical CPU per core; the first core is
left to the system), at most ``--max-procs`` at once. Processes on other cores still share the
last-level cache, memory bandwidth and the power budget: on the device's 16-core Xeon, twelve
and then six concurrent profilers had about half of their blocks flagged busy by the harness's
quiet gate and ran about three times slower per block than one profiler alone (measured 2026-11-27), so
the defaults keep to a few processes.

    python benchmarks/device_lut_acceptance.py --out $OUT --work /tmp/lutacc --deadline-s 500

Writes ``summary.json`` (one record per configuration: pooled agreement, profile and validation
wall time, blocks measured) to ``--out`` and packs the LUTs and logs as ``lut_runs.tar.gz``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {
    "mobilenet28": "--space mobilenet --in-chans 1 --num-classes 10 --resolution 28",
    "spaceevo28": "--space spaceevo --in-chans 1 --num-classes 10 --resolution 28",
    "mobilenet224": "--space mobilenet --in-chans 3 --num-classes 1000 --resolution 224",
}


@dataclass
class Task:
    name: str
    argv: list[str]
    stdout: Path
    after: set[str] = field(default_factory=set)
    proc: subprocess.Popen | None = None
    cpu: int | None = None
    started: float = 0.0
    ended: float = 0.0
    rc: int | None = None


def physical_cpus() -> list[int]:
    """One logical CPU per physical core that this process may run on, the first core left out."""
    allowed = sorted(os.sched_getaffinity(0))
    try:
        rows = subprocess.run(["lscpu", "-p=CPU,CORE,SOCKET"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return allowed[1:] or allowed
    first: dict[tuple[str, str], int] = {}
    for line in rows.splitlines():
        if line.startswith("#"):
            continue
        cpu, core, socket = line.split(",")[:3]
        if int(cpu) in allowed:
            first.setdefault((socket, core), int(cpu))
    cpus = sorted(first.values())
    return cpus[1:] or cpus


def shards(n: int, k: int, seed: int = 0) -> list[tuple[int, int]]:
    """``k`` (count, seed) pairs covering ``space.sample(seed + i)`` for i < n."""
    k = max(1, min(k, n))
    sizes = [n // k + (i < n % k) for i in range(k)]
    out, s = [], seed
    for size in sizes:
        out.append((size, s))
        s += size
    return out


def plan(
    names: list[str],
    work: Path,
    n: int,
    profile_shards: int,
    validate_shards: int,
    target: str,
    retry: int,
    fp32: list[str] = (),
    fp32_archs: int = 0,
) -> list[Task]:
    nas = [sys.executable, "-m", "nas.cli"]
    tasks: list[Task] = []
    int8_done: dict[str, set[str]] = {}  # configuration -> the tasks after which its INT8 LUT is complete
    for name in names:
        flags = CONFIGS[name].split()
        lut = str(work / f"{name}.db")
        prof = []
        for i, (k, seed) in enumerate(shards(n, profile_shards)):
            t = Task(
                f"{name}.profile{i}",
                nas
                + [
                    "profile",
                    *flags,
                    "--target",
                    target,
                    "--out",
                    lut,
                    "--archs",
                    str(k),
                    "--seed",
                    str(seed),
                    "--networks",
                    "4",
                    "--retry-passes",
                    str(retry),
                    "--no-progress",
                    "--json",
                ],
                work / f"{name}.profile{i}.json",
            )
            prof.append(t.name)
            tasks.append(t)
        if len(prof) > 1:  # every block is in by now: this measures nothing and refits on all shards' networks
            tasks.append(
                Task(
                    f"{name}.refit",
                    nas
                    + [
                        "profile",
                        *flags,
                        "--target",
                        target,
                        "--out",
                        lut,
                        "--archs",
                        str(n),
                        "--seed",
                        "0",
                        "--networks",
                        "4",
                        "--retry-passes",
                        "0",
                        "--no-progress",
                        "--json",
                    ],
                    work / f"{name}.refit.json",
                    after=set(prof),
                )
            )
            prof = [f"{name}.refit"]
        int8_done[name] = set(prof)
        for i, (k, seed) in enumerate(shards(n, validate_shards)):
            tasks.append(
                Task(
                    f"{name}.validate{i}",
                    nas
                    + [
                        "lut",
                        "validate",
                        "--lut",
                        lut,
                        *flags,
                        "--target",
                        target,
                        "--n",
                        str(k),
                        "--seed",
                        str(seed),
                        "--json",
                        "--no-progress",
                    ],
                    work / f"{name}.validate{i}.json",
                    after=int8_done[name],
                )
            )
    # last, so that they take the cores the INT8 work leaves: the FP32 blocks of the first archs
    # into the same LUT, for `nas lut show`'s INT8-vs-FP32 speed-up table
    for name in [c for c in fp32 if c in names]:
        flags, lut = CONFIGS[name].split(), str(work / f"{name}.db")
        parts = []
        for i, (k, seed) in enumerate(shards(fp32_archs, profile_shards)):
            t = Task(
                f"{name}.fp32_{i}",
                nas
                + [
                    "profile",
                    *flags,
                    "--target",
                    "cpu-ort-fp32",
                    "--out",
                    lut,
                    "--archs",
                    str(k),
                    "--seed",
                    str(seed),
                    "--networks",
                    "0",
                    "--retry-passes",
                    str(retry),
                    "--no-progress",
                    "--json",
                ],
                work / f"{name}.fp32_{i}.json",
            )
            parts.append(t.name)
            tasks.append(t)
        tasks.append(
            Task(
                f"{name}.show",
                nas + ["lut", "show", lut],
                work / f"{name}.show.txt",
                after=set(parts) | int8_done[name],
            )
        )
    return tasks


def run(tasks: list[Task], cpus: list[int], deadline_s: float, log) -> None:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    free, t0 = list(cpus), time.monotonic()
    pending = list(tasks)
    running: list[Task] = []
    done: set[str] = set()
    while pending or running:
        for t in list(running):
            if t.proc.poll() is not None:
                t.rc, t.ended = t.proc.returncode, time.monotonic()
                running.remove(t)
                free.append(t.cpu)
                done.add(t.name)
                log(f"{t.name} ended rc={t.rc} in {t.ended - t.started:.0f}s on cpu {t.cpu}")
        if time.monotonic() - t0 > deadline_s:
            for t in running:
                t.proc.kill()
                log(f"{t.name} killed at the deadline")
            for t in pending:
                log(f"{t.name} not started (deadline)")
            return
        for t in [t for t in pending if t.after <= done]:
            if not free:
                break
            t.cpu = free.pop(0)
            cpu = t.cpu
            t.started = time.monotonic()
            with open(t.stdout, "w") as out, open(f"{t.stdout}.err", "w") as err:  # the child keeps its copies
                t.proc = subprocess.Popen(
                    t.argv,
                    stdout=out,
                    stderr=err,
                    env=env,
                    cwd=ROOT,
                    preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),  # noqa: B023 (runs in this iteration)
                )
            pending.remove(t)
            running.append(t)
            log(f"{t.name} started on cpu {t.cpu}")
        time.sleep(0.5)


def summarise(names: list[str], tasks: list[Task]) -> dict:
    from latency_lut.validation import pool

    out = {}
    by_name = {t.name: t for t in tasks}
    for name in names:
        results, measured = [], 0
        for t in tasks:
            if not t.name.startswith(name + ".") or t.name.endswith(".show"):
                continue
            try:
                doc = json.loads(t.stdout.read_text())
            except (OSError, ValueError):
                continue
            if ".validate" in t.name and "networks" in doc:
                results.append(doc)
            elif ".profile" in t.name:
                measured += int(doc.get("measured", 0))
        profile_tasks = [t for t in tasks if t.name.startswith(name + ".profile") and t.ended]
        validate_tasks = [t for t in tasks if t.name.startswith(name + ".validate") and t.ended]
        rec = {
            "validate_shards_ok": len(results),
            "blocks_measured": measured,
            "profile_wall_s": max((t.ended - t.started for t in profile_tasks), default=None),
            "validate_wall_s": max((t.ended - t.started for t in validate_tasks), default=None),
        }
        last = by_name.get(f"{name}.refit") or by_name.get(f"{name}.profile0")  # it fitted the correction in use
        try:
            rec["correction"] = json.loads(last.stdout.read_text()).get("correction")
        except (OSError, ValueError):
            pass
        if results:
            rec |= pool(results)
        out[name] = rec
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="where summary.json and lut_runs.tar.gz go")
    ap.add_argument("--work", type=Path, default=Path("/tmp/hwnas_lut_acceptance"))
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    ap.add_argument("--n", type=int, default=100, help="validation networks per configuration")
    ap.add_argument("--profile-shards", type=int, default=1, help="profilers per configuration")
    ap.add_argument("--validate-shards", type=int, default=2, help="validation processes per configuration")
    ap.add_argument("--target", default="cpu-ort-int8")
    ap.add_argument("--retry-passes", type=int, default=1)
    ap.add_argument("--deadline-s", type=float, default=480.0, help="kill what still runs after this long")
    ap.add_argument(
        "--fp32",
        default="spaceevo28",
        help="configurations whose first --fp32-archs archs' blocks "
        "are also profiled in FP32 (cpu-ort-fp32) for `nas lut show` ('' for none)",
    )
    ap.add_argument("--fp32-archs", type=int, default=30)
    ap.add_argument(
        "--max-procs",
        type=int,
        default=3,
        help="measuring processes at once, spread over the cores "
        "(each one slows the others: the cores share caches, memory bandwidth and the power budget)",
    )
    ap.add_argument(
        "--cpus",
        default="",
        help="comma-separated CPU ids to pin to (default: one per physical core, the first core left out)",
    )
    args = ap.parse_args()
    names = [c for c in args.configs.split(",") if c]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        sys.exit(f"unknown configuration {unknown[0]!r} (known: {', '.join(CONFIGS)})")
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    logf = open(args.work / "log.txt", "a")
    t0 = time.monotonic()

    def log(msg: str) -> None:
        line = f"[{time.monotonic() - t0:5.0f}s] {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    cpus = [int(c) for c in args.cpus.split(",") if c] or physical_cpus()
    if len(cpus) > args.max_procs > 0:
        step = len(cpus) / args.max_procs
        cpus = [cpus[int(i * step)] for i in range(args.max_procs)]
    log(f"{len(cpus)} cores for the measurements: cpus {cpus}; {os.cpu_count()} logical CPUs in all")
    tasks = plan(
        names,
        args.work,
        args.n,
        args.profile_shards,
        args.validate_shards,
        args.target,
        args.retry_passes,
        [c for c in args.fp32.split(",") if c],
        args.fp32_archs,
    )
    try:
        run(tasks, cpus, args.deadline_s, log)
    finally:
        summary = summarise(names, tasks)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
        for name, rec in summary.items():
            log(f"{name}: " + json.dumps({k: v for k, v in rec.items() if k != "raw"}))
        logf.close()
        with tarfile.open(args.out / "lut_runs.tar.gz", "w:gz") as tar:
            tar.add(args.work, arcname="lut_runs")


if __name__ == "__main__":
    main()

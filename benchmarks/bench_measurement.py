"""How well latency measurement adapts to this host: noise model, profile time, validation.

    .venv/bin/python benchmarks/bench_measurement.py [--space mobilenet] [--resolution 28]
        [--target cpu-ort-int8] [--n 100] [--conditions quiet,load] [--work DIR] [--json OUT]

For each condition, a fresh LUT of the whole space is profiled (``profile_space``, the code of
``nas profile``) and validated on ``--n`` random networks (``nas lut validate``). ``load`` runs
one process busy-looping on another core for the whole profile and validation (the harness
must neither idle nor flag everything busy, and stay accurate). One table per host: CPU model
and the ``avx512_vnni`` / ``amx_int8`` flags beside every figure, the noise model the profiler
calibrated, the profile's wall time and effort (rounds per block, share flagged busy), and the
validation's agreement (within ±5 % / ±10 %, Kendall τ). Append the JSON of several hosts
(``--json`` appends one record per run) to compare them.

Acceptance (issue 22): quiet host, mobilenet at 28 px: profile ≤ 3 min with ≤ 10 % flagged
busy, validation ≥ 90 % within ±10 % and τ ≥ 0.85; under load: profile ≤ 3× the quiet time and
≥ 85 % within ±10 %.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _spin(stop: Any) -> None:  # pragma: no cover - runs in a child process
    while not stop.is_set():
        for _ in range(100_000):
            pass


@contextlib.contextmanager
def load_on_other_core(enabled: bool) -> Iterator[None]:
    """A process busy-looping on a core this process is not pinned to (the last one)."""
    if not enabled:
        yield
        return
    stop = mp.Event()
    proc = mp.Process(target=_spin, args=(stop,), daemon=True)
    proc.start()
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1:
        os.sched_setaffinity(proc.pid, {cores[-1]})
    try:
        yield
    finally:
        stop.set()
        proc.join(5)
        if proc.is_alive():
            proc.kill()


def run_condition(space: Any, target: str, n: int, work: Path, condition: str, log: Any) -> dict[str, Any]:
    from latency_lut.profiler import profile_space
    from latency_lut.validation import validate

    lut = work / f"lut-{condition}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{lut}{suffix}").unlink(missing_ok=True)
    with load_on_other_core(condition == "load"):
        t0 = time.perf_counter()
        prof = profile_space(space, target, lut, progress=False, log=log)
        profile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        val = validate(lut, space, target, n=n, progress=False, log=log)
        validate_s = time.perf_counter() - t0
    c = prof.calibration or {}
    return {
        "condition": condition,
        "profile_s": round(profile_s, 1),
        "validate_s": round(validate_s, 1),
        "blocks": prof.measured,
        "networks": prof.networks,
        "calibration": c,
        "busy_share": c.get("busy_share"),
        "rounds_mean": c.get("rounds_mean"),
        "still_busy": prof.unstable,
        "correction": (prof.correction or {}).get("model"),
        "within_5pct": val["within_5pct"],
        "within_10pct": val["within_10pct"],
        "kendall_tau": val["kendall_tau"],
        "mape": val["mape"],
        "raw_within_10pct": val["raw"]["within_10pct"],
        "validation_unstable": val["unstable"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="mobilenet")
    ap.add_argument("--space-args", default=None, help="JSON keyword arguments of the space")
    ap.add_argument("--resolution", type=int, default=28)
    ap.add_argument("--in-chans", type=int, default=1)
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--target", default="cpu-ort-int8")
    ap.add_argument("--n", type=int, default=100, help="validation networks")
    ap.add_argument("--conditions", default="quiet,load", help="comma-separated: quiet, load")
    ap.add_argument("--work", default="runs/bench_measurement")
    ap.add_argument("--json", default=None, help="append one JSON record per condition to this file")
    args = ap.parse_args()

    from hw_profiles.sysinfo import cpu_info
    from spaces import create_space

    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    bad = [c for c in conditions if c not in ("quiet", "load")]
    if bad:
        ap.error(f"--conditions: unknown condition {bad[0]!r} (quiet, load)")
    kwargs = json.loads(args.space_args) if args.space_args else {}
    space = create_space(
        args.space, in_chans=args.in_chans, num_classes=args.num_classes, resolution=args.resolution, **kwargs
    )
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cpu = cpu_info()
    flags = set(cpu.get("flags", []))
    host = (
        f"{cpu.get('model', '?')} (avx512_vnni {'yes' if 'avx512_vnni' in flags else 'no'}, "
        f"amx_int8 {'yes' if 'amx_int8' in flags else 'no'}, {os.cpu_count()} cores)"
    )
    print(f"host: {host}; space {args.space} at {args.resolution} px, target {args.target}, {args.n} validation nets")
    rows = []
    for condition in conditions:
        print(f"-- {condition}: profiling and validating ...", flush=True)
        row = run_condition(space, args.target, args.n, work, condition, log=lambda m: print(f"   {m}", flush=True))
        row.update(
            host=host,
            space=args.space,
            resolution=args.resolution,
            target=args.target,
            time=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        rows.append(row)
        if args.json:
            with open(args.json, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, default=str) + "\n")

    print()
    print(f"host: {host}")
    head = (
        "condition",
        "probe ms",
        "noise",
        "disturbed",
        "profile s",
        "rounds/blk",
        "busy",
        "within 5%",
        "within 10%",
        "tau",
        "raw 10%",
    )
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for r in rows:
        c = r["calibration"]
        print(
            " | ".join(
                [
                    r["condition"],
                    f"{c.get('probe_quiet_ms', float('nan')):.4f}",
                    f"{100 * c.get('probe_noise', 0):.1f}%",
                    f"{100 * c.get('disturbed_share', 0):.0f}% ({c.get('disturbed_slowdown', 1):.2f}x)",
                    f"{r['profile_s']:.0f}",
                    f"{r['rounds_mean']:.1f}",
                    f"{100 * (r['busy_share'] or 0):.1f}%",
                    f"{100 * r['within_5pct']:.0f}%",
                    f"{100 * r['within_10pct']:.0f}%",
                    f"{r['kendall_tau']:.3f}",
                    f"{100 * r['raw_within_10pct']:.0f}%",
                ]
            )
        )
    quiet = next((r for r in rows if r["condition"] == "quiet"), None)
    load = next((r for r in rows if r["condition"] == "load"), None)
    if quiet and load:
        print(f"\nprofile under load / quiet: {load['profile_s'] / quiet['profile_s']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

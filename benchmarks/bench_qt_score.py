"""Benchmark of SpaceEvo's Q-T score: sampled subnets scored per second.

    .venv/bin/python benchmarks/bench_qt_score.py [--resolution 28] [--sizes 10000,100000,1000000]
        [--candidates 5] [--lut LUT.db --target T --quality Q.db] [--json]

Scores random candidate spaces of the ``spaceevo`` hyper-space (1 input channel, 10 classes):
per candidate, ``N`` subnets are sampled (each stage from its measured sub-stages, input
channels followed exactly), their latency and NSR loss summed, and the Q-T score computed for
two budgets. Reported: the one-off cost of a candidate's stage tables (walking its sub-stages
and looking their blocks up in the LUT; cached afterwards) and, for each ``N``, the subnets
scored per second once the tables exist (sampling + latency + loss + score of both budgets).

Without ``--lut`` the LUT and the quality are synthetic (latency grows with MACs; NSR loss falls
with width and depth; 16 sub-stages per stage, block type and window): the timing is of the real
scoring code, only the numbers scored are made up. With ``--lut --target --quality`` the
measured files are used.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any


class _SyntheticQuality:
    """16 seeded sub-stages per (stage, block type, window), loss falling with width and depth."""

    def __init__(self, hyper: Any, n: int = 16) -> None:
        self.hyper, self.n = hyper, n

    def samples(self, stage: int, block_type: str, window: tuple[int, ...]) -> list[tuple[dict[str, Any], float]]:
        from spaces import Sequential, Space

        spec = next(s for s in self.hyper.stages if s.number == stage)
        probe = Space("probe", Sequential({spec.name: self.hyper.stage_node(spec.index, block_type, window)}))
        rng = random.Random(f"{stage}-{block_type}-{window}")
        out = []
        for _ in range(self.n):
            arch = dict(probe.sample(rng))
            width = next(v for k, v in arch.items() if k.endswith(".width"))
            depth = next(v for k, v in arch.items() if k.endswith(".depth"))
            out.append((arch, (1.0 + 8.0 / width) / (0.5 + 0.5 * depth) * (1.0 + 0.1 * rng.random())))
        return out


def _synthetic_lut(path: Path, space: Any, target: str) -> None:
    from hw_profiles import Stats, load_target, target_fingerprint
    from latency_lut.db import open_lut
    from latency_lut.keys import block_family, block_key, overhead_key, quantize_key
    from latency_lut.manifest import space_record

    t = load_target(target)
    fp = target_fingerprint(t)
    c, h, w = space.input_shape
    with open_lut(path, "w") as db:
        db.register_space(space_record(space))
        db.register_fingerprint(fp)
        run = db.begin_run(fp.id, "synthetic")
        rows = {}
        for b in space.enumerate_blocks():
            kw = b.kwargs
            ms = 0.01 + 2e-7 * b.cin * b.cout * b.h_out * b.w_out * int(kw.get("kernel", 1) or 1) * float(
                kw.get("expand", 1.0) or 1.0
            )
            rows[block_key(b, t.batch)] = (b.op, block_family(b.op, kw), ms)
        rows[overhead_key(t.batch)] = ("overhead", "overhead", 0.005)
        rows[quantize_key(c, h, w, t.batch)] = ("quantize", "quantize", 0.002)
        for key, (op, fam, ms) in rows.items():
            db.insert(fp.id, key, op, fam, Stats(ms, ms, 0.0, ms, 1, 0.0, 1, True), run)
        db.end_run(run, len(rows))


def main() -> int:
    import numpy as np

    from nas.spaceevo import HyperSpace, QTScorer, StageLatencyModel, qt_score

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=28)
    ap.add_argument("--sizes", default="10000,100000,1000000", help="subnets per candidate, comma-separated")
    ap.add_argument("--candidates", type=int, default=5, help="random candidate spaces scored per size")
    ap.add_argument("--budgets", default="1,2", help="latency budgets (ms)")
    ap.add_argument("--lut", default=None)
    ap.add_argument("--target", default="cpu-ort-int8")
    ap.add_argument("--quality", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    budgets = [float(b) for b in args.budgets.split(",")]

    hyper = HyperSpace.create("spaceevo", in_chans=1, num_classes=10, resolution=args.resolution)
    with tempfile.TemporaryDirectory() as tmp:
        if args.lut is None:
            lut = Path(tmp) / "lut.db"
            _synthetic_lut(lut, hyper.space, args.target)
            quality: Any = _SyntheticQuality(hyper)
            source = "synthetic LUT and quality"
        else:
            from nas.spaceevo.quality import load_quality

            lut = Path(args.lut)
            quality = load_quality(args.quality)
            source = f"LUT {args.lut}, quality {args.quality}"
        model = StageLatencyModel.from_lut(lut, args.target, hyper)
        scorer = QTScorer(hyper, model, quality, budgets, samples=max(sizes))
        cands = [hyper.random_candidate(i) for i in range(args.candidates)]
        start = time.perf_counter()
        for c in cands:
            scorer.segments(c)
        tables_s = (time.perf_counter() - start) / len(cands)
        rows = []
        for n in sizes:
            start = time.perf_counter()
            for i, c in enumerate(cands):
                lat, loss = scorer.sample(c, n, rng=np.random.default_rng(i))
                qt_score(lat, loss, budgets)
            elapsed = time.perf_counter() - start
            rows.append(
                {
                    "subnets": n,
                    "candidates": len(cands),
                    "seconds": elapsed,
                    "subnets_per_s": n * len(cands) / elapsed,
                    "ms_per_candidate": 1000 * elapsed / len(cands),
                }
            )
    result = {
        "hyperspace": f"spaceevo 1x{args.resolution}x{args.resolution}",
        "source": source,
        "target": args.target,
        "budgets_ms": budgets,
        "stage_tables_s_per_candidate": tables_s,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"Q-T score throughput, {result['hyperspace']}, {source}, target {args.target}, budgets {budgets} ms")
    print(f"stage tables (first score of a candidate, cached afterwards): {tables_s * 1000:.0f} ms per candidate")
    print(f"{'subnets/candidate':>18}  {'candidates':>10}  {'ms/candidate':>12}  {'subnets/s':>12}")
    for r in rows:
        print(
            f"{r['subnets']:>18,}  {r['candidates']:>10}  {r['ms_per_candidate']:>12.1f}  {r['subnets_per_s']:>12,.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

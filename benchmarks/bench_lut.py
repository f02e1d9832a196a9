"""Benchmark of the latency-LUT pipeline: profiling time per block and prediction throughput.

    .venv/bin/python benchmarks/bench_lut.py [--space mobilenet] [--resolution 28] [--in-chans 1]
                                             [--archs 3] [--target cpu-ort-int8] [--json]

Profiling: exports the blocks of a few sampled archs (FP32 and INT8 QDQ), then measures them
with the target's harness; reports seconds per block for the export and for the measurement
(session creation, warm-up, timed rounds, quiet-gate waits). Prediction: scores encoded
archs with :class:`latency_lut.LatencyPredictor` (the index-matrix path a searcher uses)
and, separately, encodes archs through the space (``space.blocks``, cached per arch id).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="mobilenet")
    ap.add_argument("--resolution", type=int, default=28)
    ap.add_argument("--in-chans", type=int, default=1)
    ap.add_argument("--archs", type=int, default=3, help="profile the blocks of this many sampled archs")
    ap.add_argument("--target", default="cpu-ort-int8")
    ap.add_argument("--score", type=int, default=1_000_000, help="archs scored in the throughput test")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import numpy as np

    from latency_lut.export import export_blocks
    from latency_lut.predictor import LatencyPredictor
    from latency_lut.profiler import profile_folder
    from spaces import create_space

    space = create_space(args.space, in_chans=args.in_chans, num_classes=10, resolution=args.resolution)
    out: dict = {"space": args.space, "input_shape": list(space.input_shape), "target": args.target}
    with tempfile.TemporaryDirectory(prefix="hwnas-bench-") as tmp:
        folder, lut = Path(tmp) / "blocks", Path(tmp) / "lut.db"
        t0 = time.perf_counter()
        manifest = export_blocks(space, folder, archs=args.archs, networks=0)  # default formats: any CPU target
        export_s = time.perf_counter() - t0
        n_blocks = len(manifest.blocks)
        result = profile_folder(folder, args.target, lut, progress=False)
        out["profiling"] = {
            "blocks": n_blocks,
            "export_s_per_block": export_s / n_blocks,
            "measure_s_per_block": result.elapsed_s / max(result.measured, 1),
            "total_s": export_s + result.elapsed_s,
            "remeasured": result.remeasured,
            "still_unstable": result.unstable,
        }
        # prediction: a LUT covering every block of the space (unmeasured ones get the mean)
        from hw_profiles import Stats
        from latency_lut.db import open_lut
        from latency_lut.keys import block_key

        with open_lut(lut, "a") as db:
            lat = db.latencies(result.fingerprint)
            mean = float(np.mean(list(lat.values())))
            run = db.begin_run(result.fingerprint, "bench fill")
            for b in space.enumerate_blocks():
                k = block_key(b)
                if k not in lat:
                    db.insert(result.fingerprint, k, b.op, b.op, Stats(mean, mean, 0, mean, 1, 0, 1, True), run)
        pred = LatencyPredictor(lut, space, fingerprint=result.fingerprint)
        archs = [space.sample(i) for i in range(1000)]
        t0 = time.perf_counter()
        idx, n = pred.encode(archs)
        encode_rate = len(archs) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        pred.encode(archs)
        cached_rate = len(archs) / (time.perf_counter() - t0)
        reps = max(args.score // len(archs), 1)
        big_idx, big_n = np.tile(idx, (reps, 1)), np.tile(n, reps)
        pred.predict_indices(big_idx[:100], big_n[:100])
        t0 = time.perf_counter()
        scores = pred.predict_indices(big_idx, big_n)
        score_s = time.perf_counter() - t0
        out["prediction"] = {
            "archs_scored": int(len(scores)),
            "score_archs_per_s": len(scores) / score_s,
            "encode_archs_per_s_first_time": encode_rate,
            "encode_archs_per_s_cached": cached_rate,
            "max_blocks_per_arch": int(idx.shape[1]),
        }
        pred.close()
    if args.json:
        print(json.dumps(out))
    else:
        p, q = out["profiling"], out["prediction"]
        print(f"{args.space} {'x'.join(map(str, out['input_shape']))} on {args.target}")
        print(
            f"  profiling: {p['blocks']} blocks, export {p['export_s_per_block']:.3f} s/block (FP32 + INT8 QDQ), "
            f"measurement {p['measure_s_per_block']:.3f} s/block, total {p['total_s']:.1f} s; "
            f"{p['remeasured']} repeated measurements of models measured while the machine was busy, "
            f"{p['still_unstable']} still flagged"
        )
        print(
            f"  prediction: {q['score_archs_per_s']:,.0f} archs/s scored from the index matrix "
            f"({q['archs_scored']:,} archs); encoding through the space {q['encode_archs_per_s_first_time']:,.0f} "
            f"archs/s first time, {q['encode_archs_per_s_cached']:,.0f} archs/s cached"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Summaries of a LUT and the INT8-vs-FP32 speed-up per op type (numpy only)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from typing import Any

from latency_lut.db import LatencyDB
from latency_lut.keys import overhead_key, parse_key

__all__ = ["format_calibration", "format_speedup_table", "format_summary", "speedup_table", "summarize"]

_PSEUDO_OPS = ("quantize", "overhead")


def _hw(info: Mapping[str, Any]) -> str:
    if info.get("gpu"):
        return str(info["gpu"].get("name", "?"))
    cpu = info.get("cpu") or {}
    return f"{cpu.get('model', '?')} [{' '.join(cpu.get('flags', []))}]"


def summarize(db: LatencyDB) -> list[dict[str, Any]]:
    """One summary per fingerprint: target, engine, hardware, block and network counts,
    measurement quality (unstable rows, median spread) and the corrections per space."""
    out = []
    spaces = {s["signature"]: s for s in db.spaces()}
    runs = db.runs()
    for fp in db.fingerprints():
        rows = [r for r in db.rows(fp["fp_id"]) if r["op"] not in _PSEUDO_OPS]
        info = fp["info"]
        corr = []
        for sig in spaces:
            c = db.correction(fp["fp_id"], sig)
            if c is not None:
                corr.append(
                    {
                        "space": sig,
                        "model": c.get("model"),
                        "networks": c.get("n_networks"),
                        "loo_rel_err": c.get("loo_rel_err"),
                        "raw_rel_err": c.get("raw_rel_err"),
                    }
                )
        stamps = [r["timestamp"] for r in rows]
        out.append(
            {
                "fingerprint": fp["fp_id"],
                "target": fp["target"],
                "engine": f"{info.get('engine')} {info.get('engine_version')}",
                "precision": info.get("precision"),
                "threads": info.get("threads"),
                "timer": info.get("timer"),
                "model_format": info.get("model_format"),
                "hardware": _hw(info),
                "blocks": len(rows),
                "networks": fp["networks"],
                "unstable": sum(1 for r in rows if not r["stable"]),
                "median_spread": statistics.median(r["spread"] for r in rows) if rows else None,
                "median_block_ms": statistics.median(r["median_ms"] for r in rows) if rows else None,
                "first": time.strftime("%Y-%m-%d %H:%M", time.localtime(min(stamps))) if stamps else None,
                "last": time.strftime("%Y-%m-%d %H:%M", time.localtime(max(stamps))) if stamps else None,
                "corrections": corr,
                "calibration": next(
                    (r["calibration"] for r in reversed(runs) if r["fp_id"] == fp["fp_id"] and r.get("calibration")),
                    None,
                ),
            }
        )
    return out


def format_calibration(record: Mapping[str, Any] | None) -> str:
    """One line: the host's noise model and the measurement effort of a profiling run."""
    if not record:
        return "no calibration recorded"
    parts = []
    if record.get("probe_quiet_ms") is not None:
        parts.append(
            f"probe {record['probe_quiet_ms']:.4f} ms quiet ± {100 * record.get('probe_noise', 0.0):.1f}% "
            f"(robust), single runs ± {100 * record.get('run_cv', 0.0):.1f}%"
        )
        if record.get("disturbed_share"):
            parts.append(
                f"disturbed {100 * record['disturbed_share']:.0f}% of the calibration "
                f"({record.get('disturbed_slowdown', 1.0):.2f}x slower)"
            )
        parts.append(f"timer {record.get('timer')} resolution {record.get('timer_resolution_us', 0.0):.2f} us")
        boost = record.get("idle_speedup")
        if boost is not None and abs(boost - 1.0) >= 0.05:
            parts.append(f"{boost:.2f}x as fast right after idle as under steady load")
    if record.get("rounds_mean") is not None:
        parts.append(f"{record['rounds_mean']:.1f} rounds per block")
        parts.append(f"{100 * record['busy_share']:.1f}% flagged busy")
        if record.get("ci_rel_median") is not None:
            parts.append(f"median CI ±{100 * record['ci_rel_median']:.1f}% (p90 ±{100 * record['ci_rel_p90']:.1f}%)")
        if record.get("batched_share"):
            parts.append(f"{100 * record['batched_share']:.0f}% timed in back-to-back batches")
    return "; ".join(parts)


def _comparable(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    keys = ("engine", "engine_version", "threads", "timer", "device", "cpu", "gpu")
    return all(a.get(k) == b.get(k) for k in keys)


def speedup_table(db: LatencyDB, int8: str | None = None, fp32: str | None = None) -> list[dict[str, Any]]:
    """INT8-vs-FP32 speed-up per op family (op, activation, SE) over the blocks both
    fingerprints measured. Without explicit fingerprint ids, every INT8 fingerprint is
    paired with the FP32 fingerprint of the same engine, version, threads, timer and hardware.

    Each result: ``{"int8", "fp32", "int8_target", "fp32_target", "rows": [...]}`` with per
    family ``n``, median FP32 / INT8 ms, and the speed-up (geometric mean of per-block
    FP32/INT8 ratios, plus min and max, and ``speedup_large`` over the third of the blocks with
    the longest FP32 time); a last row ``all`` covers every block. Times are
    compute times: each fingerprint's per-call overhead (the ``overhead`` pseudo-block) is
    subtracted from its block latencies first.
    """
    fps = {f["fp_id"]: f for f in db.fingerprints()}
    pairs: list[tuple[str, str]] = []
    if int8 or fp32:
        if not (int8 and fp32):
            from latency_lut.errors import LUTError

            raise LUTError("give both the INT8 and the FP32 fingerprint (or neither)")
        pairs = [(int8, fp32)]
    else:
        for a in fps.values():
            if a["precision"] != "int8":
                continue
            for b in fps.values():
                if b["precision"] == "fp32" and _comparable(a["info"], b["info"]):
                    pairs.append((a["fp_id"], b["fp_id"]))
    results = []
    for q, f in pairs:
        qall, fall = db.latencies(q), db.latencies(f)
        qrows = {r["block_key"]: r for r in db.rows(q) if r["op"] not in _PSEUDO_OPS}
        frows = {r["block_key"]: r for r in db.rows(f) if r["op"] not in _PSEUDO_OPS}
        groups: dict[str, list[tuple[float, float]]] = {}
        for key in sorted(set(qrows) & set(frows)):
            # compare compute times: each block measurement holds one per-call overhead
            ov = overhead_key(parse_key(key).get("batch", 1))
            fq = max(frows[key]["median_ms"] - fall.get(ov, 0.0), 1e-6)
            qq = max(qrows[key]["median_ms"] - qall.get(ov, 0.0), 1e-6)
            groups.setdefault(qrows[key]["family"], []).append((fq, qq))
        rows = []
        everything: list[tuple[float, float]] = []
        for fam in sorted(groups):
            rows.append(_row(fam, groups[fam]))
            everything += groups[fam]
        if everything:
            rows.append(_row("all", everything))
        results.append(
            {
                "int8": q,
                "fp32": f,
                "int8_target": fps.get(q, {}).get("target", q),
                "fp32_target": fps.get(f, {}).get("target", f),
                "rows": rows,
            }
        )
    return results


def _geo_mean(ratios: list[float]) -> float:
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else float("nan")


def _row(family: str, pairs: list[tuple[float, float]]) -> dict[str, Any]:
    ratios = [a / b for a, b in pairs if b > 0]
    # The third of the blocks with the longest FP32 time: there arithmetic outweighs the costs
    # that INT8 does not shrink (per-op dispatch, quantize steps, depthwise and small kernels).
    large = sorted(pairs)[-max(1, len(pairs) // 3) :]
    return {
        "family": family,
        "n": len(pairs),
        "fp32_ms": statistics.median(a for a, _ in pairs),
        "int8_ms": statistics.median(b for _, b in pairs),
        "speedup": _geo_mean(ratios),
        "speedup_min": min(ratios) if ratios else float("nan"),
        "speedup_max": max(ratios) if ratios else float("nan"),
        "speedup_large": _geo_mean([a / b for a, b in large if b > 0]),
    }


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(out)


def format_summary(summary: list[dict[str, Any]], path: str) -> str:
    lines = [f"LUT {path}: {len(summary)} target fingerprint(s)"]
    for s in summary:
        lines.append("")
        lines.append(f"{s['target']}  fingerprint {s['fingerprint']}")
        lines.append(
            f"  {s['engine']}, {s['precision']} ({s['model_format']} models), {s['threads']} thread(s), "
            f"timer {s['timer']}"
        )
        lines.append(f"  hardware: {s['hardware']}")
        spread = f"{s['median_spread'] * 100:.1f}%" if s["median_spread"] is not None else "-"
        med = f"{s['median_block_ms']:.4f} ms" if s["median_block_ms"] is not None else "-"
        lines.append(
            f"  {s['blocks']} blocks (median {med}, {s['unstable']} unstable, median round spread {spread}), "
            f"{s['networks']} whole networks, measured {s['first']} .. {s['last']}"
        )
        if s.get("calibration"):
            lines.append(f"  calibration (last run): {format_calibration(s['calibration'])}")
        for c in s["corrections"]:
            lines.append(
                f"  correction for {c['space']}: {c['model']} from {c['networks']} networks "
                f"(leave-one-out error {c['loo_rel_err'] * 100:.1f}%, raw sum {c['raw_rel_err'] * 100:.1f}%)"
            )
    return "\n".join(lines)


def format_speedup_table(tables: list[dict[str, Any]]) -> str:
    if not tables:
        return "no INT8/FP32 pair of fingerprints with the same engine and hardware: nothing to compare"
    parts = []
    for t in tables:
        rows = [
            [
                r["family"],
                str(r["n"]),
                f"{r['fp32_ms']:.4f}",
                f"{r['int8_ms']:.4f}",
                f"{r['speedup']:.2f}x",
                f"{r['speedup_large']:.2f}x",
                f"{r['speedup_min']:.2f}-{r['speedup_max']:.2f}",
            ]
            for r in t["rows"]
        ]
        parts.append(
            f"INT8 speed-up: {t['int8_target']} ({t['int8']}) vs {t['fp32_target']} ({t['fp32']})\n"
            + _table(
                [
                    "op type",
                    "blocks",
                    "FP32 ms (median)",
                    "INT8 ms (median)",
                    "speed-up (geo-mean)",
                    "largest third",
                    "range",
                ],
                rows,
            )
            + "\n(block compute times: the per-call overhead is subtracted from each measurement; "
            "largest third: the geo-mean over the third of the blocks with the longest FP32 time)"
        )
    return "\n\n".join(parts)

"""Everything the report shows, gathered from a run folder into one JSON-able dict
(the input of :func:`nas.pipeline.report.write_report`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nas.pipeline.state import BASELINE_RECORD, baselines_dir

__all__ = ["collect_report_data", "pareto_front"]


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def pareto_front(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points no other point beats on both accuracy (higher) and latency (lower), by latency."""
    front: list[dict[str, Any]] = []
    for p in sorted(points, key=lambda p: (p["latency_ms"], -p["accuracy"], p["arch_id"])):
        if not front or p["accuracy"] > front[-1]["accuracy"]:
            front.append(p)
    return front


def _convergence(trials: list[dict[str, Any]]) -> list[float | None]:
    best: float | None = None
    out: list[float | None] = []
    for t in trials:
        if t.get("feasible") and (best is None or t["values"]["accuracy"] > best):
            best = float(t["values"]["accuracy"])
        out.append(best)
    return out


def _host(exports: list[dict[str, Any]], exp: Any) -> dict[str, Any]:
    from hw_profiles.sysinfo import cpu_count, cpu_info

    cpu = cpu_info()
    flags = set(cpu.get("flags") or [])
    engine = None
    for e in exports:  # the engine that measured the exports
        rec = _read(exp.root / e["folder"] / "model.json") or {}
        if rec.get("engine"):
            engine = f"{rec['engine'].get('name')} {rec['engine'].get('version')}"
            break
    if engine is None:
        try:
            import onnxruntime

            engine = f"onnxruntime {onnxruntime.__version__}"
        except ImportError:  # pragma: no cover - a dependency
            engine = "unknown"
    return {
        "cpu": cpu.get("model"),
        "cores": cpu_count(),
        "flags": {f: f in flags for f in ("avx2", "avx512_vnni", "avx_vnni", "amx_int8")},
        "engine": engine,
        "threads": exp.target.threads,
        "target": exp.config["target"]["name"],
        "fp32_target": exp.config["target"]["fp32"],
    }


def _op_speedups(exp: Any) -> dict[str, Any] | None:
    from hw_profiles import target_fingerprint
    from latency_lut import open_lut, speedup_table

    fp32 = exp.config["target"]["fp32"]
    if fp32 is None:
        return None
    try:
        q, f = target_fingerprint(exp.config["target"]["name"]).id, target_fingerprint(fp32).id
        with open_lut(exp.lut_path) as db:
            tables = speedup_table(db, int8=q, fp32=f)
    except Exception:  # a LUT without the FP32 twin: no table, said in the report
        return None
    if not tables or not tables[0]["rows"]:
        return None
    return {"int8_target": exp.config["target"]["name"], "fp32_target": fp32, "rows": tables[0]["rows"]}


def _evolve(exp: Any) -> dict[str, Any] | None:
    """The evolved space of a run with ``evolve.enabled`` (None without one): per stage its block
    type and width window, its Q-T score, and links (relative to ``report/``) to the evolve-space report."""
    if not exp.evolve_enabled:
        return None
    summ = (exp.folder.record("evolve") or {}).get("summary") or {}
    if not summ.get("candidate"):
        return None
    links = {k: str(Path("..") / v) for k, v in (summ.get("report") or {}).items()}
    return {
        "hyperspace": summ.get("hyperspace"),
        "candidate": summ.get("candidate"),
        "space": str(Path("..") / summ["space"]) if summ.get("space") else None,
        "space_name": summ.get("space_name"),
        "score": summ.get("score"),
        "budgets_ms": summ.get("budgets_ms"),
        "budget_scores": summ.get("budget_scores"),
        "evaluated": summ.get("evaluated"),
        "stages": [
            {"stage": st.get("stage"), "block": st.get("block"), "window": st.get("window"), "depths": st.get("depths")}
            for st in summ.get("stages") or []
        ],
        "report": links,
    }


def _baselines(exp: Any) -> list[dict[str, Any]]:
    """The finished baseline records of ``report.baselines`` (``report/baselines/<name>/baseline.json``),
    in config order; a baseline without its record is left out."""
    out = []
    for name in exp.config["report"]["baselines"]:
        rec = _read(baselines_dir(exp) / name / BASELINE_RECORD)
        if isinstance(rec, dict) and rec.get("name") == name:
            out.append({k: v for k, v in rec.items() if k != "recipe"})
    return out


def collect_report_data(exp: Any, baselines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The report's data (see :mod:`nas.pipeline.report` for the schema). ``baselines``: the
    records of :func:`nas.pipeline.stages.run_baselines` (default: those finished in the run folder)."""
    root: Path = exp.root
    cfg = exp.config
    recs = {s: exp.folder.record(s) or {} for s in ("lut", "supernet", "search", "export")}
    exports = (recs["export"].get("summary") or {}).get("exports", [])
    budgets = (recs["search"].get("summary") or {}).get("budgets", [])
    searches, evaluated = [], {}
    for b in budgets:
        summ = _read(root / "search" / b["name"] / "summary.json") or {}
        trials = summ.get("trials") or []
        for t in trials:
            evaluated[t["arch_id"]] = {
                "arch_id": t["arch_id"],
                "latency_ms": t["values"]["latency_ms"],
                "accuracy": t["values"]["accuracy"],
            }
        best = summ.get("best")
        searches.append(
            {
                "budget": b["name"],
                "budget_ms": b["budget_ms"],
                "searcher": summ.get("searcher"),
                "seed": summ.get("seed"),
                "queries": len(trials),
                "best": None
                if not best
                else {
                    "arch_id": best["arch_id"],
                    "accuracy": best["values"]["accuracy"],
                    "latency_ms": best["values"]["latency_ms"],
                },
                "convergence": _convergence(trials),
            }
        )
    cloud = [
        {"arch_id": r["arch_id"], "latency_ms": r["latency_ms"], "accuracy": r["accuracy"]}
        for r in (_read(root / "search" / "random.json") or [])
    ]
    for r in cloud:
        evaluated.setdefault(r["arch_id"], r)
    sn = recs["supernet"].get("summary") or {}
    supernet = None
    if sn:
        from supernet.train import load_supernet

        net, meta = load_supernet(exp.supernet_dir)
        config = meta.get("config") or {}
        supernet = {
            "epochs": config.get("epochs"),
            "qat_epochs": config.get("qat_epochs"),
            "test_acc": sn.get("test_acc"),
            "params_largest": net.num_parameters(net.largest()),
            "params_smallest": net.num_parameters(net.smallest()),
            "source": sn.get("source"),
        }
    data_rec = None
    first = _read(root / exports[0]["folder"] / "model.json") if exports else None
    if isinstance(first, dict):
        d = first.get("data") or {}
        data_rec = {
            "name": cfg["data"]["name"],
            "train_images": d.get("train_images"),
            "test_images": d.get("test_images"),
            "val_fraction": cfg["data"]["val_fraction"],
        }
    timed = (
        ("lut", "evolve", "supernet", "search", "export")
        if exp.evolve_enabled
        else ("lut", "supernet", "search", "export")
    )
    timings = {s: (exp.folder.record(s) or {}).get("seconds") for s in timed}
    evolve = _evolve(exp)
    try:
        size: int | None = int(exp.space.size())
    except Exception:
        size = None
    return {
        "title": f"hwnas run: {cfg['name']}",
        "run_dir": str(root),
        "host": _host(exports, exp),
        "space": {"name": exp.space.name, "hash": exp.space_hash(), "size": size},
        **({"evolve": evolve} if evolve is not None else {}),
        "data": data_rec,
        "supernet": supernet,
        "budgets": budgets,
        "searches": searches,
        "front": pareto_front(list(evaluated.values())),
        "cloud": cloud,
        "exports": exports,
        "baselines": list(baselines) if baselines is not None else _baselines(exp),
        "op_speedups": _op_speedups(exp),
        "config": cfg,
        "timings": timings,
    }

"""The report of ``nas evolve-space``: ``<out>.report.md``, ``<out>.report.json`` and the
evolution curve ``<out>.evolution.png`` beside the evolved space's YAML.

It says what was chosen and why: per stage the block type, width window and depths, the INT8
latency and NSR loss of every block type of that stage (at the chosen window) next to their
op family's INT8-vs-FP32 speed-up from the LUT (the table of :mod:`latency_lut.report`,
rendered as the run report does), the Q-T score's parts per budget, the best candidates and
the uniform ones (one block type everywhere) for comparison.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hwnas.io import atomic_write, atomic_write_text, json_safe
from nas.spaceevo.candidate import Candidate, SpaceEvoError
from nas.spaceevo.evolution import EvolutionResult
from nas.spaceevo.score import QTScorer

__all__ = ["build_report", "evolution_figure", "render_report", "report_paths", "stage_family", "write_report"]


def report_paths(out_yaml: str | os.PathLike[str]) -> dict[str, Path]:
    """Where the report of the space written to ``out_yaml`` goes: ``md``, ``json``, ``png``."""
    p = Path(out_yaml)
    stem = p.with_suffix("")
    return {"md": Path(f"{stem}.report.md"), "json": Path(f"{stem}.report.json"), "png": Path(f"{stem}.evolution.png")}


def stage_family(
    scorer: QTScorer, index: int, block_type: str, window: Sequence[int], shape: tuple[int, int, int]
) -> str | None:
    """The LUT op family (``mbconv hardswish+se``, ...) of a stage's block type: the family the LUT
    records for the first block of its first measured sub-stage (None without measurements)."""
    try:
        st = scorer.stage_samples(index, block_type, window)
        keys = scorer.latency.substage(index, block_type, window, st.archs[0], shape).keys
    except Exception:  # noqa: BLE001 - no measurements: no family
        return None
    return scorer.latency.family(keys[0]) if keys else None


def _speedups(latency: Any) -> dict[str, Any] | None:
    """The LUT's INT8-vs-FP32 speed-up table of the model's INT8 fingerprint (None without a pair)."""
    from latency_lut.report import speedup_table

    fp = latency.predictor.fp_id
    tables = [t for t in speedup_table(latency.predictor.db) if t["int8"] == fp]
    return tables[0] if tables else None


def _median(values: Any) -> float:
    import numpy as np

    return float(np.median(np.asarray(values, dtype=np.float64)))


def _stage_inputs(scorer: QTScorer, cand: Candidate) -> dict[int, tuple[int, int, int]]:
    """Per searchable stage, its narrowest possible input shape in ``cand``."""
    hyper = scorer.hyper
    stage_of = {s.child: s.index for s in hyper.stages}
    inputs: dict[int, tuple[int, int, int]] = {}
    shapes: list[tuple[int, int, int]] = [tuple(hyper.space.input_shape)]  # type: ignore[list-item]
    for child in range(len(hyper.children)):
        idx = stage_of.get(child)
        outs: set[tuple[int, int, int]] = set()
        if idx is not None:
            inputs[idx] = shapes[0]
        for shape in shapes:
            if idx is None:
                outs.add(scorer.latency.fixed(child, shape).out_shape)
            else:
                outs.update(scorer.stage_table(idx, cand.blocks[idx], cand.windows[idx], shape)[1])
        shapes = sorted(outs)
    return inputs


def _stage_rows(scorer: QTScorer, cand: Candidate, speed: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per stage: the chosen block type and window, and every block type of the stage at the chosen
    window with its median sub-stage INT8 latency (on the stage's narrowest input), median NSR
    loss and op family speed-up."""
    hyper = scorer.hyper
    inputs = _stage_inputs(scorer, cand)
    rows = []
    for spec in hyper.stages:
        window, shape = cand.windows[spec.index], inputs[spec.index]
        options = []
        for bt in spec.block_types:
            fam = stage_family(scorer, spec.index, bt, window, shape)
            entry: dict[str, Any] = {"block": bt, "family": fam, "chosen": bt == cand.blocks[spec.index]}
            try:
                lat, _, _ = scorer.stage_table(spec.index, bt, window, shape)
                entry["int8_ms"] = _median(lat)
                entry["nsr"] = _median(scorer.stage_samples(spec.index, bt, window).loss)
                entry["samples"] = int(len(lat))
            except SpaceEvoError as exc:  # a block type without measurements: shown as n/a
                entry["note"] = str(exc)
            row = speed.get(fam or "")
            entry["speedup"] = row.get("speedup") if row else None
            options.append(entry)
        chosen = next(o for o in options if o["chosen"])
        rows.append(
            {
                "stage": spec.name,
                "block": cand.blocks[spec.index],
                "window": list(window),
                "depths": list(spec.depth_options(cand.blocks[spec.index])),
                "family": chosen["family"],
                "speedup": chosen["speedup"],
                "input": list(shape),
                "options": options,
            }
        )
    return rows


def build_report(
    result: EvolutionResult,
    scorer: QTScorer,
    *,
    out_yaml: str | os.PathLike[str],
    lut: str | None = None,
    target: str | None = None,
    quality: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report's data (what report.json holds)."""
    best = result.best
    speed_table = _speedups(scorer.latency)
    speed = {r["family"]: r for r in speed_table["rows"]} if speed_table else {}
    lo, hi = scorer.latency_range(best.candidate)
    uniform_ids = {c.id for c in scorer.hyper.uniform_candidates()}
    seen: set[str] = set()
    uniform: list[dict[str, Any]] = []
    for ind in result.history:
        if ind.candidate.id in uniform_ids and ind.candidate.id not in seen:
            seen.add(ind.candidate.id)
            uniform.append({"id": ind.candidate.id, "describe": ind.candidate.describe(), "score": ind.score.score})
    uniform.sort(key=lambda u: -u["score"])
    data = {
        "title": f"evolve-space: {scorer.hyper.name} for {target or scorer.latency.target}",
        "out": str(out_yaml),
        "hyperspace": {
            "name": scorer.hyper.name,
            "hash": scorer.hyper.hash,
            "candidates": scorer.hyper.size(),
            "input_shape": list(scorer.hyper.space.input_shape),
        },
        "lut": lut or scorer.latency.lut,
        "target": target or scorer.latency.target,
        "quality": quality,
        "settings": result.settings,
        "evolution": {
            "population": result.config.population,
            "sample": result.config.sample,
            "cycles": result.config.cycles,
            "seed": result.config.seed,
            "evaluated": len({i.candidate.id for i in result.history}),
            "resumed_from": result.resumed_from,
        },
        "best": {
            "id": best.candidate.id,
            "describe": best.candidate.describe(),
            "born": best.born,
            "candidate": best.candidate.to_dict(),
            "score": best.score.to_dict(),
            "latency_range_ms": [lo, hi],
        },
        "stages": _stage_rows(scorer, best.candidate, speed),
        "top": [
            {"id": i.candidate.id, "describe": i.candidate.describe(), "score": i.score.score, "born": i.born}
            for i in result.ranking(10)
        ],
        "uniform": uniform,
        "curve": result.curve,
        "op_speedups": speed_table,
        **dict(extra or {}),
    }
    return json.loads(json.dumps(json_safe(data), default=str))


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or isinstance(x, bool):
        return "n/a"
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f"{f:.{digits}f}" if math.isfinite(f) else "n/a"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def render_report(data: Mapping[str, Any], png_name: str | None = None) -> str:
    """The report as markdown."""
    from nas.pipeline.report import speedup_markdown

    best, ev = data["best"], data["evolution"]
    lines = [
        f"# {data['title']}",
        "",
        f"- evolved space: `{data['out']}` (candidate `{best['id']}`, Q-T score {_fmt(best['score']['score'])})",
        f"- hyper-space: {data['hyperspace']['name']} (hash {data['hyperspace']['hash']}, "
        f"{data['hyperspace']['candidates']} candidate spaces, input {'x'.join(map(str, data['hyperspace']['input_shape']))})",
        f"- latency: LUT `{data['lut']}`, target {data['target']}; quality: `{data.get('quality') or 'n/a'}`",
        f"- evolution: population {ev['population']}, sample {ev['sample']}, {ev['cycles']} cycles, seed "
        f"{ev['seed']}; {ev['evaluated']} distinct candidates scored (the paper's full scale: 500 / 125 / 5000)",
        f"- Q-T score: {data['settings'].get('score_samples')} subnets per candidate, t = {data['settings'].get('score_t')}, "
        f"a = {data['settings'].get('score_a')}, L over the {data['settings'].get('score_top')} lowest-loss feasible subnets",
        f"- predicted INT8 latency of the evolved space's subnets: {_fmt(best['latency_range_ms'][0])} – "
        f"{_fmt(best['latency_range_ms'][1])} ms",
        "",
    ]
    lines += ["## Chosen block type and width window per stage", ""]
    lines += _table(
        ["stage", "block type", "op family", "width window", "depths", "input"],
        [
            [
                s["stage"],
                f"**{s['block']}**",
                str(s.get("family") or "n/a"),
                str(s["window"]),
                str(s["depths"]),
                "x".join(map(str, s["input"])),
            ]
            for s in data["stages"]
        ],
    )
    lines += [
        "",
        "## Why: every block type of each stage at the chosen window",
        "",
        "Median predicted INT8 latency of the measured sub-stages (on the stage's narrowest input), their "
        "median NSR loss (block-wise distillation), and the op family's INT8-vs-FP32 speed-up in the LUT.",
        "",
    ]
    rows = []
    for s in data["stages"]:
        for o in s["options"]:
            mark = "**" if o["chosen"] else ""
            rows.append(
                [
                    s["stage"],
                    f"{mark}{o['block']}{mark}",
                    str(o.get("family") or "n/a"),
                    _fmt(o.get("int8_ms")),
                    _fmt(o.get("nsr")),
                    f"{_fmt(o.get('speedup'), 2)}×" if o.get("speedup") is not None else "n/a",
                ]
            )
    lines += _table(
        ["stage", "block type", "op family", "INT8 ms (median)", "NSR loss (median)", "INT8 speed-up"], rows
    )
    lines += ["", "## Q-T score of the evolved space per latency budget", ""]
    lines += _table(
        ["budget ms", "p (feasible share)", "L (top loss)", "latency loss", "score"],
        [
            [_fmt(b["budget_ms"], 3), _fmt(b["p"], 5), _fmt(b["top_loss"]), _fmt(b["latency_loss"]), _fmt(b["score"])]
            for b in best["score"]["budgets"]
        ],
    )
    lines += ["", "## Best candidates", ""]
    lines += _table(
        ["rank", "id", "score", "cycle", "stages"],
        [
            [str(i + 1), f"`{t['id']}`", _fmt(t["score"]), str(t["born"]), t["describe"]]
            for i, t in enumerate(data["top"])
        ],
    )
    if data.get("uniform"):
        lines += ["", "## Uniform candidates (one block type in every stage)", ""]
        lines += _table(
            ["id", "score", "stages"], [[f"`{u['id']}`", _fmt(u["score"]), u["describe"]] for u in data["uniform"]]
        )
    if png_name:
        lines += ["", "## Evolution", "", f"![evolution curve]({png_name})"]
    lines += ["", speedup_markdown(data.get("op_speedups"))]
    return "\n".join(lines) + "\n"


def evolution_figure(curve: Sequence[Mapping[str, Any]], title: str = "SpaceEvo evolution") -> Any:
    """Best and mean population Q-T score per cycle (and the best so far), a matplotlib Figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.8))
    ax = fig.add_subplot(1, 1, 1)
    xs = [c["cycle"] for c in curve]
    ax.plot(xs, [c["best"] for c in curve], label="population best", linewidth=1.6)
    ax.plot(xs, [c["mean"] for c in curve], label="population mean", linewidth=1.2)
    ax.plot(xs, [c["best_ever"] for c in curve], label="best so far", linewidth=1.0, linestyle="--")
    if len(xs) == 1:
        for line in ax.get_lines():
            line.set_marker("o")
    ax.set_xlabel("cycle")
    ax.set_ylabel("Q-T score")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def _save_png(fig: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))


def write_report(
    result: EvolutionResult, scorer: QTScorer, out_yaml: str | os.PathLike[str], **kwargs: Any
) -> dict[str, Path]:
    """Write the evolution curve (PNG), report.md and report.json beside ``out_yaml``; returns their
    paths (``md``, ``json``, ``png``). ``kwargs`` go to :func:`build_report`."""
    paths = report_paths(out_yaml)
    data = build_report(result, scorer, out_yaml=out_yaml, **kwargs)
    _save_png(evolution_figure(data["curve"], f"SpaceEvo on {data['target']}: Q-T score per cycle"), paths["png"])
    atomic_write_text(paths["md"], render_report(data, paths["png"].name))
    atomic_write_text(
        paths["json"],
        json.dumps({**data, "figures": {k: v.name for k, v in paths.items()}}, indent=2, sort_keys=True) + "\n",
    )
    return paths

"""The run report of ``nas run``: report.json, report.md, pareto.png and convergence.png.

Everything is rendered from one plain ``data`` dict (the schema is in ``write_report``'s docstring).
Optional sections may be missing, ``None`` or empty: they render as "n/a" or are left out, never
crash. The output is deterministic: the same data gives byte-identical report.json and report.md.
matplotlib is imported lazily and used without pyplot (``Figure`` + the Agg renderer), so no global
figure state leaks between calls.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.io import atomic_write, atomic_write_text, json_safe

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "BASELINES_LABEL",
    "CLOUD_LABEL",
    "EXPORTS_LABEL",
    "FRONT_LABEL",
    "convergence_figure",
    "pareto_figure",
    "provenance",
    "render_markdown",
    "speedup_markdown",
    "write_report",
]

CLOUD_LABEL = "random subnets (predicted, val)"
FRONT_LABEL = "searched front (predicted, val)"
EXPORTS_LABEL = "exported INT8 (measured, test)"
BASELINES_LABEL = "baselines INT8 (measured, test)"

FIGURES = {"pareto": "pareto.png", "convergence": "convergence.png", "md": "report.md"}
_KEY_FLAGS = ("avx512_vnni", "amx_int8")
_TIMING_ORDER = ("lut", "evolve", "supernet", "search", "export", "report")
_BUDGET_COLORS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
_DPI = 120


# ----------------------------------------------------------------------------- small helpers


def _section(data: Mapping[str, Any] | None, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


def _records(data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key)
    if not isinstance(value, Iterable) or isinstance(value, (str, bytes, Mapping)):
        return []
    return [dict(v) for v in value if isinstance(v, Mapping)]


def _float(x: Any) -> float | None:
    """``x`` as a finite float, or None (for None, NaN, ±inf, booleans and non-numbers)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _num(x: Any, digits: int) -> str:
    f = _float(x)
    return "n/a" if f is None else f"{f:.{digits}f}"


def _ms(x: Any) -> str:
    return _num(x, 4)


def _ms_short(x: Any) -> str:
    return _num(x, 3)


def _acc(x: Any) -> str:
    return _num(x, 2)


def _signed(x: float | None, digits: int, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:+.{digits}f}{unit}"


def _times(x: Any) -> str:
    f = _float(x)
    return "n/a" if f is None else f"{f:.2f}×"


def _int(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return "n/a"
    if isinstance(x, int):
        return f"{x:,}"
    f = _float(x)
    return "n/a" if f is None else f"{int(round(f)):,}"


def _text(x: Any) -> str:
    return "n/a" if x is None or x == "" else str(x)


def _yes_no(x: Any, no: str = "no") -> str:
    return "n/a" if x is None else ("yes" if x else no)


def _cell(x: Any) -> str:
    """A markdown table cell: ``|`` escaped, line breaks made spaces."""
    return " ".join(str(x).split("\n")).replace("|", "\\|")


def _table(headers: list[str], rows: list[list[str]], right: Iterable[int] = ()) -> list[str]:
    right_cols = set(right)
    out = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "|" + "|".join("---:" if i in right_cols else "---" for i in range(len(headers))) + "|",
    ]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _flags(host: Mapping[str, Any]) -> dict[str, bool | None]:
    """CPU flags as name -> yes/no; the key INT8 flags first (None when unknown), then the rest sorted."""
    raw = host.get("flags")
    have: dict[str, bool | None]
    if isinstance(raw, Mapping):
        have = {str(k): (None if v is None else bool(v)) for k, v in raw.items()}
        known = True
    elif isinstance(raw, Iterable) and not isinstance(raw, (str, bytes)):
        have = {str(k): True for k in raw}
        known = True
    else:
        have, known = {}, False
    out: dict[str, bool | None] = {k: have.get(k, False if known else None) for k in _KEY_FLAGS}
    out.update({k: have[k] for k in sorted(have) if k not in out})
    return out


def _plural(n: Any, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def provenance(data: Mapping[str, Any]) -> str:
    """One line naming the machine, its INT8 CPU flags, engine, threads and target, for figure subtitles."""
    host = _section(data, "host")
    flags = _flags(host)
    key = [k if flags[k] else f"no {k}" for k in _KEY_FLAGS if flags[k] is not None]
    parts = [str(host.get("cpu") or "unknown machine") + (f" ({', '.join(key)})" if key else "")]
    if host.get("engine"):
        parts.append(str(host["engine"]))
    if host.get("threads") is not None:
        parts.append(_plural(host["threads"], "thread"))
    if host.get("target"):
        parts.append(str(host["target"]))
    return ", ".join(parts)


def _budget_list(data: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(name, budget ms) per budget: from ``budgets``, else from the searches and exports."""
    out: dict[str, float] = {}
    for rec in _records(data, "budgets"):
        ms = _float(rec.get("budget_ms"))
        if ms is not None:
            out.setdefault(str(rec.get("name", f"b{len(out)}")), ms)
    if not out:
        for rec in _records(data, "searches") + _records(data, "exports"):
            ms = _float(rec.get("budget_ms"))
            if ms is not None and rec.get("budget") is not None:
                out.setdefault(str(rec["budget"]), ms)
    return list(out.items())


def _budget_ms(data: Mapping[str, Any], rec: Mapping[str, Any]) -> float | None:
    ms = _float(rec.get("budget_ms"))
    if ms is None:
        ms = dict(_budget_list(data)).get(str(rec.get("budget")))
    return ms


def _points(recs: list[dict[str, Any]], xkey: str, ykey: str) -> list[tuple[float, float, dict[str, Any]]]:
    out = []
    for r in recs:
        x, y = _float(r.get(xkey)), _float(r.get(ykey))
        if x is not None and y is not None:
            out.append((x, y, r))
    return out


def _new_figure(size: tuple[float, float]) -> tuple[Figure, Axes]:
    import matplotlib.figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = matplotlib.figure.Figure(figsize=size, dpi=_DPI)  # no pyplot: nothing global to leak or close
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _finish(fig: Figure, ax: Axes, title: str, data: Mapping[str, Any]) -> None:
    fig.suptitle(title, fontsize=12)
    ax.set_title(provenance(data), fontsize=9, color="0.3")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="0.5")


# ----------------------------------------------------------------------------- figures


def pareto_figure(data: dict[str, Any]) -> Figure:
    """Accuracy (%) against latency (ms): random subnets, the searched front (both predicted INT8
    latency vs supernet validation accuracy), the exported architectures and the baselines (both
    measured INT8 latency vs test accuracy), and one dashed vertical line per budget.

    Every series is a ``Line2D`` with a fixed label (``CLOUD_LABEL``, ``FRONT_LABEL``,
    ``EXPORTS_LABEL``, ``BASELINES_LABEL``, ``"budget <name> (<ms> ms)"``); an empty series is left out.
    """
    fig, ax = _new_figure((10.0, 6.0))
    cloud = _points(_records(data, "cloud"), "latency_ms", "accuracy")
    if cloud:
        ax.plot(
            [p[0] for p in cloud],
            [p[1] for p in cloud],
            linestyle="none",
            marker=".",
            markersize=4,
            color="0.6",
            alpha=0.6,
            label=CLOUD_LABEL,
            zorder=1,
        )
    front = sorted(_points(_records(data, "front"), "latency_ms", "accuracy"), key=lambda p: (p[0], p[1]))
    if front:
        ax.plot(
            [p[0] for p in front],
            [p[1] for p in front],
            drawstyle="steps-post",
            marker="o",
            markersize=5,
            color="tab:blue",
            label=FRONT_LABEL,
            zorder=3,
        )
    exports = _points(_records(data, "exports"), "measured_int8_ms", "int8_test_acc")
    if exports:
        ax.plot(
            [p[0] for p in exports],
            [p[1] for p in exports],
            linestyle="none",
            marker="*",
            markersize=16,
            color="tab:orange",
            markeredgecolor="black",
            markeredgewidth=0.6,
            label=EXPORTS_LABEL,
            zorder=5,
        )
        for x, y, r in exports:
            ax.annotate(
                str(r.get("budget", "")),
                (x, y),
                xytext=(7, 7),
                textcoords="offset points",
                fontsize=9,
                fontweight="bold",
            )
    baselines = _points(_records(data, "baselines"), "int8_ms", "int8_acc")
    if baselines:
        ax.plot(
            [p[0] for p in baselines],
            [p[1] for p in baselines],
            linestyle="none",
            marker="s",
            markersize=8,
            color="tab:green",
            markeredgecolor="black",
            markeredgewidth=0.6,
            label=BASELINES_LABEL,
            zorder=4,
        )
        for x, y, r in baselines:
            ax.annotate(str(r.get("name", "")), (x, y), xytext=(7, -12), textcoords="offset points", fontsize=8)
    for i, (name, ms) in enumerate(_budget_list(data)):
        ax.axvline(
            ms,
            linestyle="--",
            linewidth=1.2,
            color=_BUDGET_COLORS[i % len(_BUDGET_COLORS)],
            label=f"budget {name} ({_ms_short(ms)} ms)",
            zorder=2,
        )
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("accuracy (%)")
    space = _section(data, "space").get("name")
    _finish(fig, ax, f"Accuracy vs INT8 latency{f' — {space}' if space else ''}", data)
    return fig


def _search_labels(searches: list[dict[str, Any]]) -> list[str]:
    labels = []
    for s in searches:
        ms = _float(s.get("budget_ms"))
        bound = f" ≤ {_ms_short(ms)} ms" if ms is not None else ""
        labels.append(f"{s.get('budget', '?')}{bound} ({s.get('searcher', '?')})")
    counts = {lab: labels.count(lab) for lab in labels}
    # several seeds of one searcher on one budget: tell them apart
    return [
        f"{lab[:-1]}, seed {s.get('seed', i)})" if counts[lab] > 1 else lab
        for i, (lab, s) in enumerate(zip(labels, searches))
    ]


def convergence_figure(data: dict[str, Any]) -> Figure:
    """Best feasible validation accuracy after each query (x = 1..n), one line per search, labelled
    ``"<budget> ≤ <ms> ms (<searcher>)"`` (``", seed <k>"`` is added when one label would repeat)."""
    fig, ax = _new_figure((9.0, 5.5))
    searches = _records(data, "searches")
    for s, label in zip(searches, _search_labels(searches)):
        conv = s.get("convergence")
        values = [_float(v) for v in conv] if isinstance(conv, (list, tuple)) else []
        if not values:
            continue
        ys = [math.nan if v is None else v for v in values]
        lone = sum(v is not None for v in values) == 1  # a single feasible query: a bare line would not show
        ax.plot(
            range(1, len(ys) + 1), ys, drawstyle="steps-post", linewidth=1.6, marker="o" if lone else "", label=label
        )
    ax.set_xlabel("query")
    ax.set_ylabel("best feasible validation accuracy (%)")
    _finish(fig, ax, "Search convergence", data)
    return fig


def _save_png(fig: Figure, path: Path) -> None:
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight"))
    finally:
        fig.clear()


# ----------------------------------------------------------------------------- markdown


def _header(data: Mapping[str, Any]) -> list[str]:
    host, space, ds = _section(data, "host"), _section(data, "space"), _section(data, "data")
    flags = ", ".join(f"{k} {_yes_no(v)}" for k, v in _flags(host).items())
    machine = str(host.get("cpu") or "n/a") + (f", {_plural(host['cores'], 'core')}" if host.get("cores") else "")
    target = _text(host.get("target"))
    if host.get("fp32_target"):
        target += f" (FP32 reference: {host['fp32_target']})"
    threads = host.get("threads")
    lines = [
        f"# {_text(data.get('title')) if data.get('title') else 'hwnas run report'}",
        "",
        f"**Machine:** {machine} · **CPU flags:** {flags} · **engine:** {_text(host.get('engine'))}, "
        f"{_plural(threads, 'thread') if threads is not None else 'threads n/a'} · **target:** {target}  ",
    ]
    sp = _text(space.get("name"))
    extra = [f"hash `{space['hash']}`"] if space.get("hash") else []
    if space.get("size") is not None:
        extra.append(f"{_int(space['size'])} architectures")
    if extra:
        sp += f" ({', '.join(extra)})"
    dset = _text(ds.get("name"))
    sizes = [
        f"{_int(ds[k])} {k.split('_')[0]}"
        for k in ("train_images", "val_images", "test_images")
        if ds.get(k) is not None
    ]
    if sizes:
        dset += f" ({' / '.join(sizes)} images)"
    lines.append(f"**Search space:** {sp} · **data:** {dset}" + ("  " if data.get("run_dir") else ""))
    if data.get("run_dir"):
        lines.append(f"**Run folder:** `{data['run_dir']}`")
    return lines


def _results(data: Mapping[str, Any]) -> list[str]:
    exports = _records(data, "exports")
    lines = [
        "## Results",
        "",
        "Measured latencies: on the machine above; predicted: from the latency LUT; accuracies: on the "
        "test set. Error vs prediction: (measured − predicted) / predicted INT8 latency.",
        "",
    ]
    if not exports:
        return lines + ["No architectures were exported."]
    rows: list[list[str]] = []
    over: list[str] = []
    unknown: list[str] = []
    for e in exports:
        budget_ms = _budget_ms(data, e)
        pred, meas = _float(e.get("predicted_int8_ms")), _float(e.get("measured_int8_ms"))
        fp32 = _float(e.get("measured_fp32_ms"))
        speed = _float(e.get("int8_speedup"))
        if speed is None and fp32 is not None and meas:
            speed = fp32 / meas
        q, f = _float(e.get("int8_test_acc")), _float(e.get("fp32_test_acc"))
        meets = e.get("meets_budget")
        if meets is None and meas is not None and budget_ms is not None:
            meets = meas <= budget_ms
        name = _text(e.get("budget"))
        if meets is None:
            unknown.append(name)
        elif not meets:
            over.append(f"{name} (measured {_ms(meas)} ms > budget {_ms(budget_ms)} ms)")
        rows.append(
            [
                name,
                _ms(budget_ms),
                f"`{e['arch_id']}`" if e.get("arch_id") else "n/a",
                _ms(pred),
                _ms(meas),
                _signed((meas - pred) / pred * 100 if meas is not None and pred else None, 1, "%"),
                _ms(fp32),
                _times(speed),
                _acc(q),
                _acc(f),
                _signed(q - f if q is not None and f is not None else None, 2),
                "n/a" if meets is None else ("yes" if meets else "**NO**"),
            ]
        )
    lines += _table(
        [
            "budget",
            "budget ms",
            "arch id",
            "predicted INT8 ms",
            "measured INT8 ms",
            "error vs prediction",
            "measured FP32 ms",
            "INT8/FP32 speed-up",
            "INT8 test acc (%)",
            "FP32 test acc (%)",
            "INT8−FP32 (pt)",
            "meets budget",
        ],
        rows,
        right=(1, *range(3, 11)),
    )
    lines.append("")
    if over:
        summary = "**Over budget:** " + "; ".join(over) + "."
    elif unknown:
        summary = f"Budget check: n/a for {', '.join(unknown)}."
    else:
        summary = (
            f"All {len(exports)} exported architectures meet their latency budgets."
            if len(exports) > 1
            else "The exported architecture meets its latency budget."
        )
    if over and unknown:
        summary += f" Budget check n/a for {', '.join(unknown)}."
    lines.append(summary)
    details = []
    for e in exports:
        if any(e.get(k) is not None for k in ("params", "agreement", "within_10pct", "folder", "passed")):
            details.append(
                [
                    _text(e.get("budget")),
                    _int(e.get("params")),
                    _acc(e.get("agreement")),
                    _yes_no(e.get("within_10pct")),
                    f"`{e['folder']}`" if e.get("folder") else "n/a",
                    _yes_no(e.get("passed"), "**NO**"),
                ]
            )
    if details:
        lines += [
            "",
            *_table(
                ["budget", "params", "INT8/FP32 agreement (%)", "prediction within 10%", "folder", "checks passed"],
                details,
                right=(1, 2),
            ),
        ]
    return lines


def _figures(figures: Mapping[str, str]) -> list[str]:
    lines = ["## Figures", ""]
    if figures.get("pareto"):
        lines += [
            f"![Pareto]({figures['pareto']})",
            "",
            "Random subnets and the searched front: predicted INT8 latency vs supernet validation accuracy. "
            "Exported architectures and baselines: measured INT8 latency vs test accuracy. "
            "Dashed lines: the latency budgets.",
            "",
        ]
    if figures.get("convergence"):
        lines += [
            f"![Convergence]({figures['convergence']})",
            "",
            "Best feasible validation accuracy after each query, per budget.",
            "",
        ]
    return lines[:-1] if len(lines) > 2 else []


def _search(data: Mapping[str, Any]) -> list[str]:
    searches = _records(data, "searches")
    lines = ["## Search", ""]
    if not searches:
        return lines + ["n/a"]
    specs = {str(b.get("name")): b.get("spec") for b in _records(data, "budgets")}
    rows = []
    for s in searches:
        best = s.get("best") if isinstance(s.get("best"), Mapping) else None
        spec = specs.get(str(s.get("budget")))
        rows.append(
            [
                _text(s.get("budget")),
                _ms(_budget_ms(data, s)),
                _text(spec),
                _text(s.get("searcher")),
                _text(s.get("seed")),
                _int(s.get("queries")),
                _acc(best.get("accuracy")) if best else "none feasible",
                _ms(best.get("latency_ms")) if best else "n/a",
                f"`{best['arch_id']}`" if best and best.get("arch_id") else "n/a",
            ]
        )
    return lines + _table(
        [
            "budget",
            "budget ms",
            "given as",
            "searcher",
            "seed",
            "queries",
            "best val acc (%)",
            "predicted INT8 ms",
            "arch id",
        ],
        rows,
        right=(1, 5, 6, 7),
    )


def _evolve(data: Mapping[str, Any]) -> list[str]:
    ev = _section(data, "evolve")
    if not ev:
        return []
    budgets = ", ".join(_ms_short(b) for b in ev.get("budgets_ms") or []) or "n/a"
    score = _float(ev.get("score"))
    score_text = "n/a" if score is None else f"{score:.4g}"
    rows = []
    for st in _records(ev, "stages"):
        window = st.get("window") or []
        depths = st.get("depths") or []
        rows.append(
            [
                _text(st.get("stage")),
                _text(st.get("block")),
                ", ".join(str(w) for w in window) or "n/a",
                ", ".join(str(d) for d in depths) or "n/a",
            ]
        )
    report = _section(ev, "report")
    lines = [
        "## Evolved search space (SpaceEvo)",
        "",
        f"The searched space `{_text(ev.get('space_name'))}` was evolved from the hyper-space "
        f"{_text(ev.get('hyperspace'))} for this target: Q-T score {score_text} over the "
        f"INT8 budgets {budgets} ms ({_int(ev.get('evaluated'))} candidate spaces scored).",
        "",
        *_table(["stage", "block type", "widths (window)", "depths"], rows),
    ]
    if report.get("md"):
        lines += ["", f"Why these blocks: the [evolve-space report]({report['md']})."]
    return lines


def _supernet(data: Mapping[str, Any]) -> list[str]:
    sn = _section(data, "supernet")
    lines = ["## Supernet", ""]
    if not sn:
        return lines + ["n/a"]
    epochs = _text(sn.get("epochs"))
    if sn.get("qat_epochs"):
        epochs += f" (+ {sn['qat_epochs']} QAT)"
    test_acc = sn.get("test_acc")
    acc: Mapping[str, Any] = test_acc if isinstance(test_acc, Mapping) else {}
    lines += [
        f"- epochs: {epochs}",
        f"- test accuracy: largest subnet {_acc(acc.get('largest'))} %, smallest subnet {_acc(acc.get('smallest'))} %",
        f"- parameters: largest subnet {_int(sn.get('params_largest'))}, smallest subnet "
        f"{_int(sn.get('params_smallest'))}",
    ]
    return lines


def _speedups(data: Mapping[str, Any]) -> list[str]:
    raw = data.get("op_speedups")
    tables = [dict(raw)] if isinstance(raw, Mapping) else _records(data, "op_speedups")
    tables = [t for t in tables if _records(t, "rows")]
    if not tables:
        target = _section(data, "host").get("target")
        return [f"## INT8 speed-up per op type on {_text(target)}", "", "n/a"]
    lines: list[str] = []
    for t in tables:
        rows = _records(t, "rows")
        large = any(_float(r.get("speedup_large")) is not None for r in rows)
        body = []
        for r in rows:
            lo, hi = _float(r.get("speedup_min")), _float(r.get("speedup_max"))
            cells = [
                _text(r.get("family")),
                _int(r.get("n")),
                _ms(r.get("fp32_ms")),
                _ms(r.get("int8_ms")),
                _times(r.get("speedup")),
            ]
            if large:
                cells.append(_times(r.get("speedup_large")))
            cells.append(f"{lo:.2f}–{hi:.2f}×" if lo is not None and hi is not None else "n/a")
            body.append([f"**{c}**" if r.get("family") == "all" and c != "n/a" else c for c in cells])
        headers = ["op type", "blocks", "FP32 ms (median)", "INT8 ms (median)", "speed-up (geo-mean)"]
        headers += ["largest third"] if large else []
        headers += ["min–max"]
        target = t.get("int8_target") or _section(data, "host").get("target")
        lines += [
            f"## INT8 speed-up per op type on {_text(target)}",
            "",
            f"Per-block compute times (per-call overhead subtracted), INT8 {_text(target)} vs FP32 "
            f"{_text(t.get('fp32_target'))}.",
            "",
            *_table(headers, body, right=range(1, len(headers))),
            "",
        ]
    return lines[:-1]


def speedup_markdown(op_speedups: Mapping[str, Any] | list[Mapping[str, Any]] | None) -> str:
    """The "INT8 speed-up per op type" section of the report for ``op_speedups`` (one
    :func:`latency_lut.report.speedup_table` result or a list of them): markdown, "n/a" when empty."""
    return "\n".join(_speedups({"op_speedups": op_speedups}))


def _baselines(data: Mapping[str, Any]) -> list[str]:
    base = _records(data, "baselines")
    if not base:
        return []
    rows = []
    for b in base:
        q, f = _float(b.get("int8_ms")), _float(b.get("fp32_ms"))
        rows.append(
            [
                _text(b.get("name")),
                _ms(q),
                _ms(f),
                _times(f / q if q and f is not None else None),
                _acc(b.get("int8_acc")),
                _acc(b.get("fp32_acc")),
            ]
        )
    return [
        "## Baselines",
        "",
        "Measured on the same machine, engine and threads.",
        "",
        *_table(
            ["baseline", "INT8 ms", "FP32 ms", "INT8/FP32 speed-up", "INT8 test acc (%)", "FP32 test acc (%)"],
            rows,
            right=range(1, 6),
        ),
    ]


def _describes(data: Mapping[str, Any]) -> list[str]:
    exports = [e for e in _records(data, "exports") if e.get("describe")]
    if not exports:
        return []
    width = max(len(str(e.get("budget", ""))) for e in exports)
    body = [
        f"{str(e.get('budget', '')).ljust(width)}  {e.get('arch_id', '')}  {e['describe']}".replace("```", "'''")
        for e in exports
    ]
    return ["## Chosen architectures", "", "```text", *body, "```"]


def _timings(data: Mapping[str, Any]) -> list[str]:
    t = _section(data, "timings")
    if not t:
        return []
    order = [k for k in _TIMING_ORDER if k in t] + sorted(k for k in t if k not in _TIMING_ORDER and k != "total")
    order += ["total"] if "total" in t else []
    rows = []
    for k in order:
        s = _float(t[k])
        rows.append(
            [
                f"**{k}**" if k == "total" else k,
                "n/a" if s is None else f"{s:.1f}",
                "n/a" if s is None else f"{int(s // 3600)}:{int(s % 3600 // 60):02d}:{int(s % 60):02d}",
            ]
        )
    return [
        "---",
        "",
        "## Timings",
        "",
        "Wall-clock time per stage of this run.",
        "",
        *_table(["stage", "seconds", "h:mm:ss"], rows, right=(1, 2)),
    ]


def render_markdown(data: dict[str, Any], figures: dict[str, str] | None = None) -> str:
    """The report as GitHub-flavoured markdown: header and provenance, Results (one row per export),
    figures (``figures`` maps "pareto"/"convergence" to paths relative to the md; default the standard
    file names; a missing key is not embedded), the evolved space (runs with an evolve stage), Search, Supernet, INT8 speed-up per op type,
    Baselines, the chosen architectures, and Timings last."""
    figs = {k: FIGURES[k] for k in ("pareto", "convergence")} if figures is None else dict(figures)
    parts = [
        _header(data),
        _results(data),
        _figures(figs),
        _evolve(data),
        _search(data),
        _supernet(data),
        _speedups(data),
        _baselines(data),
        _describes(data),
        _timings(data),
    ]
    return "\n\n".join("\n".join(p) for p in parts if p) + "\n"


# ----------------------------------------------------------------------------- files


def _plain(obj: Any) -> Any:
    """``obj`` with tuples as lists, paths as strings and numpy scalars as Python numbers."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if not isinstance(obj, (str, int, float, bool)) and obj is not None and hasattr(obj, "item"):
        return obj.item()
    return obj


def write_report(data: dict[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write pareto.png, convergence.png, report.md and (last) report.json into ``out_dir`` (created if
    needed), each atomically; return their paths keyed "pareto", "convergence", "md", "json".

    ``data`` (every section but "title" optional; missing, None or [] renders as "n/a" or is skipped)::

        title, run_dir: str
        host: {cpu, cores, flags: {name: bool} (or a list of names), engine, threads, target, fp32_target}
        space: {name, hash, size}; data: {name, train_images, val_images, test_images}
        evolve: {hyperspace, candidate, space, space_name, score, budgets_ms, budget_scores, evaluated,
                 stages: [{stage, block, window, depths}], report: {md, json, png}}  (links relative to out_dir)
        supernet: {epochs, qat_epochs, test_acc: {largest, smallest}, params_largest, params_smallest}
        budgets: [{name, budget_ms, spec}]
        searches: [{budget, budget_ms, searcher, seed, queries, best: {arch_id, accuracy, latency_ms} | None,
                    convergence: [best feasible val acc after each query, None before the first feasible]}]
        front, cloud: [{arch_id, latency_ms, accuracy}]  (predicted INT8 latency, supernet validation accuracy)
        exports: [{budget, budget_ms, arch_id, describe, params, predicted_int8_ms, measured_int8_ms,
                   measured_fp32_ms, int8_speedup, int8_test_acc, fp32_test_acc, agreement, meets_budget,
                   within_10pct, folder, passed}]
        baselines: [{name, int8_ms, fp32_ms, int8_acc, fp32_acc}]
        op_speedups: one latency_lut.report.speedup_table result {int8_target, fp32_target, rows} (or a list)
        timings: {stage: seconds, ..., total}

    report.json is ``data`` plus ``"figures": {"pareto", "convergence", "md"}`` (file names relative to
    ``out_dir``), with sorted keys and non-finite floats as null.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "pareto": out / FIGURES["pareto"],
        "convergence": out / FIGURES["convergence"],
        "md": out / FIGURES["md"],
        "json": out / "report.json",
    }
    _save_png(pareto_figure(data), paths["pareto"])
    _save_png(convergence_figure(data), paths["convergence"])
    atomic_write_text(paths["md"], render_markdown(data))
    doc = {**_plain(data), "figures": dict(FIGURES)}
    atomic_write_text(paths["json"], json.dumps(json_safe(doc), indent=2, sort_keys=True) + "\n")
    return paths

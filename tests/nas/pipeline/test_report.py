"""nas.pipeline.report: report.json, report.md and the two figures of ``nas run``."""

from __future__ import annotations

import copy
import json
import math
import re

import pytest

from nas.pipeline.report import (
    BASELINES_LABEL,
    CLOUD_LABEL,
    EXPORTS_LABEL,
    FRONT_LABEL,
    convergence_figure,
    pareto_figure,
    render_markdown,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def data() -> dict:
    cloud = [
        {"arch_id": f"c{i:02d}", "latency_ms": 0.08 + 0.01 * (i % 13), "accuracy": 80.0 + (i * 7) % 10}
        for i in range(40)
    ]
    return {
        "title": "hwnas run: demo",
        "run_dir": "runs/demo",
        "host": {
            "cpu": "AMD EPYC",
            "cores": 2,
            "flags": {"avx2": True, "avx512_vnni": True, "amx_int8": False},
            "engine": "onnxruntime 1.32.0",
            "threads": 1,
            "target": "cpu-ort-int8",
            "fp32_target": "cpu-ort-fp32",
        },
        "space": {"name": "resnet", "hash": "164d8b629c101ef0", "size": 13824},
        "data": {"name": "fashion-mnist", "train_images": 54000, "val_images": 6000, "test_images": 10000},
        "supernet": {
            "epochs": 3,
            "qat_epochs": 1,
            "test_acc": {"largest": 91.2, "smallest": 88.0},
            "params_largest": 691834,
            "params_smallest": 9562,
        },
        "budgets": [{"name": "b0", "budget_ms": 0.1234, "spec": "25%"}, {"name": "b1", "budget_ms": 0.2, "spec": 0.2}],
        "searches": [
            {
                "budget": "b0",
                "budget_ms": 0.1234,
                "searcher": "evolution",
                "seed": 0,
                "queries": 6,
                "best": {"arch_id": "ab12cd34ef56", "accuracy": 90.1, "latency_ms": 0.12},
                "convergence": [None, 85.0, 85.0, 88.2, 90.1, 90.1],
            },
            {
                "budget": "b1",
                "budget_ms": 0.2,
                "searcher": "evolution",
                "seed": 0,
                "queries": 6,
                "best": {"arch_id": "ff00ee11dd22", "accuracy": 91.0, "latency_ms": 0.19},
                "convergence": [86.0, 86.0, 89.5, 91.0, 91.0, 91.0],
            },
        ],
        # deliberately not sorted by latency
        "front": [
            {"arch_id": "f2", "latency_ms": 0.19, "accuracy": 91.0},
            {"arch_id": "f0", "latency_ms": 0.09, "accuracy": 86.5},
            {"arch_id": "f1", "latency_ms": 0.12, "accuracy": 90.1},
        ],
        "cloud": cloud,
        "exports": [
            {
                "budget": "b0",
                "budget_ms": 0.1234,
                "arch_id": "ab12cd34ef56",
                "describe": "stem:16 | stage1:basic x2",
                "params": 123456,
                "predicted_int8_ms": 0.12,
                "measured_int8_ms": 0.118,
                "measured_fp32_ms": 0.2,
                "int8_speedup": 1.69,
                "int8_test_acc": 90.0,
                "fp32_test_acc": 90.2,
                "agreement": 99.9,
                "meets_budget": True,
                "within_10pct": True,
                "folder": "export/b0",
                "passed": True,
            },
            {
                "budget": "b1",
                "budget_ms": 0.2,
                "arch_id": "ff00ee11dd22",
                "describe": "stem:24 | stage1:basic x3",
                "params": 234567,
                "predicted_int8_ms": 0.19,
                "measured_int8_ms": 0.2113,
                "measured_fp32_ms": 0.35,
                "int8_speedup": 1.656,
                "int8_test_acc": 90.9,
                "fp32_test_acc": 91.0,
                "agreement": 99.5,
                "meets_budget": False,
                "within_10pct": True,
                "folder": "export/b1",
                "passed": True,
            },
        ],
        "baselines": [{"name": "resnet18", "int8_ms": 0.216, "fp32_ms": 0.32, "int8_acc": 91.5, "fp32_acc": 91.7}],
        "op_speedups": {
            "int8_target": "cpu-ort-int8",
            "fp32_target": "cpu-ort-fp32",
            "rows": [
                {
                    "family": "resnet_basic_relu",
                    "n": 12,
                    "fp32_ms": 0.05,
                    "int8_ms": 0.02,
                    "speedup": 2.5,
                    "speedup_min": 1.8,
                    "speedup_max": 3.1,
                    "speedup_large": 2.9,
                },
                {
                    "family": "all",
                    "n": 12,
                    "fp32_ms": 0.05,
                    "int8_ms": 0.02,
                    "speedup": 2.5,
                    "speedup_min": 1.8,
                    "speedup_max": 3.1,
                    "speedup_large": 2.9,
                },
            ],
        },
        "timings": {"lut": 30.1, "supernet": 400.2, "search": 60.0, "export": 90.0, "report": 1.0, "total": 581.3},
    }


def _lines(fig, label: str):
    return [ln for ln in fig.axes[0].get_lines() if ln.get_label() == label]


def _labels(fig) -> list[str]:
    return [ln.get_label() for ln in fig.axes[0].get_lines()]


def _table_rows(md: str, first_cell: str) -> list[list[str]]:
    out = []
    for line in md.splitlines():
        if line.startswith("| "):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if cells[0] == first_cell:
                out.append(cells)
    return out


def test_write_report_writes_four_files(tmp_path, data):
    out = tmp_path / "report"  # does not exist yet
    paths = write_report(data, out)
    assert set(paths) == {"json", "md", "pareto", "convergence"}
    assert {p.name for p in paths.values()} == {"report.json", "report.md", "pareto.png", "convergence.png"}
    for key in ("pareto", "convergence"):
        blob = paths[key].read_bytes()
        assert blob.startswith(PNG_SIGNATURE) and len(blob) > 5_000, key
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == {
        **data,
        "figures": {"pareto": "pareto.png", "convergence": "convergence.png", "md": "report.md"},
    }
    assert sorted(p.name for p in out.iterdir()) == ["convergence.png", "pareto.png", "report.json", "report.md"]
    assert "![Pareto](pareto.png)" in paths["md"].read_text(encoding="utf-8")


def test_report_is_deterministic(tmp_path, data):
    a, b = write_report(data, tmp_path / "a"), write_report(copy.deepcopy(data), tmp_path / "b")
    for key in ("json", "md"):
        assert a[key].read_bytes() == b[key].read_bytes(), key
    again = write_report(data, tmp_path / "a")  # overwriting in place leaves no temporary files
    assert again["md"].read_bytes() == b["md"].read_bytes()
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]


def test_report_json_turns_non_finite_floats_into_null(tmp_path, data):
    data["exports"][0]["agreement"] = math.nan
    doc = json.loads(write_report(data, tmp_path)["json"].read_text(encoding="utf-8"))
    assert doc["exports"][0]["agreement"] is None
    assert "| b0 | 123,456 | n/a |" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_pareto_series(data):
    fig = pareto_figure(data)
    (exp,) = _lines(fig, EXPORTS_LABEL)
    assert list(exp.get_xdata()) == [e["measured_int8_ms"] for e in data["exports"]]
    assert list(exp.get_ydata()) == [e["int8_test_acc"] for e in data["exports"]]
    assert exp.get_linestyle() == "None"
    (front,) = _lines(fig, FRONT_LABEL)
    assert list(front.get_xdata()) == [0.09, 0.12, 0.19]
    assert list(front.get_ydata()) == [86.5, 90.1, 91.0]
    (cloud,) = _lines(fig, CLOUD_LABEL)
    assert len(cloud.get_xdata()) == len(data["cloud"])
    (base,) = _lines(fig, BASELINES_LABEL)
    assert list(base.get_xdata()) == [0.216] and list(base.get_ydata()) == [91.5]
    budget_lines = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("budget ")]
    assert [ln.get_label() for ln in budget_lines] == ["budget b0 (0.123 ms)", "budget b1 (0.200 ms)"]
    for ln, b in zip(budget_lines, data["budgets"]):
        assert list(ln.get_xdata()) == [b["budget_ms"], b["budget_ms"]]
        assert ln.get_linestyle() == "--"
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert {"b0", "b1", "resnet18"} <= set(texts)
    legend = fig.axes[0].get_legend()
    assert legend is not None and EXPORTS_LABEL in [t.get_text() for t in legend.get_texts()]
    assert "AMD EPYC (avx512_vnni, no amx_int8), onnxruntime 1.32.0, 1 thread, cpu-ort-int8" == fig.axes[0].get_title()


def test_pareto_without_baselines_has_no_baseline_series(data):
    data["baselines"] = []
    assert not _lines(pareto_figure(data), BASELINES_LABEL)
    del data["baselines"]
    assert not _lines(pareto_figure(data), BASELINES_LABEL)


def test_convergence_series(data):
    fig = convergence_figure(data)
    assert _labels(fig) == ["b0 ≤ 0.123 ms (evolution)", "b1 ≤ 0.200 ms (evolution)"]
    first = fig.axes[0].get_lines()[0]
    assert list(first.get_xdata()) == [1, 2, 3, 4, 5, 6]
    y = list(first.get_ydata())
    assert math.isnan(y[0]) and y[1:] == [85.0, 85.0, 88.2, 90.1, 90.1]
    assert fig.axes[0].get_title().startswith("AMD EPYC")


def test_convergence_labels_tell_seeds_apart(data):
    data["searches"][1].update(budget="b0", budget_ms=0.1234, seed=1)
    assert _labels(convergence_figure(data)) == [
        "b0 ≤ 0.123 ms (evolution, seed 0)",
        "b0 ≤ 0.123 ms (evolution, seed 1)",
    ]


def test_markdown_results_table(data):
    md = render_markdown(data)
    assert md.startswith("# hwnas run: demo\n")
    assert "avx512_vnni yes" in md and "amx_int8 no" in md and "onnxruntime 1.32.0, 1 thread" in md
    assert "cpu-ort-int8" in md
    (b0,) = _table_rows(md, "b0")[:1]
    assert "`ab12cd34ef56`" in b0 and "0.1180" in b0 and "0.1200" in b0 and "1.69×" in b0
    assert b0[-1] == "yes" and "-1.7%" in b0 and "-0.20" in b0
    b1 = _table_rows(md, "b1")[0]
    assert "`ff00ee11dd22`" in b1 and "0.2113" in b1 and "0.1900" in b1 and "1.66×" in b1
    assert b1[-1] == "**NO**"
    assert "**Over budget:** b1 (measured 0.2113 ms > budget 0.2000 ms)." in md
    # every table row has as many cells as its header
    for row in (b0, b1):
        assert len(row) == 12


def test_markdown_sections_in_order(data):
    md = render_markdown(data)
    heads = [line for line in md.splitlines() if line.startswith("## ")]
    assert heads == [
        "## Results",
        "## Figures",
        "## Search",
        "## Supernet",
        "## INT8 speed-up per op type on cpu-ort-int8",
        "## Baselines",
        "## Chosen architectures",
        "## Timings",
    ]
    assert "![Pareto](pareto.png)" in md and "![Convergence](convergence.png)" in md
    assert "stem:16 \\| stage1" not in md.split("```text")[1]  # code block: not escaped
    assert "stem:16 | stage1:basic x2" in md
    assert "| resnet_basic_relu | 12 | 0.0500 | 0.0200 | 2.50× | 2.90× | 1.80–3.10× |" in md
    assert "| resnet18 | 0.2160 | 0.3200 | 1.48× | 91.50 | 91.70 |" in md
    assert md.index("---\n\n## Timings") > md.index("## Chosen architectures")
    assert "| **total** | 581.3 | 0:09:41 |" in md
    assert "All 2 exported" not in md


def test_markdown_all_budgets_met_and_pipes_escaped(data):
    data["exports"][1]["meets_budget"] = True
    data["title"] = "a | b"
    data["exports"][0]["arch_id"] = "x|y"
    md = render_markdown(data, figures={"pareto": "figs/p.png"})
    assert "All 2 exported architectures meet their latency budgets." in md
    assert "NO" not in md
    assert "`x\\|y`" in md
    assert "![Pareto](figs/p.png)" in md and "Convergence" not in md


def test_markdown_op_speedups_accept_the_speedup_table_list(data):
    data["op_speedups"] = [data["op_speedups"]]
    assert "| resnet_basic_relu | 12 |" in render_markdown(data)


@pytest.mark.parametrize(
    "missing",
    [
        "baselines",
        "op_speedups",
        "cloud",
        "front",
        "timings",
        "supernet",
        "searches",
        "exports",
        "budgets",
        "host",
        "space",
        "data",
    ],
)
def test_missing_sections_still_render(missing, data):
    data[missing] = None
    md = render_markdown(data)
    assert md.startswith("# hwnas run: demo")
    pareto_figure(data)
    convergence_figure(data)
    del data[missing]
    assert render_markdown(data) == md


def test_sparse_data_still_writes_everything(tmp_path):
    data = {
        "title": "hwnas run: sparse",
        "host": {"cpu": "x", "flags": ["avx2"]},
        "baselines": [],
        "cloud": [],
        "op_speedups": None,
        "timings": None,
        "supernet": None,
        "budgets": [{"name": "b0", "budget_ms": 0.1, "spec": "0.1"}],
        "searches": [
            {
                "budget": "b0",
                "budget_ms": 0.1,
                "searcher": "random",
                "seed": 0,
                "queries": 3,
                "best": None,
                "convergence": [None, None, None],
            }
        ],
        "exports": [
            {
                "budget": "b0",
                "arch_id": "a1",
                "predicted_int8_ms": None,
                "measured_int8_ms": 0.09,
                "measured_fp32_ms": None,
                "int8_test_acc": 85.0,
                "fp32_test_acc": None,
            }
        ],
    }
    paths = write_report(data, tmp_path)
    md = paths["md"].read_text(encoding="utf-8")
    assert "## Baselines" not in md and "## Timings" not in md
    assert "none feasible" in md
    assert "avx512_vnni no" in md and "amx_int8 no" in md and "avx2 yes" in md
    row = _table_rows(md, "b0")[0]
    assert row[1] == "0.1000" and row[-1] == "yes"  # budget ms from "budgets", met computed from it
    assert row[5] == "n/a" and row[7] == "n/a"
    fig = convergence_figure(data)
    assert _labels(fig) == ["b0 ≤ 0.100 ms (random)"]
    assert all(math.isnan(v) for v in fig.axes[0].get_lines()[0].get_ydata())
    assert _labels(pareto_figure(data)) == [EXPORTS_LABEL, "budget b0 (0.100 ms)"]


def test_convergence_marks_a_lone_feasible_query(data):
    data["searches"][0]["convergence"] = [None, None, 88.0]
    lines = convergence_figure(data).axes[0].get_lines()
    assert lines[0].get_marker() == "o" and lines[1].get_marker() in ("", "None")


def test_empty_data_renders(tmp_path):
    paths = write_report({}, tmp_path)
    assert paths["md"].read_text(encoding="utf-8").startswith("# hwnas run report")
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["figures"]["md"] == "report.md"


def test_import_is_cheap():
    import subprocess
    import sys

    code = "import sys, nas.pipeline.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

"""The import structure of the seven packages has no circle (benchmarks/import_cycles.py).

Counted: every import a module runs, at its top level or inside a function, and (scope
``typing``) those under ``if TYPE_CHECKING:`` too; the graph is drawn from the source, as grimp /
import-linter draw it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "import_cycles.py"


@pytest.fixture(scope="module")
def cycles():
    spec = importlib.util.spec_from_file_location("import_cycles", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_graph_sees_the_packages(cycles):
    graph = cycles.build_graph()
    assert {"spaces", "quant.fold", "nas.search.storage", "hw_profiles.targets"} <= set(graph)
    # a top-level and a function-local import are both drawn
    assert "module" in graph["spaces.yaml_io"]["spaces._space"]


def test_finds_a_planted_circle(cycles, tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.a import x\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    graph = cycles.build_graph(tmp_path, ["pkg"])
    assert graph["pkg.b"] == {"pkg.a": {"function"}}
    assert graph["pkg.c"] == {"pkg.a": {"type_checking"}}
    assert cycles.strongly_connected(cycles.scoped(graph, "all")) == [["pkg.a", "pkg.b"]]
    assert cycles.strongly_connected(cycles.scoped(graph, "module")) == []
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import c\n")
    typing_only = cycles.build_graph(tmp_path, ["pkg"])
    assert cycles.strongly_connected(cycles.scoped(typing_only, "all")) == []
    assert cycles.strongly_connected(cycles.scoped(typing_only, "typing")) == [["pkg.a", "pkg.c"]]


@pytest.mark.parametrize("scope", ["module", "all", "typing"])
def test_no_import_circle(cycles, scope):
    comps = cycles.report(scope)
    assert not comps, "import circles:\n" + "\n".join(" -> ".join(c["cycle"]) for c in comps)

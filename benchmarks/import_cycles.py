"""Import circles among the modules of the seven packages.

    .venv/bin/python benchmarks/import_cycles.py [--scope module|all] [--json]

Builds the module-level import graph from the source (``ast``, nothing is imported) and prints
every strongly connected component of more than one module, with one shortest cycle through
each, and the edges that close it.

Which imports count:

* ``module``: the imports a module runs when it is imported: its top level, including those
  under ``try`` / ``if`` at top level, but not those under ``if TYPE_CHECKING:`` (never run).
* ``all`` (the default): those plus the imports written inside functions and methods
  ("function-local" imports, run on first call). A circle that closes only through a
  function-local import does not fail at import time, but it is still a circle in the
  structure (import-linter and grimp count it), so ``all`` is the acceptance scope.
* ``typing``: ``all`` plus the imports under ``if TYPE_CHECKING:`` (grimp's default graph);
  they never run, but a circle through them is still a knot for a reader and for mypy.

An edge ``a -> b`` is drawn the way grimp draws it: ``import p.q`` and ``from p import q``
(q a module) give ``a -> p.q``; ``from p import name`` (name not a module) gives ``a -> p``.
Importing ``p.q`` also runs ``p/__init__.py``, but that implicit edge to the parent package is
not drawn (it would make every submodule that a package face re-exports a circle).

Exit status 1 when there is a circle in the chosen scope.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import deque
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hwnas", "spaces", "quant", "hw_profiles", "latency_lut", "supernet", "nas")
SCOPES = ("module", "all", "typing")


def module_files(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file of the packages."""
    out: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement with its kind: ``module``, ``function`` or ``type_checking``."""
    found: list[tuple[ast.Import | ast.ImportFrom, str]] = []

    def walk(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, kind))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                walk(child, "function" if kind == "module" else kind)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.body:
                    walk(ast.Module(body=[sub], type_ignores=[]), "type_checking")
                for sub in child.orelse:
                    walk(ast.Module(body=[sub], type_ignores=[]), kind)
            else:
                walk(child, kind)

    walk(tree, "module")
    return found


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def build_graph(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, dict[str, set[str]]]:
    """``{importer: {imported: {kinds}}}`` over the packages' own modules (outside imports dropped)."""
    files = module_files(root, packages)
    known = set(files)
    graph: dict[str, dict[str, set[str]]] = {m: {} for m in files}

    def target(name: str) -> str | None:
        # the longest known module that `name` lies in (``import p.q.r`` where r is a function: p.q)
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    for module, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, kind in _imports(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = _resolve_from(module, is_package, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}" if base else alias.name
                    names.append(sub if sub in known else base)
            for name in names:
                hit = target(name)
                if hit is not None and hit != module:
                    graph[module].setdefault(hit, set()).add(kind)
    return graph


def scoped(graph: dict[str, dict[str, set[str]]], scope: str) -> dict[str, set[str]]:
    kinds = {"module": {"module"}, "all": {"module", "function"}, "typing": {"module", "function", "type_checking"}}[
        scope
    ]
    return {a: {b for b, k in edges.items() if k & kinds} for a, edges in graph.items()}


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components of more than one module, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def shortest_cycle(edges: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest cycle inside one component (BFS from each member), as a closed path."""
    members = set(component)
    best: list[str] = []
    for start in component:
        prev: dict[str, str] = {}
        queue = deque([start])
        seen = {start}
        found = None
        while queue and found is None:
            node = queue.popleft()
            for nxt in sorted(edges[node] & members):
                if nxt == start:
                    found = node
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    prev[nxt] = node
                    queue.append(nxt)
        if found is None:
            continue
        path = [found]
        while path[-1] != start:
            path.append(prev[path[-1]])
        path = list(reversed(path)) + [start]
        if not best or len(path) < len(best):
            best = path
    return best


def _kind_note(kinds: set[str]) -> str:
    if "module" in kinds:
        return ""
    return " (function-local)" if "function" in kinds else " (TYPE_CHECKING)"


def report(scope: str = "all", root: Path = ROOT) -> list[dict]:
    graph = build_graph(root)
    edges = scoped(graph, scope)
    out = []
    for comp in strongly_connected(edges):
        members = set(comp)
        inner = sorted(f"{a} -> {b}" + _kind_note(graph[a][b]) for a in comp for b in edges[a] & members)
        out.append({"modules": comp, "cycle": shortest_cycle(edges, comp), "edges": inner})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scope", choices=SCOPES, default="all", help="which imports count (default: all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    comps = report(args.scope)
    if args.json:
        print(json.dumps(comps, indent=2))
    else:
        n_edges = sum(len(v) for v in scoped(build_graph(), args.scope).values())
        print(f"scope={args.scope}: {len(module_files())} modules, {n_edges} edges, {len(comps)} circle(s)")
        for i, comp in enumerate(comps, 1):
            print(f"\n[{i}] {len(comp['modules'])} modules: {', '.join(comp['modules'])}")
            print("    shortest cycle: " + " -> ".join(comp["cycle"]))
            for edge in comp["edges"]:
                print(f"    {edge}")
    return 1 if comps else 0


if __name__ == "__main__":
    sys.exit(main())

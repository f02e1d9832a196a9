"""The continuous relaxation of a DSL cell space, for DARTS (torch-free).

:func:`relax_space` turns the choices inside the cells (:class:`~spaces.Cell`) of a space into
*mixed ops*, each a row of architecture weights, and writes the supernet as an ordinary space of
the DSL (the *relaxed space*) whose one arch is the whole supernet, so that the DSL's own walker,
op builders and :class:`~spaces.Network` build it:

* **an edge's op** (every decision under the edge's scope but its ``input``: an ``Or`` over ops,
  a block's ``Choice`` parameter, an ``Or`` whose branches have choices of their own, ...):
  the edge's op becomes ``Parallel({_c0: op, _c1: op, ...}, merge="add")``, one branch per
  assignment of those decisions (a *candidate*), the branch's decisions set to that assignment;
  the supernet weights the branches' sum (:mod:`nas.search.darts`);
* **a node's op** (``CellNode(op=...)``) with choices: the same, as the node's op;
* **an edge's input** (``Edge(Choice([...]), op)``), the DARTS way: the edges of a node that
  choose among the same inputs with the same op (the darts space's two edges per node) form a
  *pool*; the supernet gives the node one mixed op per candidate input (the original DARTS cell:
  every earlier node feeds every node), all summed, and the derivation keeps, per pool of ``m``
  edges, the ``m`` inputs whose strongest non-``none`` op weighs most, each with that op. A pool
  needs the node's edges to be summed (``merge: add``, or a node of one edge), at most as many
  edges as inputs and at least two candidate ops; otherwise the input is fixed (below).

Every other decision is **fixed**, not searched: decisions outside cells (a stage's depth or
width, a choice of stem), a cell's or a node's ``merge``, a cell's ``params`` and inputs that
cannot pool take the value given in ``fixed`` (``DartsConfig.fixed``), else the decision's
default; :attr:`Relaxation.fixed` lists those with more than one option. A space whose active
cells have nothing to relax, or that has no cell (a chain space), is refused.

Candidates are enumerated as assignments of the decisions one mixed op owns (at most
:data:`MAX_CANDIDATES`); the derived arch is an ordinary arch of the searched space.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hwnas.errors import ConfigError, InvalidArchError, SpaceDefinitionError
from spaces import Cell, CellNode, Choice, Edge, Node, Parallel, Sequential, Space
from spaces._dump import _node_to_data
from spaces._nodes import ResolvedBlock
from spaces._program import Wire
from spaces.arch import Arch

__all__ = ["MAX_CANDIDATES", "Candidate", "Relaxation", "Unit", "relax_space"]

#: the most candidates one mixed op may have (assignments of the decisions it owns)
MAX_CANDIDATES = 64
_CELL_SLOT = re.compile(r"^(.*)#c(\d+)\.0$")


@dataclass(frozen=True)
class Candidate:
    """One option of a mixed op: ``values`` assigns the decisions it owns (paths relative to the
    edge's or node's scope); ``kind`` is ``none`` (only zero ops), ``skip`` (identity) or ``op``."""

    values: tuple[tuple[str, Any], ...]
    kind: str = "op"

    @property
    def label(self) -> str:
        if len(self.values) == 1:
            return str(self.values[0][1])
        return ",".join(f"{k}={v}" for k, v in self.values)


@dataclass
class Unit:
    """One mixed op of the supernet (one row of ``alpha``)."""

    name: str  # edge: <cell>.<node>.<edge>; input: <cell>.<node>[<input>]; node op: <cell>.<node>.op
    kind: str  # edge | input | node_op
    scope: str  # the scope of the op in the relaxed space (the Parallel's)
    serial: int  # the Parallel's serial
    candidates: list[Candidate]


@dataclass
class _NodePlan:
    """The units of one cell node (one cell prefix), for the derivation."""

    prefix: str  # <cell>.<node>
    edges: list[tuple[str, int]] = field(default_factory=list)  # (edge name, unit)
    pools: list[tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    node_op: int | None = None  # unit


@dataclass
class Relaxation:
    """A relaxed space: ``relaxed.program(arch)`` is the supernet's program; ``units`` its mixed ops."""

    space: Space
    relaxed: Space
    arch: Arch
    program: list[ResolvedBlock | Wire]
    units: list[Unit]
    base: Arch  # the searched space's arch the fixed decisions come from
    fixed: dict[str, Any]  # decisions DARTS does not search (more than one option), with their value
    nodes: list[_NodePlan]
    relaxed_paths: set[str]  # the decisions of the searched space DARTS decides

    def mixed_sources(self) -> dict[tuple[str, ...], int]:
        """The unit of each ``merge`` wire of the program that sums a mixed op's candidates."""
        by_key = {(u.scope, u.serial): i for i, u in enumerate(self.units)}
        out: dict[tuple[str, ...], int] = {}
        for step in self.program:
            if isinstance(step, Wire) and step.kind == "merge" and step.sources:
                scope, sep, rest = step.sources[0].rpartition("#p")
                if sep and rest.split(".")[0].isdigit():
                    u = by_key.get((scope, int(rest.split(".")[0])))
                    if u is not None:
                        out[step.sources] = u
        return out

    def derive(self, weights: Sequence[Sequence[float]], rule: str = "darts", keep: int = 2) -> Arch:
        """The arch of the searched space given each unit's op weights (softmax of ``alpha``).

        ``darts``: per node, the edges that can be ``none`` keep their ``keep`` strongest (the
        strength of a mixed op is its largest non-``none`` weight), the others become ``none``;
        a pool of ``m`` edges takes the ``m`` strongest inputs (in increasing order); every kept
        op is its mixed op's strongest non-``none`` candidate. ``argmax``: every mixed op takes its
        strongest candidate, ``none`` included, and a pool its inputs of largest weight."""
        if rule not in ("darts", "argmax"):
            raise ConfigError(f"unknown genotype rule {rule!r} (darts, argmax)")
        if len(weights) != len(self.units):
            raise ConfigError(f"{len(weights)} weight rows for {len(self.units)} mixed ops")
        allow_none = rule == "argmax"

        def best(u: int, with_none: bool = allow_none) -> int:
            cands = self.units[u].candidates
            idx = [i for i, c in enumerate(cands) if with_none or c.kind != "none"] or list(range(len(cands)))
            return max(idx, key=lambda i: weights[u][i])

        def strength(u: int) -> float:
            return float(weights[u][best(u)])

        values: dict[str, Any] = {}

        def put(scope: str, u: int, i: int) -> None:
            for rel, v in self.units[u].candidates[i].values:
                values[f"{scope}.{rel}"] = v

        for plan in self.nodes:
            droppable = [(e, u) for e, u in plan.edges if any(c.kind == "none" for c in self.units[u].candidates)]
            kept = {e for e, _ in sorted(droppable, key=lambda eu: -strength(eu[1]))[:keep]}
            for e, u in plan.edges:
                if rule == "darts" and any(e == d for d, _ in droppable) and e not in kept:
                    none = next(i for i, c in enumerate(self.units[u].candidates) if c.kind == "none")
                    put(f"{plan.prefix}.{e}", u, none)
                else:
                    put(f"{plan.prefix}.{e}", u, best(u))
            for names, inputs, units in plan.pools:
                ranked = sorted(range(len(inputs)), key=lambda k: -strength(units[k]))[: len(names)]
                for e, k in zip(names, sorted(ranked)):
                    values[f"{plan.prefix}.{e}.input"] = inputs[k]
                    put(f"{plan.prefix}.{e}", units[k], best(units[k]))
            if plan.node_op is not None:
                put(plan.prefix, plan.node_op, best(plan.node_op))
        base = self.base
        arch = _complete(self.space, {**{p: v for p, v in base.items() if p not in self.relaxed_paths}, **values})
        try:
            return self.space.validate(arch)
        except InvalidArchError as exc:
            raise ConfigError(f"DARTS derived an arch the space {self.space.name!r} refuses: {exc}") from None


# -- helpers ------------------------------------------------------------------------------------
def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _complete(space: Space, values: Mapping[str, Any]) -> dict[str, Any]:
    """The arch that takes ``values`` where they name a decision it has, else the defaults
    (only the active decisions; one walk when the space has no constraint)."""
    answers = {d.path: d.default for d in space.decisions()}
    answers.update(values)
    if not space.constraints:
        return dict(space.complete(answers, 0))  # every decision it meets has an answer: no randomness
    out: dict[str, Any] = {}
    while True:  # decision by decision: a constraint violation is the caller's to report
        d = space.next_decision(out)
        if d is None:
            return out
        out[d.path] = d.check(answers[d.path])


def _structure_key(op: Node) -> Any:
    """Equal for ops of the same declarative form (their decisions and candidates are alike)."""
    try:
        return repr(_node_to_data(op))
    except SpaceDefinitionError:  # pragma: no cover - every DSL node has a declarative form
        return ("id", id(op))


def _top_cells(node: Any, out: dict[int, Cell], seen: set[int]) -> None:
    """Every :class:`~spaces.Cell` of a space's tree that is not inside another cell, by serial."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, Cell):
        out.setdefault(node.serial, node)
        return
    if isinstance(node, (list, tuple)):
        for x in node:
            _top_cells(x, out, seen)
    elif isinstance(node, dict):
        for x in node.values():
            _top_cells(x, out, seen)
    elif isinstance(node, (Node, CellNode, Edge)):
        for x in vars(node).values():
            _top_cells(x, out, seen)


def _owner(prefix: str, exclude: Sequence[str]) -> Callable[[str], bool]:
    """Paths under ``prefix`` that are not (under) one of ``exclude``."""
    head = f"{prefix}."

    def owns(path: str) -> bool:
        return path.startswith(head) and not any(path == x or path.startswith(f"{x}.") for x in exclude)

    return owns


def _configs(
    space: Space, base: Mapping[str, Any], prefix: str, owns: Callable[[str], bool], op: Node, cache: dict[Any, Any]
) -> list[Candidate]:
    """Every assignment of the decisions under ``prefix`` that ``owns`` selects, the decisions of
    ``op`` (the others as in ``base``), in walk order; ops of one declarative form share them."""
    key = _structure_key(op)
    if key not in cache:
        cache[key] = _enumerate(space, base, prefix, owns)
    return list(cache[key])


def _enumerate(space: Space, base: Mapping[str, Any], prefix: str, owns: Callable[[str], bool]) -> list[Candidate]:
    start = {p: v for p, v in base.items() if not owns(p)}
    out: list[Candidate] = []
    cut = len(prefix) + 1

    def dfs(values: dict[str, Any]) -> None:
        while True:
            d = space.next_decision(values)
            if d is None:
                out.append(Candidate(tuple((p[cut:], v) for p, v in values.items() if owns(p))))
                if len(out) > MAX_CANDIDATES:
                    raise ConfigError(
                        f"DARTS would mix more than {MAX_CANDIDATES} candidate ops at {prefix} (every "
                        f"combination of the choices under it); fix some of them with DartsConfig.fixed "
                        f"or simplify the op"
                    )
                return
            if owns(d.path):
                for o in d.options:
                    dfs({**values, d.path: o})
                return
            values = {**values, d.path: d.check(base.get(d.path, d.default))}

    dfs(start)
    return out


def _mixed(op: Node, n: int) -> Parallel:
    """The relaxed op: ``n`` copies of ``op`` (each in ``Sequential({"op": op})``, so that its
    decisions keep their paths relative to the branch) summed."""
    return Parallel({f"_c{i}": Sequential({"op": op}) for i in range(n)}, merge="add")


def _kinds(program: Sequence[ResolvedBlock | Wire], unit: Unit) -> list[Candidate]:
    """``unit``'s candidates with their kind, read off the ops of their blocks in ``program``."""
    ops: dict[int, list[str]] = {i: [] for i in range(len(unit.candidates))}
    for step in program:
        if not isinstance(step, ResolvedBlock):
            continue
        for i in ops:
            branch = f"{unit.scope}._c{i}.op"
            if step.path == branch or step.path.startswith(f"{branch}."):
                ops[i].append(step.op)
    out = []
    for i, c in enumerate(unit.candidates):
        o = ops[i]
        kind = "none" if o and all(x == "zero" for x in o) else "skip" if all(x == "skip" for x in o) else "op"
        out.append(Candidate(c.values, kind))
    return out


# -- the relaxation -------------------------------------------------------------------------------
def relax_space(space: Space, fixed: Mapping[str, Any] | None = None) -> Relaxation:
    """Relax the choices inside the cells of ``space`` (see the module docstring); ``fixed`` sets
    decisions DARTS does not search (decision path → value; others take their default)."""
    fixed = dict(fixed or {})
    for path, value in fixed.items():
        try:
            fixed[path] = space.decision(path).check(value)
        except InvalidArchError as exc:
            raise ConfigError(f"DARTS fixed: {exc}") from None
    try:
        base = space.validate(_complete(space, fixed))
    except InvalidArchError as exc:
        raise ConfigError(f"DARTS: the fixed and default values make no arch of {space.name!r}: {exc}") from None

    # the active cells and the scopes they are walked in (one per repetition of a non-shared repeat)
    prefixes: dict[int, list[str]] = {}
    for step in space.program(base):
        if isinstance(step, Wire) and step.kind == "save":
            m = _CELL_SLOT.match(step.slot)
            if m and m.group(1) not in prefixes.setdefault(int(m.group(2)), []):
                prefixes[int(m.group(2))].append(m.group(1))
    cells: dict[int, Cell] = {}
    _top_cells(space.body, cells, set())
    active = {s: c for s, c in cells.items() if s in prefixes}
    if not active:
        raise ConfigError(
            f"DARTS relaxes the choices inside cells (Cell nodes); space {space.name!r} has no cell"
            f"{' in the arch of the fixed and default values' if cells else ''}: use another searcher"
        )

    units: list[Unit] = []
    plans: list[_NodePlan] = []
    cache: dict[Any, Any] = {}
    replaced: dict[int, Cell] = {}
    for serial, cell in active.items():
        first = prefixes[serial][0]
        # per node: ("edge", name, candidates) | ("pool", names, inputs, candidates) and the node op's candidates
        layout: list[tuple[str, list[tuple[Any, ...]], list[Candidate]]] = []
        new_nodes: dict[str, CellNode] = {}
        for name, cnode in cell.nodes:
            nprefix = _join(first, name)
            edge_names = [e for e, _ in cnode.edges]
            summed = len(cnode.edges) == 1 or (isinstance(cnode.merge, str) and cnode.merge == "add")
            groups: dict[Any, list[str]] = {}
            ecands: dict[str, list[Candidate]] = {}
            for e, edge in cnode.edges:
                eprefix = _join(nprefix, e)
                ecands[e] = (
                    [Candidate(())]
                    if edge.op is None
                    else _configs(space, base, eprefix, _owner(eprefix, [f"{eprefix}.input"]), edge.op, cache)
                )
                if isinstance(edge.input, Choice) and summed and len(ecands[e]) > 1:
                    key = (edge.input.options, repr(_node_to_data(edge.op)))
                    groups.setdefault(key, []).append(e)
            pools = {tuple(g): key[0] for key, g in groups.items() if len(g) <= len(key[0])}
            pooled = {e for g in pools for e in g}
            edges_out: dict[str, Edge] = {}
            items: list[tuple[Any, ...]] = []
            by_name = dict(cnode.edges)
            for e, edge in cnode.edges:
                if e in pooled:
                    continue
                if len(ecands[e]) > 1:
                    assert edge.op is not None
                    par = _mixed(edge.op, len(ecands[e]))
                    edges_out[e] = Edge(edge.input, par)
                    items.append(("edge", e, par.serial, ecands[e]))
                else:
                    edges_out[e] = edge
            for g, (names, inputs) in enumerate(pools.items()):
                op = by_name[names[0]].op
                assert op is not None
                serials = []
                for j in inputs:
                    par = _mixed(op, len(ecands[names[0]]))
                    edges_out[f"_darts{g}_in{j}"] = Edge(j, par)
                    serials.append(par.serial)
                items.append(("pool", names, inputs, tuple(serials), ecands[names[0]], g))
            exclude = [f"{nprefix}.merge", *(_join(nprefix, e) for e in edge_names)]
            ncands = (
                [] if cnode.op is None else _configs(space, base, nprefix, _owner(nprefix, exclude), cnode.op, cache)
            )
            node_op: Node | None = cnode.op
            if len(ncands) > 1:
                assert cnode.op is not None
                par = _mixed(cnode.op, len(ncands))
                node_op = par
                items.append(("node_op", par.serial, ncands))
            merge = "add" if pooled and len(cnode.edges) == 1 else cnode.merge
            new_nodes[name] = CellNode(edges_out, merge=merge, op=node_op)
            layout.append((name, items, ncands))
        try:
            replaced[id(cell)] = Cell(new_nodes, output=list(cell.output), merge=cell.merge, params=cell.params)
        except SpaceDefinitionError as exc:  # pragma: no cover - the relaxed cell keeps the cell's wiring
            raise ConfigError(f"DARTS cannot relax the cell at {first or '<root>'}: {exc}") from None
        for prefix in prefixes[serial]:
            for name, items, _ in layout:
                nprefix = _join(prefix, name)
                plan = _NodePlan(nprefix)
                for item in items:
                    if item[0] == "edge":
                        _, e, par_serial, cands = item
                        plan.edges.append((e, len(units)))
                        units.append(Unit(_join(nprefix, e), "edge", _join(nprefix, e), par_serial, cands))
                    elif item[0] == "pool":
                        _, names, inputs, serials, cands, g = item
                        ids = []
                        for j, par_serial in zip(inputs, serials):
                            ids.append(len(units))
                            units.append(
                                Unit(f"{nprefix}[{j}]", "input", _join(nprefix, f"_darts{g}_in{j}"), par_serial, cands)
                            )
                        plan.pools.append((names, inputs, tuple(ids)))
                    else:
                        _, par_serial, cands = item
                        plan.node_op = len(units)
                        units.append(Unit(f"{nprefix}.op", "node_op", nprefix, par_serial, cands))
                if plan.edges or plan.pools or plan.node_op is not None:
                    plans.append(plan)
    if not units:
        raise ConfigError(
            f"space {space.name!r} has cells but no choice inside them for DARTS to relax (an op choice on "
            f"an edge or a node, or an edge's input among earlier nodes)"
        )

    memo: dict[int, Any] = dict(replaced)
    body = copy.deepcopy(space.body, memo)
    try:
        relaxed = Space(
            f"{space.name}-darts-supernet",
            body,
            in_chans=space.in_chans,
            num_classes=space.num_classes,
            resolution=space.resolution,
            description=f"the DARTS supernet of {space.name}",
        )
    except SpaceDefinitionError as exc:
        raise ConfigError(f"DARTS cannot relax space {space.name!r}: {exc}") from None
    answers: dict[str, Any] = {}
    for u in units:
        for i, c in enumerate(u.candidates):
            for rel, v in c.values:
                answers[f"{u.scope}._c{i}.op.{rel}"] = v
    try:
        arch = Arch(_complete(relaxed, {**base, **answers}))
        program = relaxed.program(arch)
    except (SpaceDefinitionError, InvalidArchError) as exc:
        raise ConfigError(f"DARTS sums the options of each relaxed choice, and here it cannot: {exc}") from None
    for u in units:
        u.candidates = _kinds(program, u)
    relaxed_paths = {f"{p.prefix}.{e}.input" for p in plans for names, _, _ in p.pools for e in names}
    for p in plans:
        for e, k in p.edges:
            relaxed_paths.update(f"{p.prefix}.{e}.{rel}" for c in units[k].candidates for rel, _ in c.values)
        for names, _, pool_units in p.pools:
            relaxed_paths.update(
                f"{p.prefix}.{e}.{rel}" for e in names for c in units[pool_units[0]].candidates for rel, _ in c.values
            )
        if p.node_op is not None:
            relaxed_paths.update(f"{p.prefix}.{rel}" for c in units[p.node_op].candidates for rel, _ in c.values)
    fixed_out = {p: v for p, v in base.items() if p not in relaxed_paths and len(space.decision(p).options) > 1}
    return Relaxation(space, relaxed, arch, program, units, base, fixed_out, plans, relaxed_paths)

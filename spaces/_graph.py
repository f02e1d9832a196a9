"""Graph nodes of the DSL: cells (DAGs), parallel branches, residuals and value-selected structures.

A chain space adds blocks one after the other; the nodes here add *wiring* too (see
:mod:`spaces._program`), so that a walked arch is a program a network runs:

* :class:`Cell`: a DAG. Node 0 is the cell's input; node ``k`` (the ``k``-th entry of
  ``nodes``, 1-based) combines one or more :class:`Edge`\\ s, each applying an op (a structure
  node, or none for identity) to an earlier node chosen by its ``input``: an int, or a value
  node (``Choice([0, 1, 2])``, ``Ref``, ``Derived``) giving the index of an earlier node. The
  edges are merged (``add`` or ``concat``, or a ``Choice`` of them) and an optional node op is
  applied. The cell outputs one node, or merges several (``concat`` by default, as DARTS).
* :class:`Parallel` (``Add``, ``Concat``): named branches applied to the same input, merged.
* :class:`Residual`: ``inner(x) + shortcut(x)`` (identity shortcut by default).
* :class:`Switch`: one of several fixed structures, selected by a value (usually a ``Ref`` to a
  decision bound higher up): how several cells share one set of op decisions.

Scopes: a cell node ``n`` opens ``<scope>.n``, its edge ``e`` opens ``<scope>.n.e`` (edge input
decision ``input``, op decisions under the op's label ``op``); the node's ``merge`` and ``op``
decisions live in ``<scope>.n``. A parallel branch ``b`` opens ``<scope>.b``; a residual's inner
node stays in the residual's scope, its shortcut opens ``<scope>.shortcut``. They compose with
every other node: cells inside ``Repeat``/``Or``/``Optional``, any structure as an edge op.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hwnas.errors import SpaceDefinitionError
from spaces._nodes import (
    Branches,
    Choice,
    Decision,
    Node,
    _bind_params,
    _check_extent,
    _check_label,
    _check_params,
    _check_structure,
    _check_value_node,
    _dedupe,
    _params_extent,
    _State,
    _value_decisions,
    _value_extent,
    _value_size,
    _Walk,
    _walk_value,
    index_of,
)
from spaces._program import MERGES, ResolvedMerge, Wire

__all__ = ["Add", "Cell", "CellNode", "Concat", "Edge", "Parallel", "Residual", "Switch"]

_SERIAL = itertools.count()
Shape = tuple[int, int, int]


# -- helpers -------------------------------------------------------------------------------
def _state(st: _State, *, shape: Shape | None = None, scope: Any = None, wires: Iterable[Wire] = ()) -> _State:
    return _State(
        st.shape if shape is None else shape,
        st.scope if scope is None else scope,
        st.decided,
        st.blocks + tuple(wires),
        st.shared_depth,
    )


def _emit(walk: _Walk, st: _State, *wires: Wire) -> _State:
    """``st`` with ``wires`` appended to its program (only walks that record blocks keep them)."""
    return _state(st, wires=wires) if walk.record_all else st


def _check_merge(value: Any, where: str) -> Any:
    value = _check_value_node(value, where)
    options = value.options if isinstance(value, Choice) else (value,) if not isinstance(value, Node) else ()
    for o in options:
        if o not in MERGES or not isinstance(o, str):
            raise SpaceDefinitionError(f"{where}: a merge is one of {list(MERGES)}, got {o!r}")
    return value


def _merge_shape(mode: Any, shapes: Sequence[Shape], where: str) -> Shape:
    if mode not in MERGES or not isinstance(mode, str):
        raise SpaceDefinitionError(f"{where}: a merge is one of {list(MERGES)}, got {mode!r}")
    if mode == "add":
        if any(s != shapes[0] for s in shapes):
            raise SpaceDefinitionError(
                f"{where}: cannot add tensors of shapes {', '.join('x'.join(map(str, s)) for s in shapes)} "
                "(channels x height x width); match their ops' outputs or use concat"
            )
        return shapes[0]
    if any(s[1:] != shapes[0][1:] for s in shapes):
        raise SpaceDefinitionError(
            f"{where}: cannot concatenate tensors of sizes {', '.join(f'{s[1]}x{s[2]}' for s in shapes)}; "
            "their spatial sizes must match"
        )
    return (sum(s[0] for s in shapes), shapes[0][1], shapes[0][2])


def _merge(
    walk: _Walk,
    st: _State,
    merge: Any,
    label: str,
    slots: Sequence[str],
    shapes: Sequence[Shape],
    part: str = "merge",
) -> Branches:
    """Walk the merge value and merge ``slots`` (of ``shapes``): ``[(shape, state)]``. The merge
    is a :class:`ResolvedMerge` at ``<scope>.<part>``: carried by its wire in a concrete walk,
    collected (``walk.merges``) in a block enumeration."""
    out: Branches = []
    for mode, st2 in _walk_value(walk, st, merge, label):
        prefix = st2.scope.prefix
        shape = _merge_shape(mode, shapes, prefix or "<root>")
        resolved = ResolvedMerge(f"{prefix}.{part}" if prefix else part, mode, tuple(shapes))
        if not walk.record_all:
            walk.merges.setdefault(resolved.signature(), resolved)
        wire = Wire("merge", sources=tuple(slots), mode=mode, part=resolved)
        out.append((shape, _state(_emit(walk, st2, wire), shape=shape)))
    return out


def _dedupe_shaped(items: list[tuple[Any, _State]]) -> list[tuple[Any, _State]]:
    if len(items) < 2:
        return items
    seen: dict[Any, tuple[Any, _State]] = {}
    for extra, st in items:
        seen.setdefault((extra, st.key()), (extra, st))
    return list(seen.values())


def _structure_or_none(node: Any, where: str) -> Node | None:
    return None if node is None else _check_structure(node, where)


def _walk_optional(walk: _Walk, st: _State, node: Node | None, label: str | None) -> Branches:
    return [(None, st)] if node is None else node.walk(walk, st, label)


def _size(node: Node | None) -> int:
    return 1 if node is None else node.size()


def _extent(node: Node | None) -> int:
    return 0 if node is None else node.extent()


# -- cells -----------------------------------------------------------------------------------
class Edge:
    """An edge of a cell node: ``op`` (a structure node; ``None`` is identity) applied to node
    ``input`` (an int, or a value node giving an int: ``Choice([0, 1])``, ``Ref``, ``Derived``)."""

    def __init__(self, input: Any, op: Node | None = None) -> None:
        self.input = _check_value_node(input, "Edge input")
        if isinstance(self.input, bool) or not isinstance(self.input, (int, Node)):
            raise SpaceDefinitionError(f"an Edge input is a node index or a value node, got {input!r}")
        self.op = _structure_or_none(op, "Edge op")

    def _input_options(self) -> tuple[Any, ...]:
        if isinstance(self.input, Choice):
            return self.input.options
        return () if isinstance(self.input, Node) else (self.input,)

    def __repr__(self) -> str:
        return f"Edge({self.input!r}, {self.op!r})"


class CellNode:
    """A node of a :class:`Cell`: its edges merged by ``merge`` (``add``, ``concat`` or a
    ``Choice`` of them), then ``op`` (optional structure node).

    ``edges`` is a sequence (named ``e0``, ``e1``, ...) or a mapping of name to :class:`Edge`;
    a bare input (int or value node) stands for an identity edge from that node.
    """

    def __init__(
        self,
        edges: Mapping[str, Any] | Sequence[Any],
        merge: Any = "add",
        op: Node | None = None,
    ) -> None:
        items = list(edges.items()) if isinstance(edges, Mapping) else [(f"e{i}", e) for i, e in enumerate(edges)]
        if not items:
            raise SpaceDefinitionError("a CellNode needs at least one edge")
        names = [n for n, _ in items]
        if len(set(names)) != len(names):
            raise SpaceDefinitionError(f"CellNode edge names must be unique, got {names}")
        self.edges = [(_check_label(n, "Edge"), e if isinstance(e, Edge) else Edge(e)) for n, e in items]
        self.merge = _check_merge(merge, "CellNode merge")
        self.op = _structure_or_none(op, "CellNode op")

    @property
    def list_form(self) -> bool:
        """True when the edges are named ``e0``, ``e1``, ... in order (written as a YAML list)."""
        return [n for n, _ in self.edges] == [f"e{i}" for i in range(len(self.edges))]

    def size(self) -> int:
        n = _size(self.op) * (_value_size(self.merge) if len(self.edges) > 1 else 1)
        for _, e in self.edges:
            n *= _value_size(e.input) * _size(e.op)
        return n

    def extent(self) -> int:
        return (
            2
            + _value_extent(self.merge)
            + _extent(self.op)
            + sum(3 + _value_extent(e.input) + _extent(e.op) for _, e in self.edges)
        )

    def __repr__(self) -> str:
        return f"CellNode({self.edges!r}, merge={self.merge!r}, op={self.op!r})"


class Cell(Node):
    """A DAG of :class:`CellNode`\\ s (see the module docstring); ``output`` names the node the
    cell outputs (default: the last) or several nodes merged by ``merge`` (default ``concat``);
    ``params`` bind named values for the whole cell, as in :class:`~spaces.Sequential`."""

    def __init__(
        self,
        nodes: Mapping[str, CellNode] | Iterable[tuple[str, CellNode]],
        output: str | Sequence[str] | None = None,
        merge: Any = "concat",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        items = list(nodes.items()) if isinstance(nodes, Mapping) else list(nodes)
        if not items:
            raise SpaceDefinitionError("a Cell needs at least one node")
        self.nodes: list[tuple[str, CellNode]] = []
        for k, (name, node) in enumerate(items, start=1):
            _check_label(name, "Cell node")
            if name in dict(self.nodes):
                raise SpaceDefinitionError(f"Cell node names must be unique, {name!r} repeats")
            if not isinstance(node, CellNode):
                raise SpaceDefinitionError(f"Cell node {name!r}: expected a CellNode, got {node!r}")
            for ename, e in node.edges:
                for o in e._input_options():
                    if isinstance(o, bool) or not isinstance(o, int) or not 0 <= o < k:
                        raise SpaceDefinitionError(
                            f"Cell node {name!r} edge {ename!r}: input {o!r} is not an earlier node "
                            f"(0 = the cell input, 1..{k - 1} = the nodes before)"
                        )
            self.nodes.append((name, node))
        index = {name: k for k, (name, _) in enumerate(self.nodes, start=1)}
        outs = [self.nodes[-1][0]] if output is None else [output] if isinstance(output, str) else list(output)
        if not outs:
            raise SpaceDefinitionError("a Cell output names at least one node")
        for o in outs:
            if o not in index:
                raise SpaceDefinitionError(f"Cell output {o!r} is not a node (nodes: {', '.join(index)})")
        self.output = tuple(outs)
        self._output_index = tuple(index[o] for o in outs)
        self.merge = _check_merge(merge, "Cell merge")
        self.params = _check_params(params, "Cell")
        self.serial = next(_SERIAL)
        _check_extent(self, "Cell")

    def is_value(self) -> bool:
        return False

    def _slot(self, prefix: str, k: int, edge: int | None = None) -> str:
        base = f"{prefix}#c{self.serial}.{k}"
        return base if edge is None else f"{base}.{edge}"

    def walk(self, walk: _Walk, state: _State, label: str | None) -> Branches:
        outer = state.scope
        prefix = outer.prefix
        entry = state
        if not walk.record_all and state.shared_depth:
            # block enumeration: a cell's decisions are forgotten once its edges are walked, also
            # inside a shared repeat (a superset of the blocks; exactness would keep one state per
            # combination of the cell's decisions through the rest of the network)
            state = _State(state.shape, state.scope, state.decided, state.blocks, 0)
        starts = _bind_params(walk, _state(state, scope=outer.layer()), self.params)
        items: list[tuple[Any, _State]] = [
            ((st.shape,), _emit(walk, st, Wire("save", self._slot(prefix, 0)))) for st in starts
        ]
        for k, (name, cnode) in enumerate(self.nodes, start=1):
            nxt: list[tuple[Any, _State]] = []
            for shapes, st in items:
                inner = _state(st, scope=st.scope.child(name))
                for shape, st2 in self._walk_node(walk, inner, cnode, shapes, prefix, k):
                    st3 = _emit(walk, st2, Wire("save", self._slot(prefix, k)))
                    nxt.append((shapes + (shape,), _state(st3, scope=st.scope)))
            items = _dedupe_shaped(nxt)
        out: Branches = []
        for shapes, st in items:
            if len(self._output_index) == 1:
                k = self._output_index[0]
                # the last node is already the current tensor
                done = st if k == len(self.nodes) else _emit(walk, st, Wire("load", self._slot(prefix, k)))
                out.append((None, _state(done, shape=shapes[k], scope=outer)))
                continue
            slots = [self._slot(prefix, k) for k in self._output_index]
            for _, st2 in _merge(walk, st, self.merge, "merge", slots, [shapes[k] for k in self._output_index]):
                out.append((None, _state(st2, scope=outer)))
        if entry.shared_depth != state.shared_depth:
            out = [(v, _State(st.shape, st.scope, st.decided, st.blocks, entry.shared_depth)) for v, st in out]
        return _dedupe(out)

    def _walk_node(
        self, walk: _Walk, state: _State, cnode: CellNode, shapes: tuple[Shape, ...], prefix: str, k: int
    ) -> Branches:
        where = state.scope.prefix
        many = len(cnode.edges) > 1
        partial: list[tuple[Any, _State]] = [((), state)]
        for e, (ename, edge) in enumerate(cnode.edges):
            nxt: list[tuple[Any, _State]] = []
            for eshapes, st in partial:
                est = _state(st, scope=st.scope.child(ename))
                for idx, st2 in _walk_value(walk, est, edge.input, "input"):
                    if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < len(shapes):
                        raise SpaceDefinitionError(
                            f"{est.scope.prefix}: input {idx!r} is not an earlier node (0..{len(shapes) - 1})"
                        )
                    st3 = _state(_emit(walk, st2, Wire("load", self._slot(prefix, idx))), shape=shapes[idx])
                    for _, st4 in _walk_optional(walk, st3, edge.op, "op"):
                        if many:
                            st4 = _emit(walk, st4, Wire("save", self._slot(prefix, k, e)))
                        nxt.append((eshapes + (st4.shape,), _state(st4, scope=st.scope)))
            partial = _dedupe_shaped(nxt)
        out: Branches = []
        for eshapes, st in partial:
            merged: Branches = [(eshapes[0], st)]
            if many:
                slots = [self._slot(prefix, k, e) for e in range(len(cnode.edges))]
                merged = _merge(walk, st, cnode.merge, "merge", slots, eshapes)
            for _, st2 in merged:
                for _, st3 in _walk_optional(walk, st2, cnode.op, "op"):
                    out.append((st3.shape, st3))
        if not out and not partial:  # pragma: no cover - a walk always has an outcome
            raise SpaceDefinitionError(f"{where}: no outcome")
        return _dedupe_shaped(out)

    def size(self) -> int:
        n = 1
        for v in self.params.values():
            n *= _value_size(v)
        for _, cnode in self.nodes:
            n *= cnode.size()
        return n * (_value_size(self.merge) if len(self.output) > 1 else 1)

    def extent(self) -> int:
        return 2 + _params_extent(self.params) + _value_extent(self.merge) + sum(c.extent() for _, c in self.nodes)

    def list_decisions(self, prefix: str, label: str | None, out: list[Decision]) -> None:
        for name, v in self.params.items():
            _value_decisions(v, prefix, name, out)
        for name, cnode in self.nodes:
            npre = f"{prefix}.{name}" if prefix else name
            for ename, edge in cnode.edges:
                epre = f"{npre}.{ename}"
                _value_decisions(edge.input, epre, "input", out)
                if edge.op is not None:
                    edge.op.list_decisions(epre, "op", out)
            if len(cnode.edges) > 1:
                _value_decisions(cnode.merge, npre, "merge", out)
            if cnode.op is not None:
                cnode.op.list_decisions(npre, "op", out)
        if len(self.output) > 1:
            _value_decisions(self.merge, prefix, "merge", out)

    def __repr__(self) -> str:
        return f"Cell({[n for n, _ in self.nodes]!r}, output={list(self.output)!r})"


# -- parallel branches, residuals ---------------------------------------------------------------
class Parallel(Node):
    """Named branches (structure nodes) applied to the same input, merged by ``merge``
    (``add``, ``concat`` or a ``Choice`` of them, labelled ``merge``); branch ``b`` opens the
    scope ``<scope>.b``."""

    default_merge = "add"

    def __init__(
        self,
        branches: Mapping[str, Node] | Iterable[tuple[str, Node]],
        merge: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        items = list(branches.items()) if isinstance(branches, Mapping) else list(branches)
        if len(items) < 1:
            raise SpaceDefinitionError(f"{type(self).__name__} needs at least one branch")
        names = [n for n, _ in items]
        if len(set(names)) != len(names):
            raise SpaceDefinitionError(f"{type(self).__name__} branch names must be unique, got {names}")
        self.branches = [(_check_label(n, "branch"), _check_structure(b, f"branch {n!r}")) for n, b in items]
        self.merge = _check_merge(self.default_merge if merge is None else merge, f"{type(self).__name__} merge")
        self.params = _check_params(params, type(self).__name__)
        self.serial = next(_SERIAL)
        _check_extent(self, type(self).__name__)

    def is_value(self) -> bool:
        return False

    def walk(self, walk: _Walk, state: _State, label: str | None) -> Branches:
        outer = state.scope
        slot_in = f"{outer.prefix}#p{self.serial}"
        starts = _bind_params(walk, _state(state, scope=outer.layer()), self.params)
        items: list[tuple[Any, _State]] = [((), _emit(walk, st, Wire("save", slot_in))) for st in starts]
        in_shape = state.shape
        for i, (name, branch) in enumerate(self.branches):
            nxt: list[tuple[Any, _State]] = []
            for shapes, st in items:
                inner = _state(_emit(walk, st, Wire("load", slot_in)) if i else st, shape=in_shape)
                inner = _state(inner, scope=st.scope.child(name))
                for _, st2 in branch.walk(walk, inner, name):
                    st3 = _emit(walk, st2, Wire("save", f"{slot_in}.{i}"))
                    nxt.append((shapes + (st2.shape,), _state(st3, scope=st.scope)))
            items = _dedupe_shaped(nxt)
        out: Branches = []
        for shapes, st in items:
            slots = [f"{slot_in}.{i}" for i in range(len(self.branches))]
            for _, st2 in _merge(walk, st, self.merge, "merge", slots, shapes):
                out.append((None, _state(st2, scope=outer)))
        return _dedupe(out)

    def size(self) -> int:
        n = _value_size(self.merge)
        for v in self.params.values():
            n *= _value_size(v)
        for _, b in self.branches:
            n *= b.size()
        return n

    def extent(self) -> int:
        return (
            2 + _params_extent(self.params) + _value_extent(self.merge) + sum(2 + b.extent() for _, b in self.branches)
        )

    def list_decisions(self, prefix: str, label: str | None, out: list[Decision]) -> None:
        for name, v in self.params.items():
            _value_decisions(v, prefix, name, out)
        for name, b in self.branches:
            b.list_decisions(f"{prefix}.{name}" if prefix else name, name, out)
        _value_decisions(self.merge, prefix, "merge", out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({[n for n, _ in self.branches]!r}, merge={self.merge!r})"


class Add(Parallel):
    """:class:`Parallel` branches summed."""

    def __init__(
        self, branches: Mapping[str, Node] | Iterable[tuple[str, Node]], params: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(branches, "add", params)


class Concat(Parallel):
    """:class:`Parallel` branches concatenated along channels."""

    def __init__(
        self, branches: Mapping[str, Node] | Iterable[tuple[str, Node]], params: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(branches, "concat", params)


class Residual(Node):
    """``inner(x) + shortcut(x)``: ``inner`` walks in the residual's own scope (a substitution
    that adds no path level); ``shortcut`` (default identity) opens ``<scope>.shortcut``."""

    def __init__(self, inner: Node, shortcut: Node | None = None) -> None:
        self.inner = _check_structure(inner, "Residual inner")
        self.shortcut = _structure_or_none(shortcut, "Residual shortcut")
        self.serial = next(_SERIAL)
        _check_extent(self, "Residual")

    def is_value(self) -> bool:
        return False

    def walk(self, walk: _Walk, state: _State, label: str | None) -> Branches:
        slot = f"{state.scope.prefix}#r{self.serial}"
        start = _emit(walk, state, Wire("save", slot))
        out: Branches = []
        for _, st in self.inner.walk(walk, start, label):
            body = _emit(walk, st, Wire("save", f"{slot}.body"))
            if self.shortcut is None:
                for _, st2 in _merge(
                    walk, body, "add", "merge", [f"{slot}.body", slot], [st.shape, state.shape], part="residual"
                ):
                    out.append((None, st2))
                continue
            sc = _state(_emit(walk, body, Wire("load", slot)), shape=state.shape, scope=st.scope.child("shortcut"))
            for _, st2 in self.shortcut.walk(walk, sc, "shortcut"):
                st3 = _state(_emit(walk, st2, Wire("save", f"{slot}.short")), scope=st.scope)
                for _, st4 in _merge(
                    walk, st3, "add", "merge", [f"{slot}.body", f"{slot}.short"], [st.shape, st2.shape], part="residual"
                ):
                    out.append((None, st4))
        return _dedupe(out)

    def size(self) -> int:
        return self.inner.size() * _size(self.shortcut)

    def extent(self) -> int:
        return 4 + self.inner.extent() + _extent(self.shortcut)

    def list_decisions(self, prefix: str, label: str | None, out: list[Decision]) -> None:
        self.inner.list_decisions(prefix, label, out)
        if self.shortcut is not None:
            self.shortcut.list_decisions(f"{prefix}.shortcut" if prefix else "shortcut", "shortcut", out)

    def __repr__(self) -> str:
        return f"Residual({self.inner!r}, shortcut={self.shortcut!r})"


class Switch(Node):
    """One of several fixed structures (``cases``: literal → structure node without decisions, or
    ``None`` for nothing),
    selected by the value ``on`` (a ``Ref`` to a decision bound higher up, a ``Derived``, or a
    literal). Several cells switching on the same ``Ref`` share that decision; the cases walk in
    the switch's own scope."""

    def __init__(self, on: Any, cases: Mapping[Any, Node | None]) -> None:
        self.on = _check_value_node(on, "Switch on")
        if not isinstance(cases, Mapping) or not cases:
            raise SpaceDefinitionError("Switch needs a non-empty mapping of value to structure node")
        keys = tuple(cases)
        for i, key in enumerate(keys):
            if not isinstance(key, (int, float, str, bool)):
                raise SpaceDefinitionError(f"Switch case keys must be literals, got {key!r}")
            if index_of(keys[:i], key) >= 0:
                raise SpaceDefinitionError(f"Switch case {key!r} appears twice")
        self.cases = {k: _structure_or_none(v, f"Switch case {k!r}") for k, v in cases.items()}
        for key, case in self.cases.items():
            if _size(case) != 1:
                raise SpaceDefinitionError(
                    f"Switch case {key!r} has decisions of its own; a Switch selects among fixed structures "
                    "(use Or for a choice among structures with decisions)"
                )
        if isinstance(self.on, Choice):
            missing = [o for o in self.on.options if index_of(keys, o) < 0]
            if missing:
                raise SpaceDefinitionError(f"Switch has no case for {missing[0]!r}")
        elif not isinstance(self.on, Node) and index_of(keys, self.on) < 0:
            raise SpaceDefinitionError(f"Switch has no case for {self.on!r}")
        self._keys = keys
        _check_extent(self, "Switch")

    def is_value(self) -> bool:
        return False

    def walk(self, walk: _Walk, state: _State, label: str | None) -> Branches:
        out: Branches = []
        for value, st in _walk_value(walk, state, self.on, label or "switch"):
            i = index_of(self._keys, value)
            if i < 0:
                raise SpaceDefinitionError(
                    f"{st.scope.prefix or '<root>'}: Switch has no case for {value!r} (cases: {list(self._keys)})"
                )
            out.extend(_walk_optional(walk, st, self.cases[self._keys[i]], label))
        return _dedupe(out)

    def size(self) -> int:
        return _value_size(self.on)

    def extent(self) -> int:
        return 1 + _value_extent(self.on) + max(_extent(c) for c in self.cases.values())

    def list_decisions(self, prefix: str, label: str | None, out: list[Decision]) -> None:
        _value_decisions(self.on, prefix, label or "switch", out)

    def __repr__(self) -> str:
        return f"Switch({self.on!r}, {list(self._keys)!r})"


# -- the declarative (YAML) form ---------------------------------------------------------------
#: the kind keys of graph nodes in a space file, and the other keys each allows
GRAPH_KEYS: dict[str, set[str]] = {
    "cell": {"cell", "output", "merge", "params"},
    "parallel": {"parallel", "merge", "params"},
    "add": {"add", "params"},
    "concat": {"concat", "params"},
    "residual": {"residual", "shortcut"},
    "switch": {"switch", "cases"},
}


def graph_to_data(node: Node, to_data: Any) -> dict[str, Any] | None:
    """The declarative form of a graph node (``to_data`` writes its children), else ``None``."""
    if isinstance(node, Cell):
        nodes: dict[str, Any] = {}
        for name, cnode in node.nodes:
            edges = [_edge_to_data(e, to_data) for _, e in cnode.edges]
            d: dict[str, Any] = {"edges": edges if cnode.list_form else dict(zip((n for n, _ in cnode.edges), edges))}
            if not (isinstance(cnode.merge, str) and cnode.merge == "add"):
                d["merge"] = to_data(cnode.merge)
            if cnode.op is not None:
                d["op"] = to_data(cnode.op)
            nodes[name] = d
        out: dict[str, Any] = {"cell": nodes}
        if node.output != (node.nodes[-1][0],):
            out["output"] = node.output[0] if len(node.output) == 1 else list(node.output)
        if not (isinstance(node.merge, str) and node.merge == "concat"):
            out["merge"] = to_data(node.merge)
        if node.params:
            out["params"] = {k: to_data(v) for k, v in node.params.items()}
        return out
    if isinstance(node, Parallel):
        out = {"parallel": {name: to_data(b) for name, b in node.branches}, "merge": to_data(node.merge)}
        if node.params:
            out["params"] = {k: to_data(v) for k, v in node.params.items()}
        return out
    if isinstance(node, Residual):
        out = {"residual": to_data(node.inner)}
        if node.shortcut is not None:
            out["shortcut"] = to_data(node.shortcut)
        return out
    if isinstance(node, Switch):
        return {
            "switch": to_data(node.on),
            "cases": {k: None if v is None else to_data(v) for k, v in node.cases.items()},
        }
    return None


def _edge_to_data(edge: Edge, to_data: Any) -> Any:
    if edge.op is None:
        return to_data(edge.input)
    return {"input": to_data(edge.input), "op": to_data(edge.op)}


def graph_from_data(kind: str, data: Mapping[str, Any], path: str, from_data: Any, params_from_data: Any) -> Node:
    """Build the graph node of kind ``kind`` from its declarative form; ``from_data(value, path)``
    reads a child node, ``params_from_data(value, path)`` a ``params`` mapping."""
    if kind == "cell":
        raw = data["cell"]
        if not isinstance(raw, Mapping) or not raw:
            raise SpaceDefinitionError(f"{path}.cell: nodes must be a non-empty mapping of name to node")
        nodes = {str(name): _cell_node_from_data(v, f"{path}.cell.{name}", from_data) for name, v in raw.items()}
        output = data.get("output")
        if output is not None and not isinstance(output, (str, list)):
            raise SpaceDefinitionError(f"{path}.output: a node name or a list of node names, got {output!r}")
        return Cell(
            nodes,
            output=output,
            merge=from_data(data.get("merge", "concat"), f"{path}.merge"),
            params=params_from_data(data.get("params"), f"{path}.params"),
        )
    if kind in ("parallel", "add", "concat"):
        raw = data[kind]
        if not isinstance(raw, Mapping) or not raw:
            raise SpaceDefinitionError(f"{path}.{kind}: branches must be a non-empty mapping of name to node")
        branches = {str(k): from_data(v, f"{path}.{kind}.{k}") for k, v in raw.items()}
        params = params_from_data(data.get("params"), f"{path}.params")
        if kind == "add":
            return Add(branches, params=params)
        if kind == "concat":
            return Concat(branches, params=params)
        return Parallel(branches, merge=from_data(data.get("merge", "add"), f"{path}.merge"), params=params)
    if kind == "residual":
        shortcut = data.get("shortcut")
        return Residual(
            from_data(data["residual"], f"{path}.residual"),
            None if shortcut is None else from_data(shortcut, f"{path}.shortcut"),
        )
    if kind == "switch":
        cases = data.get("cases")
        if not isinstance(cases, Mapping) or not cases:
            raise SpaceDefinitionError(f"{path}.cases: a non-empty mapping of value to node (or null)")
        return Switch(
            from_data(data["switch"], f"{path}.switch"),
            {k: None if v is None else from_data(v, f"{path}.cases.{k}") for k, v in cases.items()},
        )
    raise AssertionError(kind)  # pragma: no cover


def _cell_node_from_data(data: Any, path: str, from_data: Any) -> CellNode:
    if not isinstance(data, Mapping) or "edges" not in data:
        raise SpaceDefinitionError(f"{path}: a cell node is {{edges: [...], merge: add, op: ...}}")
    extra = sorted(set(map(str, data)) - {"edges", "merge", "op"})
    if extra:
        raise SpaceDefinitionError(f"{path}: unknown key {extra[0]!r} for a cell node (keys: edges, merge, op)")
    raw = data["edges"]
    if isinstance(raw, list):
        edges: Any = [_edge_from_data(e, f"{path}.edges[{i}]", from_data) for i, e in enumerate(raw)]
    elif isinstance(raw, Mapping):
        edges = {str(k): _edge_from_data(e, f"{path}.edges.{k}", from_data) for k, e in raw.items()}
    else:
        raise SpaceDefinitionError(f"{path}.edges: a list or a mapping of edges, got {type(raw).__name__}")
    op = data.get("op")
    return CellNode(
        edges,
        merge=from_data(data.get("merge", "add"), f"{path}.merge"),
        op=None if op is None else from_data(op, f"{path}.op"),
    )


def _edge_from_data(data: Any, path: str, from_data: Any) -> Edge:
    if isinstance(data, Mapping) and "input" in data:
        extra = sorted(set(map(str, data)) - {"input", "op"})
        if extra:
            raise SpaceDefinitionError(f"{path}: unknown key {extra[0]!r} for an edge (keys: input, op)")
        op = data.get("op")
        return Edge(from_data(data["input"], f"{path}.input"), None if op is None else from_data(op, f"{path}.op"))
    return Edge(from_data(data, path))

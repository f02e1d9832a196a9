"""The building blocks of a search space (DeepArchitect-style, with lazy substitution).

A space is a tree of nodes. *Value* nodes produce a value (:class:`Choice`, :class:`Ref`,
:class:`Derived`, and :class:`Or` over values); *structure* nodes add blocks to the network
(:class:`Block`, :class:`Sequential`, :class:`Repeat`, :class:`Or` over structures,
:class:`Optional`). Decisions are addressed by dotted paths that follow the tree: a
:class:`Sequential` child named ``stage1`` opens the scope ``stage1``, a :class:`Repeat`
opens ``b0``, ``b1``, ... for its repetitions, an :class:`Or` opens one scope per branch.

Every traversal (sampling, validation, enumeration, Optuna define-by-run, block
enumeration for latency tables) goes through one walker, :func:`walk`, which asks a
*chooser* for the value of each decision it meets, in order, and only for decisions that
are active given the earlier answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hwnas.errors import InvalidArchError, SpaceDefinitionError, SpaceTooLargeError, UnknownNameError
from spaces._expr import Expression
from spaces._program import Wire
from spaces.catalog import get_op

__all__ = [
    "MAX_EXTENT",
    "MAX_RESOLVED_BLOCKS",
    "MAX_REPEAT_DEPTH",
    "Block",
    "Choice",
    "Decision",
    "Derived",
    "Node",
    "Optional",
    "Or",
    "Ref",
    "Repeat",
    "ResolvedBlock",
    "Sequential",
]

_LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: resource bounds of a space, checked when its nodes are built: the largest depth of one
#: :class:`Repeat`, and the most decisions and blocks a space may unfold to (nested repeats
#: multiply); real networks are far below both, and every walk over a space stays bounded
MAX_REPEAT_DEPTH = 1000
MAX_EXTENT = 100_000
#: the most block variants (a block with its parameters and input shape, before duplicates are
#: merged) one walk over every decision of a space may resolve (:meth:`Space.enumerate_blocks`):
#: the built-in spaces resolve at most about 20,000, this many take a few seconds
MAX_RESOLVED_BLOCKS = 100_000
_LITERALS = (int, float, str, bool)


def _check_label(label: str, what: str) -> str:
    if not isinstance(label, str) or not _LABEL_RE.match(label):
        raise SpaceDefinitionError(f"{what} label must be an identifier (letters, digits, _), got {label!r}")
    return label


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def same_value(a: Any, b: Any) -> bool:
    """Equality that keeps ``True`` and ``1`` apart (they are equal in Python)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b and (isinstance(a, str) == isinstance(b, str))


def index_of(options: tuple[Any, ...], value: Any) -> int:
    for i, option in enumerate(options):
        if same_value(option, value):
            return i
    return -1


# --------------------------------------------------------------------------------------
# Resolved output
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResolvedBlock:
    """One concrete block of a network, with the shape of its input.

    ``params`` are the op's complete parameters (defaults filled); ``cin``/``h``/``w``
    describe the input, ``cout``/``h_out``/``w_out`` the output.
    """

    path: str
    op: str
    params: tuple[tuple[str, Any], ...]
    cin: int
    h: int
    w: int
    cout: int
    h_out: int
    w_out: int

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def signature(self) -> tuple[Any, ...]:
        """Everything about the block but its position: equal signatures build equal blocks."""
        return (self.op, self.params, self.cin, self.h, self.w)


@dataclass(frozen=True)
class Decision:
    """A decision the walker asks for: its path, options, default and kind."""

    path: str
    options: tuple[Any, ...]
    default: Any
    kind: str = "choice"  # choice | or | depth | optional

    def check(self, value: Any) -> Any:
        """Return the option equal to ``value`` or raise InvalidArchError."""
        i = index_of(self.options, value)
        if i < 0 and isinstance(value, int) and not isinstance(value, bool):
            i = index_of(self.options, float(value))  # JSON may write 6.0 as 6
        if i < 0:
            raise InvalidArchError(f"{self.path}: {value!r} is not allowed (allowed: {list(self.options)})")
        return self.options[i]


# --------------------------------------------------------------------------------------
# Walker state
# --------------------------------------------------------------------------------------
class _Scope:
    """Immutable lexical scope: a path prefix and named values, chained to a parent."""

    __slots__ = ("prefix", "names", "parent", "_sig")

    def __init__(self, prefix: str, names: Mapping[str, Any], parent: _Scope | None) -> None:
        self.prefix = prefix
        self.names = dict(names)
        self.parent = parent
        self._sig: tuple[Any, ...] | None = None

    def lookup(self, name: str) -> Any:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        raise KeyError(name)

    def bind(self, name: str, value: Any) -> _Scope:
        names = dict(self.names)
        names[name] = value
        return _Scope(self.prefix, names, self.parent)

    def child(self, name: str) -> _Scope:
        return _Scope(_join(self.prefix, name), {}, self)

    def layer(self) -> _Scope:
        return _Scope(self.prefix, {}, self)

    def signature(self) -> tuple[Any, ...]:
        if self._sig is None:
            parent = self.parent.signature() if self.parent is not None else ()
            self._sig = (self.prefix, tuple(sorted(self.names.items(), key=lambda kv: kv[0])), parent)
        return self._sig


@dataclass(frozen=True)
class _State:
    shape: tuple[int, int, int]
    scope: _Scope
    decided: tuple[tuple[str, Any], ...] = ()
    blocks: tuple[ResolvedBlock | Wire, ...] = ()  # the network program (wires only in graph nodes)
    shared_depth: int = 0

    def key(self) -> tuple[Any, ...]:
        return (self.shape, self.scope.signature(), self.decided, self.blocks, self.shared_depth)

    def decided_value(self, path: str) -> tuple[bool, Any]:
        for p, v in self.decided:
            if p == path:
                return True, v
        return False, None


@dataclass
class _Walk:
    """How a walk answers decisions and what it keeps.

    ``choose(decision, state)`` returns the list of values to follow (one value for a
    concrete walk, all options for an enumerating one). ``record_all`` keeps every
    decided value and every block in the state (concrete walks and arch enumeration);
    otherwise only shared-repeat decisions are kept and blocks go to ``collected``.
    """

    choose: Callable[[Decision, _State], list[Any]]
    record_all: bool = True
    collected: dict[tuple[Any, ...], ResolvedBlock] = field(default_factory=dict)
    #: the merges of graph nodes met when not ``record_all`` (:class:`spaces._program.ResolvedMerge`)
    merges: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    #: block variants resolved so far (bounded by :data:`MAX_RESOLVED_BLOCKS` when not ``record_all``)
    resolved: int = 0


Branches = list[tuple[Any, _State]]


def _dedupe(items: Branches) -> Branches:
    if len(items) < 2:  # a concrete walk: nothing to merge (keying its states would cost O(blocks) per step)
        return items
    seen: dict[Any, tuple[Any, _State]] = {}
    for value, state in items:
        k: tuple[object, object]
        try:
            k = (repr(value), state.key())
        except TypeError:  # pragma: no cover - unhashable values never reach here
            k = (id(value), id(state))
        seen.setdefault(k, (value, state))
    return list(seen.values())


def _decide(walk: _Walk, state: _State, decision: Decision) -> Branches:
    # a decision is met again only in a shared repeat body (elsewhere every path is met once; looking it
    # up there would cost O(decisions) per decision on a concrete walk)
    found, value = state.decided_value(decision.path) if state.shared_depth else (False, None)
    if found:  # shared decision met again (shared repeat body)
        return [(value, state)]
    out: Branches = []
    for value in walk.choose(decision, state):
        value = decision.check(value)
        if walk.record_all or state.shared_depth:
            new = _State(
                state.shape, state.scope, state.decided + ((decision.path, value),), state.blocks, state.shared_depth
            )
        else:
            new = state
        out.append((value, new))
    return out


# --------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------
class Node:
    """Base class of every space node."""

    def walk(self, walk: _Walk, state: _State, label: str | None) -> Branches:  # pragma: no cover
        raise NotImplementedError(type(self).__name__)

    def size(self) -> int:
        """Number of distinct assignments of the decisions this node owns."""
        return 1

    def extent(self) -> int:
        """An upper bound of the decisions and blocks this node unfolds to (see :data:`MAX_EXTENT`)."""
        return 1

    def list_decisions(self, prefix: str, label: str | None, out: list[Decision]) -> None:
        """Append every decision this node may ask, structurally, in walk order."""

    def is_value(self) -> bool:
        """True when the node produces a value rather than blocks."""
        return True


def _walk_value(walk: _Walk, state: _State, node: Any, label: str) -> Branches:
    if isinstance(node, Node):
        return node.walk(walk, state, label)
    return [(node, state)]


def _value_size(node: Any) -> int:
    return node.size() if isinstance(node, Node) else 1


def _value_extent(node: Any) -> int:
    return node.extent() if isinstance(node, Node) else 0


def _params_extent(params: Mapping[str, Any]) -> int:
    return sum(_value_extent(v) for v in params.values())


def _check_extent(node: Node, what: str) -> None:
    n = node.extent()
    if n > MAX_EXTENT:
        raise SpaceDefinitionError(
            f"{what} unfolds to more than {MAX_EXTENT:,} decisions and blocks ({n:,}); use fewer or shallower repeats"
        )


def _value_decisions(node: Any, prefix: str, label: str, out: list[Decision]) -> None:
    if isinstance(node, Node):
        node.list_decisions(prefix, label, out)


def _check_value_node(node: Any, where: str) -> Any:
    if isinstance(node, Node):
        return node
    if isinstance(node, _LITERALS):
        return node
    raise SpaceDefinitionError(f"{where}: expected a literal or a space node, got {type(node).__name__}")


class Choice(Node):
    """A categorical decision among literal ``options``.

    ``label`` names the decision inside its scope; when absent, the parameter or binding
    name the choice is given to is used (``kernel=Choice([3, 5])`` is labelled ``kernel``).
    """

    def __init__(self, options: Iterable[Any], label: str | None = None, default: Any = None) -> None:
        opts = tuple(options)
        if not opts:
            raise SpaceDefinitionError(f"Choice{f' {label!r}' if label else ''} needs at least one option")
        for o in opts:
            if not isinstance(o, _LITERALS):
                raise SpaceDefinitionError(
                    f"Choice options must be int, float, str or bool, got {type(o).__name__} {o!r}"
                )
        for i, o in enumerate(opts):
            if index_of(opts[:i], o) >= 0:
                raise SpaceDefinitionError(f"Choice options must be unique, {o!r} appears twice")
        self.options = opts
        self.label = _check_label(label, "Choice") if label is not None else None
        if default is not None and index_of(opts, default) < 0:
            raise SpaceDefinitionError(f"Choice default {default!r} is not one of {list(opts)}")
        self.default = default if default is not None else opts[0]

    def _label(self, label: str | None) -> str:
        lab = self.label or label
        if lab is None:
            raise SpaceDefinitionError(f"a Choice over {list(self.options)} has no label and no name to take one from")
        return lab

    def walk(self, walk: _Walk, state: _State, label: str | None) -> Branches:
        d = Decision(_join(state.scope.prefix, self._label(label)), self.options, self.default)
        return _decide(walk, state, d)

    def size(self) -> int:
        return len(self.options)

    def list_decisions(self, prefix: str, label: str | None, out: list[Decision]) -> None:
        out.append(Decision(_join(prefix, self._label(label)), self.options, self.default))

    def __repr__(self) -> str:
        lab = f", label={self.label!r}" if self.label else ""
        return f"Choice({list(self.options)!r}{lab})"


class Ref(Node):
    """The value bound to ``name`` in an enclosing scope (a shared decision or a binding)."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise SpaceDefinitionError(f"Ref needs a name, got {name!r}")
        self.name = name

    def walk(self, walk: _Walk, state: _State, label: str | None) -> Branches:
        try:
            return [(state.scope.lookup(self.name), state)]
        except KeyError:
            raise SpaceDefinitionError(
                f"{state.scope.prefix or '<root>'}: Ref({self.name!r}) names nothing in scope"
            ) from None

    def __repr__(self) -> str:
        return f"Ref({self.name!r})"


class Derived(Node):
    """A value computed from other values: ``Derived("2 if index == 0 else 1")``.

    Names in the expression are looked up in the enclosing scopes (bindings, shared
    decisions, ``index`` inside a :class:`Repeat`, and ``in_chans``, ``num_classes``,
    ``resolution`` at the root).
    """

    def __init__(self, expr: str) -> None:
        self.expr = Expression(expr)

    def walk(self, walk: _Walk, state: _State, label: str | None) -> Branches:
        def lookup(name: str) -> Any:
            try:
                return state.scope.lookup(name)
            except KeyError:
                raise SpaceDefinitionError(
                    f"{state.scope.prefix or '<root>'}: expression {self.expr.source!r} reads unknown name {name!r}"
                ) from None

        try:
            value = self.expr.evaluate(lookup)
        except SpaceDefinitionError:
            raise
        except Exception as exc:  # arithmetic errors in user expressions
            raise SpaceDefinitionError(
                f"{state.scope.prefix or '<root>'}: {self.expr.source!r} failed: {exc}"
            ) from None
        return [(value, state)]

    def __repr__(self) -> str:
        return f"Derived({self.expr.source!r})"


class Or(Node):
    """Choose one of several named branches; a branch's decisions exist only when chosen.

    The decision is labelled ``label`` (or the name it is given to); branch ``name``'s
    own decisions live in the scope ``<scope>.<name>``. Branches may be structures
    (blocks, stages) or values.
    """

    def __init__(
        self,
        branches: Mapping[str, Any],
        label: str | None = None,
        default: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(branches, Mapping) or not branches:
            raise SpaceDefinitionError("Or needs a non-empty mapping of branch name to node")
        self.branches = {
            _check_label(k, "Or branch"): _check_value_node(v, f"Or branch {k!r}") for k, v in branches.items()
        }
        self.label = _check_label(label, "Or") if label is not None else None
        if default is not None and default not in self.branches:
            raise SpaceDefinitionError(f"Or default {default!r} is not a branch ({', '.join(self.branches)})")
        self.default = default if default is not None else next(iter(self.branches))
        kinds = {isinstance(v, Node) and not v.is_value() for v in self.branches.values()}
        if len(kinds) > 1:
            raise SpaceDefinitionError("Or branches must be all structures or all values, not a mix")
        self._structural = kinds == {True}
        self.params = _check_params(params, "Or")
        if self.params and not self._structural:
            raise SpaceDefinitionError("Or params are only for branches that are structures")
        _check_extent(self, "Or")

    def is_value(self) -> bool:
        return not self._structural

    def _label(self, label: str | None) -> str:
        return self.label or label or "choice"

    def walk(self, walk: _Walk, state: _State, label: str | None) -> Branches:
        lab = self._label(label)
        outer = state.scope
        starts = [state]
        if self.params:
            starts = _bind_params(
                walk, _State(state.shape, outer.layer(), state.decided, state.blocks, state.shared_depth), self.params
            )
        out: Branches = []
        for start in starts:
            d = Decision(_join(start.scope.prefix, lab), tuple(self.branches), self.default, "or")
            for name, st in _decide(walk, start, d):
                inner = _State(st.shape, st.scope.child(name), st.decided, st.blocks, st.shared_depth)
                for value, st2 in _walk_value(walk, inner, self.branches[name], "value"):
                    out.append((value, _State(st2.shape, outer, st2.decided, st2.blocks, st2.shared_depth)))
        return _dedupe(out)

    def size(self) -> int:
        n = 1
        for v in self.params.values():
            n *= _value_size(v)
        return n * sum(_value_size(b) for b in self.branches.values())

    def extent(self) -> int:
        return 1 + _params_extent(self.params) + sum(_value_extent(b) for b in self.branches.values())

    def list_decisions(self, prefix: str, label: str | None, out: list[Decision]) -> None:
        for name, v in self.params.items():
            _value_decisions(v, prefix, name, out)
        out.append(Decision(_join(prefix, self._label(label)), tuple(self.branches), self.default, "or"))
        for name, branch in self.branches.items():
            _value_decisions(branch, _join(prefix, name), "value", out)

    def __repr__(self) -> str:
        return f"Or({list(self.branches)!r})"


class Block(Node):
    """One op of the catalog with its parameters (literals or value nodes).

    ``Block("mbconv", out=Ref("width"), kernel=Choice([3, 5, 7]), expand=Choice([3, 6]))``.
    Input channels and spatial size are inferred from the preceding block.
    """

    def __init__(self, op: str, **params: Any) -> None:
        self.op = op
        try:
            self.opdef = get_op(op)
        except UnknownNameError as exc:
            raise SpaceDefinitionError(str(exc)) from None
        self.params: dict[str, Any] = {}
        for name, value in params.items():
            if name not in self.opdef.params:
                raise SpaceDefinitionError(
                    f"op {op!r} has no parameter {name!r} (parameters: {', '.join(self.opdef.params)})"
                )
            value = _check_value_node(value, f"{op}.{name}")
            pdef = self.opdef.params[name]
            if isinstance(value, Choice):
                for o in value.options:
                    problem = pdef.check(o)
                    if problem:
                        raise SpaceDefinitionError(f"{op}.{name}: option {problem}")
            elif not isinstance(value, Node):
                problem = pdef.check(value)
                if problem:
                    raise SpaceDefinitionError(f"{op}.{name}: {problem}")
            self.params[name] = value
        for name, pdef in self.opdef.params.items():
            if pdef.required and name not in self.params:
                raise SpaceDefinitionError(f"op {op!r} needs parameter {name!r}")

    def is_value(self) -> bool:
        return False

    def walk(self, walk: _Walk, state: _State, label: str | None) -> Branches:
        partial: list[tuple[dict[str, Any], _State]] = [({}, state)]
        for name, node in self.params.items():
            nxt: list[tuple[dict[str, Any], _State]] = []
            for values, st in partial:
                for value, st2 in _walk_value(walk, st, node, name):
                    nxt.append(({**values, name: value}, st2))
            partial = nxt
        out: Branches = []
        for values, st in partial:
            where = st.scope.prefix or "<root>"
            full = self.opdef.complete(values, where)
            cin, h, w = st.shape
            cout = self.opdef.out_channels(full, cin)
            h2, w2 = self.opdef.output_hw(full, h, w)
            block = ResolvedBlock(where, self.op, tuple(sorted(full.items())), cin, h, w, cout, h2, w2)
            if walk.record_all:
                blocks = st.blocks + (block,)
            else:
                walk.resolved += 1
                if walk.resolved > MAX_RESOLVED_BLOCKS:
                    raise SpaceTooLargeError(
                        f"the space has too many block variants to list them (more than {MAX_RESOLVED_BLOCKS:,} "
                        f"to resolve, at {where}); use fewer choices or shallower repeats"
                    )
                walk.collected.setdefault(block.signature(), block)
                blocks = st.blocks
            out.append((None, _State((cout, h2, w2), st.scope, st.decided, blocks, st.shared_depth)))
        return _dedupe(out)

    def size(self) -> int:
        n = 1
        for v in self.params.values():
            n *= _value_size(v)
        return n

    def extent(self) -> int:
        return 1 + _params_extent(self.params)

    def list_decisions(self, prefix: str, label: str | None, out: list[Decision]) -> None:
        for name, v in self.params.items():
            _value_decisions(v, prefix, name, out)

    def __repr__(self) -> str:
        return f"Block({self.op!r}, {self.params!r})"


def _check_structure(node: Any, where: str) -> Node:
    if not isinstance(node, Node) or node.is_value():
        raise SpaceDefinitionError(
            f"{where}: expected a structure node (Block, Sequential, Repeat, Or, Optional), got {node!r}"
        )
    return node


def _bind_params(walk: _Walk, state: _State, params: Mapping[str, Any]) -> list[_State]:
    states = [state]
    for name, node in params.items():
        nxt: list[_State] = []
        for st in states:
            for value, st2 in _walk_value(walk, st, node, name):
                nxt.append(_State(st2.shape, st2.scope.bind(name, value), st2.decided, st2.blocks, st2.shared_depth))
        states = nxt
    return states


def _check_params(params: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (params or {}).items():
        out[_check_label(k, f"{where} parameter")] = _check_value_node(v, f"{where}.{k}")
    return out


class Sequential(Node):
    """Named children applied in order; child ``name`` opens the scope ``name``.

    ``params`` are named values (often shared decisions) bound before the children and
    visible to them through :class:`Ref` and :class:`Derived`.
    """

    def __init__(
        self, children: Mapping[str, Node] | Iterable[tuple[str, Node]], params: Mapping[str, Any] | None = None
    ) -> None:
        items = list(children.items()) if isinstance(children, Mapping) else list(children)
        if not items:
            raise SpaceDefinitionError("Sequential needs at least one child")
        names = [n for n, _ in items]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SpaceDefinitionError(f"Sequential child names must be unique, {sorted(dup)[0]!r} repeats")
        self.children = [(_check_label(n, "Sequential child"), _check_structure(c, f"child {n!r}")) for n, c in items]
        self.params = _check_params(params, "Sequential")
        _check_extent(self, "Sequential")

    def is_value(self) -> bool:
        return False

    def walk(self, walk: _Walk, state: _State, label: str | None) -> Branches:
        outer = state.scope
        states = _bind_params(
            walk, _State(state.shape, outer.layer(), state.decided, state.blocks, state.shared_depth), self.params
        )
        for name, child in self.children:
            nxt: list[_State] = []
            for st in states:
                inner = _State(st.shape, st.scope.child(name), st.decided, st.blocks, st.shared_depth)
                for _, st2 in child.walk(walk, inner, name):
                    nxt.append(_State(st2.shape, st.scope, st2.decided, st2.blocks, st2.shared_depth))
            states = [s for _, s in _dedupe([(None, s) for s in nxt])]
        return _dedupe([(None, _State(s.shape, outer, s.decided, s.blocks, s.shared_depth)) for s in states])

    def size(self) -> int:
        n = 1
        for v in self.params.values():
            n *= _value_size(v)
        for _, c in self.children:
            n *= c.size()
        return n

    def extent(self) -> int:
        return _params_extent(self.params) + sum(c.extent() for _, c in self.children)

    def list_decisions(self, prefix: str, label: str | None, out: list[Decision]) -> None:
        for name, v in self.params.items():
            _value_decisions(v, prefix, name, out)
        for name, c in self.children:
            c.list_decisions(_join(prefix, name), name, out)


class Repeat(Node):
    """``body`` repeated ``depth`` times (an int or a :class:`Choice` labelled ``depth``).

    Each repetition ``i`` opens the scope ``b{i}`` with ``index`` bound to ``i``, so its
    decisions are its own; with ``shared=True`` all repetitions share one set of
    decisions (and no ``b{i}`` scope). ``params`` are bound once for all repetitions.
    """

    def __init__(
        self, body: Node, depth: int | Choice, params: Mapping[str, Any] | None = None, shared: bool = False
    ) -> None:
        self.body = _check_structure(body, "Repeat body")
        if isinstance(depth, bool) or not isinstance(depth, (int, Choice)):
            raise SpaceDefinitionError(f"Repeat depth must be an int or a Choice of ints, got {depth!r}")
        opts = depth.options if isinstance(depth, Choice) else (depth,)
        for d in opts:
            if isinstance(d, bool) or not isinstance(d, int) or d < 0:
                raise SpaceDefinitionError(f"Repeat depth options must be non-negative ints, got {d!r}")
            if d > MAX_REPEAT_DEPTH:
                raise SpaceDefinitionError(f"Repeat depth {d} exceeds the maximum of {MAX_REPEAT_DEPTH}")
        self.depth = depth
        self.params = _check_params(params, "Repeat")
        self.shared = bool(shared)
        _check_extent(self, "Repeat")

    @property
    def max_depth(self) -> int:
        return max(self.depth.options) if isinstance(self.depth, Choice) else int(self.depth)

    def is_value(self) -> bool:
        return False

    def walk(self, walk: _Walk, state: _State, label: str | None) -> Branches:
        outer = state.scope
        states = _bind_params(
            walk, _State(state.shape, outer.layer(), state.decided, state.blocks, state.shared_depth), self.params
        )
        out: Branches = []
        for st in states:
            if isinstance(self.depth, Choice):
                decision = Decision(
                    _join(st.scope.prefix, self.depth._label("depth")), self.depth.options, self.depth.default, "depth"
                )
                depth_branches = _decide(walk, st, decision)
            else:
                depth_branches = [(self.depth, st)]
            wanted: dict[int, list[_State]] = {}
            for d, s in depth_branches:
                wanted.setdefault(int(d), []).append(s)
            for d, starts in wanted.items():
                current = starts
                for i in range(d):
                    nxt: list[_State] = []
                    for s in current:
                        rep_scope = s.scope.layer() if self.shared else s.scope.child(f"b{i}")
                        rep_scope = rep_scope.bind("index", i).bind("depth", d)
                        inner = _State(
                            s.shape, rep_scope, s.decided, s.blocks, s.shared_depth + (1 if self.shared else 0)
                        )
                        for _, s2 in self.body.walk(walk, inner, None):
                            nxt.append(_State(s2.shape, s.scope, s2.decided, s2.blocks, s.shared_depth))
                    current = [x for _, x in _dedupe([(None, x) for x in nxt])]
                for s in current:
                    decided = s.decided
                    if self.shared and not walk.record_all and state.shared_depth == 0:
                        decided = state.decided  # drop shared-body bookkeeping on leaving
                    out.append((None, _State(s.shape, outer, decided, s.blocks, state.shared_depth)))
        return _dedupe(out)

    def size(self) -> int:
        n = 1
        for v in self.params.values():
            n *= _value_size(v)
        body = self.body.size()
        depths = self.depth.options if isinstance(self.depth, Choice) else (self.depth,)
        total = sum((body if d > 0 else 1) if self.shared else body**d for d in depths)
        return n * total

    def extent(self) -> int:
        # a shared body's decisions are listed once, but its blocks are still unfolded each time
        return 1 + _params_extent(self.params) + self.max_depth * self.body.extent()

    def list_decisions(self, prefix: str, label: str | None, out: list[Decision]) -> None:
        for name, v in self.params.items():
            _value_decisions(v, prefix, name, out)
        if isinstance(self.depth, Choice):
            out.append(
                Decision(_join(prefix, self.depth._label("depth")), self.depth.options, self.depth.default, "depth")
            )
        if self.shared:
            self.body.list_decisions(prefix, None, out)
        else:
            for i in range(self.max_depth):
                self.body.list_decisions(_join(prefix, f"b{i}"), None, out)


class Optional(Node):
    """``body`` present or not: a boolean decision ``label`` (default ``enabled``).

    The body's decisions live in the scope ``<scope>.<label>`` and exist only when on.
    """

    def __init__(self, body: Node, label: str = "enabled", default: bool = False) -> None:
        self.body = _check_structure(body, "Optional body")
        self.label = _check_label(label, "Optional")
        if not isinstance(default, bool):
            raise SpaceDefinitionError(f"Optional default must be true or false, got {default!r}")
        self.default = default
        _check_extent(self, "Optional")

    def is_value(self) -> bool:
        return False

    def walk(self, walk: _Walk, state: _State, label: str | None) -> Branches:
        d = Decision(_join(state.scope.prefix, self.label), (False, True), self.default, "optional")
        out: Branches = []
        for on, st in _decide(walk, state, d):
            if not on:
                out.append((None, st))
                continue
            inner = _State(st.shape, st.scope.child(self.label), st.decided, st.blocks, st.shared_depth)
            for _, st2 in self.body.walk(walk, inner, None):
                out.append((None, _State(st2.shape, st.scope, st2.decided, st2.blocks, st2.shared_depth)))
        return _dedupe(out)

    def size(self) -> int:
        return 1 + self.body.size()

    def extent(self) -> int:
        return 1 + self.body.extent()

    def list_decisions(self, prefix: str, label: str | None, out: list[Decision]) -> None:
        out.append(Decision(_join(prefix, self.label), (False, True), self.default, "optional"))
        self.body.list_decisions(_join(prefix, self.label), None, out)

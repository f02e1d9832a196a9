"""`Space`: a search space with NNI-style operations (sample, validate, mutate, ...)."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from hwnas.errors import HwnasError, InvalidArchError, SpaceDefinitionError, SpaceTooLargeError
from hwnas.seeding import make_rng
from spaces._expr import Expression
from spaces._nodes import (
    Decision,
    Node,
    ResolvedBlock,
    _Scope,
    _State,
    _Walk,
    index_of,
)
from spaces._program import ResolvedMerge, Wire
from spaces.arch import Arch

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import optuna
    import torch.nn as nn

__all__ = ["ENUMERATE_LIMIT", "Constraint", "Space", "format_count"]

_MAX_REJECTIONS = 2000
#: the most archs :meth:`Space.enumerate` (and an exact count of a constrained space) walks
ENUMERATE_LIMIT = 1_000_000


def format_count(n: int, digits: int = 4) -> str:
    """``n`` in full when it is short, else in scientific notation (``1.234e+5012``), computed
    without converting the whole integer to text (Python refuses ints of more than 4,300 digits)."""
    n = int(n)
    if abs(n) < 10**15:
        return str(n)
    import math

    sign = "-" if n < 0 else ""
    n = abs(n)
    bits = n.bit_length()
    shift = max(0, bits - 64)
    top = n >> shift  # n ~= top * 2**shift
    log10 = math.log10(top) + shift * math.log10(2)
    exp = int(math.floor(log10))
    mantissa = 10 ** (log10 - exp)
    if round(mantissa, digits - 1) >= 10:
        mantissa, exp = mantissa / 10, exp + 1
    return f"{sign}{mantissa:.{digits - 1}f}e+{exp}"


class _Pending(Exception):
    def __init__(self, decision: Decision) -> None:
        self.decision = decision


class _Inactive(Exception):
    pass


class Constraint:
    """A rule every architecture of the space must satisfy.

    ``expr`` is an expression over decision paths (``"stage2.width >= stage1.width"``) or
    a callable ``f(arch) -> bool``. A constraint that reads a decision inactive in an arch
    does not apply to that arch. Only expression constraints can be written to YAML.
    """

    def __init__(self, expr: str | Callable[[Arch], bool], message: str | None = None) -> None:
        if callable(expr):
            self.expr: Expression | None = None
            self.func: Callable[[Arch], bool] | None = expr
            self.message: str = message or str(getattr(expr, "__name__", "constraint"))
        else:
            self.expr = Expression(expr)
            self.func = None
            self.message = message or self.expr.source

    def holds(self, arch: Arch, names: Mapping[str, Any]) -> bool:
        if self.func is not None:
            return bool(self.func(arch))
        assert self.expr is not None

        def lookup(name: str) -> Any:
            if name in arch:
                return arch[name]
            if name in names:
                return names[name]
            raise _Inactive(name)

        try:
            return bool(self.expr.evaluate(lookup))
        except _Inactive:
            return True
        except Exception as exc:
            raise SpaceDefinitionError(f"constraint {self.message!r} failed to evaluate: {exc}") from None

    def __repr__(self) -> str:
        return f"Constraint({self.message!r})"


class Space:
    """A tree-structured search space over networks.

    ``body`` is a structure node (usually a :class:`~spaces.Sequential` of stem, stages
    and head); ``in_chans``, ``num_classes`` and ``resolution`` describe the input and are
    visible to expressions under those names. ``formatter`` turns an arch into a compact
    human string (block strings by default).
    """

    def __init__(
        self,
        name: str,
        body: Node,
        *,
        in_chans: int = 3,
        num_classes: int = 10,
        resolution: int = 32,
        constraints: list[Constraint] | None = None,
        description: str = "",
        formatter: Callable[[Space, Arch], str] | None = None,
        factory_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(body, Node) or body.is_value():
            raise SpaceDefinitionError(f"space {name!r}: body must be a structure node, got {body!r}")
        for key, value in (("in_chans", in_chans), ("num_classes", num_classes), ("resolution", resolution)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpaceDefinitionError(f"space {name!r}: {key} must be a positive integer, got {value!r}")
        self.name = name
        self.body = body
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.resolution = resolution
        self.constraints = list(constraints or [])
        self.description = description
        self.formatter = formatter
        self.factory_kwargs = dict(factory_kwargs or {})
        self._decisions: list[Decision] | None = None
        self._index: dict[str, int] | None = None
        from spaces._nodes import _check_extent

        _check_extent(body, f"space {name!r}")  # bounded before anything unfolds it (MAX_EXTENT)
        self.decisions()  # validate paths eagerly: clashing paths are definition errors
        for c in self.constraints:
            if not isinstance(c, Constraint):
                raise SpaceDefinitionError(f"space {name!r}: constraints must be Constraint objects, got {c!r}")
            self._check_constraint_names(c)

    # -- basics ------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one input sample."""
        return (self.in_chans, self.resolution, self.resolution)

    @property
    def root_names(self) -> dict[str, Any]:
        return {"in_chans": self.in_chans, "num_classes": self.num_classes, "resolution": self.resolution}

    def __repr__(self) -> str:
        return f"Space({self.name!r}, decisions={len(self.decisions())}, input={self.input_shape})"

    def _root_state(self) -> _State:
        return _State(self.input_shape, _Scope("", self.root_names, None))

    def decisions(self) -> list[Decision]:
        """Every decision any arch of the space may contain, in walk order (a copy)."""
        if self._decisions is None:
            out: list[Decision] = []
            self.body.list_decisions("", None, out)
            seen: dict[str, Decision] = {}
            for d in out:
                if d.path in seen:
                    raise SpaceDefinitionError(
                        f"space {self.name!r}: two decisions share the path {d.path!r}; give one a different label"
                    )
                seen[d.path] = d
            self._decisions = out
            self._index = {d.path: i for i, d in enumerate(out)}
        return list(self._decisions)

    def decision(self, path: str) -> Decision:
        """The decision at ``path`` (any that may be active)."""
        self.decisions()
        assert self._index is not None
        if path not in self._index:
            raise InvalidArchError(f"{path}: not a decision of space {self.name!r}{self._did_you_mean(path)}")
        return self._decisions[self._index[path]]  # type: ignore[index]

    def _check_constraint_names(self, c: Constraint) -> None:
        """A constraint expression may read decision paths and the root names only: any other name
        would never be found, and the constraint would silently hold for every arch."""
        if c.expr is None:
            return
        assert self._index is not None
        for name in c.expr.names:
            if name not in self._index and name not in self.root_names:
                raise SpaceDefinitionError(
                    f"space {self.name!r}: constraint {c.message!r} reads {name!r}, which is not a decision of the "
                    f"space{self._did_you_mean(name)}"
                )

    def _did_you_mean(self, path: str) -> str:
        assert self._index is not None
        close = difflib.get_close_matches(path, list(self._index), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""

    # -- the one concrete walk ---------------------------------------------------------
    def _walk_once(self, answer: Callable[[Decision], Any]) -> _State:
        walk = _Walk(choose=lambda d, st: [answer(d)], record_all=True)
        results = self.body.walk(walk, self._root_state(), None)
        assert len(results) == 1, "a concrete walk has exactly one outcome"
        return results[0][1]

    def _finish(self, state: _State) -> Arch:
        return Arch(dict(state.decided))

    def _violated(self, arch: Arch) -> Constraint | None:
        for c in self.constraints:
            if not c.holds(arch, self.root_names):
                return c
        return None

    def _sample_with(self, answer: Callable[[Decision], Any], what: str) -> Arch:
        for _ in range(_MAX_REJECTIONS):
            arch = self._finish(self._walk_once(answer))
            if self._violated(arch) is None:
                return arch
        raise HwnasError(
            f"space {self.name!r}: {what} found no arch satisfying the constraints in {_MAX_REJECTIONS} tries"
        )

    # -- NNI-style operations ------------------------------------------------------------
    def sample(self, rng: Any = None) -> Arch:
        """A uniformly random choice at every active decision (rejecting constraint violations)."""
        r = make_rng(rng)
        return self._sample_with(lambda d: d.options[r.randrange(len(d.options))], "sampling")

    def default(self) -> Arch:
        """The arch taking every decision's default (first option unless set)."""
        arch = self._finish(self._walk_once(lambda d: d.default))
        bad = self._violated(arch)
        if bad is not None:
            raise HwnasError(f"space {self.name!r}: the default arch violates constraint {bad.message!r}")
        return arch

    def validate(self, arch: Mapping[str, Any]) -> Arch:
        """Return ``arch`` as a canonical :class:`Arch` of this space or raise InvalidArchError.

        The error names the offending decision path and its allowed values.
        """
        if not isinstance(arch, Mapping):
            raise InvalidArchError(f"an arch is a mapping of decision path to value, got {type(arch).__name__}")
        values = dict(arch)

        def answer(d: Decision) -> Any:
            if d.path not in values:
                raise InvalidArchError(f"{d.path}: missing (allowed: {list(d.options)})")
            return d.check(values[d.path])

        state = self._walk_once(answer)
        result = self._finish(state)
        extra = sorted(set(values) - set(result))
        if extra:
            self.decisions()
            assert self._index is not None
            if extra[0] in self._index:
                raise InvalidArchError(
                    f"{extra[0]}: inactive in this arch (a choice above it selects another branch or depth)"
                )
            raise InvalidArchError(f"{extra[0]}: not a decision of space {self.name!r}{self._did_you_mean(extra[0])}")
        bad = self._violated(result)
        if bad is not None:
            raise InvalidArchError(f"constraint violated: {bad.message}")
        return result

    def contains(self, arch: Mapping[str, Any]) -> bool:
        """True when ``arch`` is a valid arch of this space."""
        try:
            self.validate(arch)
        except InvalidArchError:
            return False
        return True

    def next_decision(self, partial: Mapping[str, Any]) -> Decision | None:
        """The next decision to take given a partial assignment, in walk order; ``None`` if complete.

        This is what sequential searchers (MCTS) need: the answer depends on the earlier
        values (an Or's branch, a Repeat's depth).
        """
        values = dict(partial)

        def answer(d: Decision) -> Any:
            if d.path in values:
                return d.check(values[d.path])
            raise _Pending(d)

        try:
            self._walk_once(answer)
        except _Pending as p:
            return p.decision
        return None

    def complete(self, partial: Mapping[str, Any], rng: Any = None) -> Arch:
        """Fill the decisions ``partial`` leaves open at random (a random rollout)."""
        r = make_rng(rng)
        values = dict(partial)

        def answer(d: Decision) -> Any:
            if d.path in values and index_of(d.options, values[d.path]) >= 0:
                return values[d.path]
            return d.options[r.randrange(len(d.options))]

        return self._sample_with(answer, "completion")

    def active_decisions(self, arch: Mapping[str, Any]) -> list[Decision]:
        """The decisions active in ``arch``, in walk order."""
        arch = self.validate(arch)
        return [self.decision(p) for p in self._ordered_paths(arch)]

    def _ordered_paths(self, arch: Arch) -> list[str]:
        order: list[str] = []

        def answer(d: Decision) -> Any:
            order.append(d.path)
            return arch[d.path]

        self._walk_once(answer)
        return order

    def mutate(self, arch: Mapping[str, Any], rng: Any = None, n: int = 1) -> Arch:
        """Change ``n`` random active decisions (each with ≥ 2 options) to other values.

        Decisions that become active get random values; decisions that stay active keep
        theirs. The result differs from ``arch`` and satisfies the constraints.
        """
        r = make_rng(rng)
        base = self.validate(arch)
        for _ in range(_MAX_REJECTIONS):
            candidates = [d for d in self.active_decisions(base) if len(d.options) > 1]
            if not candidates:
                raise HwnasError(f"space {self.name!r}: nothing to mutate (every active decision has one option)")
            current = base
            for _ in range(n):
                active = [d for d in self.active_decisions(current) if len(d.options) > 1]
                d = active[r.randrange(len(active))]
                others = [o for o in d.options if index_of((current[d.path],), o) < 0]
                new_value = others[r.randrange(len(others))]
                current = self._repair({**current, d.path: new_value}, r)
            if current != base and self._violated(current) is None:
                return current
        raise HwnasError(f"space {self.name!r}: mutation found no valid neighbour in {_MAX_REJECTIONS} tries")

    def _repair(self, values: Mapping[str, Any], r: Any) -> Arch:
        def answer(d: Decision) -> Any:
            if d.path in values and index_of(d.options, values[d.path]) >= 0:
                return values[d.path]
            return d.options[r.randrange(len(d.options))]

        return self._finish(self._walk_once(answer))

    def crossover(self, a: Mapping[str, Any], b: Mapping[str, Any], rng: Any = None) -> Arch:
        """Uniform crossover: each decision takes a parent's value at random where that
        parent has it active; decisions neither parent has get random values."""
        r = make_rng(rng)
        pa, pb = self.validate(a), self.validate(b)

        def answer(d: Decision) -> Any:
            have = [p[d.path] for p in (pa, pb) if d.path in p]
            if have:
                return have[r.randrange(len(have))]
            return d.options[r.randrange(len(d.options))]

        return self._sample_with(answer, "crossover")

    def encode(self, arch: Mapping[str, Any], one_hot: bool = False) -> np.ndarray:
        """A fixed-length float vector: per decision, the option's index + 1 (0 when inactive).

        With ``one_hot=True``: one slot per (decision, option), all zero when inactive.
        """
        import numpy as np

        arch = self.validate(arch)
        decisions = self.decisions()
        if not one_hot:
            vec = np.zeros(len(decisions), dtype=np.float32)
            for i, d in enumerate(decisions):
                if d.path in arch:
                    vec[i] = index_of(d.options, arch[d.path]) + 1
            return vec
        width = sum(len(d.options) for d in decisions)
        vec = np.zeros(width, dtype=np.float32)
        offset = 0
        for d in decisions:
            if d.path in arch:
                vec[offset + index_of(d.options, arch[d.path])] = 1.0
            offset += len(d.options)
        return vec

    def size(self, ignore_constraints: bool = False, enumerate_limit: int = ENUMERATE_LIMIT) -> int:
        """The exact number of distinct archs (a Python int, however large).

        Without constraints it is computed structurally; with constraints the space is
        enumerated, which is refused above ``enumerate_limit`` archs (at most
        :data:`ENUMERATE_LIMIT`); the structural count (``ignore_constraints=True``) is then an
        upper bound.
        """
        structural = self.body.size()
        if ignore_constraints or not self.constraints:
            return structural
        enumerate_limit = min(int(enumerate_limit), ENUMERATE_LIMIT)
        if structural > enumerate_limit:
            raise HwnasError(
                f"space {self.name!r} has constraints and {format_count(structural)} archs before them: too many to "
                f"count exactly (more than {enumerate_limit:,}); the exact size is at most that"
            )
        return sum(1 for _ in self.enumerate(limit=enumerate_limit))

    def enumerate(self, limit: int = ENUMERATE_LIMIT) -> Iterator[Arch]:
        """Every arch of the space in walk order; refused when there are more than ``limit``
        (at most :data:`ENUMERATE_LIMIT`)."""
        structural = self.body.size()
        limit = min(int(limit), ENUMERATE_LIMIT)
        if structural > limit:
            raise HwnasError(
                f"space {self.name!r} has {format_count(structural)} archs, more than the enumeration limit {limit:,}"
            )
        product = self._product_decisions(structural)
        if product is not None:  # every decision active in every arch: no walk per arch needed
            paths = [d.path for d in product]
            for values in itertools.product(*(d.options for d in product)):
                arch = Arch(dict(zip(paths, values)))
                if self._violated(arch) is None:
                    yield arch
            return
        walk = _Walk(choose=lambda d, st: list(d.options), record_all=True)
        for _, state in self.body.walk(walk, self._root_state(), None):
            arch = self._finish(state)
            if self._violated(arch) is None:
                yield arch

    def _product_decisions(self, structural: int) -> list[Decision] | None:
        """The decisions when the space is their plain product, else ``None``.

        The archs of a space map onto the full assignments of its decisions; the structural size
        equals the product of the option counts (all of at least 2) only when that map is one to
        one, i.e. when every decision is active in every arch (one with two options inactive in
        some arch would give two assignments the same arch). Then the archs are the product."""
        decisions = self.decisions()
        n = 1
        for d in decisions:
            if len(d.options) < 2:
                return None
            n *= len(d.options)
        return decisions if n == structural else None

    def grid(self, limit: int = ENUMERATE_LIMIT) -> Iterator[Arch]:
        """Alias of :meth:`enumerate` (NNI's name)."""
        return self.enumerate(limit)

    def suggest(self, trial: optuna.trial.Trial) -> Arch:
        """Define-by-run sampling through an Optuna trial: one categorical parameter per
        active decision, named by its (unique) path, so nested choices never clash."""

        def answer(d: Decision) -> Any:
            return trial.suggest_categorical(d.path, list(d.options))

        arch = self._finish(self._walk_once(answer))
        bad = self._violated(arch)
        if bad is not None:
            import optuna

            raise optuna.TrialPruned(f"constraint violated: {bad.message}")
        return arch

    # -- networks ------------------------------------------------------------------------
    def blocks(self, arch: Mapping[str, Any]) -> list[ResolvedBlock]:
        """The concrete blocks of ``arch`` in order, each with its input shape."""
        return [b for b in self.program(arch) if isinstance(b, ResolvedBlock)]

    def program(self, arch: Mapping[str, Any]) -> list[ResolvedBlock | Wire]:
        """The network of ``arch`` as a program: its blocks in order, with the wiring steps of
        graph nodes (cells, parallel branches, residuals) between them; a chain has no wires."""
        values = self.validate(arch)
        return list(self._walk_once(lambda d: values[d.path]).blocks)

    def enumerate_blocks(self) -> list[ResolvedBlock]:
        """Every distinct block (op, parameters, input shape) any arch can contain.

        Walks the space once with every decision open, merging states that cannot differ
        afterwards, so it stays cheap for spaces with astronomically many archs. Blocks
        are returned in walk order; constraints are not applied (a superset, exact when
        the space has none). A space whose walk would resolve more than
        :data:`~spaces._nodes.MAX_RESOLVED_BLOCKS` block variants is refused
        (:class:`~hwnas.errors.SpaceTooLargeError`) instead of taking minutes.
        """
        return list(self._enumeration().collected.values())

    def merges(self, arch: Mapping[str, Any]) -> list[ResolvedMerge]:
        """The merges of ``arch``'s graph nodes (cell nodes, cell outputs, parallel branches,
        residuals) in order, each with the shapes it reads; a chain has none."""
        return [w.part for w in self.program(arch) if isinstance(w, Wire) and w.part is not None]

    def enumerate_merges(self) -> list[ResolvedMerge]:
        """Every distinct merge (mode and input shapes) any arch can contain: the companion of
        :meth:`enumerate_blocks` for graph spaces (empty for a chain), from the same walk."""
        return list(self._enumeration().merges.values())

    def _enumeration(self) -> _Walk:
        """The walk with every decision open that lists blocks and merges (bounded, see
        :meth:`enumerate_blocks`)."""
        walk = _Walk(choose=lambda d, st: list(d.options), record_all=False)
        try:
            self.body.walk(walk, self._root_state(), None)
        except SpaceTooLargeError as exc:
            raise SpaceTooLargeError(f"space {self.name!r}: {exc}") from None
        return walk

    def build(self, arch: Mapping[str, Any]) -> nn.Module:
        """A freshly initialised ``torch.nn.Module`` for ``arch``."""
        from spaces._builder import build_network

        return build_network(self.program(arch), self.input_shape)

    def describe(self, arch: Mapping[str, Any]) -> str:
        """A compact human-readable string of ``arch`` (block strings in timm's spirit)."""
        arch = self.validate(arch)
        if self.formatter is not None:
            return self.formatter(self, arch)
        from spaces.blockstr import blocks_to_string

        return blocks_to_string(self.blocks(arch))

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The declarative form of the space: :func:`spaces.space_to_dict` (what
        :func:`spaces.space_to_yaml` writes)."""
        from spaces._dump import space_to_dict

        return space_to_dict(self)

    def to_yaml(self) -> str:
        """The YAML text of the space: :func:`spaces.space_to_yaml`."""
        from spaces._dump import space_to_yaml

        return space_to_yaml(self)

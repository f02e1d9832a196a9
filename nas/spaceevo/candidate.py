"""Candidate spaces of a SpaceEvo hyper-space: per searchable stage one block type and one
contiguous width window.

A *hyper-space* is a DSL space whose body is a :class:`~spaces.Sequential` in which some
children are *marked stages*: a structural :class:`~spaces.Or` labelled ``block`` (one branch
per block type, usually a :class:`~spaces.Repeat` with a depth choice) whose ``params`` hold
the stage width, either as an :class:`~spaces.Or` labelled ``window`` over width
:class:`~spaces.Choice` s (one branch per contiguous width window, as in the ``spaceevo``
space) or as a plain width ``Choice`` (then the stage has one window, all its widths). The
other children (stem, head, ...) are fixed parts of every candidate.

A :class:`Candidate` picks one block type and one window per stage. :meth:`Candidate.to_space`
prunes the hyper-space to those choices and keeps every decision path as it was (the
``stageN.block`` and ``stageN.window`` decisions remain, with one option each), so every arch of
a candidate space is an arch of the hyper-space: the hyper-space's LUT, block keys and
quality measurements apply to it unchanged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from hwnas.errors import ConfigError, HwnasError, InvalidArchError
from hwnas.io import atomic_write_text, canonical_json
from hwnas.seeding import make_rng
from spaces import Arch, Choice, Node, Or, Repeat, Sequential, Space, space_hash

__all__ = [
    "BLOCK_LABEL",
    "WINDOW_LABEL",
    "Candidate",
    "HyperSpace",
    "SpaceEvoError",
    "StageSpec",
    "check_arch",
    "stage_choices",
]

#: the label of a marked stage's block-type decision
BLOCK_LABEL = "block"
#: the label of a marked stage's width-window decision
WINDOW_LABEL = "window"


class SpaceEvoError(HwnasError):
    """A SpaceEvo input (hyper-space, candidate, quality or latency data) is unusable."""


@dataclass(frozen=True)
class StageSpec:
    """One searchable stage of a hyper-space.

    ``index``: 0-based position among the searchable stages; :attr:`number` the stage's number,
    ``N`` of its name ``stageN`` (what :class:`~nas.spaceevo.score.StageQuality` calls
    ``stage``); ``child``: position among the body's children;
    ``windows``: the width windows in order (each a tuple of widths), ``window_names`` their
    ``Or`` branch names (``None`` for a stage whose width is a plain choice, one window);
    ``width_param``: the name the width is bound to (``width``); ``depths``: per block type,
    its depth options.
    """

    name: str
    index: int
    child: int
    block_types: tuple[str, ...]
    windows: tuple[tuple[int, ...], ...]
    window_names: tuple[str, ...] | None
    width_param: str | None
    depths: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def number(self) -> int:
        """``N`` of the stage's name ``stageN`` (``index + 1`` for a stage named otherwise)."""
        digits = self.name[5:] if self.name.startswith("stage") else ""
        return int(digits) if digits.isdigit() else self.index + 1

    def depth_options(self, block_type: str) -> tuple[int, ...]:
        """The depth options of ``block_type`` in this stage."""
        return dict(self.depths)[block_type]

    def window_index(self, window: Sequence[int]) -> int:
        """Position of ``window`` among this stage's windows (SpaceEvoError if it is none of them)."""
        w = tuple(int(x) for x in window)
        try:
            return self.windows.index(w)
        except ValueError:
            shown = ", ".join(_fmt_window(x) for x in self.windows)
            raise SpaceEvoError(
                f"{self.name}: width window {_fmt_window(w)} is not one of the hyper-space's ({shown})"
            ) from None


def _fmt_window(window: Sequence[int]) -> str:
    return "[" + ",".join(str(w) for w in window) + "]"


def _window_param(node: Or, where: str) -> tuple[str | None, tuple[str, ...] | None, tuple[tuple[int, ...], ...]]:
    """``(param name, branch names, windows)`` of a marked stage's width."""
    for pname, value in node.params.items():
        if isinstance(value, Or) and value.label == WINDOW_LABEL:
            wins = []
            for bname, branch in value.branches.items():
                if not isinstance(branch, Choice) or not all(
                    isinstance(o, int) and not isinstance(o, bool) for o in branch.options
                ):
                    raise SpaceEvoError(f"{where}: window {bname!r} is not a choice of integer widths")
                wins.append(tuple(int(o) for o in branch.options))
            return pname, tuple(value.branches), tuple(wins)
    for pname, value in node.params.items():
        if isinstance(value, Choice) and all(isinstance(o, int) and not isinstance(o, bool) for o in value.options):
            return pname, None, (tuple(int(o) for o in value.options),)
    return None, None, ((),)


class HyperSpace:
    """A hyper-space: a DSL space with marked stages (see the module docstring).

    ``HyperSpace(space)``; :meth:`stages` lists the searchable stages. Raises
    :class:`SpaceEvoError` (one line) for a space without marked stages.
    """

    def __init__(self, space: Space) -> None:
        self.space = space
        body = space.body
        if not isinstance(body, Sequential):
            raise SpaceEvoError(f"space {space.name!r} is not a hyper-space: its body is not a sequence of stages")
        if body.params:
            raise SpaceEvoError(
                f"space {space.name!r}: hyper-spaces with shared top-level decisions "
                f"({', '.join(body.params)}) are not supported"
            )
        stages: list[StageSpec] = []
        for pos, (name, node) in enumerate(body.children):
            if not (isinstance(node, Or) and not node.is_value() and node.label == BLOCK_LABEL):
                continue
            where = f"space {space.name!r}, stage {name!r}"
            pname, wnames, windows = _window_param(node, where)
            depths = []
            for bt, branch in node.branches.items():
                if isinstance(branch, Repeat):
                    opts = branch.depth.options if isinstance(branch.depth, Choice) else (branch.depth,)
                    depths.append((bt, tuple(int(d) for d in opts)))
                else:
                    depths.append((bt, (1,)))
            stages.append(
                StageSpec(name, len(stages), pos, tuple(node.branches), windows, wnames, pname, tuple(depths))
            )
        if not stages:
            raise SpaceEvoError(
                f"space {space.name!r} is not a hyper-space: no stage is marked (a stage is an "
                f"`or` over block types labelled {BLOCK_LABEL!r}, its width an `or` labelled "
                f"{WINDOW_LABEL!r} over width choices in its params)"
            )
        self.stages: tuple[StageSpec, ...] = tuple(stages)

    @classmethod
    def create(cls, name: str, **kwargs: Any) -> HyperSpace:
        """The hyper-space of a registered space (``spaceevo``) or a YAML file."""
        from spaces import create_space

        return cls(create_space(name, **kwargs))

    @property
    def name(self) -> str:
        return self.space.name

    @cached_property
    def hash(self) -> str:
        """The :func:`spaces.space_hash` of the hyper-space."""
        return space_hash(self.space)

    @property
    def children(self) -> list[tuple[str, Node]]:
        """The body's children (stages and fixed parts) in order."""
        return list(self.space.body.children)  # type: ignore[attr-defined]

    def stage(self, index: int) -> StageSpec:
        if not 0 <= index < len(self.stages):
            raise SpaceEvoError(f"space {self.name!r} has {len(self.stages)} searchable stages, no stage {index}")
        return self.stages[index]

    def __repr__(self) -> str:
        return f"HyperSpace({self.name!r}, stages={len(self.stages)})"

    def size(self) -> int:
        """Number of candidate spaces (block types × windows, over the stages)."""
        n = 1
        for s in self.stages:
            n *= len(s.block_types) * len(s.windows)
        return n

    # -- pruning ----------------------------------------------------------------------------
    def stage_node(self, index: int, block_type: str, window: Sequence[int]) -> Or:
        """The stage's node pruned to one block type and one width window (paths unchanged; cached)."""
        key = (index, block_type, tuple(int(x) for x in window))
        cache = self.__dict__.setdefault("_nodes", {})
        if key not in cache:
            cache[key] = self._prune(index, block_type, window)
        return cache[key]

    def _prune(self, index: int, block_type: str, window: Sequence[int]) -> Or:
        spec = self.stage(index)
        node = self.children[spec.child][1]
        assert isinstance(node, Or)
        if block_type not in node.branches:
            raise SpaceEvoError(
                f"{spec.name}: unknown block type {block_type!r} (types: {', '.join(spec.block_types)})"
            )
        w = spec.window_index(window)
        params = dict(node.params)
        if spec.window_names is not None and spec.width_param is not None:
            win_or = params[spec.width_param]
            assert isinstance(win_or, Or)
            wname = spec.window_names[w]
            params[spec.width_param] = Or({wname: win_or.branches[wname]}, label=win_or.label)
        return Or({block_type: node.branches[block_type]}, label=node.label, params=params)

    def stage_paths(self, index: int, block_type: str, window: Sequence[int]) -> frozenset[str]:
        """Every decision path of the stage pruned to ``block_type`` and ``window`` (cached)."""
        key = (index, block_type, tuple(window))
        cache = self.__dict__.setdefault("_paths", {})
        if key not in cache:
            node = self.stage_node(index, block_type, window)
            name = self.stage(index).name
            cache[key] = frozenset(d.path for d in Space("probe", Sequential({name: node})).decisions())
        return cache[key]

    def probe_space(self, child: int, input_shape: tuple[int, int, int], node: Node | None = None) -> Space:
        """A space of one body child (``node`` in its place when given) fed ``input_shape``:
        walking it gives that child's blocks with the hyper-space's decision paths."""
        name, original = self.children[child]
        c, h, w = input_shape
        if h != w:
            raise SpaceEvoError(
                f"space {self.name!r}: {name} gets a non-square input {h}x{w}; hyper-spaces need square feature maps"
            )
        return Space(
            f"{self.name}.{name}",
            Sequential({name: node if node is not None else original}),
            in_chans=int(c),
            num_classes=self.space.num_classes,
            resolution=int(h),
        )

    # -- candidates -------------------------------------------------------------------------
    def candidate(self, blocks: Sequence[str], windows: Sequence[Sequence[int]]) -> Candidate:
        return Candidate(self, tuple(blocks), tuple(tuple(int(x) for x in w) for w in windows))

    def random_candidate(self, rng: Any = None) -> Candidate:
        """A uniformly random candidate (block type and window of every stage)."""
        r = make_rng(rng)
        return self.candidate(
            [s.block_types[r.randrange(len(s.block_types))] for s in self.stages],
            [s.windows[r.randrange(len(s.windows))] for s in self.stages],
        )

    def uniform_candidates(self) -> list[Candidate]:
        """SpaceEvo's seed population: per block type and window position ``j``, the candidate with
        that block type in every stage and every stage's ``j``-th window (its last if it has fewer)
        — the type-major order of the paper's code."""
        out = []
        n_win = max(len(s.windows) for s in self.stages)
        for bt in dict.fromkeys(b for s in self.stages for b in s.block_types):
            if not all(bt in s.block_types for s in self.stages):
                continue
            for j in range(n_win):
                out.append(
                    self.candidate(
                        [bt] * len(self.stages), [s.windows[min(j, len(s.windows) - 1)] for s in self.stages]
                    )
                )
        return out

    def candidate_from_dict(self, data: Mapping[str, Any]) -> Candidate:
        """The candidate of :meth:`Candidate.to_dict` (one-line errors for a bad record)."""
        try:
            stages = data["stages"]
            if len(stages) != len(self.stages):
                raise SpaceEvoError(
                    f"candidate record has {len(stages)} stages, space {self.name!r} has {len(self.stages)}"
                )
            return self.candidate([str(s["block"]) for s in stages], [tuple(s["window"]) for s in stages])
        except (KeyError, TypeError, ValueError) as exc:
            raise SpaceEvoError(f"malformed candidate record ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class Candidate:
    """A candidate space: per searchable stage of ``hyper`` a block type and a width window.

    Immutable and validated on creation; equal candidates (same choices) have the same
    :attr:`id`. ``to_space()`` is an ordinary DSL space, ``write_yaml(path)`` its YAML file.
    """

    hyper: HyperSpace = field(compare=False, repr=False)
    blocks: tuple[str, ...]
    windows: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        n = len(self.hyper.stages)
        if len(self.blocks) != n or len(self.windows) != n:
            raise SpaceEvoError(
                f"a candidate of space {self.hyper.name!r} has {n} stages, got "
                f"{len(self.blocks)} block types and {len(self.windows)} windows"
            )
        for spec, bt, win in zip(self.hyper.stages, self.blocks, self.windows):
            if bt not in spec.block_types:
                raise SpaceEvoError(f"{spec.name}: unknown block type {bt!r} (types: {', '.join(spec.block_types)})")
            spec.window_index(win)

    # -- identity -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON form: the hyper-space's name and hash, and per stage its name, block type, window
        and depth options."""
        return {
            "hyperspace": self.hyper.name,
            "hyperspace_hash": self.hyper.hash,
            "stages": [
                {"stage": s.name, "block": b, "window": list(w), "depths": list(s.depth_options(b))}
                for s, b, w in zip(self.hyper.stages, self.blocks, self.windows)
            ],
        }

    @cached_property
    def id(self) -> str:
        """10 hex digits identifying the choices (and the hyper-space)."""
        core = {"hyperspace": self.hyper.hash, "blocks": list(self.blocks), "windows": [list(w) for w in self.windows]}
        return hashlib.sha256(canonical_json(core).encode()).hexdigest()[:10]

    def describe(self) -> str:
        """``stage1 mbv2 [12,16,20] d1-2; stage2 ...``."""
        parts = []
        for s, b, w in zip(self.hyper.stages, self.blocks, self.windows):
            d = s.depth_options(b)
            depth = f"d{d[0]}" if len(d) == 1 else f"d{min(d)}-{max(d)}"
            parts.append(f"{s.name} {b} {_fmt_window(w)} {depth}")
        return "; ".join(parts)

    def window_indices(self) -> tuple[int, ...]:
        return tuple(s.window_index(w) for s, w in zip(self.hyper.stages, self.windows))

    # -- mutation -------------------------------------------------------------------------------
    def with_stage(self, index: int, block: str | None = None, window: Sequence[int] | None = None) -> Candidate:
        """This candidate with stage ``index``'s block type and/or window replaced."""
        self.hyper.stage(index)
        blocks, windows = list(self.blocks), list(self.windows)
        if block is not None:
            blocks[index] = block
        if window is not None:
            windows[index] = tuple(int(x) for x in window)
        return Candidate(self.hyper, tuple(blocks), tuple(windows))

    def can_mutate_block(self) -> bool:
        return any(len(s.block_types) > 1 for s in self.hyper.stages)

    def can_mutate_window(self) -> bool:
        return any(len(s.windows) > 1 for s in self.hyper.stages)

    def mutate_block(self, rng: Any = None) -> Candidate:
        """Another block type in one random stage (among stages with a choice)."""
        r = make_rng(rng)
        stages = [i for i, s in enumerate(self.hyper.stages) if len(s.block_types) > 1]
        if not stages:
            raise SpaceEvoError(f"space {self.hyper.name!r}: every stage has one block type, nothing to mutate")
        i = stages[r.randrange(len(stages))]
        others = [b for b in self.hyper.stages[i].block_types if b != self.blocks[i]]
        return self.with_stage(i, block=others[r.randrange(len(others))])

    def mutate_window(self, rng: Any = None) -> Candidate:
        """Another width window in one random stage (among stages with a choice)."""
        r = make_rng(rng)
        stages = [i for i, s in enumerate(self.hyper.stages) if len(s.windows) > 1]
        if not stages:
            raise SpaceEvoError(f"space {self.hyper.name!r}: every stage has one width window, nothing to mutate")
        i = stages[r.randrange(len(stages))]
        others = [w for w in self.hyper.stages[i].windows if w != self.windows[i]]
        return self.with_stage(i, window=others[r.randrange(len(others))])

    def mutate(self, rng: Any = None) -> Candidate:
        """One stage's block type and one stage's width window changed (where the space allows)."""
        r = make_rng(rng)
        out = self.mutate_block(r) if self.can_mutate_block() else self
        return out.mutate_window(r) if self.can_mutate_window() else out

    # -- as a space ---------------------------------------------------------------------------
    def to_space(self, name: str | None = None) -> Space:
        """The candidate as an ordinary DSL space: the hyper-space with each searchable stage
        pruned to its block type and width window (decision paths unchanged)."""
        children: list[tuple[str, Node]] = self.hyper.children
        for spec, b, w in zip(self.hyper.stages, self.blocks, self.windows):
            children[spec.child] = (spec.name, self.hyper.stage_node(spec.index, b, w))
        hyper = self.hyper.space
        desc = f"SpaceEvo candidate {self.id} of hyper-space {hyper.name} ({self.hyper.hash}): {self.describe()}"
        return Space(
            name or f"{hyper.name}-{self.id}",
            Sequential(children),
            in_chans=hyper.in_chans,
            num_classes=hyper.num_classes,
            resolution=hyper.resolution,
            constraints=list(hyper.constraints),
            description=desc,
        )

    def to_yaml(self, name: str | None = None) -> str:
        from spaces.yaml_io import space_to_yaml

        return space_to_yaml(self.to_space(name))

    def write_yaml(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        """Write :meth:`to_space` as a DSL YAML file (atomically), loadable by every command."""
        atomic_write_text(path, self.to_yaml(name))

    def contains(self, arch: Any) -> bool:
        """Whether ``arch`` (an arch of the hyper-space) lies in this candidate space."""
        try:
            self.to_space().validate(arch)
        except InvalidArchError:
            return False
        return True


def stage_choices(
    hyper: HyperSpace, index: int, block_type: str, window: Sequence[int], choices: Mapping[str, Any]
) -> dict[str, Any]:
    """A sub-stage's choices as hyper-space arch entries (``stage2.resnet.depth`` ...).

    Accepts full decision paths or paths relative to the stage (``resnet.depth``), to the block
    type (``depth``, ``b0.kernel``) or to the window (``width``); the stage's block-type and
    window decisions are filled in. Raises :class:`SpaceEvoError` for a key that is none of these.
    """
    spec = hyper.stage(index)
    probe_paths = hyper.stage_paths(index, block_type, window)
    prefix = spec.name + "."
    w = spec.window_index(window)
    wname = spec.window_names[w] if spec.window_names is not None else None
    out: dict[str, Any] = {f"{prefix}{BLOCK_LABEL}": block_type}
    if wname is not None:
        out[f"{prefix}{WINDOW_LABEL}"] = wname
    for key, value in choices.items():
        rel = key[len(prefix) :] if key.startswith(prefix) else key
        tried = [f"{prefix}{rel}", f"{prefix}{block_type}.{rel}"]
        if wname is not None:
            tried.append(f"{prefix}{wname}.{rel}")
        path = next((p for p in tried if p in probe_paths), None)
        if path is None:
            raise SpaceEvoError(
                f"{spec.name} {block_type} {_fmt_window(window)}: sub-stage choice {key!r} is not a "
                f"decision of the stage (decisions: {', '.join(sorted(probe_paths))})"
            )
        out[path] = value
    return out


def check_arch(space: Space, arch: Mapping[str, Any], where: str) -> Arch:
    """``space.validate(arch)`` with the error prefixed by ``where``, as a SpaceEvoError."""
    try:
        return space.validate(arch)
    except (InvalidArchError, ConfigError) as exc:
        raise SpaceEvoError(f"{where}: {exc}") from None

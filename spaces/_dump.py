"""Write a space's declarative form: :func:`space_to_dict` and :func:`space_to_yaml`.

The inverse of :mod:`spaces.yaml_io` (which reads the form and re-exports these). Knows a space
only through its attributes, so that :class:`~spaces.Space`'s ``to_dict`` / ``to_yaml`` can
call it without an import circle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from hwnas.errors import SpaceDefinitionError
from spaces._expr import Expression
from spaces._graph import graph_to_data
from spaces._nodes import Block, Choice, Derived, Node, Optional, Or, Ref, Repeat, Sequential, index_of
from spaces.formatters import formatter_name

__all__ = ["space_to_dict", "space_to_yaml"]


class _Constraint(Protocol):
    @property
    def expr(self) -> Expression | None: ...
    @property
    def message(self) -> str: ...


class Space(Protocol):
    """What is written of a :class:`spaces.Space` (typed structurally: :mod:`spaces._space` calls
    this module, so this module does not import it)."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def in_chans(self) -> int: ...
    @property
    def num_classes(self) -> int: ...
    @property
    def resolution(self) -> int: ...
    @property
    def constraints(self) -> Sequence[_Constraint]: ...
    @property
    def formatter(self) -> Callable[..., str] | None: ...
    @property
    def body(self) -> Node: ...


def _params_to_data(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _node_to_data(v) for k, v in params.items()}


def _node_to_data(node: Any) -> Any:
    if not isinstance(node, Node):
        return node
    if isinstance(node, Choice):
        d: dict[str, Any] = {"choice": list(node.options)}
        if node.label:
            d["label"] = node.label
        if index_of(node.options, node.default) != 0:
            d["default"] = node.default
        return d
    if isinstance(node, Ref):
        return {"ref": node.name}
    if isinstance(node, Derived):
        return {"expr": node.expr.source}
    if isinstance(node, Or):
        d = {"or": {k: _node_to_data(v) for k, v in node.branches.items()}}
        if node.label:
            d["label"] = node.label
        if node.default != next(iter(node.branches)):
            d["default"] = node.default
        if node.params:
            d["params"] = _params_to_data(node.params)
        return d
    if isinstance(node, Block):
        return {"op": node.op, **{k: _node_to_data(v) for k, v in node.params.items()}}
    if isinstance(node, Sequential):
        d = {"sequential": {name: _node_to_data(c) for name, c in node.children}}
        if node.params:
            d["params"] = _params_to_data(node.params)
        return d
    if isinstance(node, Repeat):
        d = {"repeat": _node_to_data(node.body), "depth": _node_to_data(node.depth)}
        if node.params:
            d["params"] = _params_to_data(node.params)
        if node.shared:
            d["shared"] = True
        return d
    if isinstance(node, Optional):
        d = {"optional": _node_to_data(node.body), "label": node.label}
        if node.default:
            d["default"] = True
        return d
    graph = graph_to_data(node, _node_to_data)
    if graph is not None:
        return graph
    raise SpaceDefinitionError(f"{type(node).__name__} has no YAML form")


def _formatter_name(space: Space) -> str | None:
    if space.formatter is None:
        return None
    name = formatter_name(space.formatter)
    if name is None:
        raise SpaceDefinitionError(f"space {space.name!r}: its custom formatter has no YAML form")
    return name


def space_to_dict(space: Space) -> dict[str, Any]:
    """The declarative form of ``space`` (raises for callables, which have no YAML form)."""
    data: dict[str, Any] = {"name": space.name}
    if space.description:
        data["description"] = space.description
    data.update(in_chans=space.in_chans, num_classes=space.num_classes, resolution=space.resolution)
    if space.constraints:
        cons = []
        for c in space.constraints:
            if c.expr is None:
                raise SpaceDefinitionError(
                    f"space {space.name!r}: constraint {c.message!r} is a Python callable and has no YAML form"
                )
            entry = {"expr": c.expr.source}
            if c.message != c.expr.source:
                entry["message"] = c.message
            cons.append(entry)
        data["constraints"] = cons
    fmt = _formatter_name(space)
    if fmt:
        data["formatter"] = fmt
    data["body"] = _node_to_data(space.body)
    return data


def space_to_yaml(space: Space) -> str:
    import yaml

    return yaml.safe_dump(space_to_dict(space), sort_keys=False, default_flow_style=None, width=100)

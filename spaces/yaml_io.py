"""The declarative YAML form of a space, round-tripping with the Python form.

A space file::

    name: tiny
    in_chans: 1
    num_classes: 10
    resolution: 28
    constraints:
      - {expr: "stage2.width >= stage1.width", message: widths grow}
    body:
      sequential:
        stem: {op: conv_bn_act, out: 16, stride: 1}
        stage1:
          repeat: {op: mbconv, out: {ref: width}, kernel: {choice: [3, 5]}}
          depth: {choice: [1, 2]}
          params: {width: {choice: [16, 24]}}
        head: {op: classifier, num_classes: {ref: num_classes}}

Node forms (exactly one kind key each): ``{choice: [...], label, default}``,
``{ref: name}``, ``{expr: "..."}``, ``{or: {branch: node}, label, default, params}``,
``{op: name, <param>: value}``, ``{sequential: {child: node}, params}``,
``{repeat: node, depth, params, shared}``, ``{optional: node, label, default}``; the graph
nodes of :mod:`spaces._graph`: ``{cell: {name: {edges: [...], merge, op}}, output, merge,
params}`` (an edge is an input, or ``{input: 0 | {choice: [0, 1]}, op: node}``),
``{parallel: {branch: node}, merge, params}``, ``{add: {...}}``, ``{concat: {...}}``,
``{residual: node, shortcut: node}``, ``{switch: value, cases: {value: node | null}}``; plain
scalars are literals. Every error names the YAML path of the offending entry.

This module reads the declarative form; :mod:`spaces._dump` writes it (re-exported here).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError, HwnasError, SpaceDefinitionError, UnknownNameError
from hwnas.io import load_yaml_file, parse_yaml_text
from spaces._dump import space_to_dict, space_to_yaml
from spaces._graph import GRAPH_KEYS, graph_from_data
from spaces._nodes import Block, Choice, Derived, Node, Optional, Or, Ref, Repeat, Sequential
from spaces._space import Constraint, Space
from spaces.formatters import get_formatter

__all__ = ["load_space", "space_from_dict", "space_from_yaml", "space_to_dict", "space_to_yaml"]

_KINDS = ("choice", "ref", "expr", "or", "op", "sequential", "repeat", "optional", *GRAPH_KEYS)
_ALLOWED_KEYS = {
    **GRAPH_KEYS,
    "choice": {"choice", "label", "default"},
    "ref": {"ref"},
    "expr": {"expr"},
    "or": {"or", "label", "default", "params"},
    "sequential": {"sequential", "params"},
    "repeat": {"repeat", "depth", "params", "shared"},
    "optional": {"optional", "label", "default"},
}
_TOP_KEYS = {"name", "description", "in_chans", "num_classes", "resolution", "body", "constraints", "formatter"}
_LITERALS = (int, float, str, bool)


# ---------------------------------------------------------------------------------------
# dict -> Python form
# ---------------------------------------------------------------------------------------
class _Where:
    def __init__(self, source: str) -> None:
        self.source = source

    def err(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path}: {message}")


def _params_from_data(data: Any, path: str, w: _Where) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise w.err(path, f"params must be a mapping of name to value, got {type(data).__name__}")
    return {str(k): _node_from_data(v, f"{path}.{k}", w) for k, v in data.items()}


def _node_from_data(data: Any, path: str, w: _Where) -> Any:
    if isinstance(data, _LITERALS):
        return data
    if data is None:
        raise w.err(path, "missing value (null)")
    if isinstance(data, list):
        raise w.err(path, "a list is not a node; write {choice: [...]} for a decision")
    if not isinstance(data, Mapping):
        raise w.err(path, f"expected a node mapping or a literal, got {type(data).__name__}")
    kinds = [k for k in _KINDS if k in data]
    if not kinds:
        raise w.err(
            path, f"node needs one of the keys {', '.join(_KINDS)} (got {', '.join(map(str, data)) or 'nothing'})"
        )
    if len(kinds) > 1:
        raise w.err(path, f"node has several kind keys ({', '.join(kinds)}); use exactly one")
    kind = kinds[0]
    if kind != "op":
        extra = sorted(set(map(str, data)) - _ALLOWED_KEYS[kind])
        if extra:
            raise w.err(
                path, f"unknown key {extra[0]!r} for a {kind} node (keys: {', '.join(sorted(_ALLOWED_KEYS[kind]))})"
            )
    try:
        return _build_node(kind, data, path, w)
    except ConfigError as exc:
        if str(exc).startswith(w.source + ":"):
            raise
        raise w.err(path, str(exc)) from None
    except UnknownNameError as exc:
        raise w.err(path, str(exc)) from None
    except HwnasError as exc:
        raise w.err(path, str(exc)) from None


def _build_node(kind: str, data: Mapping[str, Any], path: str, w: _Where) -> Node:
    if kind == "choice":
        options = data["choice"]
        if not isinstance(options, list):
            raise w.err(f"{path}.choice", f"options must be a list, got {type(options).__name__}")
        return Choice(options, label=data.get("label"), default=data.get("default"))
    if kind == "ref":
        if not isinstance(data["ref"], str):
            raise w.err(f"{path}.ref", "a ref names a binding (a string)")
        return Ref(data["ref"])
    if kind == "expr":
        return Derived(data["expr"])
    if kind == "or":
        branches = data["or"]
        if not isinstance(branches, Mapping) or not branches:
            raise w.err(f"{path}.or", "branches must be a non-empty mapping of name to node")
        built = {str(k): _node_from_data(v, f"{path}.or.{k}", w) for k, v in branches.items()}
        return Or(
            built,
            label=data.get("label"),
            default=data.get("default"),
            params=_params_from_data(data.get("params"), f"{path}.params", w),
        )
    if kind == "op":
        op = data["op"]
        if not isinstance(op, str):
            raise w.err(f"{path}.op", f"op must be a name, got {type(op).__name__}")
        params = {str(k): _node_from_data(v, f"{path}.{k}", w) for k, v in data.items() if k != "op"}
        return Block(op, **params)
    if kind == "sequential":
        children = data["sequential"]
        if not isinstance(children, Mapping) or not children:
            raise w.err(f"{path}.sequential", "children must be a non-empty mapping of name to node")
        built_children = {str(k): _node_from_data(v, f"{path}.sequential.{k}", w) for k, v in children.items()}
        return Sequential(built_children, params=_params_from_data(data.get("params"), f"{path}.params", w))
    if kind == "repeat":
        if "depth" not in data:
            raise w.err(path, "repeat needs a depth (an int or {choice: [...]})")
        body = _node_from_data(data["repeat"], f"{path}.repeat", w)
        depth = _node_from_data(data["depth"], f"{path}.depth", w)
        shared = data.get("shared", False)
        if not isinstance(shared, bool):
            raise w.err(f"{path}.shared", f"must be true or false, got {shared!r}")
        return Repeat(
            body, depth=depth, params=_params_from_data(data.get("params"), f"{path}.params", w), shared=shared
        )
    if kind == "optional":
        body = _node_from_data(data["optional"], f"{path}.optional", w)
        return Optional(body, label=data.get("label", "enabled"), default=data.get("default", False))
    if kind in GRAPH_KEYS:
        return graph_from_data(
            kind, data, path, lambda v, p: _node_from_data(v, p, w), lambda v, p: _params_from_data(v, p, w)
        )
    raise AssertionError(kind)  # pragma: no cover


def _positive_int(data: Mapping[str, Any], key: str, default: int, w: _Where) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise w.err(key, f"must be a positive integer, got {value!r}")
    return value


def space_from_dict(data: Any, source: str = "<space>") -> Space:
    """Build a :class:`Space` from its declarative form; errors name ``source`` and the YAML path."""
    w = _Where(source)
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: a space file is a mapping with at least 'name' and 'body', got {type(data).__name__}"
        )
    unknown = sorted(set(map(str, data)) - _TOP_KEYS)
    if unknown:
        raise w.err(unknown[0], f"unknown key (keys: {', '.join(sorted(_TOP_KEYS))})")
    for key in ("name", "body"):
        if key not in data:
            raise w.err(key, "missing")
    name = data["name"]
    if not isinstance(name, str) or not name:
        raise w.err("name", f"must be a non-empty string, got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise w.err("description", "must be a string")
    in_chans = _positive_int(data, "in_chans", 3, w)
    num_classes = _positive_int(data, "num_classes", 10, w)
    resolution = _positive_int(data, "resolution", 32, w)
    body = _node_from_data(data["body"], "body", w)
    if not isinstance(body, Node) or body.is_value():
        raise w.err("body", "must be a structure node (op, sequential, repeat, or, optional)")
    constraints = []
    raw = data.get("constraints") or []
    if not isinstance(raw, list):
        raise w.err("constraints", "must be a list of {expr, message}")
    for i, c in enumerate(raw):
        where = f"constraints[{i}]"
        if isinstance(c, str):
            c = {"expr": c}
        if not isinstance(c, Mapping) or "expr" not in c:
            raise w.err(where, "a constraint is {expr: '...', message: '...'}")
        extra = sorted(set(map(str, c)) - {"expr", "message"})
        if extra:
            raise w.err(where, f"unknown key {extra[0]!r} (keys: expr, message)")
        try:
            constraints.append(Constraint(c["expr"], c.get("message")))
        except HwnasError as exc:
            raise w.err(where, str(exc)) from None
    formatter = None
    if data.get("formatter") is not None:
        try:
            formatter = get_formatter(str(data["formatter"]))
        except UnknownNameError as exc:
            raise ConfigError(f"{source}: formatter: {exc}") from None
    try:
        return Space(
            name,
            body,
            in_chans=in_chans,
            num_classes=num_classes,
            resolution=resolution,
            constraints=constraints,
            description=description,
            formatter=formatter,
        )
    except SpaceDefinitionError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def space_from_yaml(text: str, source: str = "<yaml>") -> Space:
    """Parse YAML text into a :class:`Space`."""
    return space_from_dict(parse_yaml_text(text, source), source)


def load_space(path: str | os.PathLike[str]) -> Space:
    """Load a space from a YAML file; its ``resolution:`` must suit its strides (one-line error)."""
    from spaces.resolution import check_resolution

    p = Path(path)
    space = space_from_dict(load_yaml_file(p, "space YAML"), str(p))
    check_resolution(space, f"{p}: resolution:")
    return space

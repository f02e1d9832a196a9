"""Safe arithmetic expressions for dependent values and constraints.

``Derived("2 if index == 0 else 1")`` or a constraint ``"stage2.width >= stage1.width"``
is parsed once with :mod:`ast` and evaluated against a name lookup. Only literals, names
(dotted names become decision paths), arithmetic, comparisons, boolean logic, conditional
expressions and a few pure functions are allowed: nothing can reach Python's builtins.
"""
from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import Any

from hwnas.errors import SpaceDefinitionError

__all__ = ["Expression", "make_divisible"]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor`` without dropping more than 10% (timm's rule)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "round": round,
    "int": int,
    "float": float,
    "ceil": math.ceil,
    "floor": math.floor,
    "make_divisible": make_divisible,
}

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


class Expression:
    """A parsed, validated expression; ``names`` lists the (dotted) names it reads."""

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise SpaceDefinitionError(f"expression must be a non-empty string, got {source!r}")
        self.source = source.strip()
        try:
            tree = ast.parse(self.source, mode="eval")
        except SyntaxError as exc:
            raise SpaceDefinitionError(f"invalid expression {source!r}: {exc.msg}") from None
        self._tree = tree.body
        self.names: tuple[str, ...] = tuple(dict.fromkeys(self._check(self._tree)))

    def _check(self, node: ast.AST) -> list[str]:
        names: list[str] = []
        dotted = _dotted(node)
        if dotted is not None:
            return [dotted]
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float, str, bool, type(None))):
                raise SpaceDefinitionError(f"invalid expression {self.source!r}: unsupported constant")
            return names
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return self._check(node.left) + self._check(node.right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
            return self._check(node.operand)
        if isinstance(node, ast.BoolOp):
            return [n for v in node.values for n in self._check(v)]
        if isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
            return self._check(node.left) + [n for c in node.comparators for n in self._check(c)]
        if isinstance(node, ast.IfExp):
            return self._check(node.test) + self._check(node.body) + self._check(node.orelse)
        if isinstance(node, (ast.Tuple, ast.List)):
            return [n for e in node.elts for n in self._check(e)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            if node.func.id not in _FUNCTIONS:
                raise SpaceDefinitionError(
                    f"invalid expression {self.source!r}: unknown function {node.func.id!r} "
                    f"(allowed: {', '.join(sorted(_FUNCTIONS))})"
                )
            return [n for a in node.args for n in self._check(a)]
        raise SpaceDefinitionError(
            f"invalid expression {self.source!r}: {type(node).__name__} is not allowed"
        )

    def evaluate(self, lookup: Callable[[str], Any]) -> Any:
        """Evaluate with ``lookup(name)`` supplying every (dotted) name."""
        return self._eval(self._tree, lookup)

    def _eval(self, node: ast.AST, lookup: Callable[[str], Any]) -> Any:
        dotted = _dotted(node)
        if dotted is not None:
            return lookup(dotted)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](self._eval(node.left, lookup), self._eval(node.right, lookup))
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, lookup)
            if isinstance(node.op, ast.USub):
                return -v
            if isinstance(node.op, ast.UAdd):
                return +v
            return not v
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                result: Any = True
                for v in node.values:
                    result = self._eval(v, lookup)
                    if not result:
                        return result
                return result
            result = False
            for v in node.values:
                result = self._eval(v, lookup)
                if result:
                    return result
            return result
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, lookup)
            for op, comp in zip(node.ops, node.comparators):
                right = self._eval(comp, lookup)
                if not _CMPOPS[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            branch = node.body if self._eval(node.test, lookup) else node.orelse
            return self._eval(branch, lookup)
        if isinstance(node, ast.Tuple):
            return tuple(self._eval(e, lookup) for e in node.elts)
        if isinstance(node, ast.List):
            return [self._eval(e, lookup) for e in node.elts]
        if isinstance(node, ast.Call):
            func = _FUNCTIONS[node.func.id]  # type: ignore[union-attr]
            return func(*(self._eval(a, lookup) for a in node.args))
        raise AssertionError(f"unchecked node {type(node).__name__}")  # pragma: no cover

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

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

__all__ = ["MAX_INT_BITS", "MAX_SEQUENCE_LENGTH", "MAX_SOURCE_LENGTH", "Expression", "make_divisible"]

#: resource bounds of an expression: its source length, the size of the integers and of the
#: strings / lists / tuples it may compute (a channel count or a kernel size is far below them);
#: an operation whose result would exceed them fails with a clear error before it is computed
MAX_SOURCE_LENGTH = 10_000
MAX_INT_BITS = 1024
MAX_SEQUENCE_LENGTH = 10_000


class _BoundError(ArithmeticError):
    """An operation of an expression would exceed the resource bounds."""


def _int_bits(v: Any) -> int:
    return abs(int(v)).bit_length() if isinstance(v, int) else 0


def _check_result(v: Any) -> Any:
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > MAX_INT_BITS:
        raise _BoundError(f"an integer of more than {MAX_INT_BITS} bits")
    if isinstance(v, (str, list, tuple)) and len(v) > MAX_SEQUENCE_LENGTH:
        raise _BoundError(f"a {type(v).__name__} longer than {MAX_SEQUENCE_LENGTH}")
    return v


def _repeat_count(a: Any, b: Any) -> tuple[Any, int] | None:
    """``(sequence, count)`` when ``a * b`` repeats a sequence."""
    if isinstance(a, (str, list, tuple)) and isinstance(b, int):
        return a, b
    if isinstance(b, (str, list, tuple)) and isinstance(a, int):
        return b, a
    return None


def _mul(a: Any, b: Any) -> Any:
    rep = _repeat_count(a, b)
    if rep is not None:
        seq, n = rep
        if n > 0 and len(seq) * n > MAX_SEQUENCE_LENGTH:
            raise _BoundError(f"repeating a {type(seq).__name__} {n} times (longer than {MAX_SEQUENCE_LENGTH})")
    elif isinstance(a, int) and isinstance(b, int) and _int_bits(a) + _int_bits(b) > MAX_INT_BITS + 1:
        raise _BoundError(f"an integer of more than {MAX_INT_BITS} bits")
    return _check_result(a * b)


def _pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
        # |a| ** b has about b * log2|a| bits: refuse before computing it
        if b > MAX_INT_BITS or (abs(a).bit_length() - 1) * b > MAX_INT_BITS:
            raise _BoundError(f"{a} ** {b} is larger than {MAX_INT_BITS} bits")
    try:
        return _check_result(a**b)
    except OverflowError:
        raise _BoundError(f"{a!r} ** {b!r} overflows") from None


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):
        raise _BoundError("string formatting with % is not supported")
    return _check_result(a % b)


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
    ast.Add: lambda a, b: _check_result(a + b),
    ast.Sub: lambda a, b: _check_result(a - b),
    ast.Mult: _mul,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: _mod,
    ast.Pow: _pow,
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


def _short(source: str, n: int = 80) -> str:
    return repr(source) if len(source) <= n else repr(source[:n]) + "..."


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
        if len(source) > MAX_SOURCE_LENGTH:
            raise SpaceDefinitionError(f"expression {source[:40]!r}... is longer than {MAX_SOURCE_LENGTH} characters")
        self.source = source.strip()
        try:
            tree = ast.parse(self.source, mode="eval")
            self._tree = tree.body
            self.names: tuple[str, ...] = tuple(dict.fromkeys(self._check(self._tree)))
        except SyntaxError as exc:
            raise SpaceDefinitionError(f"invalid expression {_short(source)}: {exc.msg}") from None
        except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
            if isinstance(exc, SpaceDefinitionError):
                raise
            raise SpaceDefinitionError(
                f"invalid expression {_short(source)}: "
                f"{'nested too deeply' if not isinstance(exc, ValueError) else exc}"
            ) from None

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
        raise SpaceDefinitionError(f"invalid expression {self.source!r}: {type(node).__name__} is not allowed")

    def evaluate(self, lookup: Callable[[str], Any]) -> Any:
        """Evaluate with ``lookup(name)`` supplying every (dotted) name.

        An operation whose result would exceed the bounds (:data:`MAX_INT_BITS`,
        :data:`MAX_SEQUENCE_LENGTH`) raises :class:`SpaceDefinitionError` before it is computed."""
        try:
            return self._eval(self._tree, lookup)
        except _BoundError as exc:
            raise SpaceDefinitionError(f"expression {_short(self.source)} is out of bounds: {exc}") from None
        except RecursionError:
            raise SpaceDefinitionError(f"expression {_short(self.source)} is nested too deeply") from None

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
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):  # as _check allows
            func = _FUNCTIONS[node.func.id]
            return _check_result(func(*(self._eval(a, lookup) for a in node.args)))
        raise AssertionError(f"unchecked node {type(node).__name__}")  # pragma: no cover

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

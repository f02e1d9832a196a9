"""Search spaces: the DSL, the op catalog, built-in spaces, and compilation to torch.

Importing this package does not import torch; :meth:`Space.build` does, lazily.
"""

from __future__ import annotations

from hwnas.lazy import lazy_exports
from spaces import builtin  # noqa: F401  (the built-in spaces register themselves; the registry imports none)
from spaces._expr import make_divisible
from spaces._graph import Add, Cell, CellNode, Concat, Edge, Parallel, Residual, Switch
from spaces._nodes import (
    Block,
    Choice,
    Decision,
    Derived,
    Node,
    Optional,
    Or,
    Ref,
    Repeat,
    ResolvedBlock,
    Sequential,
)
from spaces._program import ResolvedMerge, Wire
from spaces._registry import create_space, get_space_factory, list_spaces, register_space
from spaces._space import Constraint, Space
from spaces.arch import Arch
from spaces.catalog import ACTIVATIONS, NB201_OPS, OpDef, ParamDef, get_op, list_ops, register_op
from spaces.formatters import register_formatter
from spaces.identity import SpaceMismatchError, check_same_space, space_from_identity, space_hash, space_identity

__all__ = [
    "ACTIVATIONS",
    "NB201_OPS",
    "Add",
    "Arch",
    "Block",
    "Cell",
    "CellNode",
    "Choice",
    "Concat",
    "Constraint",
    "Decision",
    "Derived",
    "Edge",
    "Node",
    "OpDef",
    "Optional",
    "Or",
    "Parallel",
    "ParamDef",
    "Ref",
    "Repeat",
    "Residual",
    "ResolvedBlock",
    "ResolvedMerge",
    "Sequential",
    "Space",
    "SpaceMismatchError",
    "check_same_space",
    "create_space",
    "get_op",
    "get_space_factory",
    "list_ops",
    "list_spaces",
    "load_space",
    "make_divisible",
    "register_formatter",
    "register_op",
    "register_space",
    "space_from_dict",
    "space_from_identity",
    "space_hash",
    "space_identity",
    "space_to_dict",
    "space_to_yaml",
    "Switch",
    "Wire",
]

# lazy: the YAML helpers import PyYAML only when used
__getattr__, __dir__ = lazy_exports(
    __name__, dict.fromkeys(("load_space", "space_from_dict", "space_to_dict", "space_to_yaml"), "spaces.yaml_io")
)

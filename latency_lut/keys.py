"""Block keys: canonical strings of everything that changes a block's latency on a target.

``mbconv_relu_k3_e6_se0_s1_c64-64_h28w28_b1``: op, activation, kernel, expand ratio, SE
ratio, stride, input-output channels, input height and width, batch. Every op parameter
that can change latency is in the key; parameters that cannot (``dropout`` in eval mode,
``out``/``num_classes`` which the output channels already give) are left out. Parameters
of ops registered later that this module does not know are appended as ``<name><value>``
so that they are never silently dropped.

Graph spaces (cells, parallel branches, residuals) are priced from their parts: every edge or
node op is a block like any other, every merge a *merge part* keyed by its mode, input count
and shapes (:func:`merge_key`): ``add_n3_c16-16_h32w32_b1`` (three 16-channel tensors summed),
``concat_n2_i8.8_c16-16_h28w28_b1`` (8 + 8 channels concatenated). Ops the engine removes from
a whole network (:data:`FREE_OPS`: the identity ``skip``) cost nothing and are never measured.

Two pseudo-blocks complete a network's sum:

* ``quantize_c1_h28w28_b1``: the network's input ``QuantizeLinear`` (float → uint8) of
  INT8 models, whose block models take and return uint8 tensors;
* ``overhead_b1``: one engine call on a trivial model, the fixed per-call cost that every
  block measurement contains once but a whole network contains once in all.

Torch-free: works on :class:`spaces.ResolvedBlock` or any object with its fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from latency_lut.errors import UnsupportedSpaceError

__all__ = [
    "FREE_OPS",
    "KEY_RE",
    "MERGE_MODES",
    "SHARED_OPS",
    "block_family",
    "block_key",
    "format_number",
    "is_free",
    "is_merge",
    "is_shared",
    "merge_key",
    "overhead_key",
    "parse_key",
    "part_key",
    "quantize_key",
]

#: Parameters that never change a block's latency (or are given by ``cout``).
_IGNORED = {"out", "num_classes", "dropout"}
#: Known parameters, in key order, with their key prefix.
_ORDER: tuple[tuple[str, str], ...] = (
    ("kind", ""),
    ("kernel", "k"),
    ("expand", "e"),
    ("se", "se"),
    ("stride", "s"),
    ("feature", "f"),
    ("hidden", "hd"),
)
#: Ops that cost nothing inside a whole network, with the reason: they are never measured (an
#: identity has no model of its own: onnxruntime and torch.export remove it from the graph).
FREE_OPS: dict[str, str] = {"skip": "an identity, which the engine removes from the network graph"}
#: Ops without weights: two of them with equal parameters applied to one tensor (two cell edges
#: reading one node) are computed once (onnxruntime eliminates common subexpressions), so a
#: network prices them once (:func:`latency_lut.parts.network_parts`).
SHARED_OPS: frozenset[str] = frozenset({"pool", "zero"})
#: the modes of merge parts
MERGE_MODES: tuple[str, ...] = ("add", "concat")

KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


def format_number(value: Any) -> str:
    """``6.0`` → ``6``, ``0.25`` → ``0.25``, ``True`` → ``1``: short and unambiguous."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    return str(value)


def _field(block: Any, name: str) -> Any:
    return block[name] if isinstance(block, Mapping) else getattr(block, name)


def _params(block: Any) -> dict[str, Any]:
    params = _field(block, "params")
    return dict(params) if not isinstance(params, Mapping) else dict(params)


def block_key(block: Any, batch: int = 1) -> str:
    """The LUT key of ``block`` (a ResolvedBlock or a mapping with its fields) at ``batch``."""
    op = str(_field(block, "op"))
    params = _params(block)
    parts = [op]
    if "act" in params:
        parts.append(str(params["act"]))
    used = {"act"} | _IGNORED
    for name, prefix in _ORDER:
        if name in params:
            parts.append(f"{prefix}{format_number(params[name])}")
            used.add(name)
    for name in sorted(set(params) - used):  # parameters of ops this module does not know
        parts.append(f"{re.sub(r'[^a-z0-9]', '', name.lower())}{format_number(params[name]).lower()}")
    cin, cout = _field(block, "cin"), _field(block, "cout")
    h, w = _field(block, "h"), _field(block, "w")
    parts.append(f"c{cin}-{cout}")
    parts.append(f"h{h}w{w}")
    parts.append(f"b{int(batch)}")
    key = "_".join(parts)
    return re.sub(r"[^a-z0-9_.\-]", "", key.lower())


def is_merge(part: Any) -> bool:
    """Whether ``part`` is a merge (a :class:`spaces.ResolvedMerge` or an object with its fields)."""
    return hasattr(part, "mode") and hasattr(part, "inputs") and not hasattr(part, "op")


def is_free(part: Any) -> bool:
    """Whether ``part`` costs nothing in a whole network (a block of an op in :data:`FREE_OPS`)."""
    return not is_merge(part) and str(_field(part, "op")) in FREE_OPS


def is_shared(part: Any) -> bool:
    """Whether ``part`` is a block of an op in :data:`SHARED_OPS` (no weights)."""
    return not is_merge(part) and str(_field(part, "op")) in SHARED_OPS


def merge_key(mode: str, inputs: Any, batch: int = 1) -> str:
    """The LUT key of a merge of ``inputs`` (``(channels, height, width)`` each) by ``mode``:
    ``add_n2_c16-16_h32w32_b1``; a concatenation also names each input's channels, in order
    (``concat_n2_i8.16_c24-24_h28w28_b1``), since it copies each input separately."""
    shapes = [tuple(int(v) for v in s) for s in inputs]
    if mode not in MERGE_MODES:
        raise UnsupportedSpaceError(f"a merge is one of {list(MERGE_MODES)}, got {mode!r}")
    if not shapes or any(len(s) != 3 for s in shapes) or any(s[1:] != shapes[0][1:] for s in shapes):
        raise UnsupportedSpaceError(f"merge {mode}: inputs must be (channels, height, width) of one size, got {inputs}")
    k = len(shapes)
    _, h, w = shapes[0]
    if mode == "add":
        if any(s != shapes[0] for s in shapes):
            raise UnsupportedSpaceError(f"merge add: inputs of different shapes {shapes}")
        c = shapes[0][0]
        return f"add_n{k}_c{c}-{c}_h{h}w{w}_b{int(batch)}"
    total = sum(s[0] for s in shapes)
    split = ".".join(str(s[0]) for s in shapes)
    return f"concat_n{k}_i{split}_c{total}-{total}_h{h}w{w}_b{int(batch)}"


def part_key(part: Any, batch: int = 1) -> str:
    """The LUT key of a network part: :func:`merge_key` of a merge, :func:`block_key` of a block."""
    if is_merge(part):
        return merge_key(part.mode, part.inputs, batch)
    return block_key(part, batch)


def block_family(op: str, params: Mapping[str, Any]) -> str:
    """A short group label for reports: ``mbconv relu``, ``mbconv hardswish+se``, ..."""
    act = params.get("act")
    se = params.get("se") or 0
    label = op if act is None else f"{op} {act}"
    return f"{label}+se" if se else label


def quantize_key(channels: int, h: int, w: int, batch: int = 1) -> str:
    """Key of the network input quantization pseudo-block."""
    return f"quantize_c{channels}_h{h}w{w}_b{int(batch)}"


def overhead_key(batch: int = 1) -> str:
    """Key of the per-call overhead pseudo-block."""
    return f"overhead_b{int(batch)}"


_KEY_PARTS = re.compile(r"_c(\d+)-(\d+)_h(\d+)w(\d+)_b(\d+)$")


def parse_key(key: str) -> dict[str, Any]:
    """Best-effort split of a block key: ``{"head", "cin", "cout", "h", "w", "batch"}``."""
    m = _KEY_PARTS.search(key)
    if not m:
        return {"head": key}
    cin, cout, h, w, b = map(int, m.groups())
    return {"head": key[: m.start()], "cin": cin, "cout": cout, "h": h, "w": w, "batch": b}

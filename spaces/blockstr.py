"""Compact block strings in the spirit of timm's ``ir_r2_k3_s2_e6_c24_se0.25``."""

from __future__ import annotations

from collections.abc import Sequence

from spaces._nodes import ResolvedBlock

__all__ = ["block_string", "blocks_to_string"]

_ABBREV = {
    "conv_bn_act": "cn",
    "dwsep": "ds",
    "mbconv": "ir",
    "fused_mbconv": "er",
    "resnet_basic": "rb",
    "resnet_bottleneck": "rk",
    "pool": "pl",
    "skip": "id",
    "zero": "zr",
    "classifier": "head",
}
_ACT = {"relu": "", "relu6": "_nre6", "hardswish": "_nhs", "swish": "_nsw"}


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def block_string(block: ResolvedBlock) -> str:
    """One block as a short string, e.g. ``ir_k5_s2_e6_se0.25_c40_nhs``."""
    p = block.kwargs
    name = _ABBREV.get(block.op, block.op)
    if block.op == "classifier":
        feat = f"_f{p['feature']}" if p.get("feature") else ""
        hid = f"_h{p['hidden']}" if p.get("hidden") else ""
        return f"head{feat}{hid}_c{p['num_classes']}"
    parts = [name]
    if "kind" in p:
        parts.append(p["kind"])
    if "kernel" in p:
        parts.append(f"k{p['kernel']}")
    if "stride" in p:
        parts.append(f"s{p['stride']}")
    if "expand" in p:
        parts.append(f"e{_num(p['expand'])}")
    if p.get("se"):
        parts.append(f"se{_num(p['se'])}")
    parts.append(f"c{block.cout}")
    return "_".join(parts) + _ACT.get(p.get("act", "relu"), "")


def blocks_to_string(blocks: Sequence[ResolvedBlock]) -> str:
    """Blocks grouped by their top-level scope: ``stem:cn_k3_s2_c16 | stage1:ir_...,ir_...``."""
    groups: dict[str, list[str]] = {}
    for b in blocks:
        parts = b.path.split(".") if b.path else ["net"]
        stage = next((p for p in parts if p.startswith("stage")), parts[0])
        top = stage
        groups.setdefault(top, []).append(block_string(b))
    return " | ".join(f"{k}:{','.join(v)}" for k, v in groups.items())

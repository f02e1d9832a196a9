"""The weight layout of a supernet, derived from its space.

A space resolves every arch to a list of blocks, each addressed by a stable path
(``stage2.b1``, ``stage3.fused.b0``). Each path owns one set of shared tensors, shaped for the
largest variant any arch gives that path: the union, tensor by tensor, of the standalone
modules (``spaces.ops``) of its variants. A subnet's block takes leading slices of them
(channels) and centre crops (kernels).

The variants of a path are collected from a covering set of archs: the largest and smallest
subnet of every structural choice (each ``Or`` branch, each width window), plus seeded random
samples. An arch that would need more than the layout holds is refused with a clear error
(:meth:`Layout.check_block`).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from spaces import Arch, ResolvedBlock, Space
from spaces.ops import build_op
from supernet._archs import extreme_structure, largest_arch, smallest_arch, structure_of
from supernet.errors import SupernetError

__all__ = ["Layout", "TensorSpec", "block_key", "covering_archs", "meta_block", "split_block_name"]

# Ops whose output adds the block input when stride 1 and cin == cout (MBConv-style), and ops
# that always add a shortcut (ResNet-style), with the batch norm that ends their residual branch.
_RESIDUAL_IF_SAME = {"mbconv": "project.bn", "fused_mbconv": "project.bn"}
_RESIDUAL_ALWAYS = {"resnet_basic": "conv2.bn", "resnet_bottleneck": "conv3.bn"}


_BLOCK_NAME = re.compile(r"^blocks\.(\d+)(?:\.(.*))?$")


def split_block_name(name: str) -> tuple[int | None, str]:
    """Split a module or tensor name of a network a space built (``spaces``' ``Network`` holds its
    blocks as ``blocks.<i>``): ``blocks.6.dw.act`` -> ``(6, "dw.act")``, ``blocks.2`` -> ``(2, "")``;
    a name outside the blocks -> ``(None, name)``. The one place that reads these names."""
    m = _BLOCK_NAME.match(name)
    if m is None:
        return None, name
    return int(m.group(1)), m.group(2) or ""


def block_key(rb: ResolvedBlock) -> tuple[Any, ...]:
    """Everything that shapes a block's module: op, parameters, input shape (not the path)."""
    return (rb.op, rb.params, rb.cin, rb.h, rb.w)


def meta_block(rb: ResolvedBlock) -> nn.Module:
    """The standalone module of ``rb`` on the meta device (structure and shapes, no memory)."""
    with torch.device("meta"):
        return build_op(rb.op, rb.cin, rb.kwargs)


@dataclass
class TensorSpec:
    """One shared tensor: ``key`` is ``"<path>/<name in the block module>"``."""

    key: str
    path: str
    name: str
    shape: tuple[int, ...]
    is_param: bool
    role: str  # conv | conv_bias | linear | linear_bias | bn_weight | bn_bias | bn_mean | bn_var | bn_count | other
    dtype: torch.dtype = torch.float32
    depthwise: bool = False
    kernel_sizes: set[int] = field(default_factory=set)


def _roles(module: nn.Module) -> dict[str, tuple[str, bool]]:
    """``name -> (role, depthwise)`` for every parameter and buffer of a block module."""
    out: dict[str, tuple[str, bool]] = {}
    for mname, m in module.named_modules():
        prefix = f"{mname}." if mname else ""
        if isinstance(m, nn.Conv2d):
            dw = m.groups > 1 and m.groups == m.in_channels == m.out_channels
            out[prefix + "weight"] = ("conv", dw)
            if m.bias is not None:
                out[prefix + "bias"] = ("conv_bias", False)
        elif isinstance(m, nn.Linear):
            out[prefix + "weight"] = ("linear", False)
            if m.bias is not None:
                out[prefix + "bias"] = ("linear_bias", False)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            for n, role in (
                ("weight", "bn_weight"),
                ("bias", "bn_bias"),
                ("running_mean", "bn_mean"),
                ("running_var", "bn_var"),
                ("num_batches_tracked", "bn_count"),
            ):
                if getattr(m, n, None) is not None:
                    out[prefix + n] = (role, False)
    return out


def covering_archs(space: Space, samples: int = 32, seed: int = 0) -> list[Arch]:
    """Archs that together exercise every block variant the supernet must hold.

    Starting from the structure with the most parameters, every option of every structural
    decision is tried in turn (breadth-first, so that nested structural decisions are covered
    too), each with its largest and smallest arch; the other structural decisions keep their
    size-maximising values, so that each block type also meets the widest inputs. Then
    ``samples`` seeded random archs.
    """
    cache: dict[Any, int] = {}
    base = extreme_structure(space, "largest", cache)
    structures: list[dict[str, Any]] = [base, extreme_structure(space, "smallest", cache)]
    covered: set[tuple[str, str]] = set()
    out: list[Arch] = []
    seen: set[Arch] = set()

    def add(arch: Arch) -> None:
        if arch not in seen:
            seen.add(arch)
            out.append(arch)

    i = 0
    while i < len(structures) and i < 10_000:
        fixed = structures[i]
        i += 1
        for arch in (largest_arch(space, fixed), smallest_arch(space, fixed)):
            add(arch)
            struct = structure_of(space, arch)
            for p, v in struct.items():
                covered.add((p, repr(v)))
                for o in space.decision(p).options:
                    if (p, repr(o)) not in covered:
                        covered.add((p, repr(o)))
                        structures.append({**struct, p: o})
    rng = random.Random(f"supernet-layout:{seed}")
    for _ in range(samples):
        add(space.sample(rng))
    return out


class Layout:
    """Paths, their variants, and the shape of every shared tensor of a space's supernet."""

    def __init__(self, space: Space, samples: int = 32, seed: int = 0) -> None:
        self.space = space
        self.archs = covering_archs(space, samples, seed)
        self.paths: list[str] = []
        self.variants: dict[str, dict[tuple[Any, ...], ResolvedBlock]] = {}
        self.edges: set[tuple[str, str]] = set()
        for arch in self.archs:
            prev: str | None = None
            for rb in space.blocks(arch):
                if rb.path not in self.variants:
                    self.paths.append(rb.path)
                    self.variants[rb.path] = {}
                self.variants[rb.path].setdefault(block_key(rb), rb)
                if prev is not None:
                    self.edges.add((prev, rb.path))
                prev = rb.path
        self.ops: dict[str, str] = {}
        self.tensors: dict[str, TensorSpec] = {}
        for path in self.paths:
            ops = {rb.op for rb in self.variants[path].values()}
            if len(ops) != 1:
                raise SupernetError(f"{path}: variants use different ops {sorted(ops)}; give each op its own path")
            self.ops[path] = ops.pop()
            for rb in self.variants[path].values():
                self._merge(path, meta_block(rb))

    def _merge(self, path: str, module: nn.Module) -> None:
        roles = _roles(module)
        items = [(n, t, True) for n, t in module.named_parameters()] + [
            (n, t, False) for n, t in module.named_buffers()
        ]
        for name, t, is_param in items:
            key = f"{path}/{name}"
            role, dw = roles.get(name, ("other", False))
            spec = self.tensors.get(key)
            if spec is None:
                spec = TensorSpec(key, path, name, tuple(t.shape), is_param, role, t.dtype, dw)
                self.tensors[key] = spec
            elif len(spec.shape) != t.dim() or spec.is_param != is_param:
                raise SupernetError(f"{key}: variants disagree on the tensor's kind or rank")
            else:
                spec.shape = tuple(max(a, b) for a, b in zip(spec.shape, t.shape))
            if role == "conv" and t.dim() == 4 and t.shape[-1] > 1:
                spec.kernel_sizes.add(int(t.shape[-1]))

    def residual_bn(self, path: str) -> str | None:
        """The batch norm ending the residual branch of ``path`` if every variant adds its input."""
        op = self.ops[path]
        if op in _RESIDUAL_ALWAYS:
            return _RESIDUAL_ALWAYS[op]
        if op in _RESIDUAL_IF_SAME and all(
            rb.cin == rb.cout and int(rb.kwargs.get("stride", 1)) == 1 for rb in self.variants[path].values()
        ):
            return _RESIDUAL_IF_SAME[op]
        return None

    def check_block(self, rb: ResolvedBlock, module: nn.Module) -> None:
        """Raise :class:`SupernetError` if ``rb`` needs a tensor the layout does not hold."""
        if rb.path not in self.variants:
            raise SupernetError(f"{rb.path}: the supernet has no weights for this block (not seen when it was built)")
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            spec = self.tensors.get(f"{rb.path}/{name}")
            if spec is None or len(spec.shape) != t.dim() or any(a > b for a, b in zip(t.shape, spec.shape)):
                raise SupernetError(
                    f"{rb.path}: variant {rb.op} cin={rb.cin} {dict(rb.params)} needs {name}{tuple(t.shape)}, "
                    "which the supernet does not hold"
                )

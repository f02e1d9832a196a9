"""The weight-sharing supernet of a space.

``Supernet(space)`` holds one set of tensors per block path (see :mod:`supernet._layout`), and
runs any arch of the space by executing the *standalone* modules of ``spaces.ops`` with leading
channel slices and centre-cropped kernels of those tensors (``torch.func.functional_call``).
Elastic depth comes from the space itself (a stage of depth ``d`` resolves to its leading ``d``
blocks), elastic width / expand ratio from channel slices, elastic kernel size from centre crops
(optionally through OFA's learned kernel transforms), and hyper-spaces such as ``spaceevo``
simply give each block type of a stage its own paths.

Because the forward pass *is* the standalone block's forward, a subnet extracted with
:meth:`Supernet.subnet` (``space.build(arch)`` plus ``load_state_dict`` of the slices) computes
exactly what the supernet computed, in FP32 and, after :meth:`Supernet.enable_quantization`,
with fake quantization (``quant.prepare`` of the extracted network plus the learned step sizes).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn as nn
from torch.func import functional_call

from spaces import Arch, ResolvedBlock, Space
from supernet._archs import extreme_structure, largest_arch, sample_structure, smallest_arch, structure_of
from supernet._layout import Layout, TensorSpec, block_key, meta_block
from supernet._quant import AQ_TENSORS, aq_key
from supernet.errors import SupernetError

if TYPE_CHECKING:  # pragma: no cover
    from quant.fake_quant import ActFakeQuant, WeightFakeQuant

__all__ = ["Supernet"]


@dataclass
class _Plan:
    """How to run one block: its module (meta tensors) and where each tensor comes from."""

    module: nn.Module
    entries: list[tuple[str, str, tuple[int, ...]]]  # (name in module, store key, shape)
    # quantizers of the module with the store key of their ``initialized`` flag: the module is
    # shared by every path with the same block, so its Python-side "ready" mirror is set per call
    flags: list[tuple[ActFakeQuant | WeightFakeQuant, str]] = field(default_factory=list)
    # quantizers standing for the block's input (non-first blocks), fed with the tensors of the
    # quantizer that produced the input: (quantizer module, name prefix in the module)
    inputs: list[tuple[ActFakeQuant, str]] = field(default_factory=list)
    output: str | None = None  # store key prefix of the quantizer of the block's output


def _flat(key: str) -> str:
    return key.replace(".", ":")


class Supernet(nn.Module):
    """A weight-sharing supernet over every arch of ``space``.

    Args:
        space: a conv space (``mobilenet``, ``spaceevo``, ``resnet`` or any space whose blocks
            are ``spaces.ops`` modules).
        kernel_transform: learn OFA's kernel transformation matrices (identity at start) that
            turn the centre of a large kernel into a smaller one; otherwise plain centre crops.
        seed: initialisation seed (weights are initialised once, for the largest shapes).
        layout_samples: random archs added to the covering set that fixes the tensor shapes.
    """

    def __init__(self, space: Space, *, kernel_transform: bool = True, seed: int = 0, layout_samples: int = 32) -> None:
        super().__init__()
        self.space = space
        self.kernel_transform = kernel_transform
        self.layout = Layout(space, samples=layout_samples, seed=seed)
        self.store = nn.Module()
        self._specs: dict[str, TensorSpec] = {}
        self._kinds: dict[str, bool] = {}  # key -> is parameter
        self._chains: dict[str, list[tuple[int, int, str | None]]] = {}
        self._plans: dict[tuple[Any, ...], _Plan] = {}
        self._resolved: OrderedDict[Arch, list[ResolvedBlock]] = OrderedDict()
        # (largest | smallest, the structure's items or None for the space's extreme one) -> arch
        self._extremes: dict[tuple[str, tuple[tuple[str, Any], ...] | None], Arch] = {}
        self._new_params: list[tuple[str, nn.Parameter]] = []
        self._ready: set[str] = set()  # keys of quantizer ``initialized`` flags that are True
        self.quant_scheme: Any = None
        self.sync_bn = False
        self.channels_last = False  # run blocks on NHWC tensors (oneDNN's fast CPU kernels want them)
        self._init_storage(seed)

    # ------------------------------------------------------------------------------------------
    # storage
    # ------------------------------------------------------------------------------------------
    def _register(self, key: str, value: torch.Tensor, is_param: bool, requires_grad: bool = True) -> torch.Tensor:
        flat = _flat(key)
        if key in self._kinds:
            raise SupernetError(f"{key}: already held by the supernet")
        if is_param:
            p = nn.Parameter(value, requires_grad=requires_grad)
            self.store.register_parameter(flat, p)
            self._new_params.append((key, p))
        else:
            self.store.register_buffer(flat, value)
            if key.endswith(".initialized") and value.dtype == torch.bool and bool(value):
                self._ready.add(key)
        self._kinds[key] = is_param
        return self.tensor(key)

    def tensor(self, key: str) -> torch.Tensor:
        """The full (largest) shared tensor stored under ``key``."""
        flat = _flat(key)
        t = self.store._parameters.get(flat) if self._kinds.get(key) else self.store._buffers.get(flat)
        if t is None:
            raise SupernetError(f"{key}: not held by the supernet")
        return t

    def keys(self) -> list[str]:
        """Every storage key, in creation order."""
        return list(self._kinds)

    def has(self, key: str) -> bool:
        """Whether the supernet holds a tensor under ``key``."""
        return key in self._kinds

    def is_param(self, key: str) -> bool:
        """Whether ``key`` is a parameter (else a buffer)."""
        return self._kinds[key]

    def storage_state(self) -> dict[str, torch.Tensor]:
        """``key -> tensor`` for every shared tensor (what checkpoints save)."""
        return {k: self.tensor(k) for k in self._kinds}

    def key_info(self) -> dict[str, dict[str, Any]]:
        """``key -> {"param": bool, "grad": bool}``, enough to recreate the storage from tensors."""
        return {
            k: {"param": v, "grad": bool(self.tensor(k).requires_grad) if v else False} for k, v in self._kinds.items()
        }

    def load_storage(
        self, tensors: Mapping[str, torch.Tensor], info: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        """Load shared tensors by key; keys created lazily during training (quantizers) are
        recreated from ``info`` (see :meth:`key_info`). Shapes must match exactly."""
        for key, value in tensors.items():
            if key not in self._kinds:
                meta = (info or {}).get(key)
                if meta is None:
                    raise SupernetError(f"{key}: not a tensor of this supernet")
                self._register(key, value.detach().clone(), bool(meta.get("param")), bool(meta.get("grad", True)))
                continue
            t = self.tensor(key)
            if tuple(t.shape) != tuple(value.shape):
                raise SupernetError(f"{key}: shape {tuple(value.shape)} does not match the supernet's {tuple(t.shape)}")
            with torch.no_grad():
                t.copy_(value.to(t.dtype))
            if key.endswith(".initialized"):
                (self._ready.add if bool(value) else self._ready.discard)(key)
        self._new_params.clear()
        self._plans.clear()

    def pop_new_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Parameters created since the last call (lazily created quantizer parameters), so that
        a trainer can add them to its optimizer."""
        out, self._new_params = self._new_params, []
        return out

    @torch.no_grad()
    def _init_storage(self, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        for key, spec in self.layout.tensors.items():
            t = torch.empty(spec.shape, dtype=spec.dtype)
            role = spec.role
            if role == "conv":
                out, _, kh, kw = spec.shape
                fan_out = kh * kw * (1 if spec.depthwise else out)
                t.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=g)
            elif role == "linear":
                bound = 1.0 / spec.shape[0] ** 0.5
                t.uniform_(-bound, bound, generator=g)
            elif role in ("bn_weight", "bn_var"):
                t.fill_(1.0)
            else:
                t.zero_()  # biases, running means, counters
            self._register(key, t, spec.is_param)
            self._specs[key] = spec
        for path in self.layout.paths:
            bn = self.layout.residual_bn(path)
            if bn and f"{path}/{bn}.weight" in self._kinds:
                self.tensor(f"{path}/{bn}.weight").zero_()  # zero-init the residual branch (BigNAS)
        for key, spec in list(self._specs.items()):
            sizes = sorted(spec.kernel_sizes, reverse=True)
            if spec.role != "conv" or len(sizes) < 2:
                continue
            chain: list[tuple[int, int, str | None]] = []
            for a, b in zip(sizes, sizes[1:]):
                tkey = None
                if self.kernel_transform:
                    tkey = f"{key}.ktrans{a}to{b}"
                    self._register(tkey, torch.eye(b * b), True)
                chain.append((a, b, tkey))
            self._chains[key] = chain
        self._new_params.clear()

    def _slice(self, key: str, shape: tuple[int, ...]) -> torch.Tensor:
        t = self.tensor(key)
        if tuple(t.shape) == shape:
            return t
        if t.dim() == 4 and t.shape[-1] != shape[-1]:
            w = t[: shape[0], : shape[1]]
            k, target = int(t.shape[-1]), int(shape[-1])
            for a, b, tkey in self._chains.get(key, []):
                if b < target:
                    break
                if a != k:
                    continue
                s = (k - b) // 2
                w = w[:, :, s : s + b, s : s + b]
                if tkey is not None:
                    o, i = w.shape[0], w.shape[1]
                    w = (w.reshape(o * i, b * b) @ self.tensor(tkey).t()).reshape(o, i, b, b)
                k = b
            if k != target:
                s = (k - target) // 2
                w = w[:, :, s : s + target, s : s + target]
            return w
        return t[tuple(slice(0, n) for n in shape)]

    # ------------------------------------------------------------------------------------------
    # archs
    # ------------------------------------------------------------------------------------------
    def validate(self, arch: Mapping[str, Any]) -> Arch:
        """``arch`` as an :class:`~spaces.Arch` of the supernet's space (one-line error if not)."""
        return self.space.validate(arch)

    def _extreme(self, which: str, structure: Mapping[str, Any] | None) -> Arch:
        k = (which, tuple(sorted(structure.items())) if structure is not None else None)
        if k not in self._extremes:
            if structure is None:
                structure = extreme_structure(self.space, which)
            fn = largest_arch if which == "largest" else smallest_arch
            self._extremes[k] = fn(self.space, structure)
        return self._extremes[k]

    def largest(self, structure: Mapping[str, Any] | None = None) -> Arch:
        """The largest subnet: every size decision at its maximum, inside ``structure`` (block
        types, width windows of a hyper-space) or, when ``None``, inside the structure with the
        most parameters."""
        return self._extreme("largest", structure)

    def smallest(self, structure: Mapping[str, Any] | None = None) -> Arch:
        """The smallest subnet: every size decision at its minimum, inside ``structure`` or,
        when ``None``, inside the structure with the fewest parameters."""
        return self._extreme("smallest", structure)

    def sample(self, rng: Any, structure: Mapping[str, Any] | None = None) -> Arch:
        """A uniformly random subnet (inside ``structure`` if given)."""
        if structure:
            return self.space.complete(dict(structure), rng)
        return self.space.sample(rng)

    def sample_structure(self, rng: Any) -> dict[str, Any]:
        """A random structure (block types, width windows) of a hyper-space; ``{}`` otherwise."""
        return sample_structure(self.space, rng)

    def structure_of(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        return structure_of(self.space, self.validate(arch))

    def blocks(self, arch: Mapping[str, Any]) -> list[ResolvedBlock]:
        """The resolved blocks of ``arch`` (cached)."""
        a = arch if isinstance(arch, Arch) and arch in self._resolved else self.validate(arch)
        blocks = self._resolved.get(a)
        if blocks is None:
            blocks = self.space.blocks(a)
            self._resolved[a] = blocks
            if len(self._resolved) > 512:
                self._resolved.popitem(last=False)
        else:
            self._resolved.move_to_end(a)
        return blocks

    # ------------------------------------------------------------------------------------------
    # running subnets
    # ------------------------------------------------------------------------------------------
    def _plan(self, rb: ResolvedBlock, first: bool, last: bool) -> _Plan:
        quantized = self.quant_scheme is not None
        k = (rb.path, block_key(rb), quantized, first and quantized, last and quantized, self.sync_bn)
        plan = self._plans.get(k)
        if plan is not None:
            return plan
        with torch.random.fork_rng(devices=[]):  # module construction must not move the global RNG
            plan = self._make_plan(rb, first, last, quantized)
        self._plans[k] = plan
        return plan

    def _make_plan(self, rb: ResolvedBlock, first: bool, last: bool, quantized: bool) -> _Plan:
        scheme = self.quant_scheme if quantized else None
        module, template, out_name = _block_program(rb, scheme, first and quantized, last and quantized, self.sync_bn)
        self.layout.check_block(rb, meta_block(rb))
        entries: list[tuple[str, str, tuple[int, ...]]] = []
        inputs: dict[str, ActFakeQuant] = {}
        output: str | None = None
        for name, kind, rel, local, shape, q in template:
            if kind == "in":
                inputs[name.rsplit(".", 1)[0]] = q
                continue
            if kind == "block":
                key = f"{rb.path}/{rel}"
                if key not in self._kinds:
                    raise SupernetError(
                        f"{key}: no such shared tensor (quantizer state: call enable_quantization first)"
                    )
            else:
                key = aq_key(rb.path, rel, local)
                if key not in self._kinds:
                    self._create_aq(key, q, local)
            entries.append((name, key, shape))
            if kind == "aq" and name.rsplit(".", 1)[0] == out_name:
                output = key.rsplit(".", 1)[0]
        from quant.fake_quant import ActFakeQuant, WeightFakeQuant  # the modules with an ``initialized`` flag

        modules = dict(module.named_modules())
        flags: list[tuple[ActFakeQuant | WeightFakeQuant, str]] = []
        for name, key, _ in entries:
            owner = modules.get(name.removesuffix(".initialized")) if name.endswith(".initialized") else None
            if isinstance(owner, (ActFakeQuant, WeightFakeQuant)):
                flags.append((owner, key))
        return _Plan(module, entries, flags, [(q, prefix) for prefix, q in inputs.items()], output)

    def _create_aq(self, key: str, q: ActFakeQuant, local: str) -> None:
        device = self._device()
        if local == "scale":
            self._register(key, torch.tensor(1.0, device=device), True)
        elif local == "zero_point":
            zp = q.pinned_zero_point if q.pinned_zero_point is not None else 0.0
            self._register(key, torch.tensor(float(zp), device=device), True, bool(q.learn_zero_point))
        else:
            self._register(key, torch.tensor(False, device=device), False)

    def _device(self) -> torch.device:
        for t in self.store.parameters():
            return t.device
        return torch.device("cpu")

    def _run(self, plan: _Plan, x: torch.Tensor, source: str | None = None) -> torch.Tensor:
        """Run one block; ``source`` is the store key prefix of the quantizer that produced ``x``."""
        if plan.module.training != self.training:
            plan.module.train(self.training)
        tensors = {name: self._slice(key, shape) for name, key, shape in plan.entries}
        for q, key in plan.flags:
            q._ready = key in self._ready
        for q, prefix in plan.inputs:
            q._ready = source is not None and f"{source}.initialized" in self._ready
            if q._ready:
                for local in AQ_TENSORS:
                    tensors[f"{prefix}.{local}"] = self.tensor(f"{source}.{local}")
        y = functional_call(plan.module, tensors, (x,), strict=False, tie_weights=False)
        for q, key in plan.flags:
            if q._ready:  # initialised by this batch (first training step of a lazily created quantizer)
                self._ready.add(key)
        return y

    def forward(self, x: torch.Tensor, arch: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Run subnet ``arch`` (the largest when ``None``) on ``x``."""
        blocks = self.blocks(arch if arch is not None else self.largest())
        last = len(blocks) - 1
        source: str | None = None
        for i, rb in enumerate(blocks):
            plan = self._plan(rb, i == 0, i == last)
            if self.channels_last and x.dim() == 4:
                # at every block, not only at the input: a 1-channel image is as NCHW as it is NHWC,
                # so torch keeps the stem's output NCHW, and oneDNN then reorders every tensor to its
                # blocked layout and back and runs 5x5 depthwise weight gradients through im2col
                x = x.contiguous(memory_format=torch.channels_last)
            x = self._run(plan, x, source)
            source = plan.output
        return x

    # ------------------------------------------------------------------------------------------
    # extraction
    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def subnet(
        self,
        arch: Mapping[str, Any],
        *,
        quantized: bool | None = None,
        bn_batches: Iterable[torch.Tensor] | None = None,
    ) -> nn.Module:
        """A standalone module for ``arch`` with the supernet's weights sliced in.

        It is ``space.build(arch)`` with ``load_state_dict`` of the slices (FP32), or, when the
        supernet trains with quantization (``quantized`` defaults to that), ``quant.prepare`` of
        it with the learned step sizes and zero points loaded: ready for ``quant.export_onnx``.
        With ``bn_batches`` (a few training batches) its batch norms are recalibrated
        (:func:`supernet.bn.recalibrate_bn`), as every subnet should be before evaluation, and a
        quantizer that no training step reached (an arch whose structure no trained subnet had)
        is calibrated on them, as a lazily created quantizer initialises itself from its first
        batch; without batches that is an :class:`~supernet.errors.UntrainedQuantizerError`.
        Returned in evaluation mode, on the supernet's device; it shares no memory with it.
        """
        from supernet.errors import UntrainedQuantizerError

        if bn_batches is not None:
            bn_batches = list(bn_batches)
        try:
            model = self._extract(arch, quantized)
        except UntrainedQuantizerError:
            if bn_batches is None or self.quant_scheme is None:
                raise
            self.enable_quantization(self.quant_scheme, calibration=bn_batches, archs=[dict(arch)])
            model = self._extract(arch, quantized)
        if bn_batches is not None:
            from supernet.bn import recalibrate_bn

            recalibrate_bn(model, bn_batches)
        return model

    def _extract(self, arch: Mapping[str, Any], quantized: bool | None) -> nn.Module:
        from supernet.extract import extract_subnet

        return extract_subnet(self, arch, quantized)

    # ------------------------------------------------------------------------------------------
    # quantization
    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def enable_quantization(
        self,
        scheme: Any,
        calibration: Iterable[torch.Tensor] | None = None,
        archs: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        """Switch to quantized-for-all training with ``scheme`` (a :class:`quant.QuantScheme` or
        preset name).

        Weight step sizes are initialised per output channel from the full shared weights;
        activation step sizes (and LSQ+ zero points) by PTQ calibration of the extracted ``archs``
        (default: the largest and the smallest subnet) on ``calibration`` batches, each subnet's batch
        norms recalibrated first. Quantizers that no calibrated arch contains are created lazily
        and initialise themselves from their first training batch.
        """
        from supernet.extract import enable_quantization

        enable_quantization(self, scheme, calibration, archs)

    # ------------------------------------------------------------------------------------------
    # misc
    # ------------------------------------------------------------------------------------------
    def reorder_channels(self, optimizer: torch.optim.Optimizer | None = None) -> int:
        """Sort every block's hidden (expanded) channels by importance, most important first,
        permuting the optimizer's momentum with them (OFA's re-organisation). The largest subnet
        is unchanged; smaller expand ratios keep the most important channels. Returns the
        number of channel groups reordered."""
        from supernet._channels import reorder_middle_channels

        return reorder_middle_channels(self, optimizer)

    def set_sync_bn(self, enabled: bool) -> None:
        """Synchronise batch-norm statistics across processes (distributed training)."""
        if enabled != self.sync_bn:
            self.sync_bn = enabled
            self._plans.clear()

    def param_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Parameters by optimiser group: ``decay`` (conv / linear weights), ``no_decay``
        (batch norms, biases, kernel transforms), ``quant`` (step sizes, zero points)."""
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {"decay": [], "no_decay": [], "quant": []}
        for key, is_param in self._kinds.items():
            if not is_param:
                continue
            p = self.tensor(key)
            groups[self.group_of(key)].append((key, p))  # type: ignore[arg-type]
        return groups

    def group_of(self, key: str) -> str:
        if "/aq[" in key or ".weight_quant." in key:
            return "quant"
        spec = self._specs.get(key)
        if spec is not None and spec.role in ("conv", "linear"):
            return "decay"
        return "no_decay"

    def num_parameters(self, arch: Mapping[str, Any] | None = None) -> int:
        """Parameters of the supernet (shared storage), or of subnet ``arch``."""
        if arch is None:
            return sum(self.tensor(k).numel() for k, p in self._kinds.items() if p)
        total = 0
        for rb in self.blocks(arch):
            for _, t in meta_block(rb).named_parameters():
                total += t.numel()
        return total

    def extra_repr(self) -> str:
        return (
            f"space={self.space.name!r}, paths={len(self.layout.paths)}, tensors={len(self._kinds)}, "
            f"quantized={self.quant_scheme.name if self.quant_scheme is not None else None}"
        )


class _Program(NamedTuple):
    module: nn.Module
    template: list[tuple[Any, ...]]
    output_quant: str | None  # the quantizer of the block's output (quantized blocks)


_PROGRAMS: OrderedDict[tuple[Any, ...], _Program] = OrderedDict()


def _block_program(rb: ResolvedBlock, scheme: Any, first: bool, last: bool, sync_bn: bool) -> _Program:
    """The module that runs a block (meta tensors; fake-quantized when ``scheme`` is given) and
    where its tensors come from: ``(name, "block" | "aq", name in block | quantized tensor,
    tensor of the quantizer, shape, quantizer)``. Cached across supernets: it does not depend on
    the path, and it holds no state (every tensor is passed in at call time)."""
    k = (block_key(rb), scheme, first, last, sync_bn)
    hit = _PROGRAMS.get(k)
    if hit is not None:
        _PROGRAMS.move_to_end(k)
        return hit
    module = meta_block(rb)
    if sync_bn:
        from supernet.distributed import SyncBatchNorm2d

        for m in module.modules():
            if type(m) is nn.BatchNorm2d:
                m.__class__ = SyncBatchNorm2d
    template: list[tuple[Any, ...]] = []
    output_quant: str | None = None
    if scheme is None:
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            template.append((name, "block", name, "", tuple(t.shape), None))
    else:
        from quant.fake_quant import ActFakeQuant
        from supernet._quant import act_quantizer_keys, prepare_block, probe_split

        prepared = prepare_block(module, scheme, first=first, last=last)
        module, output_quant, dropped = prepared.module, prepared.output_quant, set(prepared.input_quants)
        qkeys = act_quantizer_keys(prepared.module, probe_split)
        aq = {name: m for name, m in module.named_modules() if isinstance(m, ActFakeQuant)}
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            head, _, local = name.partition(".")
            if head in dropped:
                if local in AQ_TENSORS:
                    template.append((name, "in", "", local, tuple(t.shape), aq[head]))
            elif head in aq:
                if local in AQ_TENSORS:  # observer statistics only serve calibration of extracted subnets
                    template.append((name, "aq", qkeys[head][1], local, tuple(t.shape), aq[head]))
            elif head == "block":
                template.append((name, "block", local, "", tuple(t.shape), None))
    program = _Program(module, template, output_quant)
    _PROGRAMS[k] = program
    if len(_PROGRAMS) > 4096:
        _PROGRAMS.popitem(last=False)
    return program

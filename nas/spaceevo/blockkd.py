"""Block-wise knowledge distillation of candidate stages (DNA / SpaceEvo), with an INT8 phase.

A *candidate stage* is one searchable stage of a hyper-space with one block type and one
contiguous width window (:func:`candidate_stages`). For each, a weight-sharing super-block holding
every sub-stage of that choice (width inside the window, depth, per-block kernel and expand
ratio) learns to reproduce a teacher's stage output from the teacher's stage input:

* The super-block is :class:`supernet.Supernet` over a tiny DSL space made of that stage alone
  (:func:`stage_space`: the hyper-space's own nodes, restricted to the block type and window, so
  a sub-stage's decisions are exactly the ``stageN.*`` decisions of the hyper-space's archs).
  Nothing here re-implements weight sharing.
* Stage boundaries of teacher and candidate differ in channels: as in DNA and SpaceEvo, a 1x1
  *input adapter* maps the teacher's stage input to the stage's input width (the largest width
  of the previous hyper-space stage) and a 1x1 *output adapter* maps the sub-stage's output
  (sliced to its width) to the teacher's stage-output channels. The adapters are trained with the
  super-block and are not part of any deployed network (they stay FP32; in the INT8 phase the
  output adapter's input, the stage's output, is fake-quantized as the next stage would see it).
  The spatial size of the stage's output must be the teacher's.
* Each step follows the sandwich rule: the largest, the smallest and ``num_random`` random
  sub-stages each add their NSR loss ``mean((s - t)^2) / var(t)`` per channel, averaged over
  channels (:func:`nsr_loss`). After ``epochs`` FP32 epochs, ``qat_epochs`` epochs train with
  LSQ+ fake quantization (:meth:`supernet.Supernet.enable_quantization`, the project's
  :mod:`quant`), so the measured quality reflects INT8 numerics.
* Then the NSR of the smallest, the largest and ``eval_samples`` random sub-stages is measured
  on held-out *training* images (never the test set), each sub-stage extracted with its batch
  norms recalibrated (fake-quantized), and stored in a :class:`~nas.spaceevo.quality.QualityStore`.

Runs resume after any interruption, SIGKILL included: each candidate stage checkpoints every
``checkpoint_every`` steps (and on SIGINT / SIGTERM) in a work folder beside the quality file;
a finished candidate stage is in the quality file and is never redone. Data order, sub-stage
sampling and initialisation are functions of the seed and the step, so a resumed run stores
exactly what an uninterrupted one stores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwnas.errors import ConfigError, HwnasError
from hwnas.io import canonical_json
from hwnas.progress import ProgressBar
from nas.spaceevo.quality import QualityStore
from spaces import Arch, Space

__all__ = [
    "BlockKD",
    "BlockKDConfig",
    "BlockKDError",
    "CandidateStage",
    "NSRMeter",
    "Teacher",
    "candidate_stages",
    "load_supernet_teacher",
    "nsr_loss",
    "stage_space",
    "usable_cores",
    "work_dir_for",
]

#: channels whose teacher variance is below this fraction of the mean channel variance carry no
#: signal (a dead ReLU channel, a constant): they are left out of the NSR average
DEAD_CHANNEL_RATIO = 1e-8


class BlockKDError(HwnasError):
    """Block-wise distillation cannot run as asked (teacher / hyper-space mismatch, bad stage)."""


# ----------------------------------------------------------------------------------------------
# the loss
# ----------------------------------------------------------------------------------------------
def _nsr_from_stats(err: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    keep = var > DEAD_CHANNEL_RATIO * var.mean().clamp_min(1e-30)
    if not bool(keep.any()):
        return err.mean() * 0.0
    return (err[keep] / var[keep]).mean()


def nsr_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Noise-to-signal ratio: per channel ``mean((s - t)^2) / var(t)`` over batch and space,
    averaged over channels (channels of constant teacher output left out). Differentiable."""
    if student.shape != teacher.shape:
        raise BlockKDError(f"NSR of tensors of different shapes {tuple(student.shape)} and {tuple(teacher.shape)}")
    dims = [d for d in range(teacher.dim()) if d != 1]
    err = (student - teacher).pow(2).mean(dim=dims)
    var = teacher.var(dim=dims, unbiased=False)
    return _nsr_from_stats(err, var)


class NSRMeter:
    """The NSR of a whole evaluation set, accumulated batch by batch (the variance is the
    teacher's over every image, not a per-batch average)."""

    def __init__(self) -> None:
        #: per channel: the summed squared error, and the sums of the teacher's values and squares
        self.sums: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.n = 0

    @torch.no_grad()
    def update(self, student: torch.Tensor, teacher: torch.Tensor) -> None:
        if student.shape != teacher.shape:
            raise BlockKDError(f"NSR of tensors of different shapes {tuple(student.shape)} and {tuple(teacher.shape)}")
        dims = [d for d in range(teacher.dim()) if d != 1]
        t = teacher.double()
        e = (student.double() - t).pow(2).sum(dim=dims)
        a, b = t.sum(dim=dims), t.pow(2).sum(dim=dims)
        if self.sums is None:
            self.sums = (e, a, b)
        else:
            err, s1, s2 = self.sums
            self.sums = (err + e, s1 + a, s2 + b)
        self.n += teacher.numel() // teacher.shape[1]

    def value(self) -> float:
        if self.sums is None or self.n == 0:
            raise BlockKDError("NSR of an empty evaluation set")
        err, s1, s2 = self.sums
        mean = s1 / self.n
        var = (s2 / self.n - mean.pow(2)).clamp_min(0.0)
        return float(_nsr_from_stats(err / self.n, var))


# ----------------------------------------------------------------------------------------------
# candidate stages
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CandidateStage:
    """One (stage, block type, width window) of a hyper-space."""

    stage: int
    block_type: str
    window: tuple[int, ...]
    window_name: str  # the hyper-space's value of ``stageN.window`` (``w0``, ``w1``, ...)
    in_chans: int  # the stage's input width: the largest width of the previous stage

    @property
    def name(self) -> str:
        return f"stage{self.stage}-{self.block_type}-{self.window_name}"

    def describe(self) -> str:
        return f"stage {self.stage} {self.block_type} widths {list(self.window)}"


def _window_param(node: Any) -> tuple[str, dict[str, tuple[int, ...]]] | None:
    """``(param name, {window name: widths})`` of a stage's width: an ``Or`` labelled ``window``
    over width choices, or a plain width choice (one window, named ``all``)."""
    from spaces._nodes import Choice, Or

    def widths(choice: Any) -> tuple[int, ...] | None:
        if isinstance(choice, Choice) and all(isinstance(o, int) and not isinstance(o, bool) for o in choice.options):
            return tuple(int(o) for o in choice.options)
        return None

    for pname, value in node.params.items():
        if isinstance(value, Or) and value.label == "window":
            wins = {name: widths(branch) for name, branch in value.branches.items()}
            if all(w is not None for w in wins.values()):
                return pname, wins  # type: ignore[return-value]
    for pname, value in node.params.items():
        w = widths(value)
        if w is not None:
            return pname, {"all": w}
    return None


def _stage_nodes(hyperspace: Space) -> dict[int, Any]:
    from spaces._nodes import Or, Sequential

    body = hyperspace.body
    out: dict[int, Any] = {}
    if isinstance(body, Sequential):
        for name, node in body.children:
            if (
                name.startswith("stage")
                and name[5:].isdigit()
                and isinstance(node, Or)
                and not node.is_value()
                and _window_param(node) is not None
            ):
                out[int(name[5:])] = node
    if not out:
        raise BlockKDError(
            f"space {hyperspace.name!r}: no searchable stages (stageN with a block type and a "
            f"width window, as the spaceevo hyper-space has)"
        )
    return out


def _windows_of(node: Any) -> dict[str, tuple[int, ...]]:
    found = _window_param(node)
    assert found is not None
    return found[1]


def candidate_stages(
    hyperspace: Space,
    stages: Iterable[int] | None = None,
    block_types: Iterable[str] | None = None,
    windows: Iterable[str | int] | None = None,
) -> list[CandidateStage]:
    """Every candidate stage of ``hyperspace`` (the ``spaceevo`` space or one built like it),
    optionally only some stages, block types and windows (window names ``w0`` or indices)."""
    nodes = _stage_nodes(hyperspace)
    wanted_stages = sorted(set(int(s) for s in stages)) if stages is not None else sorted(nodes)
    for s in wanted_stages:
        if s not in nodes:
            raise BlockKDError(
                f"space {hyperspace.name!r} has no searchable stage {s} (stages: {', '.join(map(str, sorted(nodes)))})"
            )
    types = list(block_types) if block_types is not None else None
    if types is not None:
        known = {t for n in nodes.values() for t in n.branches}
        bad = [t for t in types if t not in known]
        if bad:
            raise BlockKDError(
                f"space {hyperspace.name!r} has no block type {bad[0]!r} (types: {', '.join(sorted(known))})"
            )
    names = (
        None if windows is None else {f"w{w}" if isinstance(w, int) or str(w).isdigit() else str(w) for w in windows}
    )
    first_blocks: dict[int, int] = {}
    for b in hyperspace.enumerate_blocks():
        head, _, rest = b.path.partition(".")
        if head.startswith("stage") and head[5:].isdigit() and rest.endswith("b0"):
            s = int(head[5:])
            first_blocks[s] = max(first_blocks.get(s, 0), b.cin)
    out: list[CandidateStage] = []
    for s in wanted_stages:
        node = nodes[s]
        wins = _windows_of(node)
        if names is not None and not names & set(wins):
            raise BlockKDError(f"stage {s} has no window {sorted(names)[0]!r} (windows: {', '.join(wins)})")
        for bt in node.branches:
            if types is not None and bt not in types:
                continue
            for wname, widths in wins.items():
                if names is not None and wname not in names:
                    continue
                out.append(CandidateStage(s, bt, widths, wname, first_blocks.get(s, hyperspace.in_chans)))
    return out


def stage_space(hyperspace: Space, cand: CandidateStage, *, resolution: int) -> Space:
    """The super-block of ``cand`` as a DSL space: the hyper-space's ``stageN`` node restricted to
    one block type and one width window, on inputs of ``cand.in_chans`` channels and
    ``resolution`` pixels. Its archs hold exactly the hyper-space's ``stageN.*`` decisions."""
    from spaces._nodes import Or, Sequential

    node = _stage_nodes(hyperspace)[cand.stage]
    pname, _ = _window_param(node)  # type: ignore[misc]
    params = dict(node.params)
    win = params[pname]
    if isinstance(win, Or):
        params[pname] = Or({cand.window_name: win.branches[cand.window_name]}, label=win.label)
    body = Sequential(
        {f"stage{cand.stage}": Or({cand.block_type: node.branches[cand.block_type]}, label=node.label, params=params)}
    )
    return Space(
        f"{hyperspace.name}-{cand.name}",
        body,
        in_chans=cand.in_chans,
        num_classes=1,
        resolution=resolution,
        description=f"block-wise distillation super-block of {cand.describe()}",
    )


# ----------------------------------------------------------------------------------------------
# teachers
# ----------------------------------------------------------------------------------------------
class _Stop(Exception):
    pass


class Teacher:
    """A trained network cut at stage boundaries: :meth:`stage_io` gives the input and output
    feature maps of stage ``s`` for a batch of images. Build one with :meth:`from_network` (a
    network built by a space, whose block paths start with ``stageN.``) or :meth:`from_module`
    (any module, e.g. a timm model, with the submodule that is each stage named)."""

    def __init__(
        self,
        module: nn.Module,
        input_shape: Sequence[int],
        *,
        blocks: Sequence[nn.Module] | None = None,
        ranges: Mapping[int, tuple[int, int]] | None = None,
        hooks: Mapping[int, str] | None = None,
        description: Mapping[str, Any] | None = None,
    ) -> None:
        self.module = module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.input_shape = tuple(int(v) for v in input_shape)
        self._blocks = list(blocks) if blocks is not None else None
        self._ranges = dict(ranges or {})
        self._hooks = dict(hooks or {})
        self.description = dict(description or {})
        self._shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._fingerprint: str | None = None

    @classmethod
    def from_network(
        cls, net: nn.Module, input_shape: Sequence[int], description: Mapping[str, Any] | None = None
    ) -> Teacher:
        """A teacher from a network built by :meth:`spaces.Space.build` (``net.block_paths``)."""
        paths = list(getattr(net, "block_paths", []) or [])
        blocks = list(getattr(net, "blocks", []) or [])
        if not paths or len(paths) != len(blocks):
            raise BlockKDError("the teacher is not a network built by a space (no block paths)")
        ranges: dict[int, tuple[int, int]] = {}
        for i, p in enumerate(paths):
            head = p.split(".", 1)[0]
            if head.startswith("stage") and head[5:].isdigit():
                s = int(head[5:])
                lo, _ = ranges.get(s, (i, i))
                ranges[s] = (lo, i + 1)
        return cls(net, input_shape, blocks=blocks, ranges=ranges, description=description)

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        input_shape: Sequence[int],
        stage_modules: Mapping[int, str],
        description: Mapping[str, Any] | None = None,
    ) -> Teacher:
        """A teacher from any module: stage ``s`` is the submodule named ``stage_modules[s]``
        (e.g. ``{1: "layer1", 2: "layer2"}`` of a timm ResNet); its input and output are the stage's."""
        names = dict(module.named_modules())
        for s, name in stage_modules.items():
            if name not in names:
                raise BlockKDError(f"teacher stage {s}: the model has no submodule {name!r}")
        return cls(
            module, input_shape, hooks={int(s): str(n) for s, n in stage_modules.items()}, description=description
        )

    @property
    def stages(self) -> list[int]:
        """The stages this teacher can be cut at."""
        return sorted(self._ranges or self._hooks)

    def _check(self, stage: int) -> None:
        if stage not in (self._ranges or self._hooks):
            raise BlockKDError(
                f"the teacher has no stage {stage} (stages: {', '.join(map(str, self.stages)) or 'none'})"
            )

    @torch.no_grad()
    def stage_io(self, x: torch.Tensor, stage: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input, output)`` feature maps of ``stage`` for images ``x`` (no gradients)."""
        self._check(stage)
        if self._blocks is not None:
            lo, hi = self._ranges[stage]
            h = x
            for b in self._blocks[:lo]:
                h = b(h)
            inp = h
            for b in self._blocks[lo:hi]:
                h = b(h)
            return inp, h
        target = dict(self.module.named_modules())[self._hooks[stage]]
        got: dict[str, torch.Tensor] = {}

        def hook(_m: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
            got["in"], got["out"] = args[0], out
            raise _Stop

        handle = target.register_forward_hook(hook)
        try:
            self.module(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        if "out" not in got:
            raise BlockKDError(f"teacher stage {stage}: submodule {self._hooks[stage]!r} never ran")
        return got["in"], got["out"]

    def shapes(self, stage: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``((C, H, W) of the input, (C, H, W) of the output)`` of ``stage``."""
        if stage not in self._shapes:
            device = next((p.device for p in self.module.parameters()), torch.device("cpu"))
            inp, out = self.stage_io(torch.zeros(2, *self.input_shape, device=device), stage)
            self._shapes[stage] = (tuple(inp.shape[1:]), tuple(out.shape[1:]))
        return self._shapes[stage]

    def fingerprint(self) -> str:
        """16 hex digits of a hash of the teacher's tensors and stage cuts."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(
                canonical_json(
                    {
                        "ranges": {str(k): v for k, v in self._ranges.items()},
                        "hooks": {str(k): v for k, v in self._hooks.items()},
                        "input": list(self.input_shape),
                    }
                ).encode()
            )
            for name, t in sorted(self.module.state_dict().items()):
                t = t.detach().to("cpu").contiguous()
                h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
                h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def to(self, device: str | torch.device) -> Teacher:
        self.module.to(device)
        return self


def load_supernet_teacher(
    path: str | os.PathLike[str], config: BlockKDConfig | None = None, *, data: str | None = None, device: str = "cpu"
) -> tuple[Teacher, Any, Any, dict[str, Any]]:
    """The largest subnet of a QFA supernet checkpoint as an FP32 teacher, with the training
    images to distil on and the held-out training images to measure on: ``(teacher, train,
    held_out, data record)``.

    The data are the checkpoint's (``data`` reads another data set in their place, same classes),
    normalised as recorded; when the supernet held a validation share out of its training, that
    share is the held-out set (images the teacher never saw), else ``config.val_fraction`` is
    carved out. The teacher's batch norms are recalibrated on training batches."""
    from spaces.identity import space_identity
    from supernet.data import calibration_batches, load_data_like, split_validation
    from supernet.train import load_supernet

    config = config or BlockKDConfig()
    net, meta = load_supernet(path, device=device)
    sconf = meta.get("config", {}) if isinstance(meta.get("config"), dict) else {}
    record = meta.get("data_info")
    if not isinstance(record, dict):
        raise BlockKDError(f"{path}: the checkpoint records no data set; it cannot serve as a teacher")
    images = load_data_like(record, "train", sconf.get("train_limit"), spec=data)
    held = float(sconf.get("val_fraction") or 0.0)
    if held > 0:
        train, val = split_validation(images, held, int(sconf.get("seed", 0)))
    else:
        train, val = split_validation(images, config.val_fraction, config.seed)
    if config.train_limit is not None and config.train_limit < len(train):
        train = train.select(torch.arange(config.train_limit))
    bn = [b.to(device) for b in calibration_batches(train, config.bn_batches, config.batch_size, config.seed)]
    largest = net.largest()
    sub = net.subnet(largest, quantized=False, bn_batches=bn)
    desc = {
        "kind": "supernet",
        "path": str(Path(path).resolve()),
        "space": space_identity(net.space).get("hash"),
        "arch": dict(largest),
    }
    teacher = Teacher.from_network(sub, net.space.input_shape, desc)
    return teacher, train, val, {**record, "held_out": "teacher's validation share" if held > 0 else "carved"}


# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------
@dataclass
class BlockKDConfig:
    """The recipe of a block-wise distillation run (everything but ``threads`` and
    ``checkpoint_every`` enters the fingerprint of the stored measurements)."""

    epochs: float = 1.0  # FP32 distillation epochs over the training images
    qat_epochs: float = 0.5  # then LSQ+ fake-quantized epochs (0: FP32 only)
    batch_size: int = 64
    lr: float = 2e-3  # Adam, cosine decay within each phase
    qat_lr: float = 5e-4
    num_random: int = 2  # random sub-stages per step besides the largest and the smallest
    eval_samples: int = 16  # random sub-stages measured per candidate stage (plus smallest and largest)
    eval_images: int = 1024  # held-out training images the NSR is measured on
    bn_batches: int = 4  # batches for BN recalibration and quantizer calibration
    val_fraction: float = 0.1  # share of the training images held out (unless the teacher held some out)
    train_limit: int | None = None
    scheme: str = "ort_cpu"
    seed: int = 0
    checkpoint_every: int = 50
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.qat_epochs < 0 or self.epochs + self.qat_epochs <= 0:
            raise ConfigError(f"epochs ({self.epochs}) + qat_epochs ({self.qat_epochs}) must be positive")
        for name in ("batch_size", "eval_images", "bn_batches"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.num_random < 0 or self.eval_samples < 0:
            raise ConfigError("num_random and eval_samples must be >= 0")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.lr <= 0 or self.qat_lr <= 0:
            raise ConfigError("learning rates must be positive")
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")

    def recipe(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("threads", "checkpoint_every"):
            d.pop(k)
        return d


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def work_dir_for(out: str | os.PathLike[str]) -> Path:
    """The folder of per-candidate checkpoints beside the quality file ``out``."""
    p = Path(out)
    return p.with_name(p.name + ".work")


def _mix(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(canonical_json([str(p) for p in parts]).encode()).digest()[:8], "little") >> 1


# ----------------------------------------------------------------------------------------------
# adapters
# ----------------------------------------------------------------------------------------------
class _OutAdapter(nn.Module):
    """1x1 projection from the sub-stage's width (a slice of the largest) to the teacher's channels;
    in the INT8 phase its input (the stage's output) is fake-quantized."""

    def __init__(self, cin: int, cout: int, mean: torch.Tensor) -> None:
        super().__init__()
        # starts by predicting the teacher's per-channel mean (NSR 1), not noise of the wrong scale
        self.weight = nn.Parameter(torch.zeros(cout, cin, 1, 1))
        self.bias = nn.Parameter(mean.detach().clone().reshape(cout))
        self.quant: nn.Module | None = None

    def enable_quantization(self, scheme: Any) -> None:
        from quant.fake_quant import ActFakeQuant

        self.quant = ActFakeQuant(scheme).to(self.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant is not None:
            x = self.quant(x)
        return F.conv2d(x, self.weight[:, : x.shape[1]], self.bias)


def _in_adapter(cin: int, cout: int, generator: torch.Generator) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 1, bias=True)
    assert conv.bias is not None
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (1.0 / cin) ** 0.5)
        conv.bias.zero_()
    return conv


# ----------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------
@dataclass
class _State:
    step: int = 0
    recent: list[float] = field(default_factory=list)


StepCallback = Callable[[CandidateStage, int, float], None]


class BlockKD:
    """Block-wise distillation of ``candidates`` (default: every candidate stage of
    ``hyperspace``) from ``teacher`` on ``train`` images, measured on ``held_out`` images, stored
    in the quality file ``out`` under ``fingerprint`` (see :meth:`fingerprint_of`).

    ``train`` / ``held_out`` are :class:`hwnas.datasets.ImageData` splits of the *training* set.
    ``on_step(candidate, step, loss)`` is called after every training step (progress hooks, tests).
    """

    def __init__(
        self,
        hyperspace: Space,
        teacher: Teacher,
        train: Any,
        held_out: Any,
        out: str | os.PathLike[str],
        config: BlockKDConfig | None = None,
        *,
        candidates: Sequence[CandidateStage] | None = None,
        data_record: Mapping[str, Any] | None = None,
        progress: bool | None = None,
        on_step: StepCallback | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        from quant.scheme import get_scheme
        from spaces.identity import space_identity

        self.space = hyperspace
        self.teacher = teacher
        self.train = train
        self.held_out = held_out
        self.out = Path(out)
        self.config = config or BlockKDConfig()
        self.candidates = list(candidates) if candidates is not None else candidate_stages(hyperspace)
        self.progress = progress
        self.on_step = on_step
        self.log = log or (lambda msg: None)
        self.scheme = get_scheme(self.config.scheme)
        self.device = next((p.device for p in teacher.module.parameters()), torch.device("cpu"))
        ident = space_identity(hyperspace)
        scheme_fields = {
            k: sorted(v) if isinstance(v, frozenset) else v for k, v in dataclasses.asdict(self.scheme).items()
        }
        teacher_record = {
            "fingerprint": teacher.fingerprint(),
            **{k: v for k, v in teacher.description.items() if k != "path"},
        }
        self.record = {
            "teacher": teacher_record,
            "data": dict(data_record or {}),
            "train_images": len(train),
            "held_out_images": len(held_out),
            "hyperspace": {"name": ident.get("name"), "hash": ident.get("hash"), "kwargs": ident.get("kwargs")},
            "recipe": self.config.recipe(),
            "scheme": scheme_fields,
        }
        self.fingerprint = hashlib.sha256(canonical_json(self.record).encode()).hexdigest()[:16]
        if "path" in teacher.description:  # recorded, not hashed: the same teacher moved is the same teacher
            self.record["teacher"] = {**teacher_record, "path": teacher.description["path"]}
        for cand in self.candidates:
            self._check_candidate(cand)
        self._stop = False
        self._held: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    # -- checks -------------------------------------------------------------------------------
    def _check_candidate(self, cand: CandidateStage) -> None:
        (tc, th, tw), (oc, oh, ow) = self.teacher.shapes(cand.stage)
        sp = stage_space(self.space, cand, resolution=th)
        b = sp.blocks(sp.default())[-1]
        if (b.h_out, b.w_out) != (oh, ow):
            raise BlockKDError(
                f"{cand.describe()}: the candidate turns the teacher's {th}x{tw} stage input into "
                f"{b.h_out}x{b.w_out}, the teacher's stage output is {oh}x{ow} (strides differ: use a "
                f"teacher of the hyper-space's resolution)"
            )

    # -- helpers ------------------------------------------------------------------------------
    def _steps(self) -> tuple[int, int]:
        per_epoch = len(self.train) // self.config.batch_size
        if per_epoch < 1:
            raise ConfigError(f"{len(self.train)} training images, fewer than one batch of {self.config.batch_size}")
        return int(round(self.config.epochs * per_epoch)), int(round(self.config.qat_epochs * per_epoch))

    def _batch(self, cand_seed: int, step: int) -> torch.Tensor:
        from supernet.data import EpochOrder

        per_epoch = len(self.train) // self.config.batch_size
        epoch, k = divmod(step, per_epoch)
        order = EpochOrder(self.train, self.config.batch_size, cand_seed, epoch, flip=True)
        x, _ = order.batch(k)
        return x.to(self.device)

    def _calibration_images(self) -> list[torch.Tensor]:
        from supernet.data import calibration_batches

        xs = calibration_batches(self.train, self.config.bn_batches, self.config.batch_size, self.config.seed)
        return [x.to(self.device) for x in xs]

    def _calibration(self, stage: int) -> list[torch.Tensor]:
        return [self.teacher.stage_io(x, stage)[0] for x in self._calibration_images()]

    def _held_features(self, stage: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if stage not in self._held:
            n = min(len(self.held_out), self.config.eval_images)
            idx = torch.arange(n)
            out = []
            for i in range(0, n, 256):
                x, _ = self.held_out.take(idx[i : i + 256])
                out.append(self.teacher.stage_io(x.to(self.device), stage))
            self._held = {stage: out}  # one stage at a time: candidates run stage by stage
        return self._held[stage]

    def _ckpt_path(self, cand: CandidateStage) -> Path:
        return work_dir_for(self.out) / self.fingerprint / f"{cand.name}.safetensors"

    # -- public -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Distil and measure every unfinished candidate stage; returns a summary. Interrupted
        (SIGINT / SIGTERM), it checkpoints the current candidate and raises ``KeyboardInterrupt``."""
        torch.set_num_threads(self.config.threads or usable_cores())
        old: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, self._on_signal)
        bar = _Bar(self.progress, len(self.candidates))
        done = trained = 0
        t0 = time.perf_counter()
        timings: list[float] = []
        try:
            with QualityStore(self.out) as store:
                store.register_run(self.fingerprint, self.record)
                for cand in self.candidates:
                    if store.is_done(self.fingerprint, cand.stage, cand.block_type, cand.window):
                        done += 1
                        bar.candidate_done()
                        continue
                    t1 = time.perf_counter()
                    samples, steps, loss = self._run_candidate(cand, bar)
                    seconds = time.perf_counter() - t1
                    store.put(
                        self.fingerprint,
                        cand.stage,
                        cand.block_type,
                        cand.window,
                        samples,
                        window_name=cand.window_name,
                        steps=steps,
                        seconds=seconds,
                        train_loss=loss,
                    )
                    self._ckpt_path(cand).unlink(missing_ok=True)
                    trained += 1
                    timings.append(seconds)
                    bar.candidate_done()
                    best = min(v for _, v, _ in samples)
                    self.log(
                        f"{cand.describe()}: {len(samples)} sub-stages, NSR {best:.4f} .. "
                        f"{max(v for _, v, _ in samples):.4f} ({seconds:.1f} s)"
                    )
        finally:
            bar.close()
            for sig, handler in old.items():
                signal.signal(sig, handler)
        return {
            "out": str(self.out),
            "fingerprint": self.fingerprint,
            "candidates": len(self.candidates),
            "skipped": done,
            "trained": trained,
            "seconds": round(time.perf_counter() - t0, 3),
            "seconds_per_candidate": round(sum(timings) / len(timings), 3) if timings else None,
        }

    def _on_signal(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        self._stop = True

    # -- one candidate ------------------------------------------------------------------------
    def _build(self, cand: CandidateStage, cand_seed: int) -> tuple[Any, nn.Conv2d, _OutAdapter]:
        from supernet.model import Supernet

        (tc, th, _), (oc, _, _) = self.teacher.shapes(cand.stage)
        sp = stage_space(self.space, cand, resolution=th)
        with torch.random.fork_rng(devices=[]):
            net = Supernet(sp, kernel_transform=True, seed=cand_seed, layout_samples=16).to(self.device)
        g = torch.Generator().manual_seed(cand_seed)
        inp = _in_adapter(tc, cand.in_chans, g).to(self.device)
        mean = torch.stack(
            [self.teacher.stage_io(x, cand.stage)[1].mean(dim=(0, 2, 3)) for x in self._calibration_images()]
        ).mean(dim=0)
        outp = _OutAdapter(max(cand.window), oc, mean).to(self.device)
        return net, inp, outp

    def _params(self, net: Any, inp: nn.Module, outp: nn.Module) -> dict[str, nn.Parameter]:
        params: dict[str, nn.Parameter] = {}
        for key in net.keys():
            if net.is_param(key) and net.tensor(key).requires_grad:
                params[f"store/{key}"] = net.tensor(key)
        for name, p in inp.named_parameters():
            params[f"in/{name}"] = p
        for name, p in outp.named_parameters():
            if p.requires_grad:
                params[f"out/{name}"] = p
        net.pop_new_parameters()
        return params

    def _run_candidate(
        self, cand: CandidateStage, bar: _Bar
    ) -> tuple[list[tuple[dict[str, Any], float, str]], int, float | None]:
        from quant.qat import step_keeping_scales_positive
        from supernet.checkpoint import read_checkpoint, write_checkpoint

        c = self.config
        cand_seed = _mix(c.seed, cand.stage, cand.block_type, cand.window)
        fp32_steps, qat_steps = self._steps()
        total = fp32_steps + qat_steps
        net, inp, outp = self._build(cand, cand_seed)
        state = _State()
        ckpt = self._ckpt_path(cand)
        opt_state: dict[str, Any] | None = None
        if ckpt.exists():
            meta, tensors = read_checkpoint(ckpt)
            if meta.get("kind") != "blockkd" or meta.get("fingerprint") != self.fingerprint:
                raise BlockKDError(f"{ckpt}: a checkpoint of another block-wise distillation run")
            if meta.get("quantized"):
                net.enable_quantization(self.scheme)
                outp.enable_quantization(self.scheme)
            net.load_storage(
                {k[len("store/") :]: v.to(self.device) for k, v in tensors.items() if k.startswith("store/")},
                meta.get("key_info", {}),
            )
            net.pop_new_parameters()
            inp.load_state_dict({k[3:]: v for k, v in tensors.items() if k.startswith("in/")})
            outp.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("out/")}, strict=False)
            state = _State(int(meta["step"]), list(meta.get("recent", [])))
            opt_state = {
                "meta": meta["optimizer"],
                "tensors": {k: v for k, v in tensors.items() if k.startswith("opt/")},
            }
        params = self._params(net, inp, outp)
        quantized = net.quant_scheme is not None
        opt = torch.optim.Adam(list(params.values()), lr=c.qat_lr if quantized else c.lr)
        keys = list(params)
        if opt_state is not None:
            saved_keys = opt_state["meta"]["keys"]
            if set(saved_keys) != set(keys):
                raise BlockKDError(f"{ckpt}: its optimizer does not match the super-block (a changed hwnas?)")
            order = {k: i for i, k in enumerate(keys)}
            sd = opt.state_dict()
            st: dict[int, dict[str, torch.Tensor]] = {}
            for k in saved_keys:
                entry = {
                    n: opt_state["tensors"][f"opt/{k}/{n}"]
                    for n in ("step", "exp_avg", "exp_avg_sq")
                    if f"opt/{k}/{n}" in opt_state["tensors"]
                }
                if entry:
                    st[order[k]] = entry
            sd["state"] = st
            opt.load_state_dict(sd)

        def save() -> None:
            tensors: dict[str, torch.Tensor] = {f"store/{k}": v for k, v in net.storage_state().items()}
            tensors.update({f"in/{k}": v for k, v in inp.state_dict().items()})
            tensors.update({f"out/{k}": v for k, v in outp.state_dict().items()})
            for k in keys:
                for n, v in opt.state.get(params[k], {}).items():
                    if isinstance(v, torch.Tensor):
                        tensors[f"opt/{k}/{n}"] = v
            meta = {
                "kind": "blockkd",
                "fingerprint": self.fingerprint,
                "candidate": dataclasses.asdict(cand),
                "step": state.step,
                "recent": state.recent,
                "quantized": net.quant_scheme is not None,
                "key_info": net.key_info(),
                "optimizer": {"keys": keys},
            }
            write_checkpoint(ckpt, tensors, meta)

        structure_rng_seed = _mix(cand_seed, "substages")
        bar.start_candidate(cand, total, state.step)
        net.train()
        inp.train()
        outp.train()
        try:
            while state.step < total:
                if self._stop:
                    raise KeyboardInterrupt
                t = state.step
                if t >= fp32_steps and net.quant_scheme is None:
                    with torch.no_grad():
                        calib = [inp(x) for x in self._calibration(cand.stage)]
                    net.enable_quantization(self.scheme, calibration=calib, archs=[net.largest(), net.smallest()])
                    outp.enable_quantization(self.scheme)
                    net.train()
                    outp.train()
                    new = self._params(net, inp, outp)
                    keys[:] = [k for k in keys if k in new] + [k for k in new if k not in params]
                    params = new
                    opt = torch.optim.Adam([params[k] for k in keys], lr=c.qat_lr)
                    quantized = True
                phase_t, phase_n, base = (t - fp32_steps, qat_steps, c.qat_lr) if quantized else (t, fp32_steps, c.lr)
                lr = base * 0.5 * (1.0 + math.cos(math.pi * phase_t / max(1, phase_n)))
                for group in opt.param_groups:
                    group["lr"] = lr
                x = self._batch(cand_seed, t)
                t_in, t_out = self.teacher.stage_io(x, cand.stage)
                rng = _rng(structure_rng_seed, t)
                archs = [net.largest(), net.smallest()] + [net.sample(rng) for _ in range(c.num_random)]
                opt.zero_grad(set_to_none=True)
                losses = []
                for arch in archs:
                    loss = nsr_loss(outp(net(inp(t_in), arch)), t_out)
                    loss.backward()
                    losses.append(float(loss.detach()))
                for k, p in net.pop_new_parameters():  # quantizers created lazily by this step
                    params[f"store/{k}"] = p
                    keys.append(f"store/{k}")
                    opt.add_param_group({"params": [p], "lr": lr})
                if quantized:
                    scales = [p for k, p in params.items() if k.endswith(".scale")]
                    step_keeping_scales_positive(opt, scales)
                else:
                    opt.step()
                mean_loss = sum(losses) / len(losses)
                state.recent = (state.recent + [mean_loss])[-20:]
                state.step = t + 1
                bar.step(state.step, mean_loss)
                if self.on_step is not None:
                    self.on_step(cand, state.step, mean_loss)
                if c.checkpoint_every and state.step % c.checkpoint_every == 0 and state.step < total:
                    save()
            save()  # training done: a run killed while measuring does not retrain
        except KeyboardInterrupt:
            save()
            raise
        samples = self._measure(cand, net, inp, outp, cand_seed)
        recent_loss = sum(state.recent) / len(state.recent) if state.recent else None
        return samples, total, recent_loss

    @torch.no_grad()
    def _measure(
        self, cand: CandidateStage, net: Any, inp: nn.Module, outp: _OutAdapter, cand_seed: int
    ) -> list[tuple[dict[str, Any], float, str]]:
        net.eval()
        inp.eval()
        outp.eval()
        bn = [inp(x) for x in self._calibration(cand.stage)]
        held = [(inp(a), b) for a, b in self._held_features(cand.stage)]
        rng = _rng(_mix(cand_seed, "measure"), 0)
        todo: dict[Arch, str] = {net.smallest(): "smallest", net.largest(): "largest"}
        tries = 0
        while len(todo) < self.config.eval_samples + 2 and tries < 20 * (self.config.eval_samples + 2):
            todo.setdefault(net.sample(rng), "random")
            tries += 1
        out: list[tuple[dict[str, Any], float, str]] = []
        for arch, role in todo.items():
            if self._stop:
                raise KeyboardInterrupt
            model = net.subnet(arch, bn_batches=bn)  # calibrates a quantizer no QAT step reached
            meter = NSRMeter()
            for a, b in held:
                meter.update(outp(model(a)), b)
            out.append((dict(arch), meter.value(), role))
        return out


def _rng(seed: int, step: int) -> Any:
    import random

    return random.Random(_mix(seed, step))


class _Bar:
    """Progress on stderr: candidate stages done, and the steps of the current one with its loss."""

    def __init__(self, enabled: bool | None, n: int) -> None:
        import sys

        if enabled is None:
            enabled = sys.stderr.isatty()
        self.bar = ProgressBar(
            enabled, "candidate stages", n, columns=("{task.fields[info]}",), fields={"info": ""}, stderr=True
        )
        self.cur = self.bar.add_task("", total=1, info="", visible=False)

    def start_candidate(self, cand: CandidateStage, total: int, done: int) -> None:
        self.bar.update(self.cur, description=cand.name, total=total, completed=done, info="", visible=True)

    def step(self, done: int, loss: float) -> None:
        self.bar.update(self.cur, completed=done, info=f"NSR {loss:.4f}")

    def candidate_done(self) -> None:
        self.bar.advance()

    def close(self) -> None:
        self.bar.close()

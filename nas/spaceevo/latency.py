"""Stage latencies of a hyper-space from a latency LUT (numpy only, no torch).

The latency of a sub-stage (a stage's concrete choices: block type, width, depth, kernels,
expand ratios, ...) is the sum of its blocks' LUT latencies on the target, the blocks and their
LUT keys being exactly those :class:`latency_lut.LatencyPredictor` uses for whole archs. Each
block measurement holds one engine call's fixed cost (the LUT's ``overhead`` pseudo-block) which
a whole network pays once, so a block counts here as its LUT latency minus that overhead, and
:meth:`StageLatencyModel.network_ms` adds it back once with the network's input quantization
and the LUT's learned correction: Σ stage latencies + stem/head equals the predictor's
whole-network prediction.

A stage's first block reads the previous stage's output, whose channels vary with that stage's
width: a sub-stage latency is therefore a function of its input shape (see
:meth:`StageLatencyModel.part`).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError, InvalidArchError
from nas.spaceevo.candidate import HyperSpace, SpaceEvoError

__all__ = ["MissingLatencyError", "PartLatency", "StageLatencyModel", "profile_command"]

_SHOWN = 3


class MissingLatencyError(SpaceEvoError):
    """Blocks of the hyper-space have no measurement in the LUT for the target."""


@dataclass(frozen=True)
class PartLatency:
    """One concrete stage (or fixed part) on one input shape: its latency in ms (block LUT
    latencies, each less the per-call overhead), output shape, number of blocks and block keys."""

    latency_ms: float
    out_shape: tuple[int, int, int]
    n_blocks: int
    keys: tuple[str, ...]


def profile_command(space: Any, target: str, lut: str | os.PathLike[str]) -> str:
    """The ``nas profile`` command that measures every block of ``space`` into ``lut``."""
    kwargs = dict(getattr(space, "factory_kwargs", {}) or {})
    if not kwargs:
        return f"nas profile --space SPACE.yaml --target {target} --out {lut} (SPACE.yaml: the space's YAML file)"
    from spaces import get_space_factory

    try:
        params = inspect.signature(get_space_factory(space.name)).parameters
    except Exception:  # noqa: BLE001 - an unregistered name: the generic form
        return f"nas profile --space SPACE.yaml --target {target} --out {lut}"
    parts = [f"nas profile --space {space.name}"]
    extra = {}
    for key, value in sorted(kwargs.items()):
        if key in ("in_chans", "num_classes", "resolution"):
            continue
        default = params[key].default if key in params else inspect.Parameter.empty
        if default is inspect.Parameter.empty or _plain(default) != _plain(value):
            extra[key] = _plain(value)
    if extra:
        parts.append(f"--space-args '{json.dumps(extra, sort_keys=True)}'")
    parts.append(f"--in-chans {space.in_chans} --num-classes {space.num_classes} --resolution {space.resolution}")
    parts.append(f"--target {target} --out {lut}")
    return " ".join(parts)


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


class StageLatencyModel:
    """Latencies of a hyper-space's stages and fixed parts on one target, from a LUT.

    ``predictor``: a :class:`latency_lut.LatencyPredictor` for ``hyper.space`` (its block keys,
    per-call overhead, input quantization and learned correction are used as they are).
    Use :meth:`from_lut` to open one with one-line errors.
    """

    def __init__(self, hyper: HyperSpace, predictor: Any, lut: str | os.PathLike[str] | None = None) -> None:
        self.hyper = hyper
        self.predictor = predictor
        self.lut = str(lut if lut is not None else predictor.db.path)
        self.target = str(predictor.target)
        self.batch = int(predictor.batch)
        self.overhead_ms = float(predictor.overhead_ms)
        self.extras_ms = float(predictor.extras_ms)
        self.n_extras = len(predictor.extras)
        self.correction = predictor.correction
        self._lat = predictor.db.latencies(predictor.fp_id)
        self._families: dict[str, str] | None = None
        self._parts: dict[tuple[Any, ...], PartLatency] = {}
        self._probes: dict[tuple[Any, ...], Any] = {}
        self._subs: dict[tuple[Any, ...], dict[tuple[int, int, int], PartLatency]] = {}
        self._blocks: dict[tuple[Any, ...], dict[tuple[int, int, int], list[Any]]] = {}

    @classmethod
    def from_lut(
        cls, lut: str | os.PathLike[str], target: Any, hyper: HyperSpace, correction: bool = True
    ) -> StageLatencyModel:
        """The model for ``target`` (a name or YAML file, fingerprinted on this machine) from ``lut``,
        which must hold every block of the hyper-space (else one line naming the missing blocks
        and the ``nas profile`` command that measures them)."""
        from latency_lut.predictor import LatencyPredictor, LUTSpaceMismatchError

        if not Path(lut).is_file():
            raise SpaceEvoError(f"{lut}: no such LUT file")
        name = getattr(target, "name", target)
        try:
            pred = LatencyPredictor.for_target(lut, target, hyper.space, correction=correction, allow_other_space=True)
        except LUTSpaceMismatchError as exc:
            raise MissingLatencyError(
                f"{exc}; measure them with `{profile_command(hyper.space, str(name), lut)}`"
            ) from None
        missing = pred.missing_keys()
        if missing:
            shown = ", ".join(missing[:_SHOWN]) + (
                f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
            )
            raise MissingLatencyError(
                f"{lut}: {len(missing)} block(s) of hyper-space {hyper.name!r} have no measurement for target "
                f"{pred.target!r} ({shown}); measure them with `{profile_command(hyper.space, pred.target, lut)}`"
            )
        return cls(hyper, pred, lut)

    def family(self, key: str) -> str | None:
        """The op family the LUT records for block ``key`` (``mbconv relu``, ...)."""
        if self._families is None:
            self._families = {r["block_key"]: r["family"] for r in self.predictor.db.rows(self.predictor.fp_id)}
        return self._families.get(key)

    # -- blocks ---------------------------------------------------------------------------
    def blocks_ms(self, blocks: Sequence[Any], where: str) -> tuple[float, tuple[str, ...]]:
        """``(Σ (LUT latency − per-call overhead), keys)`` of ``blocks`` (ResolvedBlocks)."""
        from latency_lut.keys import block_key

        keys = tuple(block_key(b, self.batch) for b in blocks)
        missing = [k for k in keys if k not in self._lat]
        if missing:
            shown = ", ".join(missing[:_SHOWN]) + (
                f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
            )
            raise MissingLatencyError(
                f"{self.lut}: {where}: {len(missing)} block(s) have no measurement for target {self.target!r} "
                f"({shown}); measure them with `{profile_command(self.hyper.space, self.target, self.lut)}`"
            )
        return sum(self._lat[k] - self.overhead_ms for k in keys), keys

    # -- parts ------------------------------------------------------------------------------
    def fixed(self, child: int, input_shape: tuple[int, int, int]) -> PartLatency:
        """The latency of the fixed body child ``child`` (stem, head, ...) fed ``input_shape`` (cached)."""
        key = (child, tuple(input_shape))
        if key not in self._parts:
            probe = self.hyper.probe_space(child, input_shape)
            self._parts[key] = self._measure(probe, {}, f"{self.hyper.children[child][0]}", input_shape)
        return self._parts[key]

    def substage(
        self,
        index: int,
        block_type: str,
        window: Sequence[int],
        arch: Mapping[str, Any],
        input_shape: tuple[int, int, int],
    ) -> PartLatency:
        """The latency of a sub-stage of stage ``index`` fed ``input_shape``: ``arch`` holds its
        choices as hyper-space arch entries (see :func:`nas.spaceevo.candidate.stage_choices`).
        Cached; the same sub-stage on an input of other channels only re-keys its first block."""
        c, h, w = input_shape
        shape = (int(c), int(h), int(w))
        choices = tuple(sorted((str(k), v) for k, v in arch.items()))
        key = (index, block_type, tuple(window), choices)
        known = self._subs.setdefault(key, {})
        got = known.get(shape)
        if got is not None:
            return got
        name = f"{self.hyper.stage(index).name} {block_type}"
        for (_c, h, w), blocks in list(self._blocks.get(key, {}).items()):
            if (h, w) == shape[1:]:
                moved = _with_input_channels(blocks, shape[0])
                if moved is not None:
                    got = self._part(moved, f"{name} on a {'x'.join(map(str, shape))} input", shape)
                    break
        if got is None:
            probe = self._probes.get((key[:3], shape))
            if probe is None:
                spec = self.hyper.stage(index)
                probe = self.hyper.probe_space(spec.child, shape, self.hyper.stage_node(index, block_type, window))
                self._probes[(key[:3], shape)] = probe
            where = f"{name} on a {'x'.join(map(str, shape))} input"
            blocks = self._walk(probe, arch, where)
            self._blocks.setdefault(key, {})[shape] = blocks
            got = self._part(blocks, where, shape)
        known[shape] = got
        return got

    def _walk(self, probe: Any, arch: Mapping[str, Any], where: str) -> list[Any]:
        try:
            return probe.blocks(arch)
        except (InvalidArchError, ConfigError) as exc:
            raise SpaceEvoError(f"{where}: {exc}") from None

    def _measure(
        self, probe: Any, arch: Mapping[str, Any], name: str, input_shape: tuple[int, int, int]
    ) -> PartLatency:
        where = f"{name} on a {'x'.join(map(str, input_shape))} input"
        return self._part(self._walk(probe, arch, where), where, input_shape)

    def _part(self, blocks: Sequence[Any], where: str, input_shape: tuple[int, int, int]) -> PartLatency:
        ms, keys = self.blocks_ms(blocks, where)
        out = (blocks[-1].cout, blocks[-1].h_out, blocks[-1].w_out) if blocks else tuple(input_shape)
        return PartLatency(float(ms), (int(out[0]), int(out[1]), int(out[2])), len(blocks), keys)

    # -- whole networks ------------------------------------------------------------------------
    def network_ms(self, parts_ms: Any, n_blocks: Any) -> Any:
        """Whole-network latency (ms, numpy) from the sum of part latencies and the number of
        blocks: the per-call overhead once, the input quantization of INT8 models and the LUT's
        learned correction added, as :meth:`latency_lut.LatencyPredictor.predict` does."""
        import numpy as np

        from latency_lut.correction import apply_correction

        raw = np.asarray(parts_ms, dtype=np.float64) + self.extras_ms - (self.n_extras - 1) * self.overhead_ms
        return apply_correction(self.correction, raw, n_blocks)

    def predict_arch(self, arch: Mapping[str, Any]) -> float:
        """The predictor's own whole-network prediction of a hyper-space arch (for checks)."""
        return float(self.predictor.predict(self.hyper.space.validate(arch)))

    def close(self) -> None:
        self.predictor.close()


def _with_input_channels(blocks: Sequence[Any], cin: int) -> list[Any] | None:
    """``blocks`` fed ``cin`` input channels instead, when only the first block's input changes
    (its op's output channels and size do not depend on them); else None."""
    import dataclasses

    from spaces import get_op

    if not blocks:
        return None
    first = blocks[0]
    params = dict(first.params)
    opdef = get_op(first.op)
    if opdef.out_channels(params, cin) != first.cout or opdef.output_hw(params, first.h, first.w) != (
        first.h_out,
        first.w_out,
    ):
        return None
    return [dataclasses.replace(first, cin=int(cin)), *blocks[1:]]

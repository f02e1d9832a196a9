"""Shared pieces of the SpaceEvo tests: a small hyper-space, an in-memory fake of the block-wise
quality (:class:`nas.spaceevo.score.StageQuality`) and a synthetic LUT for it."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from nas.spaceevo.candidate import HyperSpace
from spaces import Sequential, Space

TARGET = "cpu-ort-int8"
FP32_TARGET = "cpu-ort-fp32"
#: the block types of the small test hyper-space (three families, ReLU and hardswish+SE)
BLOCK_TYPES = ("mbv2", "mbv3", "resnet")
#: a block type's share of a sub-stage's NSR loss (lower: better quality per block)
BASE_LOSS = {"mbv1": 0.5, "mbv2": 0.3, "mbv3": 0.2, "resnet": 0.25, "resnet_se": 0.22, "fused": 0.24}


def small_hyper(block_types: tuple[str, ...] = BLOCK_TYPES) -> HyperSpace:
    """``spaceevo`` for 1x28x28 inputs, 10 classes, restricted to ``block_types``, kernels 3/5."""
    from spaces import create_space

    return HyperSpace(
        create_space(
            "spaceevo",
            in_chans=1,
            num_classes=10,
            resolution=28,
            block_types=block_types,
            kernels=(3, 5),
            expands=(3.0, 6.0),
        )
    )


class FakeQuality:
    """Per (stage, block type, window): ``n`` seeded random sub-stages of the pruned stage with a
    deterministic loss falling with width and depth; ``missing`` keys return no samples."""

    def __init__(self, hyper: HyperSpace, n: int = 12, seed: int = 0, missing: tuple = ()) -> None:
        self.hyper, self.n, self.seed, self.missing = hyper, n, seed, set(missing)
        self.calls = 0

    def samples(self, stage: int, block_type: str, window: tuple[int, ...]) -> list[tuple[dict[str, Any], float]]:
        self.calls += 1
        if (stage, block_type, tuple(window)) in self.missing:
            return []
        spec = next(s for s in self.hyper.stages if s.number == stage)
        node = self.hyper.stage_node(spec.index, block_type, window)
        probe = Space("probe", Sequential({spec.name: node}))
        rng = random.Random(f"{self.seed}-{stage}-{block_type}-{window}")
        out = []
        for _ in range(self.n):
            arch = dict(probe.sample(rng))
            width = next(v for k, v in arch.items() if k.endswith(".width"))
            depth = next(v for k, v in arch.items() if k.endswith(".depth"))
            loss = BASE_LOSS[block_type] * (1.0 + 8.0 / width) / (0.5 + 0.5 * depth) + 0.01 * rng.random()
            out.append((arch, loss))
        return out


def write_lut(path: Path, space: Space, targets: tuple[str, ...] = (TARGET,)) -> Path:
    """A synthetic LUT of every block of ``space`` on ``targets`` (fingerprinted on this machine,
    nothing measured): latency grows with MACs, ReLU blocks are 3x faster in INT8, hardswish+SE
    ones 1.1x, so that INT8 favours ReLU block types as on real CPUs."""
    from hw_profiles import Stats, load_target, target_fingerprint
    from latency_lut.db import open_lut
    from latency_lut.keys import block_family, block_key, overhead_key, quantize_key
    from latency_lut.manifest import space_record

    c, h, w = space.input_shape
    blocks = space.enumerate_blocks()
    with open_lut(path, "w") as db:
        db.register_space(space_record(space))
        for name in targets:
            t = load_target(name)
            fp = target_fingerprint(t)
            db.register_fingerprint(fp)
            run = db.begin_run(fp.id, "synthetic")
            rows = {}
            for b in blocks:
                kw = b.kwargs
                k = int(kw.get("kernel", 1) or 1)
                e = float(kw.get("expand", 1.0) or 1.0)
                ms = 0.01 + 2e-7 * b.cin * b.cout * b.h_out * b.w_out * k * e
                if t.precision == "int8":
                    ms /= 1.1 if kw.get("act") == "hardswish" else 3.0
                rows[block_key(b, t.batch)] = (b.op, block_family(b.op, kw), ms + 0.005)
            rows[overhead_key(t.batch)] = ("overhead", "overhead", 0.005)
            if t.precision == "int8":
                rows[quantize_key(c, h, w, t.batch)] = ("quantize", "quantize", 0.002)
            for key, (op, fam, ms) in rows.items():
                db.insert(fp.id, key, op, fam, Stats(ms, ms, 0.0, ms, 1, 0.0, 1, True), run)
            db.end_run(run, len(rows))
    return Path(path)

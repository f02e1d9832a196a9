"""Validate a LUT end to end: measure random whole networks, compare with the prediction.

Host side (exports networks from the space, so it needs torch). Networks are exported and
quantized exactly like the calibration networks (by :mod:`quant`, as ``nas export`` ships them),
measured with the target's harness, and compared with :class:`LatencyPredictor`. The
networks the correction was fitted on are never used for validation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

from latency_lut.formats import model_filename
from latency_lut.metrics import agreement
from latency_lut.profiler import DEFAULT_RETRY_PASSES
from latency_lut.progress import progress_bar
from latency_lut.workdir import sigterm_as_interrupt, work_folder

#: Each network is measured in this many passes over all networks, minutes apart, keeping its
#: lowest median: as often as ``nas profile`` measures its calibration networks (once, then once
#: per retry pass), so that the correction is fitted on the statistic validation reports, and a
#: busy spell on a shared machine does not decide a network's figure.
DEFAULT_PASSES = DEFAULT_RETRY_PASSES + 1

__all__ = ["DEFAULT_PASSES", "pool", "validate", "validation_archs"]


def validation_archs(space: Any, n: int, seed: int = 0, exclude: set[str] | None = None) -> list[Any]:
    """``n`` distinct random archs: ``space.sample(seed + i)`` for i = 0, 1, ..., skipping the ids
    in ``exclude`` (the calibration networks). These are the archs whose blocks
    ``nas profile --archs N --seed S`` profiles, so a quick LUT covers its validation."""
    exclude = exclude or set()
    out: dict[str, Any] = {}
    i = 0
    while len(out) < n and i < 50 * max(n, 1):
        arch = space.sample(seed + i)
        i += 1
        if arch.id not in exclude:
            out.setdefault(arch.id, arch)
    return list(out.values())


def validate(
    lut: str | os.PathLike[str],
    space: Any,
    target: Any,
    n: int = 100,
    seed: int = 0,
    passes: int = DEFAULT_PASSES,
    remeasure: int = 3,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure ``n`` random networks of ``space`` on ``target`` and report how well the LUT
    predicts them. Returns the agreement metrics (see :func:`latency_lut.metrics.agreement`)
    with ``target``, ``space``, ``fingerprint``, the correction used, the metrics of the raw
    block sum, and one entry per network. Each network is measured ``passes`` times (the
    lowest median is kept); one the harness flags unstable (measured while the machine
    was busy) is measured again, up to ``remeasure`` more times."""
    from hw_profiles import create_engine, load_target
    from latency_lut.export import network_models
    from latency_lut.predictor import LatencyPredictor

    log = log or (lambda msg: None)
    target = load_target(target)
    predictor = LatencyPredictor.for_target(lut, target, space)
    try:
        calibration = {net["arch_id"] for net in predictor.db.networks(predictor.fp_id, predictor.record["signature"])}
        archs = validation_archs(space, n, seed, exclude=calibration)
        idx, nblocks = predictor.encode(archs)
        predicted = predictor.predict_indices(idx, nblocks)  # fails fast on a missing block
        raw = predictor.raw_indices(idx, nblocks)
        engine = create_engine(target)
        fmt = engine.model_format()
        stack = ExitStack()
        tmp = str(stack.enter_context(work_folder("hwnas-validate-")))  # removed on SIGTERM / by the next run
        stack.enter_context(sigterm_as_interrupt())
        measured: list[float] = [float("inf")] * len(archs)
        unstable: list[bool] = [True] * len(archs)
        bar = progress_bar(len(archs) * max(passes, 1), "networks", enabled=progress)
        try:
            paths = []
            for p in range(max(passes, 1)):
                for i, arch in enumerate(archs):
                    if p == 0:
                        path = os.path.join(tmp, model_filename(arch.id, fmt))
                        with open(path, "wb") as fh:
                            fh.write(network_models(space, arch, [fmt], target.batch, seed=i)[fmt])
                        paths.append(path)
                    stats = engine.measure_file(paths[i])
                    measured[i] = min(measured[i], stats.median_ms)
                    unstable[i] = unstable[i] and stats.busy if p else stats.busy
                    bar.advance(note=arch.id)
            bar.close()
            for _ in range(remeasure):  # networks measured while the machine was busy: try again
                for i in [i for i, u in enumerate(unstable) if u]:
                    stats = engine.measure_file(paths[i])
                    measured[i] = min(measured[i], stats.median_ms)
                    unstable[i] = stats.busy
            result_unstable = sum(unstable)
        finally:
            bar.close()
            engine.close()
            stack.close()
        result: dict[str, Any] = {
            "target": target.name,
            "space": space.name,
            "space_signature": predictor.record["signature"],
            "input_shape": list(space.input_shape),
            "fingerprint": predictor.fp_id,
            "lut": str(predictor.db.path),
            "seed": seed,
            "passes": passes,
            "unstable": result_unstable,
            **agreement(predicted, measured),
            "correction": (predictor.correction or {}).get("model", "none"),
            "raw": agreement(raw, measured),
            "networks": [
                {
                    "arch_id": a.id,
                    "blocks": int(k),
                    "predicted_ms": float(pr),
                    "raw_ms": float(r),
                    "measured_ms": float(m),
                }
                for a, k, pr, r, m in zip(archs, nblocks, predicted, raw, measured)
            ],
        }
        return result
    finally:
        predictor.close()


def pool(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The agreement metrics over the networks of several :func:`validate` results (shards of
    one validation run in parallel with disjoint seeds), with the raw sum's under ``raw``."""
    nets = [net for r in results for net in r["networks"]]
    measured = [net["measured_ms"] for net in nets]
    return {
        **agreement([net["predicted_ms"] for net in nets], measured),
        "raw": agreement([net["raw_ms"] for net in nets], measured),
    }

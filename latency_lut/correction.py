"""The learned correction: from the block sum to a whole network's latency (numpy only).

Raw prediction of a network with block keys ``k_1..k_n`` (each block model was measured
with one engine call, whose fixed cost ``o`` = the ``overhead`` pseudo-block is counted
once per model but only once for the whole network)::

    raw = Σ lat(k_i) [+ lat(quantize) for INT8 uint8-I/O models] − (m − 1)·o,   m = models summed

What the sum misses (caches shared across blocks, per-block warm-up, fusions across block
boundaries) is fitted on a few measured whole networks. The candidate models are
``none`` (raw), ``scale`` (a·raw), ``affine`` (a·raw + c) and ``affine_n`` (a·raw + b·n + c);
each is judged by leave-one-out relative error and the best one is kept only when it
beats the raw sum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CANDIDATES", "apply_correction", "fit_correction"]

CANDIDATES: dict[str, int] = {"none": 0, "scale": 2, "affine": 4, "affine_n": 6}  # name -> minimum networks


def _design(name: str, raw: Any, n: Any) -> Any:
    import numpy as np

    raw = np.asarray(raw, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if name == "scale":
        return raw[:, None]
    if name == "affine":
        return np.stack([raw, np.ones_like(raw)], axis=1)
    if name == "affine_n":
        return np.stack([raw, n, np.ones_like(raw)], axis=1)
    raise ValueError(name)


def _fit(name: str, raw: Any, n: Any, y: Any) -> Any:
    import numpy as np

    X = _design(name, raw, n)
    # relative least squares: weight each network by 1/y so that small and large nets count alike
    w = 1.0 / np.asarray(y, dtype=np.float64)
    coef, *_ = np.linalg.lstsq(X * w[:, None], np.asarray(y) * w, rcond=None)
    return coef


def apply_correction(model: Mapping[str, Any] | None, raw: Any, n: Any) -> Any:
    """Apply a fitted correction (``None`` or ``none``: the raw sum) to arrays ``raw``, ``n``."""
    import numpy as np

    raw = np.asarray(raw, dtype=np.float64)
    if not model or model.get("model", "none") == "none":
        return raw
    coef = np.asarray(model["coef"], dtype=np.float64)
    return _design(model["model"], raw, np.broadcast_to(np.asarray(n, dtype=np.float64), raw.shape)) @ coef


def fit_correction(raw: Sequence[float], n: Sequence[int], measured: Sequence[float]) -> dict[str, Any]:
    """Choose and fit the correction on networks with raw sums ``raw``, ``n`` blocks and
    ``measured`` latencies. Returns ``{"model", "coef", "loo_rel_err", "raw_rel_err", "n_networks"}``."""
    import numpy as np

    raw_a = np.asarray(raw, dtype=np.float64)
    n_a = np.asarray(n, dtype=np.float64)
    y = np.asarray(measured, dtype=np.float64)
    count = len(y)
    raw_err = float(np.mean(np.abs(raw_a - y) / y)) if count else float("nan")
    best: dict[str, Any] = {
        "model": "none",
        "coef": [],
        "loo_rel_err": raw_err,
        "raw_rel_err": raw_err,
        "n_networks": count,
        "candidates": {"none": raw_err},
    }
    for name, need in CANDIDATES.items():
        if name == "none" or count < need:
            continue
        errs = []
        for i in range(count):
            keep = np.arange(count) != i
            coef = _fit(name, raw_a[keep], n_a[keep], y[keep])
            pred = _design(name, raw_a[i : i + 1], n_a[i : i + 1]) @ coef
            errs.append(abs(float(pred[0]) - y[i]) / y[i])
        loo = float(np.mean(errs))
        best["candidates"][name] = loo
        if loo < best["loo_rel_err"]:
            best.update(model=name, coef=[float(c) for c in _fit(name, raw_a, n_a, y)], loo_rel_err=loo)
    return best

"""Agreement metrics between predicted and measured latencies (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import ArrayLike

__all__ = ["agreement", "kendall_tau"]


def kendall_tau(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's τ-b between ``x`` and ``y`` (ties handled; NaN for fewer than 2 points)."""
    import numpy as np

    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    n = len(a)
    if n < 2:
        return float("nan")
    i, j = np.triu_indices(n, k=1)
    da = np.sign(a[i] - a[j])
    db = np.sign(b[i] - b[j])
    concordant_minus_discordant = float(np.sum(da * db))
    n_a = float(np.sum(da != 0))
    n_b = float(np.sum(db != 0))
    if n_a == 0 or n_b == 0:
        return float("nan")
    return concordant_minus_discordant / (n_a * n_b) ** 0.5


def agreement(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, Any]:
    """``n``, ``within_5pct``, ``within_10pct`` (fractions), ``rmse_ms``, ``mape``, ``bias`` (mean
    signed relative error), ``max_rel_err`` and ``kendall_tau``."""
    import numpy as np

    p = np.asarray(predicted, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    rel = (p - m) / m
    return {
        "n": int(len(m)),
        "within_5pct": float(np.mean(np.abs(rel) <= 0.05)) if len(m) else float("nan"),
        "within_10pct": float(np.mean(np.abs(rel) <= 0.10)) if len(m) else float("nan"),
        "rmse_ms": float(np.sqrt(np.mean((p - m) ** 2))) if len(m) else float("nan"),
        "mape": float(np.mean(np.abs(rel))) if len(m) else float("nan"),
        "bias": float(np.mean(rel)) if len(m) else float("nan"),
        "max_rel_err": float(np.max(np.abs(rel))) if len(m) else float("nan"),
        "kendall_tau": kendall_tau(p, m),
    }

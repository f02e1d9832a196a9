"""How a search is scored (the definitions of ``nas/data/nb201/anchors.py``, shipped beside the table).

* best after N queries: the best value over the first N *distinct* queries;
* queries to optimum: the 1-based index of the first query reaching the optimum;
* hypervolume (2 objectives): the area dominated by the points and bounded by the reference
  point; points worse than the reference in either objective add nothing. The hypervolume
  fraction divides by the same area of a reference set (e.g. all rows of a table);
* RI = 100 * (mean_method - mean_random) / mean_random ("NAS evaluation is frustratingly hard").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = [
    "best_after",
    "hypervolume_2d",
    "hypervolume_fraction",
    "mean_std",
    "median_or_none",
    "queries_to_optimum",
    "relative_improvement",
]


def best_after(values: Sequence[float], n: int | None = None, *, maximize: bool = True) -> float:
    """The best of the first ``n`` values (all when ``n`` is None); NaN when there are none."""
    part = [v for v in (values if n is None else values[:n]) if not math.isnan(v)]
    if not part:
        return math.nan
    return max(part) if maximize else min(part)


def queries_to_optimum(
    values: Sequence[float], optimum: float, *, maximize: bool = True, tol: float = 1e-9
) -> int | None:
    """1-based index of the first value reaching ``optimum`` (``None`` if never reached)."""
    for i, v in enumerate(values):
        if (v >= optimum - tol) if maximize else (v <= optimum + tol):
            return i + 1
    return None


def hypervolume_2d(
    points: Iterable[tuple[float, float]],
    ref: tuple[float, float],
    directions: tuple[str, str] = ("maximize", "minimize"),
) -> float:
    """Hypervolume of 2-D ``points`` w.r.t. ``ref`` (``directions`` per coordinate)."""
    s0 = 1.0 if directions[0] == "maximize" else -1.0
    s1 = 1.0 if directions[1] == "maximize" else -1.0
    r0, r1 = s0 * ref[0], s1 * ref[1]
    # orient both to maximisation; keep points strictly better than the reference in both
    pts = sorted({(s0 * a, s1 * b) for a, b in points if s0 * a > r0 and s1 * b > r1}, key=lambda p: (-p[1], -p[0]))
    front: list[tuple[float, float]] = []
    best = -math.inf
    for a, b in pts:  # descending in the second coordinate: keep increasing first coordinate
        if a > best:
            front.append((a, b))
            best = a
    area = 0.0
    for i, (a, b) in enumerate(front):
        nxt = front[i + 1][1] if i + 1 < len(front) else r1
        area += (a - r0) * (b - nxt)
    return area


def hypervolume_fraction(
    points: Iterable[tuple[float, float]],
    reference_set: Iterable[tuple[float, float]],
    ref: tuple[float, float],
    directions: tuple[str, str] = ("maximize", "minimize"),
) -> float:
    """``hypervolume_2d(points) / hypervolume_2d(reference_set)``."""
    total = hypervolume_2d(reference_set, ref, directions)
    if total <= 0:
        return math.nan
    return hypervolume_2d(points, ref, directions) / total


def relative_improvement(mean_method: float, mean_random: float) -> float:
    """``RI = 100 * (mean_method - mean_random) / mean_random``."""
    if mean_random == 0 or math.isnan(mean_random):
        return math.nan
    return 100.0 * (mean_method - mean_random) / mean_random


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (numpy's default, as in anchors.py)."""
    xs = [v for v in values if not math.isnan(v)]
    if not xs:
        return math.nan, math.nan
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def median_or_none(values: Sequence[float | None]) -> float | None:
    """Median where ``None`` counts as infinity (not reached); ``None`` if the median is not reached."""
    xs = sorted(math.inf if v is None else float(v) for v in values)
    if not xs:
        return None
    n = len(xs)
    med = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0
    return None if math.isinf(med) else med

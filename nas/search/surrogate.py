"""Surrogate models over DSL archs, trained only on queried archs.

:class:`MatchKernelGP` is a Gaussian process on the DSL's one-hot encoding whose kernel counts
matching decisions: with ``m(a, b)`` the number of decisions active in both archs with the same
value, ``k(a, b) = sum_{j=0..order} s_j * C(m, j)``. ``C(m, j)`` is the number of ``j``-subsets
of matching decisions, so the kernel is the sum of all order-``j`` interaction kernels (a
Bayesian linear model over every ``j``-way interaction of decisions, weights per order learned
by marginal likelihood). It is cheap (one matrix product of one-hot codes) for any space, and
works for conditional spaces (inactive decisions never match).

Targets are mapped through a rank-based normal-scores (Gaussian copula) transform, which makes
the model care about *ranks* and keeps the long tail of broken architectures from dominating
the fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "MatchKernelGP",
    "copula_transform",
    "expected_improvement",
    "hypervolume_improvement_2d",
    "one_hot",
    "one_hot_slots",
    "probability_feasible",
]

#: the one-hot layout of a space: its width and, per decision path, the offset and options of its slots
OneHotSlots = tuple[int, dict[str, tuple[int, tuple[Any, ...]]]]


def one_hot_slots(space: Any) -> OneHotSlots:
    """The layout of ``space.encode(arch, one_hot=True)``: one slot per (decision, option)."""
    offset, slots = 0, {}
    for d in space.decisions():
        slots[d.path] = (offset, tuple(d.options))
        offset += len(d.options)
    return offset, slots


def one_hot(space: Any, arch: Any, slots: OneHotSlots | None = None) -> np.ndarray:
    """``space.encode(arch, one_hot=True)`` as float64, without re-validating ``arch`` (a walk of the
    space, milliseconds per arch): for archs that come from the space (sampled, enumerated, told)."""
    width, slot_map = slots if slots is not None else one_hot_slots(space)
    row = np.zeros(width, dtype=np.float64)
    for path, value in arch.items():
        offset, options = slot_map[path]
        for i, o in enumerate(options):
            if o == value and type(o) is type(value):
                row[offset + i] = 1.0
                break
        else:  # a value of another numeric type (3 vs 3.0): fall back to the space's encoder
            return space.encode(arch, one_hot=True).astype(np.float64)
    return row


def copula_transform(y: Sequence[float] | np.ndarray) -> np.ndarray:
    """Normal scores of the ranks of ``y`` (ties share their mean rank)."""
    from scipy.stats import norm, rankdata

    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return y.copy()
    r = rankdata(y) / (len(y) + 1.0)
    return norm.ppf(r)


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """EI of maximisation over ``best``."""
    from scipy.stats import norm

    std = np.maximum(std, 1e-12)
    z = (mean - best) / std
    return (mean - best) * norm.cdf(z) + std * norm.pdf(z)


def probability_feasible(
    mean: np.ndarray, std: np.ndarray, upper: float | None = None, lower: float | None = None
) -> np.ndarray:
    """P(lower <= f <= upper) under a normal predictive distribution."""
    from scipy.stats import norm

    std = np.maximum(std, 1e-12)
    p = np.ones_like(mean)
    if upper is not None:
        p = p * norm.cdf((upper - mean) / std)
    if lower is not None:
        p = p * norm.cdf((mean - lower) / std)
    return p


def hypervolume_improvement_2d(points: np.ndarray, front: np.ndarray, ref: Sequence[float]) -> np.ndarray:
    """Exact 2-D hypervolume improvement of each row of ``points`` over ``front`` (maximise both).

    Vectorised over the candidates: the dominated region of the front is a staircase whose
    height over the second coordinate is a step function.
    """
    points = np.asarray(points, dtype=float)
    f = np.asarray(front, dtype=float).reshape(-1, 2)
    f = f[(f[:, 0] > ref[0]) & (f[:, 1] > ref[1])]
    f = f[np.argsort(f[:, 1])]
    # keep the non-dominated staircase: walking up in coordinate 1, coordinate 0 must decrease
    keep = []
    best0 = -np.inf
    for i in range(len(f) - 1, -1, -1):
        if f[i, 0] > best0:
            keep.append(i)
            best0 = f[i, 0]
    f = f[sorted(keep)]
    lo = np.r_[ref[1], f[:, 1]]
    hi = np.r_[f[:, 1], np.inf]
    height = np.r_[f[:, 0], ref[0]]
    length = np.clip(np.minimum(points[:, 1:2], hi[None, :]) - lo[None, :], 0.0, None)
    width = np.clip(points[:, 0:1] - height[None, :], 0.0, None)
    return (length * width).sum(axis=1)


class MatchKernelGP:
    """GP regression with the decision-match kernel (see the module docstring).

    ``fit(X, y)`` takes one-hot codes (``space.encode(arch, one_hot=True)`` rows) and targets;
    hyper-parameters (one scale per interaction order and the noise) maximise the marginal
    likelihood with analytic gradients, warm-started from the previous fit.
    """

    def __init__(
        self,
        order: int = 3,
        max_iter: int = 60,
        min_noise: float = 1e-6,
        *,
        always_optimise_below: int = 100,
        optimise_every: int = 4,
    ) -> None:
        if order < 0:
            raise ValueError(f"order must be >= 0, got {order}")
        self.order = order
        self.max_iter = max_iter
        self.min_noise = min_noise
        # hyper-parameters are re-optimised at every fit up to this many points, then every k-th fit
        self.always_optimise_below = always_optimise_below
        self.optimise_every = max(1, optimise_every)
        self._fits = 0
        self._theta: np.ndarray | None = None
        self._dim: int | None = None

    # kernel as a function of the integer match count -------------------------------------
    def _basis(self, dim: int) -> np.ndarray:
        m = np.arange(dim + 1)
        return np.stack([np.array([math.comb(int(x), j) for x in m], dtype=float) for j in range(self.order + 1)], 1)

    def _table(self, theta: np.ndarray) -> np.ndarray:
        return self._B @ np.exp(theta[: self.order + 1])

    def _initial(self, dim: int) -> np.ndarray:
        scales = [math.log(1.0 / ((self.order + 1) * max(math.comb(dim, j), 1))) for j in range(self.order + 1)]
        return np.array(scales + [math.log(1e-2)])

    def _bounds(self, dim: int) -> list[tuple[float, float]]:
        out = []
        for j in range(self.order + 1):
            c = math.log(max(math.comb(dim, j), 1))
            out.append((-c - 10.0, -c + 6.0))
        out.append((math.log(self.min_noise), 0.0))
        return out

    def _nll(self, theta: np.ndarray, M: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        from scipy.linalg import cho_factor, cho_solve

        n = len(y)
        noise = math.exp(theta[-1])
        K = self._table(theta)[M] + (noise + 1e-9) * np.eye(n)
        try:
            cf = cho_factor(K, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return 1e25, np.zeros_like(theta)
        alpha = cho_solve(cf, y, check_finite=False)
        nll = 0.5 * float(y @ alpha) + float(np.log(np.diag(cf[0])).sum())
        W = cho_solve(cf, np.eye(n), check_finite=False) - np.outer(alpha, alpha)
        grad = np.empty_like(theta)
        s = np.exp(theta[: self.order + 1])
        for j in range(self.order + 1):
            grad[j] = 0.5 * s[j] * float((W * self._B[:, j][M]).sum())
        grad[-1] = 0.5 * noise * float(np.trace(W))
        return nll, grad

    def fit(self, X: np.ndarray, y: Sequence[float] | np.ndarray) -> MatchKernelGP:
        from scipy.linalg import cho_factor, cho_solve
        from scipy.optimize import minimize

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
            raise ValueError("fit needs a 2-D X with one row per target")
        dim = int(round(X.sum(axis=1).max()))
        dim = max(dim, 1)
        if self._dim != dim:
            self._dim = dim
            self._B = self._basis(dim)
            self._theta = self._initial(dim)
        self._mu = float(y.mean())
        self._sd = float(y.std()) or 1.0
        yy = (y - self._mu) / self._sd
        M = np.rint(X @ X.T).astype(np.int64)
        assert self._theta is not None
        self._fits += 1
        optimise = len(y) <= self.always_optimise_below or self._fits % self.optimise_every == 0
        if len(y) >= 3 and optimise:
            # two starts, the previous optimum and the default, so that a degenerate early
            # optimum (all noise) cannot trap the later fits
            bounds = self._bounds(dim)
            lo, hi = [b[0] for b in bounds], [b[1] for b in bounds]
            best = None
            for start in (self._theta, self._initial(dim)):
                res = minimize(
                    self._nll,
                    np.clip(start, lo, hi),
                    args=(M, yy),
                    jac=True,
                    method="L-BFGS-B",
                    bounds=bounds,
                    options={"maxiter": self.max_iter},
                )
                if np.all(np.isfinite(res.x)) and res.fun < 1e24 and (best is None or res.fun < best.fun):
                    best = res
            if best is not None:
                self._theta = best.x
        self._X = X
        K = self._table(self._theta)[M] + (math.exp(self._theta[-1]) + 1e-9) * np.eye(len(y))
        jitter = 1e-9
        while True:
            try:
                self._cf = cho_factor(K + jitter * np.eye(len(y)), lower=True, check_finite=False)
                break
            except np.linalg.LinAlgError:
                jitter *= 10
        self._alpha = cho_solve(self._cf, yy, check_finite=False)
        return self

    def predict(self, Xs: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation (in the units of ``y``) of each row of ``Xs``."""
        from scipy.linalg import solve_triangular

        if self._theta is None:
            raise RuntimeError("MatchKernelGP.predict before fit")
        Xs = np.asarray(Xs, dtype=np.float64)
        table = self._table(self._theta)
        means, stds = [], []
        for start in range(0, len(Xs), batch):
            part = Xs[start : start + batch]
            M = np.rint(part @ self._X.T).astype(np.int64)
            np.clip(M, 0, self._dim, out=M)
            k = table[M]
            mean = k @ self._alpha
            v = solve_triangular(self._cf[0], k.T, lower=True, check_finite=False)
            self_m = np.clip(np.rint(part.sum(axis=1)).astype(np.int64), 0, self._dim)
            var = np.maximum(table[self_m] - (v * v).sum(axis=0), 1e-12)
            means.append(mean)
            stds.append(np.sqrt(var))
        mean = np.concatenate(means) * self._sd + self._mu
        std = np.concatenate(stds) * self._sd
        return mean, std

    @property
    def hyperparameters(self) -> dict[str, float]:
        assert self._theta is not None
        out = {f"scale_order{j}": float(math.exp(self._theta[j])) for j in range(self.order + 1)}
        out["noise"] = float(math.exp(self._theta[-1]))
        return out


def _safe_log_transform(values: np.ndarray, bounds: Sequence[float | None]) -> bool:
    return bool(np.all(values > 0) and all(b is None or b > 0 for b in bounds))


class ArchModel:
    """Acquisition over candidate archs from surrogates of every objective and constraint metric.

    * one objective: expected improvement of the copula-transformed objective;
    * constraints: times the probability that every constraint holds (a GP per constraint
      metric, on the log scale for positive metrics); before any feasible trial, that probability;
    * two objectives: hypervolume improvement of the optimistic point ``mean + beta * std`` of
      each transformed objective over the observed feasible front (reference: ``ref_point``
      mapped through the transforms, else the observed minimum minus 10 % of the range), times
      the feasibility probability;
    * more objectives: ParEGO, EI of a random augmented-Chebyshev scalarisation.

    Only the told trials are used; the model never sees anything else.
    """

    def __init__(
        self,
        space: Any,
        objectives: Sequence[Any],
        constraints: Sequence[Any] = (),
        *,
        order: int = 3,
        beta: float = 1.0,
        max_iter: int = 60,
        ref_point: Sequence[float] | None = None,
    ) -> None:
        self.space = space
        self.objectives = tuple(objectives)
        self.constraints = tuple(constraints)
        self.order = order
        self.beta = beta
        if ref_point is not None and len(ref_point) != len(self.objectives):
            raise ValueError(f"ref_point needs one value per objective, got {len(ref_point)}")
        self.ref_point = None if ref_point is None else [float(r) for r in ref_point]
        self.max_iter = max_iter
        self._codes: dict[Any, np.ndarray] = {}
        self._gps: dict[str, MatchKernelGP] = {}

    # -- encoding ----------------------------------------------------------------------
    def _slots(self) -> OneHotSlots:
        if not hasattr(self, "_slot_map"):
            self._slot_map = one_hot_slots(self.space)
        return self._slot_map

    def _one_hot(self, arch: Any) -> np.ndarray:
        return one_hot(self.space, arch, self._slots())

    def encode(self, archs: Sequence[Any]) -> np.ndarray:
        rows = []
        for a in archs:
            row = self._codes.get(a)
            if row is None:
                row = self._one_hot(a)
                self._codes[a] = row
            rows.append(row)
        return np.stack(rows) if rows else np.zeros((0, self._slots()[0]))

    def set_codes(self, archs: Sequence[Any], codes: np.ndarray) -> None:
        """Pre-computed one-hot codes for ``archs`` (e.g. a whole enumerated space)."""
        for a, row in zip(archs, codes):
            self._codes[a] = row

    def _gp(self, name: str) -> MatchKernelGP:
        gp = self._gps.get(name)
        if gp is None:
            gp = MatchKernelGP(order=self.order, max_iter=self.max_iter)
            self._gps[name] = gp
        return gp

    # -- acquisition --------------------------------------------------------------------
    def acquisition(
        self, history: Sequence[Any], pool: Sequence[Any], rng: Any, pool_codes: np.ndarray | None = None
    ) -> np.ndarray:
        """A score per arch of ``pool`` (higher is better to evaluate next)."""
        X = self.encode([t.arch for t in history])
        P = pool_codes if pool_codes is not None else self.encode(pool)
        feasible = np.array([t.violation <= 0 for t in history])
        pof = np.ones(len(P))
        for c in self.constraints:
            vals = np.array([t.values[c.name] for t in history], dtype=float)
            ok = np.isfinite(vals)
            if ok.sum() < 2:
                continue
            upper, lower = c.upper, c.lower
            if _safe_log_transform(vals[ok], (upper, lower)):
                vals = np.log(np.where(ok, vals, 1.0))
                upper = math.log(upper) if upper is not None else None
                lower = math.log(lower) if lower is not None else None
            gp = self._gp("constraint:" + c.name).fit(X[ok], vals[ok])
            m, s = gp.predict(P)
            pof = pof * probability_feasible(m, s, upper, lower)

        cols: list[np.ndarray] = []  # each objective, copula-transformed (maximised)
        raw: list[np.ndarray] = []
        for j, o in enumerate(self.objectives):
            v = np.array([o.sign * t.objectives[j] for t in history], dtype=float)
            finite = np.isfinite(v)
            v = np.where(finite, v, np.min(v[finite]) - 1.0 if finite.any() else 0.0)
            raw.append(v)
            cols.append(copula_transform(v))
        Y = np.stack(cols, axis=1)

        if self.constraints and not feasible.any():
            return pof
        k = len(self.objectives)
        if k == 1:
            gp = self._gp("objective:0").fit(X, Y[:, 0])
            m, s = gp.predict(P)
            best = Y[feasible, 0].max() if feasible.any() else Y[:, 0].max()
            return expected_improvement(m, s, best) * pof
        if k == 2:
            means, stds = [], []
            for j in range(2):
                m, s = self._gp(f"objective:{j}").fit(X, Y[:, j]).predict(P)
                means.append(m)
                stds.append(s)
            opt = np.stack([means[j] + self.beta * stds[j] for j in range(2)], axis=1)
            lo, hi = Y.min(axis=0), Y.max(axis=0)
            ref = lo - 0.1 * np.maximum(hi - lo, 1e-9)
            if self.ref_point is not None:  # the user's reference point, mapped through each transform
                for j, o in enumerate(self.objectives):
                    order = np.argsort(raw[j])
                    ref[j] = np.interp(o.sign * self.ref_point[j], raw[j][order], Y[order, j], left=ref[j], right=hi[j])
            front = Y[feasible] if feasible.any() else Y[:0]
            hvi = hypervolume_improvement_2d(opt, front, ref)
            if hvi.max() <= 0:  # nothing promises improvement: explore where the model knows least
                return (stds[0] + stds[1]) * pof
            return hvi * pof
        # ParEGO for three or more objectives
        w = np.array([-math.log(1.0 - rng.random()) for _ in range(k)])
        w /= w.sum()
        lo, hi = Y.min(axis=0), Y.max(axis=0)
        Z = (Y - lo) / np.maximum(hi - lo, 1e-9)
        scal = (Z * w).min(axis=1) + 0.05 * (Z * w).sum(axis=1)
        gp = self._gp("parego").fit(X, scal)
        m, s = gp.predict(P)
        best = scal[feasible].max() if feasible.any() else scal.max()
        return expected_improvement(m, s, best) * pof

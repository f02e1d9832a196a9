"""Evaluators: what a query of an arch returns (a mapping from metric name to number).

* :class:`TabularEvaluator`: the NAS-Bench-201 table (any accuracy and device-latency column);
* :class:`LutLatencyEvaluator`: a latency predictor (a LUT's ``predict``, or any callable);
* :class:`ProxyTrainingEvaluator`: short training on real data (Fashion-MNIST by default);
* :class:`CompositeEvaluator`: the union of several evaluators' metrics.

Searchers only see what :meth:`Evaluator.evaluate` returns for the archs they query; the
whole-table views of :class:`TabularEvaluator` (:meth:`TabularEvaluator.column`) are for
*scoring* a search afterwards (optimum, true Pareto front), never for searching.
"""
from __future__ import annotations

import csv
import functools
import gzip
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError, HwnasError, UnknownNameError
from spaces.arch import Arch

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from spaces import Space

__all__ = [
    "NB201_CSV_ENV",
    "CompositeEvaluator",
    "Evaluator",
    "LutLatencyEvaluator",
    "ProxyTrainingEvaluator",
    "TabularEvaluator",
    "default_nb201_csv",
]

NB201_CSV_ENV = "HWNAS_NB201_CSV"
_NB201_NAME = "nb201_acc_latency.csv.gz"


class Evaluator(ABC):
    """Turns an arch into measured values. ``metrics`` names what :meth:`evaluate` returns."""

    metrics: tuple[str, ...] = ()

    @abstractmethod
    def evaluate(self, arch: Mapping[str, Any]) -> dict[str, float]:
        """Measure ``arch``; returns ``{metric: value}`` for every name in :attr:`metrics`."""

    def __call__(self, arch: Mapping[str, Any]) -> dict[str, float]:
        return self.evaluate(arch)

    def require(self, names: Sequence[str]) -> None:
        """Raise a one-line ConfigError if any of ``names`` is not a metric of this evaluator."""
        missing = [n for n in names if n not in self.metrics]
        if missing:
            raise ConfigError(f"{type(self).__name__} does not provide {', '.join(missing)} "
                              f"(it provides: {', '.join(self.metrics)})")


# -- NAS-Bench-201 table ------------------------------------------------------------------
def default_nb201_csv() -> Path:
    """Where the NAS-Bench-201 table is: ``$HWNAS_NB201_CSV`` if set, else the copy that ships
    inside the package (``nas/data/nb201/``, with its README and licence)."""
    env = os.environ.get(NB201_CSV_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "data" / "nb201" / _NB201_NAME


class _Table:
    """The parsed table: arch strings, numeric columns as arrays, index by arch string."""

    def __init__(self, path: Path) -> None:
        import numpy as np

        try:
            with gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                rows = list(reader)
                header = list(reader.fieldnames or [])
        except FileNotFoundError:
            raise ConfigError(f"NAS-Bench-201 table not found at {path} (set {NB201_CSV_ENV} to its path)") from None
        except (OSError, EOFError, csv.Error) as exc:
            raise ConfigError(f"{path}: cannot read the NAS-Bench-201 table ({exc})") from None
        if "arch_str" not in header or not rows:
            raise ConfigError(f"{path}: not a NAS-Bench-201 table (needs an arch_str column and rows)")
        self.path = path
        self.arch_strs = [r["arch_str"] for r in rows]
        self.columns: dict[str, np.ndarray] = {}
        for col in header:
            if col in ("arch_str", "index"):
                continue
            try:
                self.columns[col] = np.array([float(r[col]) if r[col] != "" else math.nan for r in rows])
            except ValueError:
                continue  # a non-numeric column is not a metric
        self.row_of = {s: i for i, s in enumerate(self.arch_strs)}


@functools.lru_cache(maxsize=4)
def _load_table(path: str) -> _Table:
    return _Table(Path(path))


class TabularEvaluator(Evaluator):
    """Queries the NAS-Bench-201 table (``nb201_acc_latency.csv.gz``) for ``nb201`` archs.

    ``metrics`` selects the returned columns (default: all numeric columns, e.g.
    ``cifar10_test_acc``, ``pixel3_latency_ms``); ``path`` overrides the table's location
    (default :func:`default_nb201_csv`). The table is read once per process.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, metrics: Sequence[str] | None = None,
                 space: Space | None = None) -> None:
        p = Path(path) if path is not None else default_nb201_csv()
        self.path = p
        self._table = _load_table(str(p))
        available = tuple(self._table.columns)
        if metrics is None:
            metrics = available
        unknown = [m for m in metrics if m not in self._table.columns]
        if unknown:
            raise UnknownNameError(f"unknown NAS-Bench-201 column {unknown[0]!r}; columns: {', '.join(available)}")
        self.metrics = tuple(metrics)
        if space is None:
            from spaces import create_space

            space = create_space("nb201")
        self.space = space

    @property
    def columns(self) -> tuple[str, ...]:
        """Every numeric column of the table."""
        return tuple(self._table.columns)

    @property
    def accuracy_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self._table.columns if c.endswith("_acc"))

    @property
    def latency_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self._table.columns if c.endswith("_latency_ms"))

    def key(self, arch: Mapping[str, Any]) -> str:
        from spaces.builtin import nb201_arch_str

        try:
            return nb201_arch_str(arch)
        except KeyError as exc:
            raise HwnasError(f"arch is not an nb201 cell: missing decision {exc.args[0]}") from None

    def evaluate(self, arch: Mapping[str, Any]) -> dict[str, float]:
        s = self.key(arch)
        row = self._table.row_of.get(s)
        if row is None:
            raise HwnasError(f"arch {s} is not in the NAS-Bench-201 table {self.path}")
        return {m: float(self._table.columns[m][row]) for m in self.metrics}

    # -- whole-table views: for scoring a finished search, never for searching ----------
    def column(self, name: str) -> np.ndarray:
        """All rows of a numeric column (table order)."""
        if name not in self._table.columns:
            raise UnknownNameError(f"unknown NAS-Bench-201 column {name!r}; columns: {', '.join(self.columns)}")
        return self._table.columns[name]

    def archs(self) -> list[Arch]:
        """Every arch of the table (table order)."""
        from spaces.builtin import nb201_arch_from_str

        return [nb201_arch_from_str(s) for s in self._table.arch_strs]

    def __len__(self) -> int:
        return len(self._table.arch_strs)


# -- LUT latency ---------------------------------------------------------------------------
class LutLatencyEvaluator(Evaluator):
    """Latency from a predictor: an object with ``predict(arch)`` (e.g. a latency LUT) or a
    callable ``f(arch) -> milliseconds``. Returns ``{metric: value}`` (default ``latency_ms``)."""

    def __init__(self, predictor: Any, metric: str = "latency_ms", space: Space | None = None) -> None:
        if hasattr(predictor, "predict") and callable(predictor.predict):
            self._predict: Callable[[Any], float] = predictor.predict
        elif callable(predictor):
            self._predict = predictor
        else:
            raise ConfigError("LutLatencyEvaluator needs a callable or an object with predict(arch)")
        self.metrics = (metric,)
        self.space = space

    def evaluate(self, arch: Mapping[str, Any]) -> dict[str, float]:
        a = self.space.validate(arch) if self.space is not None else arch
        value = self._predict(a)
        return {self.metrics[0]: float(value)}


class CompositeEvaluator(Evaluator):
    """Runs several evaluators and merges their metrics (later ones win on a clash)."""

    def __init__(self, *evaluators: Evaluator) -> None:
        if not evaluators:
            raise ConfigError("CompositeEvaluator needs at least one evaluator")
        self.evaluators = evaluators
        names: list[str] = []
        for e in evaluators:
            names.extend(m for m in e.metrics if m not in names)
        self.metrics = tuple(names)

    def evaluate(self, arch: Mapping[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        for e in self.evaluators:
            out.update(e.evaluate(arch))
        return out


# -- short proxy training ------------------------------------------------------------------
class ProxyTrainingEvaluator(Evaluator):
    """Trains each arch briefly on real data and returns its held-out accuracy (%).

    The space must accept the dataset's input (e.g. ``create_space("nb201", in_chans=1,
    resolution=28)`` for Fashion-MNIST). Metrics: ``proxy_acc`` (%), ``params_m`` (millions of
    parameters) and ``train_s`` (wall time). Deterministic for a given ``seed`` on the CPU.
    """

    metrics = ("proxy_acc", "params_m", "train_s")

    def __init__(self, space: Space, *, dataset: str = "fashion_mnist", train_size: int = 2000,
                 test_size: int = 1000, epochs: int = 1, batch_size: int = 64, lr: float = 0.05,
                 seed: int = 0, device: str = "cpu", max_threads: int | None = 1) -> None:
        if train_size < 1 or test_size < 1 or epochs < 1 or batch_size < 1:
            raise ConfigError("train_size, test_size, epochs and batch_size must be positive")
        self.space = space
        self.dataset = dataset
        self.train_size, self.test_size = train_size, test_size
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.seed, self.device, self.max_threads = seed, device, max_threads
        self._data: Any = None

    def _load(self) -> Any:
        if self._data is None:
            from nas.search.data import load_arrays

            xtr, ytr, xte, yte = load_arrays(self.dataset, self.train_size, self.test_size, seed=self.seed)
            shape = tuple(xtr.shape[1:])
            if shape != tuple(self.space.input_shape):
                raise ConfigError(f"space {self.space.name!r} takes inputs {self.space.input_shape} but {self.dataset} "
                                  f"images are {shape}: create the space with in_chans={shape[0]}, resolution={shape[1]}")
            self._data = (xtr, ytr, xte, yte)
        return self._data

    def evaluate(self, arch: Mapping[str, Any]) -> dict[str, float]:
        import torch

        xtr, ytr, xte, yte = self._load()
        start = time.perf_counter()
        old_threads = torch.get_num_threads()
        if self.max_threads:
            torch.set_num_threads(self.max_threads)
        try:
            torch.manual_seed(self.seed)
            model = self.space.build(arch).to(self.device)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            opt = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
            steps = self.epochs * math.ceil(len(xtr) / self.batch_size)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
            g = torch.Generator().manual_seed(self.seed)
            xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
            model.train()
            for _ in range(self.epochs):
                perm = torch.randperm(len(xt), generator=g)
                for i in range(0, len(xt), self.batch_size):
                    idx = perm[i:i + self.batch_size]
                    loss = torch.nn.functional.cross_entropy(model(xt[idx].to(self.device)), yt[idx].to(self.device))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                xe, ye = torch.from_numpy(xte), torch.from_numpy(yte)
                for i in range(0, len(xe), 256):
                    out = model(xe[i:i + 256].to(self.device))
                    correct += int((out.argmax(1).cpu() == ye[i:i + 256]).sum())
        finally:
            torch.set_num_threads(old_threads)
        return {"proxy_acc": 100.0 * correct / len(yte), "params_m": params, "train_s": time.perf_counter() - start}

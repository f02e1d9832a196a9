"""Evaluators: what a query of an arch returns (a mapping from metric name to number).

* :class:`TabularEvaluator`: the NAS-Bench-201 table (any accuracy and device-latency column);
* :class:`LutLatencyEvaluator`: a latency predictor (a LUT's ``predict``, or any callable);
* :class:`ProxyTrainingEvaluator`: short training on real data (Fashion-MNIST by default);
* :class:`SupernetEvaluator`: validation accuracy of a subnet inherited from a quantized-for-all
  supernet checkpoint (no retraining), batch norms recalibrated, FP32 or INT8 numerics;
* :class:`CompositeEvaluator`: the union of several evaluators' metrics.

Searchers only see what :meth:`Evaluator.evaluate` returns for the archs they query; the
whole-table views of :class:`TabularEvaluator` (:meth:`TabularEvaluator.column`) are for
*scoring* a search afterwards (optimum, true Pareto front), never for searching.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import json
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
    "SupernetEvaluator",
    "TabularEvaluator",
    "check_latency_budget",
    "default_nb201_csv",
    "usable_cores",
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
            raise ConfigError(
                f"{type(self).__name__} does not provide {', '.join(missing)} (it provides: {', '.join(self.metrics)})"
            )


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
        import io

        import numpy as np

        from hwnas.io import read_text_file

        if not path.exists():
            raise ConfigError(f"NAS-Bench-201 table not found at {path} (set {NB201_CSV_ENV} to its path)")
        text = read_text_file(path, "NAS-Bench-201 table")  # one-line errors: unreadable, not UTF-8, bad gzip
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            rows = list(reader)
            header = list(reader.fieldnames or [])
        except csv.Error as exc:
            raise ConfigError(f"{path}: cannot read the NAS-Bench-201 table ({' '.join(str(exc).split())})") from None
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
            except (TypeError, ValueError):  # a short row gives None
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

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        metrics: Sequence[str] | None = None,
        space: Space | None = None,
    ) -> None:
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
        self.predictor = predictor
        self.metrics = (metric,)
        self.space = space if space is not None else getattr(predictor, "space", None)
        self.lut: str | None = None  # set by from_lut
        self.target: str | None = getattr(predictor, "target", None)

    @classmethod
    def from_lut(
        cls,
        lut: str | os.PathLike[str],
        target: Any,
        space: Space,
        *,
        metric: str = "latency_ms",
        correction: bool = True,
    ) -> LutLatencyEvaluator:
        """The LUT's prediction for ``target`` (a name or YAML file; its fingerprint on this machine
        must be in the LUT) on ``space``; one-line errors when the LUT is missing, holds another
        target, or lacks blocks of the space."""
        from latency_lut.predictor import LatencyPredictor

        if not Path(lut).is_file():
            raise ConfigError(f"{lut}: no such LUT file")
        pred = LatencyPredictor.for_target(lut, target, space, correction=correction)
        missing = pred.missing_keys()
        if missing:
            raise ConfigError(
                f"{lut}: {len(missing)} block(s) of space {space.name!r} have no measurement for target "
                f"{pred.target!r} (e.g. {missing[0]}); profile them with `nas profile --space "
                f"{space.name} --target {pred.target} --out {lut}`"
            )
        ev = cls(pred, metric=metric, space=space)
        ev.lut, ev.target = str(lut), str(pred.target)
        return ev

    def evaluate(self, arch: Mapping[str, Any]) -> dict[str, float]:
        a = self.space.validate(arch) if self.space is not None else arch
        value = self._predict(a)
        return {self.metrics[0]: float(value)}

    def predict_many(self, archs: Sequence[Mapping[str, Any]]) -> list[float]:
        """Latencies of several archs (one vectorised call for a :class:`~latency_lut.LatencyPredictor`)."""
        if hasattr(self.predictor, "encode") and hasattr(self.predictor, "predict"):
            return [float(v) for v in self.predictor.predict(list(archs))]
        return [float(self._predict(a)) for a in archs]

    def fastest(
        self,
        *,
        candidates: Iterable[Mapping[str, Any]] = (),
        samples: int = 512,
        seed: int = 0,
        exact_limit: int = 20_000,
    ) -> tuple[Arch, float, bool]:
        """``(arch, latency, exact)``: the fastest arch of the space by this predictor.

        Exact (every arch predicted) for spaces of at most ``exact_limit`` archs; otherwise the
        best of ``candidates`` (e.g. a supernet's smallest subnet) and ``samples`` random archs,
        improved by coordinate descent (every value of every active decision, until no change
        helps): an upper bound on the true minimum, and in practice the minimum.
        """
        from hwnas.seeding import make_rng

        space = self.space
        if space is None:
            raise ConfigError("LutLatencyEvaluator.fastest needs the space")
        try:
            size = space.size()
        except HwnasError:
            size = exact_limit + 1
        if size <= exact_limit:
            archs = list(space.enumerate(limit=exact_limit))
            lat = self.predict_many(archs)
            i = min(range(len(archs)), key=lat.__getitem__)
            return archs[i], lat[i], True
        rng = make_rng(seed)
        pool = [space.validate(a) for a in candidates] + [space.sample(rng) for _ in range(max(0, samples))]
        lat = self.predict_many(pool)
        i = min(range(len(pool)), key=lat.__getitem__)
        best, best_ms = pool[i], lat[i]
        improved = True
        while improved:
            improved = False
            for d in space.active_decisions(best):
                if d.path not in best:
                    continue  # no longer active after an earlier change in this sweep
                neighbours = [space.complete({**best, d.path: o}, rng) for o in d.options if o != best[d.path]]
                if not neighbours:
                    continue
                nl = self.predict_many(neighbours)
                j = min(range(len(nl)), key=nl.__getitem__)
                if nl[j] < best_ms - 1e-12:
                    best, best_ms, improved = neighbours[j], nl[j], True
        return best, best_ms, False


def check_latency_budget(
    latency: LutLatencyEvaluator,
    constraints: Sequence[Any],
    *,
    candidates: Iterable[Mapping[str, Any]] = (),
    where: str = "",
) -> dict[str, Any] | None:
    """Refuse (one-line ConfigError) an upper bound on ``latency``'s metric that no arch of the space
    meets; returns ``{"arch", "latency_ms", "exact"}`` of the fastest arch (``None`` without such a bound)."""
    metric = latency.metrics[0]
    bounds = [c for c in constraints if getattr(c, "name", None) == metric and getattr(c, "upper", None) is not None]
    if not bounds:
        return None
    arch, ms, exact = latency.fastest(candidates=candidates)  # (which needs the space)
    tightest = min(float(c.upper) for c in bounds)
    if tightest < ms:
        how = "over every arch of the space" if exact else "the fastest arch found"
        name = latency.space.name if latency.space is not None else "?"
        raise ConfigError(
            f"no arch of space {name!r} meets {metric}<={tightest:g}{where}: the minimum "
            f"{how} is {ms:.4g} ms; use a budget of at least {ms:.4g}"
        )
    return {"arch": arch.to_dict(), metric: ms, "exact": exact}


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
    """Trains each arch briefly on real data and returns its accuracy (%) on a validation set
    carved from the training split (disjoint from the images it trains on; never the test split).

    The space must accept the dataset's input (e.g. ``create_space("nb201", in_chans=1,
    resolution=28)`` for Fashion-MNIST). Metrics: ``proxy_acc`` (%), ``params_m`` (millions of
    parameters) and ``train_s`` (wall time). Deterministic for a given ``seed`` on the CPU.
    """

    metrics = ("proxy_acc", "params_m", "train_s")

    def __init__(
        self,
        space: Space,
        *,
        dataset: str = "fashion_mnist",
        train_size: int = 2000,
        val_size: int = 1000,
        epochs: int = 1,
        batch_size: int = 64,
        lr: float = 0.05,
        seed: int = 0,
        device: str = "cpu",
        max_threads: int | None = 1,
    ) -> None:
        if train_size < 1 or val_size < 1 or epochs < 1 or batch_size < 1:
            raise ConfigError("train_size, val_size, epochs and batch_size must be positive")
        self.space = space
        self.dataset = dataset
        self.train_size, self.val_size = train_size, val_size
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.seed, self.device, self.max_threads = seed, device, max_threads
        self._data: Any = None

    def _load(self) -> Any:
        if self._data is None:
            from nas.search.data import load_arrays

            xtr, ytr, xte, yte = load_arrays(self.dataset, self.train_size, self.val_size, seed=self.seed)
            shape = tuple(xtr.shape[1:])
            if shape != tuple(self.space.input_shape):
                raise ConfigError(
                    f"space {self.space.name!r} takes inputs {self.space.input_shape} but {self.dataset} "
                    f"images are {shape}: create the space with in_chans={shape[0]}, resolution={shape[1]}"
                )
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
            # the one training loop (quant.training): SGD + Nesterov, cosine decay per step, seeded batch order
            from quant.training import TrainConfig, evaluate, train

            train(
                model,
                xtr,
                ytr,
                TrainConfig(
                    epochs=float(self.epochs),
                    batch_size=self.batch_size,
                    lr=self.lr,
                    weight_decay=5e-4,
                    seed=self.seed,
                    channels_last=False,
                ),
            )
            acc = evaluate(model, xte, yte, batch_size=256)
        finally:
            torch.set_num_threads(old_threads)
        return {"proxy_acc": acc, "params_m": params, "train_s": time.perf_counter() - start}


# -- supernet weight inheritance -----------------------------------------------------------
PRECISIONS = ("fakequant", "fp32", "int8")
DEFAULT_VAL_FRACTION = 0.1
_VAL_IN_MEMORY_BYTES = 2 << 30  # a streamed validation split up to this size is decoded once and kept


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    old = torch.get_num_threads()
    if n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class SupernetEvaluator(Evaluator):
    """Validation accuracy (%) of subnets inherited from a quantized-for-all supernet checkpoint.

    No retraining: each arch is extracted with the supernet's weights (and learned quantization
    scales), its batch norms are recalibrated on batches of the *training part*, and its top-1
    accuracy is measured on a validation split carved from the training data
    (:func:`supernet.data.split_validation`, seeded by the checkpoint's seed). The test split is
    never loaded: it is for the exported model, once. When the checkpoint's training held a
    validation fraction out, that same split is used; otherwise ``val_fraction`` (default 0.1)
    and :attr:`val_seen_in_training` is true. ``val_limit`` keeps a seeded subset of the split.

    ``precision``: ``"fakequant"`` (the deployed INT8 numerics, fake-quantized in torch; the
    default), ``"fp32"``, or ``"int8"`` (the exported QDQ ONNX model in onnxruntime: exact but
    slower). Values are cached by arch id, in memory and, with ``cache_path``, in a JSON-lines file
    keyed by the checkpoint's content and these settings (several runs, or workers, share it).
    Evaluation runs ``batch_size`` images per forward pass on ``threads`` torch threads (default:
    every usable core). Metrics: ``accuracy`` (%) and ``params`` (parameter count).
    """

    metrics = ("accuracy", "params")

    def __init__(
        self,
        checkpoint: str | os.PathLike[str],
        *,
        precision: str = "fakequant",
        val_fraction: float | None = None,
        val_limit: int | None = None,
        bn_batches: int | None = None,
        calib_batch_size: int | None = None,
        batch_size: int = 500,
        threads: int | None = None,
        device: str = "cpu",
        cache_path: str | os.PathLike[str] | None = None,
    ) -> None:
        from supernet.checkpoint import checkpoint_path
        from supernet.data import calibration_batches, load_data, load_data_like, split_validation
        from supernet.train import load_supernet

        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
        if val_fraction is not None and not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"the validation fraction must be between 0 and 1, got {val_fraction:g}")
        for name, v in (
            ("val_limit", val_limit),
            ("bn_batches", bn_batches),
            ("calib_batch_size", calib_batch_size),
            ("batch_size", batch_size),
            ("threads", threads),
        ):
            if v is not None and v < 1:
                raise ConfigError(f"{name} must be >= 1, got {v}")
        self.checkpoint = Path(checkpoint)
        self.net, self.meta = load_supernet(checkpoint, device=device)
        self.space = self.net.space
        self.precision = precision
        self.batch_size = int(batch_size)
        self.threads = int(threads) if threads is not None else usable_cores()
        config = dict(self.meta.get("config") or {})
        self.seed = int(config.get("seed", 0))
        held = float(config.get("val_fraction") or 0.0)  # what the supernet's training held out, if anything
        if held and val_fraction is not None and abs(val_fraction - held) > 1e-9:
            raise ConfigError(
                f"{checkpoint}: the supernet was trained with a validation fraction of {held:g} held "
                f"out; a fraction of {val_fraction:g} would validate on images it trained on"
            )
        self.val_fraction = held or (float(val_fraction) if val_fraction is not None else DEFAULT_VAL_FRACTION)
        self.val_seen_in_training = not held
        info = self.meta.get("data_info")  # the data set as the training loaded it (newer checkpoints)
        self.data_name = str(
            info.get("data") if isinstance(info, Mapping) and info.get("data") else config.get("data", "fashion-mnist")
        )
        if info:
            train = load_data_like(info, "train", config.get("train_limit"))
        else:
            train = load_data(self.data_name, "train", config.get("train_limit"))
        if tuple(train.input_shape) != tuple(self.space.input_shape):
            raise ConfigError(
                f"{self.data_name}: input {train.input_shape} does not match the supernet's "
                f"{tuple(self.space.input_shape)}"
            )
        train_part, val = split_validation(train, fraction=self.val_fraction, seed=self.seed)
        if val_limit is not None:
            val = val.subset(val_limit, seed=self.seed)
        c, h, w = val.input_shape
        if val.streamed and len(val) * c * h * w * 4 <= _VAL_IN_MEMORY_BYTES:
            val = val.in_memory()  # decoded once, not once per arch
        self.train_part, self.val = train_part, val
        self.bn_batches = int(bn_batches if bn_batches is not None else config.get("bn_calib_batches", 8))
        self.calib_batch_size = int(
            calib_batch_size if calib_batch_size is not None else config.get("calib_batch_size", 256)
        )
        self.calibration = calibration_batches(train_part, self.bn_batches, self.calib_batch_size, self.seed)
        self.evaluations = 0
        self.hits = 0
        self.seconds = 0.0
        self._cache: dict[str, dict[str, float]] = {}
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.key = ""
        if self.cache_path is not None:
            settings = {
                "checkpoint_sha256": _file_sha256(checkpoint_path(checkpoint)),
                "precision": precision,
                "data": self.data_name,
                "val_fraction": self.val_fraction,
                "val_images": len(val),
                "bn_batches": self.bn_batches,
                "calib_batch_size": self.calib_batch_size,
                "seed": self.seed,
            }
            self.key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
            self._load_cache()

    # -- the cache file --------------------------------------------------------------------
    def _load_cache(self) -> None:
        assert self.cache_path is not None
        try:
            lines = self.cache_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConfigError(f"{self.cache_path}: cannot read the evaluation cache ({exc.strerror})") from None
        for line in lines:
            try:
                rec = json.loads(line)
                if rec.get("key") == self.key:
                    self._cache[str(rec["arch_id"])] = {m: float(rec["values"][m]) for m in self.metrics}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a torn or foreign line: ignore it

    def _store(self, arch: Arch, values: Mapping[str, float]) -> None:
        if self.cache_path is None:
            return
        line = json.dumps({"key": self.key, "arch_id": arch.id, "values": dict(values)}, sort_keys=True) + "\n"
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.cache_path, "a", encoding="utf-8") as fh:  # one short append per record
            fh.write(line)

    # -- evaluation ------------------------------------------------------------------------
    def is_cached(self, arch: Mapping[str, Any]) -> bool:
        return self.space.validate(arch).id in self._cache

    def evaluate(self, arch: Mapping[str, Any]) -> dict[str, float]:
        from supernet.evaluate import evaluate_arch

        a = self.space.validate(arch)
        hit = self._cache.get(a.id)
        if hit is not None:
            self.hits += 1
            return dict(hit)
        start = time.perf_counter()
        with _torch_threads(self.threads):
            res = evaluate_arch(
                self.net,
                a,
                self.val,
                self.calibration,
                precision=self.precision,
                threads=self.threads,
                batch_size=self.batch_size,
            )
        self.seconds += time.perf_counter() - start
        self.evaluations += 1
        values = {"accuracy": float(res["accuracy"]), "params": float(res["params"])}
        self._cache[a.id] = values
        self._store(a, values)
        return dict(values)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description of the evaluation protocol and its cost so far."""
        return {
            "checkpoint": str(self.checkpoint),
            "precision": self.precision,
            "data": self.data_name,
            "validation": {
                "split": "carved from train",
                "fraction": self.val_fraction,
                "images": len(self.val),
                "seed": self.seed,
                "seen_in_training": self.val_seen_in_training,
            },
            "bn_recalibration": {
                "batches": len(self.calibration),
                "batch_size": self.calib_batch_size,
                "from": "train part",
            },
            "threads": self.threads,
            "evaluations": self.evaluations,
            "cache_hits": self.hits,
            "eval_seconds": round(self.seconds, 3),
            "cache": str(self.cache_path) if self.cache_path else None,
        }

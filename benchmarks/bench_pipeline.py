"""Beat what a user would pick instead: exported hwnas models against hand-picked baselines.

One run, one table. The baselines are three networks a practitioner would train and quantize by
hand at Fashion-MNIST size (1×28×28, 10 classes):

* **plain CNN** (5 convs, all ReLU): conv3×3 1→32, conv3×3 32→32, maxpool 2, conv3×3 32→64,
  conv3×3 64→64, maxpool 2, conv3×3 64→128, global average pool, linear 128→10; every conv
  without bias, followed by BatchNorm and ReLU;
* timm ``resnet18`` and timm ``mobilenetv3_large_100``, created with ``in_chans=1,
  num_classes=10`` (no other change, no pretrained weights).

Recipe (the reference one, :class:`nas.baselines.BaselineRecipe`): inputs normalised with mean
0.2860 / std 0.3530, random horizontal flips, batch 128, SGD (momentum 0.9, Nesterov, weight
decay 5e-4), one-cycle schedule to a peak learning rate of 0.1, ``--epochs`` epochs (5), channels-last
convolutions, torch on all cores. INT8: onnxruntime ``quantize_static`` (QDQ, per-channel s8
weights, u8 activations; MinMax calibration, onnxruntime's default, or ``--calib-method``, on
``--calib`` training images) after ``quant_pre_process``.
FP32 and INT8 test accuracy in onnxruntime on the (first ``--test-limit``) 10k test images.

Latency: every model's FP32 and INT8 ONNX files are timed in ONE run by the harness of the
``cpu-ort-int8`` / ``cpu-ort-fp32`` targets (the one the latency LUTs are measured with:
onnxruntime CPU, ``--threads`` intra-op threads, sequential, batch 1, warm-up, rounds pooled
from quiet moments, thread-CPU timer with one thread), interleaved: ``--passes`` passes, each
measuring every file once (the order rotating), the median of the pass medians per file.

An exported model (a folder written by ``nas export``: ``model.int8.onnx``, ``model.fp32.onnx``,
``model.json``) *dominates* a baseline when its INT8 test accuracy is higher AND its INT8
latency lower. Its accuracy is measured here on the same test images (normalised as its
``model.json`` says, else with hwnas's Fashion-MNIST constants); the figures in its
``model.json`` are kept in the JSON output and a disagreement is reported.

Reference figures (absolute times move between hosts and with load; only side-by-side figures
count, hence one run):

    network                 test acc (5 ep, AMD EPYC VNNI)  INT8 ms / speed-up (AMD EPYC VNNI)  (Intel Xeon AMX)
    plain CNN               92.26 %                          0.077 / 2.31x                       0.119 / 2.11x
    resnet18                91.74 %                          0.216 / 1.50x                       0.615 / 1.50x
    mobilenetv3_large_100   90.59 %                          0.231 / 1.18x                       0.565 / 1.57x

    python benchmarks/bench_pipeline.py --exported runs/export/* --json runs/bench_pipeline.json
    python benchmarks/bench_pipeline.py --epochs 1 --train-limit 5000 --work /tmp/bp   # a smoke run

``--work`` (default ``runs/bench_pipeline``) keeps each trained and quantized baseline under a
key of model and recipe, so a rerun (or a run with other exported models) skips finished ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.io import atomic_write_text, canonical_json, json_safe, read_json_file

#: the figures the issue's requirement is about
REQUIRED_DOMINATED: tuple[str, ...] = ("resnet18", "mobilenetv3_large_100")
FMNIST_SHAPE = (1, 28, 28)


class BenchError(HwnasError):
    """The benchmark cannot run as asked (bad ``--exported`` folder, bad option, failed check)."""


# ----------------------------------------------------------------------------------------------
# rows and dominance (pure)
# ----------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One model of the comparison: its files, accuracies (percent) and latencies (ms)."""

    name: str
    kind: str  # "baseline" | "exported"
    fp32_path: str
    int8_path: str
    params: int = 0
    fp32_acc: float | None = None
    int8_acc: float | None = None
    fp32_ms: float | None = None
    int8_ms: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        if self.fp32_ms is None or self.int8_ms is None or self.int8_ms <= 0:
            return None
        return self.fp32_ms / self.int8_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "params": self.params,
            "fp32_acc": self.fp32_acc,
            "int8_acc": self.int8_acc,
            "fp32_ms": self.fp32_ms,
            "int8_ms": self.int8_ms,
            "speedup": self.speedup,
            "fp32_onnx": self.fp32_path,
            "int8_onnx": self.int8_path,
            **self.info,
        }


def dominates(a_acc: float | None, a_ms: float | None, b_acc: float | None, b_ms: float | None) -> bool:
    """True when model a Pareto-dominates model b in INT8: strictly higher accuracy AND strictly
    lower latency (missing figures never dominate)."""
    if None in (a_acc, a_ms, b_acc, b_ms):
        return False
    return bool(a_acc > b_acc and a_ms < b_ms)  # type: ignore[operator]


def dominated_baselines(row: Row, baselines: Sequence[Row]) -> list[str]:
    """Names of the ``baselines`` that ``row`` Pareto-dominates (INT8 accuracy and INT8 latency)."""
    return [b.name for b in baselines if dominates(row.int8_acc, row.int8_ms, b.int8_acc, b.int8_ms)]


def verdict(
    exported: Sequence[Row], baselines: Sequence[Row], required: Sequence[str] = REQUIRED_DOMINATED
) -> dict[str, Any]:
    """Whether some exported model dominates every ``required`` baseline (and which ones do)."""
    have = {b.name for b in baselines}
    missing = [r for r in required if r not in have]
    if missing or not exported:
        why = f"baseline {missing[0]} not run" if missing else "no --exported model"
        return {"required": list(required), "checked": False, "met": None, "winners": [], "why": why}
    winners = [e.name for e in exported if set(required) <= set(dominated_baselines(e, baselines))]
    return {"required": list(required), "checked": True, "met": bool(winners), "winners": winners, "why": ""}


def versus(row: Row, ref: Row | None) -> str:
    """``row`` against ``ref`` in words: accuracy difference and latency ratio (INT8)."""
    if ref is None or None in (row.int8_acc, ref.int8_acc, row.int8_ms, ref.int8_ms) or not ref.int8_ms:
        return ""
    return f"{row.int8_acc - ref.int8_acc:+.2f} pt acc, {row.int8_ms / ref.int8_ms:.2f}× latency"  # type: ignore[operator]


# ----------------------------------------------------------------------------------------------
# exported folders
# ----------------------------------------------------------------------------------------------
EXPORT_FILES = ("model.int8.onnx", "model.fp32.onnx", "model.json")


def _get(meta: dict[str, Any], dotted: str, where: str) -> Any:
    value: Any = meta
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise BenchError(f"{where}: missing key {dotted!r}")
        value = value[part]
    return value


def _number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BenchError(f"{where}: {key}: expected a number, got {value!r}")
    return float(value)


def _normalization(meta: dict[str, Any], where: str) -> tuple[float, float] | None:
    """``(mean, std)`` of a one-channel ``model.json["normalization"]``, or None when absent."""
    norm = meta.get("normalization")
    if norm is None:
        return None
    out = []
    for key in ("mean", "std"):
        value = norm.get(key) if isinstance(norm, dict) else None
        value = value[0] if isinstance(value, list) and len(value) == 1 else value
        out.append(_number(value, f"normalization.{key}", where))
    if out[1] <= 0:
        raise BenchError(f"{where}: normalization.std: expected a positive number, got {out[1]}")
    return out[0], out[1]


def read_exported(folder: str | os.PathLike[str]) -> Row:
    """Check a ``nas export`` folder and describe it as a row (accuracies not measured yet).

    Needs ``model.int8.onnx``, ``model.fp32.onnx`` and a ``model.json`` with ``arch_id`` (null:
    the folder's name), ``input_shape`` (Fashion-MNIST's ``[1, 28, 28]``) and
    ``accuracy.int8_test``; ``accuracy.fp32_test`` and ``normalization`` are read when present.
    """
    path = Path(folder)
    if not path.is_dir():
        raise BenchError(f"--exported {folder}: no such folder")
    for name in EXPORT_FILES:
        if not (path / name).is_file():
            hint = " (export with --format onnx-int8,onnx-fp32)" if name == "model.fp32.onnx" else ""
            raise BenchError(
                f"--exported {folder}: no {name}; a `nas export` folder holds {', '.join(EXPORT_FILES)}{hint}"
            )
    where = str(path / "model.json")
    try:
        meta = read_json_file(path / "model.json")
    except HwnasError as exc:
        raise BenchError(str(exc)) from None
    if not isinstance(meta, dict):
        raise BenchError(f"{where}: expected a JSON object, got {type(meta).__name__}")
    arch_id = _get(meta, "arch_id", where)
    if arch_id is None:
        arch_id = path.resolve().name
    if not isinstance(arch_id, str) or not arch_id:
        raise BenchError(f"{where}: arch_id: expected a non-empty string, got {arch_id!r}")
    shape = _get(meta, "input_shape", where)
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
    ):
        raise BenchError(f"{where}: input_shape: expected [C, H, W], got {shape!r}")
    if tuple(shape) != FMNIST_SHAPE:
        raise BenchError(f"{where}: input_shape {shape} is not Fashion-MNIST's {list(FMNIST_SHAPE)}")
    data = meta.get("data")
    data_name = data.get("name") if isinstance(data, dict) else None
    if data_name not in (None, "fashion_mnist", "fashion-mnist"):
        raise BenchError(f"{where}: the model was trained on {data_name!r}, not Fashion-MNIST")
    claim_images = data.get("test_images") if isinstance(data, dict) else None
    int8_claim = _number(_get(meta, "accuracy.int8_test", where), "accuracy.int8_test", where)
    fp32_raw = meta["accuracy"].get("fp32_test")
    fp32_claim = None if fp32_raw is None else _number(fp32_raw, "accuracy.fp32_test", where)
    return Row(
        name=arch_id,
        kind="exported",
        fp32_path=str(path / "model.fp32.onnx"),
        int8_path=str(path / "model.int8.onnx"),
        info={
            "folder": str(path),
            "normalization": _normalization(meta, where),
            "model_json_accuracy": {"int8_test": int8_claim, "fp32_test": fp32_claim, "test_images": claim_images},
        },
    )


# ----------------------------------------------------------------------------------------------
# baselines: train, export, quantize (resumable; the work is nas.baselines.prepare_baseline's)
# ----------------------------------------------------------------------------------------------
def prepare_baseline(
    name: str,
    recipe: Any,
    train_x: np.ndarray,
    train_y: np.ndarray,
    check_x: np.ndarray,
    work: Path,
    train_limit: int | None,
    calib: int,
    calib_method: str,
    log: Callable[[str], None],
) -> Row:
    """One baseline as a row: :func:`nas.baselines.prepare_baseline` in
    ``WORK/<model>-<training hash>/`` (:func:`nas.baselines.baseline_dir`), so that many recipes
    live side by side and a rerun, or another ``--calib`` / ``--calib-method``, skips finished work."""
    from nas.baselines import baseline_dir, train_recipe
    from nas.baselines import prepare_baseline as prepare

    key = train_recipe(name, recipe, train_limit)
    p = prepare(
        name,
        recipe,
        train_x,
        train_y,
        check_x,
        baseline_dir(Path(work), key),
        train_key=key,
        calib=calib,
        calib_method=calib_method,
        log=log,
    )
    return Row(
        name,
        "baseline",
        str(p.fp32_path),
        str(p.int8_path),
        params=p.params,
        info={
            "cached": p.cached,
            "stages_run": p.stages_run,
            "work": str(p.folder),
            "torch_params": p.torch_params,
            "train": p.train,
            "calibration_images": p.calibration_images,
            "calib_method": p.calib_method,
        },
    )


# ----------------------------------------------------------------------------------------------
# latency: one harness, interleaved
# ----------------------------------------------------------------------------------------------
def latency_engines(threads: int, affinity: Sequence[int] | None) -> dict[str, Any]:
    """The ``cpu-ort-fp32`` and ``cpu-ort-int8`` engines with ``threads`` intra-op threads."""
    from hw_profiles import create_engine, load_target

    out = {}
    for precision in ("fp32", "int8"):
        target = load_target(f"cpu-ort-{precision}")
        changes: dict[str, Any] = {"threads": threads}
        if threads != 1:
            changes["name"] = f"{target.name}-{threads}t"
        if affinity:
            changes["affinity"] = tuple(affinity)
        out[precision] = create_engine(target.replace(**changes))
    return out


def measure_interleaved(
    files: Sequence[tuple[str, str, str]],
    engines: dict[str, Any],
    passes: int,
    progress: Callable[[str], None] | None = None,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Time every ``(model, precision, path)`` with its engine's harness, ``passes`` times in
    rotating round-robin order; per file the median (and min) of the pass medians."""
    runners = {}
    try:
        for model, precision, path in files:
            runners[(model, precision)] = engines[precision].load(path)
        samples: dict[tuple[str, str], list[Any]] = {k: [] for k in runners}
        keys = list(runners)
        for p in range(passes):
            shift = p % len(keys)
            for key in keys[shift:] + keys[:shift]:
                samples[key].append(engines[key[1]].measure(runners[key]))
                if progress is not None:
                    progress(f"{key[0]} {key[1]}")
    finally:
        for runner in runners.values():
            runner.close()
    out = {}
    for key, stats in samples.items():
        medians = [s.median_ms for s in stats]
        out[key] = {
            "median_ms": statistics.median(medians),
            "min_ms": min(medians),
            "p10_ms": min(s.p10_ms for s in stats),
            "stable_passes": sum(s.stable for s in stats),
            "pass_medians_ms": medians,
        }
    return out


# ----------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------
def host_info(threads: int, engines: dict[str, Any]) -> dict[str, Any]:
    import onnxruntime
    import torch

    from hw_profiles.sysinfo import cpu_count, cpu_info

    cpu = cpu_info()
    try:
        import timm

        timm_version = timm.__version__
    except ImportError:  # pragma: no cover - timm is a dependency
        timm_version = None
    return {
        "cpu": cpu["model"],
        "cpu_flags": cpu["flags"],
        "avx512_vnni": "avx512_vnni" in cpu["flags"],
        "amx_int8": "amx_int8" in cpu["flags"],
        "cores": cpu_count(),
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "timm": timm_version,
        "latency_threads": threads,
        "timer": engines["int8"].timer(),
        "targets": [e.target.name for e in engines.values()],
    }


def _params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f} %"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def render(result: dict[str, Any], rows: Sequence[Row], console: Any) -> None:
    """The header line and the one table."""
    from rich.table import Table

    h = result["host"]
    console.print(
        f"[bold]{h['cpu']}[/bold] ({h['cores']} cores; avx512_vnni: {'yes' if h['avx512_vnni'] else 'no'}, "
        f"amx_int8: {'yes' if h['amx_int8'] else 'no'}), onnxruntime {h['onnxruntime']}, "
        f"{h['latency_threads']} thread(s), batch 1, timer {h['timer']}; "
        f"{result['settings']['epochs']} epochs on {result['settings']['train_images']} training images, "
        f"{result['settings']['test_images']} test images"
    )
    baselines = [r for r in rows if r.kind == "baseline"]
    plain = next((b for b in baselines if b.name == "plain_cnn"), None)
    table = Table(title="Fashion-MNIST: exported models against hand-picked baselines (INT8 = onnxruntime QDQ)")
    for col in (
        "model",
        "params",
        "FP32 acc",
        "INT8 acc",
        "FP32 ms",
        "INT8 ms",
        "speed-up",
        "dominates (INT8)",
        "vs plain CNN",
    ):
        table.add_column(col, justify="left" if col in ("model", "dominates (INT8)", "vs plain CNN") else "right")
    for r in rows:
        dom = "—" if r.kind == "baseline" else (", ".join(dominated_baselines(r, baselines)) or "none")
        name = r.name if r.kind == "baseline" else f"[bold]{r.name}[/bold] (exported)"
        table.add_row(
            name,
            _params(r.params),
            _pct(r.fp32_acc),
            _pct(r.int8_acc),
            _ms(r.fp32_ms),
            _ms(r.int8_ms),
            "—" if r.speedup is None else f"{r.speedup:.2f}×",
            dom,
            "" if r is plain else versus(r, plain),
        )
    console.print(table)
    v = result["verdict"]
    if not v["checked"]:
        console.print(f"requirement (dominate {' and '.join(v['required'])}): not checked ({v['why']})")
    else:
        met = f"[green]met[/green] by {', '.join(v['winners'])}" if v["met"] else "[red]not met[/red]"
        console.print(f"requirement (an exported model dominates {' and '.join(v['required'])}): {met}")
    for note in result["notes"]:
        console.print(f"note: {note}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from nas.baselines import BASELINES, CALIB_METHODS

    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--epochs", type=int, default=5, help="training epochs of every baseline (default 5)")
    p.add_argument(
        "--train-limit", type=int, default=None, help="train on the first N training images (default: all 60k)"
    )
    p.add_argument("--test-limit", type=int, default=None, help="test on the first N test images (default: all 10k)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for latency (default 1, as cpu-ort-int8)")
    p.add_argument(
        "--affinity",
        default=None,
        help="pin latency runs to these CPU ids, e.g. 0 or 0,1 (default: unpinned, as the LUT)",
    )
    p.add_argument("--passes", type=int, default=7, help="interleaved latency passes over all models (default 7)")
    p.add_argument("--calib", type=int, default=512, help="calibration images for quantize_static (default 512)")
    p.add_argument(
        "--calib-method",
        choices=CALIB_METHODS,
        default="minmax",
        help="quantize_static calibration (default minmax, onnxruntime's default)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--work", default="runs/bench_pipeline", help="folder of trained and quantized baselines (resumable)"
    )
    p.add_argument("--exported", nargs="+", default=[], metavar="DIR", help="folders written by `nas export`")
    p.add_argument(
        "--models",
        default=",".join(BASELINES),
        help=f"baselines to run, comma-separated (default {','.join(BASELINES)})",
    )
    p.add_argument("--json", default=None, metavar="OUT", help="write everything to this JSON file")
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in BASELINES]
    if unknown:
        raise BenchError(f"--models: unknown baseline {unknown[0]!r} (known: {', '.join(BASELINES)})")
    if len(set(models)) != len(models):
        raise BenchError(f"--models: {args.models!r} names a baseline twice")
    args.models = models
    for name in ("epochs", "threads", "passes", "calib"):
        if getattr(args, name) < 1:
            raise BenchError(f"--{name}: expected a positive integer, got {getattr(args, name)}")
    for name in ("train_limit", "test_limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise BenchError(f"--{name.replace('_', '-')}: expected a positive integer, got {value}")
    if args.affinity is not None:
        try:
            args.affinity = [int(c) for c in args.affinity.split(",")]
        except ValueError:
            raise BenchError(f"--affinity: expected CPU ids such as 0 or 0,1, got {args.affinity!r}") from None
    if not models and not args.exported:
        raise BenchError("nothing to compare: give --models and/or --exported")
    return args


def run(args: argparse.Namespace, console: Any) -> dict[str, Any]:
    import torch

    import quant
    from hw_profiles.sysinfo import cpu_count
    from hwnas.datasets import FASHION_MNIST_MEAN, FASHION_MNIST_STD, load_fashion_mnist
    from nas.baselines import BaselineRecipe, load_done, normalize_fmnist, onnx_accuracy, onnx_params

    t_start = time.perf_counter()
    exported = [read_exported(d) for d in args.exported]  # fail fast, before any training
    names = [r.name for r in exported]
    for i, r in enumerate(exported):  # two folders of one arch: tell them apart
        if names.count(r.name) > 1:
            r.name = f"{r.name}@{Path(r.info['folder']).name or i}"
    cores = cpu_count()
    torch.set_num_threads(cores)
    log = lambda s: console.log(s)  # noqa: E731
    engines = latency_engines(args.threads, args.affinity)

    recipe = BaselineRecipe(epochs=args.epochs, seed=args.seed)
    raw_x, train_y = load_fashion_mnist("train")
    raw_tx, test_y = load_fashion_mnist("test")
    train_x = normalize_fmnist(raw_x[: args.train_limit], recipe.mean, recipe.std)
    train_y = np.asarray(train_y[: args.train_limit])
    test_x = normalize_fmnist(raw_tx[: args.test_limit], recipe.mean, recipe.std)
    test_y = np.asarray(test_y[: args.test_limit])
    work = Path(args.work)
    rows: list[Row] = []
    for name in args.models:
        rows.append(
            prepare_baseline(
                name, recipe, train_x, train_y, test_x[:64], work, args.train_limit, args.calib, args.calib_method, log
            )
        )

    # accuracy: onnxruntime on the test images, FP32 and INT8 (cached next to each baseline)
    for r in rows:
        cache = Path(r.int8_path).parent / f"eval-{args.test_limit or 'all'}.json"
        key = {
            "test_limit": args.test_limit,
            "mean": recipe.mean,
            "std": recipe.std,
            **{
                f"{p}_sha1": hashlib.sha1(Path(f).read_bytes()).hexdigest()
                for p, f in (("fp32", r.fp32_path), ("int8", r.int8_path))
            },
        }
        hit = load_done(cache, key)
        if hit is None:
            hit = {
                "recipe": key,
                "fp32_acc": onnx_accuracy(r.fp32_path, test_x, test_y, cores),
                "int8_acc": onnx_accuracy(r.int8_path, test_x, test_y, cores),
            }
            atomic_write_text(cache, canonical_json(hit) + "\n")
        r.fp32_acc, r.int8_acc = hit["fp32_acc"], hit["int8_acc"]
        log(f"{r.name}: FP32 {r.fp32_acc:.2f} %, INT8 {r.int8_acc:.2f} % on {len(test_y)} test images")
    notes: list[str] = []
    for r in rows:
        if r.fp32_acc - r.int8_acc > 2.0:  # type: ignore[operator]
            notes.append(
                f"{r.name}: onnxruntime's PTQ ({args.calib_method}) loses {r.fp32_acc - r.int8_acc:.1f} pt "
                f"of FP32 accuracy (see --calib-method)"
            )
    for r in exported:
        mean, std = r.info["normalization"] or (FASHION_MNIST_MEAN, FASHION_MNIST_STD)
        x = normalize_fmnist(raw_tx[: args.test_limit], mean, std)
        r.params = onnx_params(r.fp32_path)
        r.fp32_acc = onnx_accuracy(r.fp32_path, x, test_y, cores)
        r.int8_acc = onnx_accuracy(r.int8_path, x, test_y, cores)
        claimed = r.info["model_json_accuracy"]
        claim = claimed["int8_test"]  # percent, as `nas export` writes it
        log(
            f"{r.name}: FP32 {r.fp32_acc:.2f} %, INT8 {r.int8_acc:.2f} % on {len(test_y)} test images "
            f"(model.json: INT8 {claim:.2f} % on {claimed['test_images'] or '?'})"
        )
        if claimed["test_images"] == len(test_y) and abs(claim - r.int8_acc) > 0.2:  # type: ignore[operator]
            notes.append(
                f"{r.name}: INT8 accuracy measured here {r.int8_acc:.2f} % differs from its model.json "
                f"({claim:.2f} % on the same number of test images)"
            )
    rows.extend(exported)

    for r in rows:
        r.info["int8_kernels"] = quant.integer_op_report(r.int8_path).summary()
    files = [(r.name, prec, path) for r in rows for prec, path in (("fp32", r.fp32_path), ("int8", r.int8_path))]
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("latency", total=len(files) * args.passes)
        lat = measure_interleaved(files, engines, args.passes, lambda s: bar.update(task, advance=1, description=s))
    for r in rows:
        r.fp32_ms, r.int8_ms = lat[(r.name, "fp32")]["median_ms"], lat[(r.name, "int8")]["median_ms"]
        r.info["latency"] = {prec: lat[(r.name, prec)] for prec in ("fp32", "int8")}
    for e in engines.values():
        e.close()

    baselines = [r for r in rows if r.kind == "baseline"]
    for r in exported:
        r.info["dominates"] = dominated_baselines(r, baselines)
        plain = next((b for b in baselines if b.name == "plain_cnn"), None)
        r.info["vs_plain_cnn"] = (
            None
            if plain is None or not plain.int8_ms
            else {
                "int8_acc_diff_pt": r.int8_acc - plain.int8_acc,
                "int8_latency_ratio": r.int8_ms / plain.int8_ms,
                "dominates": dominates(r.int8_acc, r.int8_ms, plain.int8_acc, plain.int8_ms),
            }
        )
    unstable = [f"{k[0]} {k[1]}" for k, v in lat.items() if v["stable_passes"] < (args.passes + 1) // 2]
    if unstable:
        notes.append(f"the machine was busy for most passes of {', '.join(unstable)}: rerun on a quieter machine")
    return {
        "benchmark": "bench_pipeline",
        "host": host_info(args.threads, engines),
        "settings": {
            "epochs": args.epochs,
            "train_limit": args.train_limit,
            "test_limit": args.test_limit,
            "train_images": len(train_y),
            "test_images": len(test_y),
            "calib": args.calib,
            "calib_method": args.calib_method,
            "seed": args.seed,
            "passes": args.passes,
            "affinity": args.affinity,
            "models": args.models,
            "exported": args.exported,
            "work": str(work),
        },
        "recipe": recipe.to_dict(),
        "models": [r.to_dict() for r in rows],
        "verdict": verdict(exported, baselines),
        "notes": notes,
        "seconds": time.perf_counter() - t_start,
        "_rows": rows,
    }


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    console = Console(stderr=True, log_path=False)
    try:
        args = parse_args(argv)
        result = run(args, console)
    except HwnasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = result.pop("_rows")
    out = Console()
    render(result, rows, out if out.is_terminal else Console(width=200))
    if args.json:
        atomic_write_text(args.json, json.dumps(json_safe(result), indent=1) + "\n")
        console.log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

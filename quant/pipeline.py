"""End-to-end FP32 → PTQ → QAT evaluation of one model, measured on the exported artifacts.

Every accuracy reported for a quantized variant is measured twice: on the torch fake-quant model
and on the exported INT8 ONNX model in onnxruntime, together with the fraction of test
predictions on which both agree; latency is measured on the same ONNX files, by the caller's
``latency`` function (built on the one harness, ``hw_profiles.compare_files``: this package
times nothing itself).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch.nn as nn

from quant.bias_correction import correct_bias
from quant.calibrate import calibrate
from quant.export import export_fp32_onnx, export_onnx
from quant.ort import integer_op_report, ort_predict
from quant.ort_baseline import ort_quantize_static
from quant.prepare import prepare
from quant.scheme import ORT_CPU, QuantScheme, get_scheme
from quant.training import QAT_CONFIG, TrainConfig, accuracy, predict, qat_finetune, train

__all__ = ["PipelineResult", "VariantResult", "run_pipeline"]


@dataclass
class VariantResult:
    """One deployable variant (FP32, PTQ, QAT, ORT's PTQ) and what was measured on it."""

    name: str
    onnx_path: Path
    ort_acc: float
    torch_acc: float | None = None
    agreement: float | None = None
    latency_ms: float | None = None
    integer_summary: str = ""
    all_convs_integer: bool | None = None


@dataclass
class PipelineResult:
    """Results of :func:`run_pipeline`, keyed by variant name: ``fp32``, ``ptq``, ``qat``, ``ort_ptq``
    (onnxruntime's ``quantize_static``) and ``ort_ptq_rr`` (the same with ``reduce_range``)."""

    variants: dict[str, VariantResult] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, name: str) -> VariantResult:
        return self.variants[name]

    def table(self, title: str = "") -> str:
        """A plain-text table of accuracy, agreement and latency per variant."""
        fp32 = self.variants.get("fp32")
        rows = [f"{title}" if title else ""]
        rows.append(
            f"{'variant':<8} {'torch acc':>9} {'ORT acc':>8} {'Δ vs FP32':>9} {'agree':>7} {'latency ms':>10} {'speed-up':>8}  integer kernels"
        )
        for v in self.variants.values():
            delta = "" if fp32 is None or v is fp32 else f"{v.ort_acc - fp32.ort_acc:+.2f}"
            speed = (
                ""
                if fp32 is None or not v.latency_ms or not fp32.latency_ms
                else f"{fp32.latency_ms / v.latency_ms:.2f}x"
            )
            rows.append(
                f"{v.name:<8} {'' if v.torch_acc is None else f'{v.torch_acc:.2f}':>9} {v.ort_acc:>8.2f} {delta:>9} "
                f"{'' if v.agreement is None else f'{v.agreement:.2f}%':>7} "
                f"{'' if v.latency_ms is None else f'{v.latency_ms:.3f}':>10} {speed:>8}  {v.integer_summary}"
            )
        return "\n".join(r for r in rows if r)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean() * 100.0)


def run_pipeline(
    model: nn.Module,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    workdir: str | os.PathLike[str],
    scheme: QuantScheme | str = ORT_CPU,
    fp32_config: TrainConfig | None = None,
    qat_config: TrainConfig | None = QAT_CONFIG,
    calib_samples: int = 2048,
    bias_correction: bool = True,
    ort_baseline: bool = True,
    latency: Callable[[Sequence[Path]], Sequence[float]] | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Train (optionally), quantize with PTQ and QAT, export, and measure every variant.

    ``model`` is trained in place when ``fp32_config`` is given (else used as trained). The PTQ
    model is calibrated on ``calib_samples`` random training images, then (``bias_correction``)
    its biases are corrected on the first 1024 of them (:func:`quant.correct_bias`). The QAT model
    starts from it (LSQ+ initialisation) and fine-tunes with ``qat_config``, distilling the FP32
    model (weight ``qat_config.distill``). ORT's ``quantize_static`` sees the same FP32 ONNX model and the same
    calibration images. ``latency`` maps the variants' ONNX files to their latencies in
    milliseconds, in order (e.g. ``hw_profiles.compare_files`` on an onnxruntime engine); without
    it the variants are not timed.
    """
    import time

    scheme = get_scheme(scheme)
    out = Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _msg: None)
    res = PipelineResult()
    shape = (1, *train_x.shape[1:])
    t = time.perf_counter()
    if fp32_config is not None:
        r = train(model, train_x, train_y, fp32_config)
        say(f"fp32 trained: {r.steps} steps, loss {r.final_loss:.4f}, {r.seconds:.0f}s")
    res.seconds["fp32_train"] = time.perf_counter() - t
    model.eval()
    rng = np.random.default_rng(seed)
    calib = train_x[np.sort(rng.choice(len(train_x), size=min(calib_samples, len(train_x)), replace=False))]

    fp32_logits = predict(model, test_x)
    fp32_path = export_fp32_onnx(model, out / "fp32.onnx", shape)
    fp32_ort = ort_predict(fp32_path, test_x)
    res.variants["fp32"] = VariantResult(
        "fp32", fp32_path, accuracy(fp32_ort, test_y), accuracy(fp32_logits, test_y), _agreement(fp32_logits, fp32_ort)
    )

    t = time.perf_counter()
    ptq = prepare(model, scheme)
    calibrate(ptq, calib)
    if bias_correction:
        correct_bias(ptq, calib, num_batches=4, batch_size=256)
    res.seconds["ptq"] = time.perf_counter() - t
    res.variants["ptq"] = _measure_quantized("ptq", ptq, out / "ptq.int8.onnx", shape, test_x, test_y)
    say(f"ptq: torch {res['ptq'].torch_acc:.2f} ORT {res['ptq'].ort_acc:.2f}")

    if ort_baseline:
        # onnxruntime's own PTQ on the same FP32 model and calibration images: its default recipe
        # (8-bit weights) and, when our scheme reduces the weight range, its reduce_range recipe too
        recipes = [("ort_ptq", False)] + ([("ort_ptq_rr", True)] if scheme.weight_qmax < 127 else [])
        for name, reduce_range in recipes:
            t = time.perf_counter()
            base_path = ort_quantize_static(
                fp32_path,
                out / f"{name}.int8.onnx",
                calib,
                reduce_range=reduce_range,
                symmetric_activations=scheme.activation_symmetric,
            )
            res.seconds[name] = time.perf_counter() - t
            rep = integer_op_report(base_path)
            res.variants[name] = VariantResult(
                name,
                base_path,
                accuracy(ort_predict(base_path, test_x), test_y),
                integer_summary=rep.summary(),
                all_convs_integer=rep.all_convs_integer,
            )

    if qat_config is not None:
        t = time.perf_counter()
        qat = copy.deepcopy(ptq)
        r = qat_finetune(qat, train_x, train_y, qat_config, teacher=model)
        res.seconds["qat"] = time.perf_counter() - t
        say(f"qat: {r.steps} steps, loss {r.final_loss:.4f}, {r.seconds:.0f}s")
        res.variants["qat"] = _measure_quantized("qat", qat, out / "qat.int8.onnx", shape, test_x, test_y)

    if latency is not None:
        names = list(res.variants)
        for n, ms in zip(names, latency([res[n].onnx_path for n in names])):
            res[n].latency_ms = ms
    return res


def _measure_quantized(
    name: str, qmodel: nn.Module, path: Path, shape: tuple[int, ...], test_x: np.ndarray, test_y: np.ndarray
) -> VariantResult:
    torch_logits = predict(qmodel, test_x)
    export_onnx(qmodel, path, shape)
    ort_logits = ort_predict(path, test_x)
    rep = integer_op_report(path)
    return VariantResult(
        name,
        path,
        accuracy(ort_logits, test_y),
        accuracy(torch_logits, test_y),
        _agreement(torch_logits, ort_logits),
        integer_summary=rep.summary(),
        all_convs_integer=rep.all_convs_integer,
    )

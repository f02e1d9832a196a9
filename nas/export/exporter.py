"""``export``: a trained subnet (of a supernet checkpoint) or a plain module, to deployable files.

The pipeline: extract the subnet (supernet weights and learned scales, batch norms
recalibrated) or take the module; choose the quantization scheme the target needs (the
checkpoint's trained scales when its scheme matches, else PTQ with the target's scheme);
optionally QAT fine-tune; export the INT8 QDQ ONNX (and the FP32 ONNX, an OpenVINO IR, a
TensorRT plan); verify (accuracy of every exported file on the test set, its agreement with
the fake-quantized model, latency on the target against the LUT's prediction); write
``model.json``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.export.artifact import (
    FILE_NAMES,
    SCHEMA,
    check_out_dir,
    host_info,
    prepare_out_dir,
    sha256_file,
    utc_now,
    write_model_json,
)
from nas.export.errors import ExportConfigError, ExportVerificationError

__all__ = ["AGREEMENT_THRESHOLD", "ENGINE_ACCURACY_TOLERANCE", "LATENCY_TOLERANCE", "ExportResult", "export"]

AGREEMENT_THRESHOLD = 99.5
"""Minimum top-1 agreement (percent) of an exported INT8 model with the fake-quantized model."""
LATENCY_TOLERANCE = 0.10
"""Measured latency must lie within this fraction of the LUT's prediction."""
ENGINE_ACCURACY_TOLERANCE = 1.0
"""OpenVINO / TensorRT test accuracy may lie at most this many points below the fake-quantized model's."""


@dataclass(frozen=True)
class ExportResult:
    """An export folder and its ``model.json`` record."""

    out: Path
    record: dict[str, Any]

    @property
    def files(self) -> dict[str, Path]:
        """Absolute path of each exported format's file."""
        return {fmt: self.out / rel for fmt, rel in self.record["files"].items()}

    @property
    def passed(self) -> bool:
        """Whether every verification check that could run passed."""
        return bool(self.record["checks"]["passed"])


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------


def _resolve_target(target: Any, formats: Sequence[str]) -> Any:
    from hw_profiles import load_target

    if target is None:
        target = "gpu-trt-int8" if "tensorrt" in formats else "cpu-ort-int8"
    t = load_target(target)
    if t.precision != "int8":
        raise ExportConfigError(
            f"--target {t.name}: export measures the INT8 model, but this target has precision "
            f"{t.precision} (use an int8 target, e.g. cpu-ort-int8)"
        )
    if t.engine == "torch":
        raise ExportConfigError(f"--target {t.name}: engine torch cannot run exported ONNX models")
    return t


def _tensor_data(name: str, split: str, obj: Any) -> Any:
    """``obj`` as the data type of :mod:`supernet.data` (any object with ``.images`` ``(N, C, H, W)``
    and ``.labels``, numpy or torch)."""
    import numpy as np
    import torch

    from supernet.data import TensorData

    if isinstance(obj, TensorData):
        return obj
    images, labels = getattr(obj, "images", None), getattr(obj, "labels", None)
    if images is None or labels is None:
        raise ExportConfigError(f"data: the {split} set must have .images (N, C, H, W) and .labels (N,)")
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    y = labels if isinstance(labels, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(labels))
    if x.dim() != 4 or len(x) != len(y):
        raise ExportConfigError(f"data: {split} images must be (N, C, H, W) with one label each, got {tuple(x.shape)}")
    n_cls = int(getattr(obj, "num_classes", 0) or int(y.max()) + 1)
    return TensorData(name, split, x.float().contiguous(), y.long(), n_cls)


def _head(data: Any, n: int | None) -> Any:
    """The first ``n`` examples of a data set (all of them for ``None``)."""
    if n is None or n >= len(data):
        return data
    if hasattr(data, "head"):
        return data.head(n)
    return type(data)(data.name, data.split, data.images[:n], data.labels[:n], data.num_classes)


def _in_memory(data: Any) -> Any:
    """The data set with its images in memory (data streamed from files are decoded once)."""
    return data.in_memory() if getattr(data, "images", None) is None else data


def _load_datasets(
    data: Any, meta: Mapping[str, Any], train_limit: int | None, test_limit: int | None
) -> tuple[str, Any, Any]:
    """``(name, train, test)``: ``data`` (a spec or a ``(train, test)`` pair), else the checkpoint's
    data set, loaded as it was recorded (input shape, normalisation, classes) when it was."""
    import supernet.data as sd

    if data is None or isinstance(data, str):
        info = meta.get("data_info")
        spec = data if data is not None else (meta.get("config") or {}).get("data", "fashion-mnist")
        if isinstance(info, Mapping):
            train = sd.load_data_like(info, "train", train_limit, spec=data)
            test = sd.load_data_like(info, "test", test_limit, spec=data)
        else:
            train, test = sd.load_data(spec, "train", train_limit), sd.load_data(spec, "test", test_limit)
        return sd.DATA_ALIASES.get(spec.lower(), spec), train, _in_memory(test)
    if isinstance(data, Sequence) and len(data) == 2:
        name = str(getattr(data[0], "name", "custom"))
        train, test = _tensor_data(name, "train", data[0]), _tensor_data(name, "test", data[1])
        return name, train, _in_memory(_head(test, test_limit))
    raise ExportConfigError("data: give a data set (fashion-mnist, digits, ...) or a (train, test) pair of data sets")


def _data_info(name: str, data: Any) -> dict[str, Any]:
    """Normalisation and class names of the data (pixels in [0, 1], then ``(x - mean) / std`` per
    channel): as the data set records them, else those of the built-in data sets."""
    channels = data.input_shape[0]
    info: dict[str, Any] = {
        "mean": getattr(data, "mean", None),
        "std": getattr(data, "std", None),
        "class_names": getattr(data, "class_names", None),
    }
    if info["mean"] is None or info["std"] is None:
        if name == "fashion_mnist":
            from hwnas.datasets import FASHION_MNIST_MEAN, FASHION_MNIST_STD

            info["mean"], info["std"] = FASHION_MNIST_MEAN, FASHION_MNIST_STD
        elif name == "digits":
            from hwnas.datasets import load_dataset

            ds = load_dataset("digits", "train")
            info["mean"], info["std"] = ds.mean, ds.std
    for key in ("mean", "std"):
        v = info[key]
        if isinstance(v, (int, float)):
            info[key] = [float(v)] * channels
        elif v is not None:
            info[key] = [float(x) for x in v]
    if info["class_names"] is None and name in ("fashion_mnist", "digits"):
        from hwnas.datasets import FASHION_MNIST_CLASSES

        info["class_names"] = FASHION_MNIST_CLASSES if name == "fashion_mnist" else tuple(str(i) for i in range(10))
    if info["class_names"] is not None:
        info["class_names"] = [str(c) for c in info["class_names"]]
    return info


def _calibration(calibration: Any, train: Any, n_default: int, batch_size: int, seed: int) -> list[Any]:
    import numpy as np
    import torch

    from supernet.data import calibration_batches

    if calibration is None:
        return calibration_batches(train, n_default, batch_size, seed)
    if isinstance(calibration, bool) or (isinstance(calibration, int) and calibration < 1):
        raise ExportConfigError(f"calibration: expected a positive number of batches or tensors, got {calibration!r}")
    if isinstance(calibration, int):
        return calibration_batches(train, calibration, batch_size, seed)
    if isinstance(calibration, np.ndarray):
        calibration = torch.from_numpy(calibration)
    if isinstance(calibration, torch.Tensor):
        return [calibration[i : i + batch_size].float() for i in range(0, len(calibration), batch_size)]
    batches = [torch.as_tensor(b[0] if isinstance(b, (tuple, list)) else b).float() for b in calibration]
    if not batches:
        raise ExportConfigError("calibration: no batches given")
    return batches


def _resolve_space(space: Any) -> Any:
    if space is None or not isinstance(space, str):
        return space
    from spaces import create_space

    return create_space(space)


def _space_record(space: Any) -> dict[str, Any] | None:
    if space is None:
        return None
    import json

    from hwnas.errors import SpaceDefinitionError
    from spaces import space_hash

    try:
        digest: str | None = space_hash(space)
        text: str | None = space.to_yaml()
    except SpaceDefinitionError:
        digest = text = None
    kwargs = json.loads(json.dumps(dict(getattr(space, "factory_kwargs", {}) or {}), default=str))
    return {"name": space.name, "hash": digest, "kwargs": kwargs, "yaml": text}


def _compatible(have: Any, want: Any) -> str | None:
    """``None`` when a model quantized with scheme ``have`` runs as intended on an engine that
    needs ``want``; else the reason to re-quantize."""
    if (have.activation_dtype, have.activation_symmetric) != (want.activation_dtype, want.activation_symmetric):
        kind = lambda s: f"{'symmetric ' if s.activation_symmetric else ''}{s.activation_dtype}"  # noqa: E731
        return f"{kind(have)} activations, the target needs {kind(want)}"
    if have.weight_qmax > want.weight_qmax:
        return f"±{have.weight_qmax} weights, the target's integer kernels need ±{want.weight_qmax}"
    if frozenset(have.fused_activations) != frozenset(want.fused_activations):
        return "a different set of fused activations"
    return None


def _arch_from(spec: Any, net: Any) -> Any:
    from hwnas.io import read_json_file

    if spec in ("largest", "smallest"):
        return net.largest() if spec == "largest" else net.smallest()
    if isinstance(spec, (str, os.PathLike)):
        data = read_json_file(spec)
        if isinstance(data, dict) and isinstance(data.get("arch"), dict):
            data = data["arch"]
        if not isinstance(data, dict):
            raise ExportConfigError(f"{spec}: an arch file holds a JSON object of decision values")
        spec = data
    if not isinstance(spec, Mapping):
        raise ExportConfigError(
            f"arch: expected a mapping of decision values, a JSON file or 'largest'/'smallest', "
            f"got {type(spec).__name__}"
        )
    return net.validate(spec)


# ----------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """What is exported: the supernet (``net``) or a float module, its space, arch and data settings."""

    kind: str
    record: dict[str, Any]
    space: Any = None
    arch: Any = None
    net: Any = None
    module: Any = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.meta.get("config") or {})


def _source(model_or_checkpoint: Any, arch: Any, space: Any, data: Any) -> _Source:
    import torch.nn as nn

    if isinstance(model_or_checkpoint, nn.Module):
        from quant.prepare import is_prepared

        if is_prepared(model_or_checkpoint):
            raise ExportConfigError(
                "export takes the float module (it quantizes it for the target); this one is "
                "already prepared with fake quantizers"
            )
        space = _resolve_space(space)
        if arch is not None:
            if space is None:
                raise ExportConfigError("arch: give the space it belongs to (space=...)")
            arch = space.validate(arch)
        if data is None:
            raise ExportConfigError(
                "data: a plain module needs data (a dataset name or a (train, test) pair) for "
                "calibration and the test accuracy"
            )
        return _Source(
            "module",
            {"kind": "module", "module": type(model_or_checkpoint).__name__},
            space,
            arch,
            module=copy.deepcopy(model_or_checkpoint).cpu().eval(),
        )
    if not isinstance(model_or_checkpoint, (str, os.PathLike)):
        raise ExportConfigError(
            f"export: expected an nn.Module or a checkpoint path, got {type(model_or_checkpoint).__name__}"
        )
    from supernet.checkpoint import checkpoint_path
    from supernet.train import load_supernet

    net, meta = load_supernet(model_or_checkpoint)
    if arch is None:
        raise ExportConfigError(
            "--arch: a supernet checkpoint needs the arch to export (a JSON file, or largest / smallest)"
        )
    if space is not None:
        from spaces import space_hash

        given = _resolve_space(space)
        if space_hash(given) != space_hash(net.space):
            raise ExportConfigError(
                f"space {given.name} ({space_hash(given)}) is not the checkpoint's "
                f"{net.space.name} ({space_hash(net.space)})"
            )
    ckpt = checkpoint_path(model_or_checkpoint)
    record = {
        "kind": "supernet",
        "checkpoint": str(ckpt),
        "checkpoint_sha256": sha256_file(ckpt),
        "epochs_trained": (meta.get("state") or {}).get("epoch"),
        "checkpoint_scheme": net.quant_scheme.name if net.quant_scheme is not None else None,
    }
    return _Source("supernet", record, net.space, _arch_from(arch, net), net=net, meta=meta)


def _predict_latency(lut: Any, target: Any, src: _Source) -> tuple[float | None, dict[str, Any] | None]:
    """The LUT's prediction for the arch on ``target`` (fails fast for a LUT of another target)."""
    if lut is None:
        return None, None
    if src.arch is None or src.space is None:
        raise ExportConfigError("--lut: a latency prediction needs the arch and its space")
    if not Path(lut).is_file():
        raise ExportConfigError(f"--lut {lut}: no such file")
    from latency_lut.predictor import LatencyPredictor

    pred = LatencyPredictor.for_target(lut, target, src.space)
    try:
        return float(pred.predict(src.arch)), {
            "path": str(lut),
            "fingerprint": pred.fp_id,
            "corrected": pred.correction is not None,
        }
    finally:
        pred.close()


def _quantize(src: _Source, scheme: Any, calib: list[Any]) -> tuple[Any, Any, dict[str, Any]]:
    """``(fp32, fake-quantized model, quantization record)``: the checkpoint's trained scales when
    its scheme suits ``scheme``, else PTQ (calibration and bias correction) with ``scheme``."""
    from quant.bias_correction import correct_bias
    from quant.calibrate import calibrate
    from quant.prepare import prepare
    from supernet.bn import recalibrate_bn

    info: dict[str, Any] = {"scheme": _scheme_dict(scheme)}
    n = int(sum(len(b) for b in calib))
    if src.net is not None:
        net = src.net
        fp32 = recalibrate_bn(net.subnet(src.arch, quantized=False), calib)
        why = (
            "the supernet was trained without quantization"
            if net.quant_scheme is None
            else _compatible(net.quant_scheme, scheme)
        )
        if why is None:
            qmodel = recalibrate_bn(net.subnet(src.arch, quantized=True), calib)
            info.update(method="qat", scales="trained (the supernet's LSQ scales)", requantized=False, reason=None)
            return fp32, qmodel, info
        if net.quant_scheme is not None:
            why = f"the checkpoint's scheme {net.quant_scheme.name} has {why}"
        info.update(
            method="ptq",
            scales="calibrated",
            requantized=net.quant_scheme is not None,
            reason=f"{why}: re-quantized with {scheme.name} (PTQ on {n} training images)",
        )
    else:
        fp32 = src.module
        info.update(
            method="ptq",
            scales="calibrated",
            requantized=False,
            reason=f"a float module: quantized with {scheme.name} (PTQ on {n} training images)",
        )
    qmodel = prepare(fp32, scheme)
    calibrate(qmodel, calib)
    correct_bias(qmodel, calib, num_batches=min(4, len(calib)))
    return fp32, qmodel, info


def _finetune(
    qmodel: Any,
    fp32: Any,
    train: Any,
    test: Any,
    epochs: float,
    seed: int,
    say: Callable[[str], None],
    lr: float | None = None,
    distill: float | None = None,
) -> dict[str, Any]:
    """QAT fine-tune of ``qmodel`` in place (``distill`` of the loss distilling ``fp32``; ``lr``
    and ``distill`` default to :data:`quant.training.QAT_CONFIG`'s); the record of what it did."""
    from nas.export.verify import top1
    from quant.training import QAT_CONFIG, predict, qat_finetune

    before = top1(predict(qmodel, test.images), test.labels.numpy())
    cfg = dataclasses.replace(
        QAT_CONFIG,
        epochs=float(epochs),
        seed=seed,
        lr=QAT_CONFIG.lr if lr is None else float(lr),
        distill=QAT_CONFIG.distill if distill is None else float(distill),
    )
    say(
        f"QAT fine-tune: {epochs:g} epochs on {len(train)} images at lr {cfg.lr:g}, distillation {cfg.distill:g} "
        f"(fake-quant test accuracy before {before:.2f}%)"
    )
    train = _in_memory(train)
    steps_before = _activation_steps(qmodel)
    res = qat_finetune(qmodel, train.images, train.labels, cfg, teacher=fp32)
    qmodel.eval()
    _check_no_collapsed_step(steps_before, _activation_steps(qmodel), cfg.lr)
    return {
        "epochs": float(epochs),
        "steps": res.steps,
        "final_loss": res.final_loss,
        "seconds": round(res.seconds, 2),
        "fakequant_test_before": before,
        "config": dataclasses.asdict(cfg),
    }


def _with_tuned_weights(fp32: Any, qmodel: Any) -> Any:
    """A copy of ``fp32`` holding the fine-tuned float weights of ``qmodel`` (its quantized copy:
    the same parameter and buffer names, plus the quantizers')."""
    tuned = copy.deepcopy(fp32)
    own = tuned.state_dict()
    q = qmodel.state_dict()
    missing = [k for k in own if k not in q or q[k].shape != own[k].shape]
    if missing:
        raise ExportVerificationError(
            f"the fine-tuned model lacks {len(missing)} of the float model's tensors (first: {missing[0]})"
        )
    tuned.load_state_dict({k: q[k].detach().clone() for k in own})
    return tuned.eval()


def _activation_steps(qmodel: Any) -> dict[str, float]:
    """Every activation quantizer's step size, by module name."""
    from quant.fake_quant import ActFakeQuant

    return {
        name: float(m.effective_scale().detach()) for name, m in qmodel.named_modules() if isinstance(m, ActFakeQuant)
    }


COLLAPSE_FACTOR = 1e-3
"""A fine-tune that shrinks an activation quantizer's step size to below this fraction of its
value before has collapsed it (LSQ's step went through zero to the floor, where no gradient
brings it back): the layer's output is then a constant, and onnxruntime refuses some such
graphs outright (``QLinearGlobalAveragePool parameter out of computation range``)."""


def _check_no_collapsed_step(before: Mapping[str, float], after: Mapping[str, float], lr: float) -> None:
    from quant.functional import MIN_SCALE

    for name, s0 in before.items():
        s1 = after.get(name, s0)
        if s0 > 10 * MIN_SCALE and s1 < COLLAPSE_FACTOR * s0:
            raise ExportVerificationError(
                f"the QAT fine-tune collapsed the step size of quantizer {name} from {s0:.4g} to {s1:.3g} "
                f"(learning rate {lr:g} too high for it): lower the fine-tune's learning rate "
                "(--finetune-lr, export.finetune_lr in a run config)"
            )


def _write_formats(
    wanted: Sequence[str],
    qmodel: Any,
    fp32: Any,
    out_dir: Path,
    input_shape: tuple[int, ...],
    target: Any,
    timing_cache: Any,
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """Write every requested file; ``(files, tensorrt record)``."""
    import tempfile

    from nas.export import formats as fmts
    from quant.export import export_fp32_onnx, export_onnx

    example = (1, *input_shape)
    files = {"onnx-int8": FILE_NAMES["onnx-int8"]}
    int8_path = export_onnx(qmodel.cpu(), out_dir / files["onnx-int8"], example)
    if "onnx-fp32" in wanted:
        files["onnx-fp32"] = FILE_NAMES["onnx-fp32"]
        export_fp32_onnx(fp32.cpu(), out_dir / files["onnx-fp32"], example)
    if "openvino" in wanted:
        files["openvino"] = FILE_NAMES["openvino"]
        fmts.to_openvino(int8_path, (out_dir / files["openvino"]).parent)
    trt = None
    if "tensorrt" in wanted:
        files["tensorrt"] = FILE_NAMES["tensorrt"]
        cache = Path(timing_cache) if timing_cache is not None else out_dir / "tensorrt.timing.cache"
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="hwnas-export-") as tmp:
            static = fmts.static_batch_copy(int8_path, Path(tmp) / "model.int8.static.onnx", target.batch)
            fmts.build_tensorrt_plan(static, out_dir / files["tensorrt"], target, timing_cache=cache)
        trt = {
            "batch": target.batch,
            "timing_cache": str(cache),
            "build_seconds": round(time.perf_counter() - t0, 2),
            "quantization": "explicit: the Q/DQ nodes of the symmetric INT8 model",
        }
    return files, trt


def _verify_accuracy(
    files: Mapping[str, str], out_dir: Path, qmodel: Any, fp32: Any, test: Any, target: Any, threads: int
) -> dict[str, Any]:
    """Test accuracy of every exported file and its top-1 agreement with the fake-quantized model."""
    from nas.export import verify
    from quant.training import predict

    x, y = test.images.numpy(), test.labels.numpy()
    fq = predict(qmodel, x)
    int8 = verify.onnxruntime_logits(out_dir / files["onnx-int8"], x, threads=threads)
    fp32_logits = (
        verify.onnxruntime_logits(out_dir / files["onnx-fp32"], x, threads=threads)
        if "onnx-fp32" in files
        else predict(fp32, x)
    )
    acc: dict[str, Any] = {
        "fp32_test": verify.top1(fp32_logits, y),
        "int8_test": verify.top1(int8, y),
        "fakequant_test": verify.top1(fq, y),
        "int8_vs_fakequant_agreement": verify.agreement(int8, fq),
    }
    runs = {}
    if "openvino" in files or target.engine == "openvino":  # an OpenVINO target reads the INT8 ONNX itself
        ov_file = out_dir / files.get("openvino", files["onnx-int8"])
        runs["openvino"] = lambda: verify.openvino_logits(ov_file, x, threads=threads)
    if "tensorrt" in files:
        runs["tensorrt"] = lambda: verify.tensorrt_logits(out_dir / files["tensorrt"], x, target)
    for name, run in runs.items():
        logits = run()
        acc[f"{name}_test"] = verify.top1(logits, y)
        acc[f"{name}_vs_fakequant_agreement"] = verify.agreement(logits, fq)
    return acc


def _verify_latency(
    files: Mapping[str, str], out_dir: Path, target: Any, predicted: float | None, budget: float | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(latency_ms record, harness statistics)`` of the INT8 file (the plan for TensorRT) and
    of the FP32 file on the target's engine."""
    from nas.export import verify

    measured_fmt = "tensorrt" if "tensorrt" in files else "onnx-int8"
    int8 = verify.measure_latency(out_dir / files[measured_fmt], target)
    fp32 = (
        verify.measure_latency(out_dir / files["onnx-fp32"], target.replace(precision="fp32"))
        if "onnx-fp32" in files
        else None
    )
    ms = float(int8["median_ms"])
    ms_fp32 = float(fp32["median_ms"]) if fp32 else None
    latency = {
        "predicted": predicted,
        "measured": ms,
        "measured_fp32": ms_fp32,
        "ratio": ms / predicted if predicted else None,
        "int8_speedup": ms_fp32 / ms if ms_fp32 and ms > 0 else None,
        "budget": budget,
        "measured_file": files[measured_fmt],
    }
    return latency, {"int8": int8, "fp32": fp32}


def _checks(acc: Mapping[str, Any], latency: Mapping[str, Any]) -> dict[str, Any]:
    checks: dict[str, Any] = {
        "int8_vs_fakequant_agreement": acc["int8_vs_fakequant_agreement"] >= AGREEMENT_THRESHOLD,
        "latency_within_prediction": (
            abs(latency["ratio"] - 1.0) <= LATENCY_TOLERANCE if latency["ratio"] is not None else None
        ),
        "latency_within_budget": latency["measured"] <= latency["budget"] if latency["budget"] is not None else None,
    }
    # OpenVINO and TensorRT round differently from onnxruntime's integer kernels (fused residual
    # sums, requantization): their top-1 agreement is reported, their accuracy is checked
    for engine in ("openvino", "tensorrt"):
        if f"{engine}_test" in acc:
            checks[f"{engine}_accuracy"] = acc[f"{engine}_test"] >= acc["fakequant_test"] - ENGINE_ACCURACY_TOLERANCE
    return {
        **checks,
        "passed": all(v for v in checks.values() if v is not None),
        "agreement_threshold": AGREEMENT_THRESHOLD,
        "latency_tolerance": LATENCY_TOLERANCE,
        "engine_accuracy_tolerance": ENGINE_ACCURACY_TOLERANCE,
    }


def _hashes(out_dir: Path, files: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for rel in files.values():
        out[rel] = sha256_file(out_dir / rel)
        if rel.endswith(".xml"):  # the OpenVINO IR's weights
            rel_bin = str(Path(rel).with_suffix(".bin"))
            out[rel_bin] = sha256_file(out_dir / rel_bin)
    return out


def export(
    model_or_checkpoint: Any,
    arch: Any = None,
    out: str | os.PathLike[str] = "export",
    *,
    formats: str | Sequence[str] | None = None,
    target: Any = None,
    data: Any = None,
    calibration: Any = None,
    space: Any = None,
    lut: str | os.PathLike[str] | None = None,
    finetune_epochs: float = 0.0,
    finetune_lr: float | None = None,
    finetune_distill: float | None = None,
    scheme: Any = None,
    test_limit: int | None = None,
    max_latency_ms: float | None = None,
    class_names: Sequence[str] | None = None,
    normalization: Mapping[str, Sequence[float]] | None = None,
    timing_cache: str | os.PathLike[str] | None = None,
    threads: int = 1,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a trained model for ``target`` into the folder ``out`` and verify it there.

    ``model_or_checkpoint``: a supernet checkpoint (training folder or ``.safetensors`` file;
    ``arch`` is then required: a mapping, an arch JSON file, ``"largest"`` or ``"smallest"``),
    or a float ``nn.Module`` (e.g. ``space.build(arch)`` with trained weights; ``arch`` and
    ``space`` optional, needed for a latency prediction). ``formats``: see
    :mod:`nas.export.formats` (``onnx-int8`` is always written). ``target``: a target name or
    file (default ``cpu-ort-int8``, or ``gpu-trt-int8`` with ``tensorrt``); its engine picks
    the quantization scheme unless ``scheme`` names one. ``data``: a dataset name (default: the
    checkpoint's) or a ``(train, test)`` pair with ``.images`` / ``.labels``. ``calibration``:
    batches for BN recalibration and PTQ (a number of training batches of 256, or tensors;
    default: the checkpoint's ``bn_calib_batches``, 8). ``lut``: a LUT measured for ``target``
    on this machine (predicted latency). ``finetune_epochs``: QAT fine-tune before export, at peak
    learning rate ``finetune_lr`` (default 0.005) with ``finetune_distill`` of the loss distilling
    the model's FP32 version (default 0.5; 0: the labels alone).
    Returns an :class:`ExportResult`; ``record["checks"]["passed"]`` says whether verification
    passed. Every deliberate error is a one-line :class:`~hwnas.errors.HwnasError`, raised
    before any work where it can be.
    """
    from hw_profiles import target_availability
    from hw_profiles.errors import EngineUnavailableError
    from nas.export import formats as fmts
    from quant.scheme import get_scheme

    say = log or (lambda _msg: None)
    started = time.perf_counter()
    # -- the request, checked before any work ---------------------------------------------------
    wanted = fmts.parse_formats(formats)
    tgt = _resolve_target(target, wanted)
    fmts.check_formats_available(wanted, tgt)
    reason = target_availability(tgt)
    if reason is not None:
        raise EngineUnavailableError(f"--target {tgt.name}: {reason}", reason=reason)
    if finetune_epochs < 0:
        raise ExportConfigError(f"--finetune-epochs must be >= 0, got {finetune_epochs}")
    if finetune_lr is not None and not (math.isfinite(finetune_lr) and finetune_lr > 0):
        raise ExportConfigError(f"--finetune-lr must be a positive number, got {finetune_lr}")
    if finetune_distill is not None and not (0.0 <= finetune_distill <= 1.0):
        raise ExportConfigError(f"--finetune-distill must be in [0, 1], got {finetune_distill}")
    if max_latency_ms is not None and max_latency_ms <= 0:
        raise ExportConfigError(f"--max-latency must be positive, got {max_latency_ms}")
    want = get_scheme(scheme) if scheme is not None else fmts.scheme_for_target(tgt)
    if tgt.engine == "tensorrt" and not (want.activation_symmetric and want.activation_dtype == "int8"):
        raise ExportConfigError(f"--scheme {want.name}: TensorRT needs symmetric INT8 activations (scheme tensorrt)")
    src = _source(model_or_checkpoint, arch, space, data)
    predicted, lut_record = _predict_latency(lut, tgt, src)
    check_out_dir(out)

    # -- data -------------------------------------------------------------------------------------
    config = src.config
    data_name, train, test = _load_datasets(data, src.meta, config.get("train_limit"), test_limit)
    input_shape = tuple(src.space.input_shape) if src.space is not None else train.input_shape
    if train.input_shape != input_shape or test.input_shape != input_shape:
        raise ExportConfigError(f"data {data_name}: images are {train.input_shape}, the model takes {input_shape}")
    if src.space is not None and getattr(src.space, "num_classes", None) not in (None, train.num_classes):
        raise ExportConfigError(f"data {data_name}: {train.num_classes} classes, the model has {src.space.num_classes}")
    info = _data_info(data_name, train)
    if normalization is not None:
        info["mean"], info["std"] = [float(v) for v in normalization["mean"]], [float(v) for v in normalization["std"]]
    if class_names is not None:
        info["class_names"] = list(class_names)
    seed = int(config.get("seed", 0))
    calib = _calibration(
        calibration, train, int(config.get("bn_calib_batches", 8)), int(config.get("calib_batch_size", 256)), seed
    )
    say(
        f"data {data_name}: {len(train)} training images ({sum(len(b) for b in calib)} for calibration), "
        f"{len(test)} test images"
    )
    out_dir = prepare_out_dir(out)

    # -- quantize, fine-tune, export ----------------------------------------------------------------
    fp32, qmodel, quant_info = _quantize(src, want, calib)
    say(
        f"quantization: {quant_info['method']} with scheme {want.name}"
        + (f" ({quant_info['reason']})" if quant_info.get("reason") else "")
    )
    finetune = None
    if finetune_epochs > 0:
        finetune = _finetune(qmodel, fp32, train, test, finetune_epochs, seed, say, finetune_lr, finetune_distill)
        fp32 = _with_tuned_weights(fp32, qmodel)  # the FP32 file is the fine-tuned network too
        quant_info.update(method=f"{quant_info['method']}+finetune", scales="trained (QAT fine-tune)")
    files, trt_record = _write_formats(wanted, qmodel, fp32, out_dir, input_shape, tgt, timing_cache)
    say("exported: " + ", ".join(files.values()))

    # -- verify ---------------------------------------------------------------------------------------
    acc = _verify_accuracy(files, out_dir, qmodel, fp32, test, tgt, threads)
    if finetune is not None:
        finetune["fakequant_test_after"] = acc["fakequant_test"]
        acc["fakequant_test_before_finetune"] = finetune["fakequant_test_before"]
    say(
        f"accuracy on {len(test)} test images: fp32 {acc['fp32_test']:.2f}%, fake-quant {acc['fakequant_test']:.2f}%, "
        f"int8 {acc['int8_test']:.2f}% (agreement with fake-quant {acc['int8_vs_fakequant_agreement']:.2f}%)"
    )
    integer_ops = None
    if tgt.engine == "onnxruntime":
        from quant.ort import integer_op_report

        rep = integer_op_report(out_dir / files["onnx-int8"])
        integer_ops = {"summary": rep.summary(), "all_convs_integer": rep.all_convs_integer}
    say(f"measuring the latency on {tgt.name} ...")
    latency, stats = _verify_latency(files, out_dir, tgt, predicted, max_latency_ms)
    fp_info = stats["int8"].pop("fingerprint_info")
    if stats["fp32"] is not None:
        stats["fp32"].pop("fingerprint_info")

    # -- model.json -----------------------------------------------------------------------------------
    arch_, space_ = src.arch, src.space
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "created": utc_now(),
        "arch": arch_.to_dict() if arch_ is not None else None,
        "arch_id": arch_.id if arch_ is not None else None,
        "describe": space_.describe(arch_) if arch_ is not None and space_ is not None else None,
        "space": _space_record(space_),
        "input_shape": list(input_shape),
        "batch": tgt.batch,
        "normalization": {
            "mean": info["mean"],
            "std": info["std"],
            "note": "pixels scaled to [0, 1], then (x - mean) / std per channel",
        },
        "class_names": info["class_names"],
        "num_classes": int(train.num_classes),
        "data": {
            "name": data_name,
            "test_images": len(test),
            "train_images": len(train),
            "calibration_images": int(sum(len(b) for b in calib)),
        },
        "source": src.record,
        "quantization": quant_info,
        "finetune": finetune,
        "files": files,
        "sha256": _hashes(out_dir, files),
        "accuracy": acc,
        "latency_ms": latency,
        "latency_stats": stats,
        "checks": _checks(acc, latency),
        "target": tgt.name,
        "target_config": tgt.to_dict(),
        "engine": {"name": fp_info.get("engine"), "version": fp_info.get("engine_version")},
        "fingerprint": {"id": stats["int8"]["fingerprint"], "info": fp_info},
        "lut": lut_record,
        "integer_ops": integer_ops,
        "tensorrt": trt_record,
        "params": int(sum(p.numel() for p in fp32.parameters())),
        "host": host_info(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_model_json(out_dir, record)
    return ExportResult(out_dir, record)


def _scheme_dict(scheme: Any) -> dict[str, Any]:
    d = dataclasses.asdict(scheme)
    d["fused_activations"] = sorted(d["fused_activations"])
    return d

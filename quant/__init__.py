"""quant: INT8 quantization for hwnas: fake quantization, LSQ/LSQ+ QAT, PTQ calibration and
QDQ ONNX export that carries the model's own scales.

Typical use::

    import quant
    qmodel = quant.prepare(model, quant.ORT_CPU)      # fake-quant copy (fx graph)
    quant.calibrate(qmodel, calibration_batches)      # PTQ (also LSQ+ initialisation)
    quant.correct_bias(qmodel, calibration_batches)   # optional: undo the mean shift of quantized weights
    quant.qat_finetune(qmodel, images, labels)        # optional QAT: scales are parameters
    quant.export_onnx(qmodel, "model.int8.onnx", (1, 1, 28, 28))
    print(quant.integer_op_report("model.int8.onnx").summary())

Schemes: ``ORT_CPU`` (u8 activations, ±127 per-channel weights), ``ORT_CPU_AVX2`` (±63 weights:
exact on x86 without VNNI, where onnxruntime's int16 pair sums saturate), ``TENSORRT`` (s8
symmetric everywhere); ``host_ort_scheme()`` picks the onnxruntime preset for this CPU.
"""

from __future__ import annotations

from quant.bias_correction import correct_bias
from quant.calibrate import (
    act_quantizers,
    calibrate,
    check_calibrated,
    init_weight_scales,
    iter_batches,
    quantized_layers,
    set_fake_quant,
)
from quant.errors import ExportError, NotCalibratedError, QuantError, UnsupportedModelError
from quant.export import DEFAULT_OPSET, export_fp32_onnx, export_onnx, finalize_qdq
from quant.fake_quant import ActFakeQuant, QuantConv2d, QuantLinear, WeightFakeQuant
from quant.fold import bn_fold_factors, fold_bn, fold_bn_into_conv
from quant.functional import fake_quantize, grad_scale, lsq_grad_factor, qparams_from_range, quantize_weight, round_ste
from quant.observers import (
    MinMaxObserver,
    MSEObserver,
    Observer,
    PercentileObserver,
    SamplingObserver,
    create_observer,
    weight_scales,
)
from quant.ort import (
    INTEGER_OPS,
    IntegerOpReport,
    LatencyStats,
    compare_latency,
    integer_op_report,
    measure_latency,
    ort_predict,
    ort_session,
)
from quant.ort_baseline import ort_quantize_static
from quant.pipeline import PipelineResult, VariantResult, run_pipeline
from quant.prepare import is_prepared, prepare, scheme_of
from quant.qat import freeze_bn_stats, qat_param_groups, quant_parameters, set_quant_learnable
from quant.scheme import ORT_CPU, ORT_CPU_AVX2, SCHEMES, TENSORRT, QuantScheme, get_scheme, host_ort_scheme
from quant.training import (
    QAT_CONFIG,
    TrainConfig,
    TrainResult,
    accuracy,
    evaluate,
    predict,
    qat_finetune,
    recalibrate_bn,
    train,
)

__all__ = [
    "DEFAULT_OPSET",
    "INTEGER_OPS",
    "ORT_CPU",
    "ORT_CPU_AVX2",
    "QAT_CONFIG",
    "SCHEMES",
    "TENSORRT",
    "ActFakeQuant",
    "ExportError",
    "IntegerOpReport",
    "LatencyStats",
    "MSEObserver",
    "MinMaxObserver",
    "NotCalibratedError",
    "Observer",
    "PercentileObserver",
    "PipelineResult",
    "QuantConv2d",
    "QuantError",
    "QuantLinear",
    "QuantScheme",
    "SamplingObserver",
    "TrainConfig",
    "TrainResult",
    "UnsupportedModelError",
    "VariantResult",
    "WeightFakeQuant",
    "accuracy",
    "act_quantizers",
    "bn_fold_factors",
    "calibrate",
    "check_calibrated",
    "compare_latency",
    "correct_bias",
    "create_observer",
    "evaluate",
    "export_fp32_onnx",
    "export_onnx",
    "fake_quantize",
    "finalize_qdq",
    "fold_bn",
    "fold_bn_into_conv",
    "freeze_bn_stats",
    "get_scheme",
    "grad_scale",
    "host_ort_scheme",
    "init_weight_scales",
    "integer_op_report",
    "is_prepared",
    "iter_batches",
    "lsq_grad_factor",
    "measure_latency",
    "ort_predict",
    "ort_quantize_static",
    "ort_session",
    "predict",
    "prepare",
    "qat_finetune",
    "qat_param_groups",
    "qparams_from_range",
    "quant_parameters",
    "quantize_weight",
    "quantized_layers",
    "recalibrate_bn",
    "round_ste",
    "run_pipeline",
    "scheme_of",
    "set_fake_quant",
    "set_quant_learnable",
    "train",
    "weight_scales",
]

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

The package exports the user workflow above. The building blocks live in their modules:
observers (:mod:`quant.observers`), the fake-quant maths (:mod:`quant.functional`), batch-norm
folding (:mod:`quant.fold`), QAT parameter groups (:mod:`quant.qat`), the one training loop
(:mod:`quant.loop`, which the supernet and the baselines run too), one model's training and its
config (:mod:`quant.training`), onnxruntime sessions and kernel checks (:mod:`quant.ort`; latency
is timed by :mod:`hw_profiles`), onnxruntime's own PTQ as a baseline (:mod:`quant.ort_baseline`)
and the FP32 → PTQ → QAT evaluation (:mod:`quant.pipeline`).
"""

from __future__ import annotations

from quant.bias_correction import correct_bias
from quant.calibrate import calibrate, set_fake_quant
from quant.errors import ExportError, NotCalibratedError, QuantError, UnsupportedModelError
from quant.export import export_fp32_onnx, export_onnx
from quant.fake_quant import ActFakeQuant, QuantConv2d, QuantLinear, WeightFakeQuant
from quant.ort import IntegerOpReport, integer_op_report, ort_predict
from quant.prepare import is_prepared, prepare, scheme_of
from quant.scheme import ORT_CPU, ORT_CPU_AVX2, SCHEMES, TENSORRT, QuantScheme, get_scheme, host_ort_scheme
from quant.training import qat_finetune

__all__ = [
    "ORT_CPU",
    "ORT_CPU_AVX2",
    "SCHEMES",
    "TENSORRT",
    "ActFakeQuant",
    "ExportError",
    "IntegerOpReport",
    "NotCalibratedError",
    "QuantConv2d",
    "QuantError",
    "QuantLinear",
    "QuantScheme",
    "UnsupportedModelError",
    "WeightFakeQuant",
    "calibrate",
    "correct_bias",
    "export_fp32_onnx",
    "export_onnx",
    "get_scheme",
    "host_ort_scheme",
    "integer_op_report",
    "is_prepared",
    "ort_predict",
    "prepare",
    "qat_finetune",
    "scheme_of",
    "set_fake_quant",
]

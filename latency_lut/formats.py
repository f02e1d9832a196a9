"""The exported model formats (torch-free constants shared by export, profiler and predictor).

``fp32``
    float block models with float I/O.
``int8``
    QDQ blocks (s8 per-channel weights, u8 asymmetric activations) reading and writing the
    NCHW uint8 tensors that blocks of a whole INT8 network pass to each other.
``int8_nhwc``
    the ``int8`` blocks with NHWC uint8 I/O: onnxruntime's CPU provider runs its QLinear
    kernels channels-last, so inside its networks tensors stay NHWC between blocks, and an
    NCHW block model would pay two layout transposes that the network never runs.
``int8_sym``
    symmetric QDQ (s8 activations, zero points 0) with float I/O, for TensorRT.
``spec``
    the block's JSON spec, rebuilt by the ``torch`` engine.
"""

from __future__ import annotations

__all__ = ["ALL_FORMATS", "DEFAULT_FORMATS", "ONNX_FORMATS", "QUANT_RECIPE", "UINT8_IO_FORMATS"]

DEFAULT_FORMATS: tuple[str, ...] = ("fp32", "int8", "int8_nhwc")
ALL_FORMATS: tuple[str, ...] = ("fp32", "int8", "int8_nhwc", "int8_sym", "spec")
ONNX_FORMATS: tuple[str, ...] = ("fp32", "int8", "int8_nhwc", "int8_sym")
#: the quantization recipe behind each INT8 format (int8_nhwc only changes the blocks' I/O layout)
QUANT_RECIPE: dict[str, str] = {"int8": "int8", "int8_nhwc": "int8", "int8_sym": "int8_sym"}
#: formats whose blocks pass uint8 tensors: the network input needs a 'quantize' pseudo-block
UINT8_IO_FORMATS: tuple[str, ...] = ("int8", "int8_nhwc")

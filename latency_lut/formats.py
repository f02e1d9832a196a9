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
``pt2``
    the block's ``torch.export`` program (:func:`torch.export.save`), run by the ``torch``
    engine: self-contained, so the device side needs torch but no search-space code.
"""

from __future__ import annotations

__all__ = ["ALL_FORMATS", "DEFAULT_FORMATS", "ONNX_FORMATS", "QUANT_RECIPE", "UINT8_IO_FORMATS", "model_filename"]

DEFAULT_FORMATS: tuple[str, ...] = ("fp32", "int8", "int8_nhwc")
ALL_FORMATS: tuple[str, ...] = ("fp32", "int8", "int8_nhwc", "int8_sym", "pt2")
ONNX_FORMATS: tuple[str, ...] = ("fp32", "int8", "int8_nhwc", "int8_sym")
#: the quantization recipe behind each INT8 format (int8_nhwc only changes the blocks' I/O layout)
QUANT_RECIPE: dict[str, str] = {"int8": "int8", "int8_nhwc": "int8", "int8_sym": "int8_sym"}
#: formats whose blocks pass uint8 tensors: the network input needs a 'quantize' pseudo-block
UINT8_IO_FORMATS: tuple[str, ...] = ("int8", "int8_nhwc")


def model_filename(stem: str, fmt: str) -> str:
    """The file name of ``stem``'s model in format ``fmt``: ``<stem>.<fmt>.onnx``, or
    ``<stem>.pt2`` for a torch.export program."""
    return f"{stem}.pt2" if fmt == "pt2" else f"{stem}.{fmt}.onnx"

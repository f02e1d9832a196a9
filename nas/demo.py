"""``nas demo``: the whole pipeline as far as it exists, on this machine's CPU and offline data.

Today: sample architectures from a built-in space, build them, export them to ONNX, run
them in onnxruntime on this CPU, check the outputs against torch and time them.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["DemoRow", "run_demo"]


@dataclass
class DemoRow:
    arch_id: str
    summary: str
    params: int
    max_abs_diff: float
    ort_ms: float


def _time_session(sess, feed: dict[str, np.ndarray], warmup: int = 5, repeat: int = 30) -> float:
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run_demo(space_name: str = "mobilenet", n: int = 4, seed: int = 0, in_chans: int = 1, num_classes: int = 10,
             resolution: int = 28, out_dir: str | None = None) -> list[DemoRow]:
    """Sample ``n`` archs, build, export to ONNX and run each in onnxruntime (1 thread)."""
    import onnxruntime as ort
    import torch

    from spaces import create_space
    from spaces.onnx_export import export_fp32_bytes

    torch.manual_seed(seed)
    space = create_space(space_name, in_chans=in_chans, num_classes=num_classes, resolution=resolution)
    rows: list[DemoRow] = []
    x = torch.randn(1, *space.input_shape, generator=torch.Generator().manual_seed(seed))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    for i in range(n):
        arch = space.sample(seed + i)
        model = space.build(arch)
        with torch.no_grad():
            ref = model(x).numpy()
        onnx_bytes = export_fp32_bytes(model, space.input_shape)
        if out_dir is not None:
            from pathlib import Path

            Path(out_dir).mkdir(parents=True, exist_ok=True)
            (Path(out_dir) / f"{arch.id}.onnx").write_bytes(onnx_bytes)
            (Path(out_dir) / f"{arch.id}.json").write_text(arch.to_json() + "\n")
        sess = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
        feed = {"input": x.numpy()}
        out = sess.run(None, feed)[0]
        rows.append(DemoRow(arch.id, space.describe(arch), sum(p.numel() for p in model.parameters()),
                            float(np.abs(out - ref).max()), _time_session(sess, feed)))
    return rows

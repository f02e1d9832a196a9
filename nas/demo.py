"""``nas demo``: the whole pipeline as far as it exists, on this machine's CPU and offline data.

Stages: sample architectures from a built-in space, build them, export them to ONNX, run them
in onnxruntime on this CPU, check the outputs against torch and time them; profile an INT8
latency table of their blocks and predict their latency; compare searchers on the NAS-Bench-201
table; train, quantize (PTQ, QAT) and deploy the fastest arch in INT8; train a small
quantized-for-all supernet and deploy several of its subnets in INT8 without retraining.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["DEMO_SUPERNET_ARGS", "DemoRow", "demo_int8", "demo_latency_table", "demo_search", "demo_supernet",
           "run_demo"]


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


# The demo keeps to small spaces so that it runs in minutes on two cores: for ``mobilenet`` the
# first three stages (the supernet acceptance space of issue 5); other spaces as registered.
DEMO_SPACE_ARGS: dict[str, dict] = {"mobilenet": {"stages": 3}}


def demo_space(space_name: str, in_chans: int = 1, num_classes: int = 10, resolution: int = 28):
    """The space the demo samples from (see :data:`DEMO_SPACE_ARGS`)."""
    from spaces import create_space

    return create_space(space_name, in_chans=in_chans, num_classes=num_classes, resolution=resolution,
                        **DEMO_SPACE_ARGS.get(space_name, {}))


def run_demo(space_name: str = "mobilenet", n: int = 4, seed: int = 0, in_chans: int = 1, num_classes: int = 10,
             resolution: int = 28, out_dir: str | None = None) -> list[DemoRow]:
    """Sample ``n`` archs, build, export to ONNX and run each in onnxruntime (1 thread)."""
    import onnxruntime as ort
    import torch

    from spaces.onnx_export import export_fp32_bytes

    torch.manual_seed(seed)
    space = demo_space(space_name, in_chans=in_chans, num_classes=num_classes, resolution=resolution)
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


# --------------------------------------------------------------------------------------------
# Later stages of the pipeline: latency table, search, INT8 deployment
# --------------------------------------------------------------------------------------------
def demo_latency_table(space_name: str, n: int, seed: int, workdir: str, resolution: int = 28,
                       target: str = "cpu-ort-int8", networks: int = 6, check: int = 3):
    """Profile the blocks of the demo's archs on this CPU in INT8 (plus ``networks`` whole networks
    for the learned correction), predict the archs' latency, and check the prediction on ``check``
    other random networks measured end to end.

    Returns ``(space, archs, predicted_ms, check_report)``; ``check_report`` is
    :func:`latency_lut.validation.validate`'s result (per-network predicted / measured ms and agreement).
    """
    from latency_lut import LatencyPredictor, profile_space, validate

    space = demo_space(space_name, resolution=resolution)
    lut = f"{workdir}/lut.db"
    # the blocks of space.sample(seed + i), i < n + check + slack: the demo's archs, then the check's
    # one retry pass for blocks measured while the machine was busy keeps the demo's time bounded
    profile_space(space, target, lut, archs=n + check + 2, seed=seed, networks=networks, work_dir=f"{workdir}/blocks",
                  progress=True, retry_passes=1)
    predictor = LatencyPredictor(lut, space)
    archs = [space.sample(seed + i) for i in range(n)]
    predicted = [float(x) for x in predictor.predict(archs)]
    predictor.close()
    report = validate(lut, space, target, n=check, seed=seed + n, progress=False) if check else {}
    return space, archs, predicted, report


def demo_search(budget: int = 100, seeds: int = 3) -> dict:
    """Honest search on the NAS-Bench-201 table: random vs evolution vs Bayesian optimisation."""
    from nas.search import nb201_benchmark

    return nb201_benchmark(["random", "evolution", "bo"], budget=budget, seeds=seeds)


def demo_int8(space, arch, workdir: str, train_images: int = 12000, test_images: int = 2000, epochs: float = 2.0,
              seed: int = 0, log=None):
    """Train ``arch`` briefly on Fashion-MNIST, quantize it (PTQ, then a short QAT), export INT8 QDQ
    ONNX carrying the model's own scales, and measure accuracy and latency in onnxruntime.

    Small by design (a few minutes on two CPU cores); ``benchmarks/bench_quant.py`` is the full run.
    """
    import torch

    from hwnas.datasets import load_dataset
    from quant.pipeline import run_pipeline
    from quant.scheme import host_ort_scheme
    from quant.training import TrainConfig

    torch.manual_seed(seed)
    train = load_dataset("fashion_mnist", "train", limit=train_images)
    test = load_dataset("fashion_mnist", "test", limit=test_images)
    model = space.build(arch)
    return run_pipeline(
        model, train.images, train.labels, test.images, test.labels, workdir=workdir, scheme=host_ort_scheme(),
        fp32_config=TrainConfig(epochs=epochs, batch_size=128, lr=0.05, seed=seed),
        qat_config=TrainConfig(epochs=0.25, batch_size=128, lr=0.002, seed=seed, freeze_bn_after=0.5, distill=0.5),
        calib_samples=512, ort_baseline=False, latency_repeat=20, seed=seed, log=log,
    )


# a half-width, two-stage slice of the acceptance supernet space: a few minutes on two CPU cores
DEMO_SUPERNET_ARGS: dict = {"stages": 2, "depths": [1, 2], "kernels": [3, 5], "expands": [2.0, 3.0], "scale": 0.5}


def demo_supernet(workdir: str, *, train_images: int = 6000, test_images: int = 2000, epochs: int = 2,
                  qat_epochs: int = 1, random_subnets: int = 2, seed: int = 0, progress: bool | None = None,
                  log=None) -> dict:
    """Train a small quantized-for-all supernet briefly (sandwich rule, in-place distillation, then
    LSQ QAT with this CPU's onnxruntime scheme), then deploy its largest, smallest and
    ``random_subnets`` random subnets without retraining: each is extracted with the supernet's
    weights and learned scales, its batch norms recalibrated, and measured in FP32 (torch) and in
    INT8 (exported QDQ ONNX run by onnxruntime).

    Small by design; ``nas train-supernet`` and ``benchmarks/bench_supernet.py accept`` are the
    full run. Returns the training summary and one row per subnet.
    """
    import random
    import time as _time

    from quant.scheme import host_ort_scheme
    from supernet import TrainConfig, Trainer, evaluate_arch

    scheme = host_ort_scheme().name
    cfg = TrainConfig(space="mobilenet", space_kwargs=dict(DEMO_SUPERNET_ARGS), epochs=epochs, qat_epochs=qat_epochs,
                      batch_size=128, lr=0.1, qat_lr=0.01, train_limit=train_images, test_limit=test_images,
                      scheme=scheme, seed=seed, eval_every=0, checkpoint_every=0, bn_calib_batches=4)
    out_dir = f"{workdir}/supernet"
    t0 = _time.perf_counter()
    trainer = Trainer(cfg, out_dir, progress=progress, log=log)
    trainer.run()
    train_s = _time.perf_counter() - t0
    net = trainer.net
    rng = random.Random(seed)
    archs = {"largest": net.largest(), "smallest": net.smallest()}
    archs.update({f"random {i + 1}": net.sample(rng) for i in range(random_subnets)})
    rows = []
    for name, arch in archs.items():
        fp32 = evaluate_arch(net, arch, trainer.test_data, trainer.calib, precision="fp32")
        int8 = evaluate_arch(net, arch, trainer.test_data, trainer.calib, precision="int8",
                             onnx_path=f"{out_dir}/{name.replace(' ', '_')}.int8.onnx")
        rows.append({"subnet": name, "arch_id": arch.id, "describe": net.space.describe(arch),
                     "params": fp32["params"], "fp32_acc": fp32["accuracy"], "int8_acc": int8["accuracy"],
                     "onnx": int8["onnx"]})
    return {"scheme": scheme, "space_args": dict(DEMO_SUPERNET_ARGS), "train_images": len(trainer.train_data),
            "test_images": len(trainer.test_data), "epochs": epochs, "qat_epochs": qat_epochs,
            "train_s": round(train_s, 1), "checkpoint": out_dir, "rows": rows}

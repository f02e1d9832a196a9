"""GPU check for the ``device`` tool: CUDA training steps of the acceptance supernet.

Runs the same supernet (``mobilenet`` at 1x28x28, the acceptance configuration) for a few FP32
sandwich steps and a few quantized-for-all (fake-quant LSQ+) steps on ``--device`` (default
``cuda``), checks that losses are finite and that the extracted subnet matches the supernet, and
prints one JSON line with the throughput. Bounded by ``--budget-s`` (default 240 s) so that it
finishes in under five minutes. Uses Fashion-MNIST when the Debian package is installed,
otherwise synthetic data of the same shape (``"data": "synthetic"`` in the output).

    python benchmarks/gpu_supernet_check.py                 # on the GPU machine
    python benchmarks/gpu_supernet_check.py --device cpu --steps 2 --qat-steps 1 --batch-size 32   # smoke
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from supernet.data import EpochOrder, TensorData, load_data  # noqa: E402
from supernet.train import TrainConfig, Trainer  # noqa: E402

ACCEPTANCE_SPACE_ARGS = {"stages": 3, "depths": [1, 2, 3], "kernels": [3, 5], "expands": [2.0, 3.0, 4.0]}


def _data(n: int, split: str) -> tuple[TensorData, str]:
    try:
        return load_data("fashion-mnist", split, n), "fashion-mnist"
    except Exception:  # noqa: BLE001 - no dataset on the device machine: synthetic data of the same shape
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        return TensorData(
            "synthetic", split, torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), 10
        ), "synthetic"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=30, help="timed FP32 sandwich steps")
    p.add_argument("--qat-steps", type=int, default=10, help="timed quantized-for-all steps")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--prewarm", type=int, default=48, help="random subnets run once (batch 2) before timing")
    p.add_argument("--space-args", default=json.dumps(ACCEPTANCE_SPACE_ARGS))
    p.add_argument("--budget-s", type=float, default=240.0, help="stop timing loops after this many seconds")
    args = p.parse_args(argv)
    t_start = time.time()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"ok": False, "error": "CUDA is not available"}))
        return 1
    dev = torch.device(args.device)
    n = args.batch_size * (args.steps + args.qat_steps + 2 * args.warmup + 1)
    train, data_name = _data(n, "train")
    test, _ = _data(512, "test")
    cfg = TrainConfig(
        space="mobilenet",
        space_kwargs=json.loads(args.space_args),
        batch_size=args.batch_size,
        epochs=1,
        qat_epochs=1,
        eval_every=0,
        checkpoint_every=0,
        device=args.device,
        bn_calib_batches=2,
        calib_batch_size=128,
        qat_calib_batches=2,
    )
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(cfg, tmp, progress=False, log=lambda s: None, train_data=train, test_data=test)
        order = EpochOrder(train, cfg.batch_size, 0, 0)
        losses: list[float] = []

        def prewarm() -> float:
            """Build the per-block programs of many random subnets first (one-off Python work that
            would otherwise be timed as GPU throughput)."""
            t0 = time.time()
            rng = __import__("random").Random(0)
            with torch.no_grad():
                for _ in range(args.prewarm):
                    tr.net(train.images[:2].to(dev), tr.net.space.sample(rng))
            return time.time() - t0

        def run(steps: int, offset: int) -> float:
            tr.net.train()
            for i in range(args.warmup):
                x, y = order.batch(offset + i)
                tr._train_step(x.to(dev), y.to(dev), tr.step_archs(offset + i), 0.05)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0, done = time.perf_counter(), 0
            for i in range(steps):
                j = offset + args.warmup + i
                x, y = order.batch(j)
                stats = tr._train_step(x.to(dev), y.to(dev), tr.step_archs(j), 0.05)
                losses.append(stats["loss_largest"])
                done += 1
                if time.time() - t_start > args.budget_s:
                    break
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return done * cfg.batch_size / (time.perf_counter() - t0)

        warm_fp32 = prewarm()
        fp32_ips = run(args.steps, 0)
        tr.net.enable_quantization(cfg.scheme, [b.to(dev) for b in tr.calib[:2]])
        warm_qat = prewarm()
        tr._adopt_new_parameters()
        qat_ips = run(args.qat_steps, args.steps + args.warmup)
        tr.net.eval()
        x = test.images[:64].to(dev)
        arch = tr.net.smallest()
        with torch.no_grad():
            same = torch.allclose(tr.net(x, arch), tr.net.subnet(arch)(x), atol=1e-4)
    out = {
        "ok": all(math.isfinite(v) for v in losses) and same,
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "torch": torch.__version__,
        "data": data_name,
        "batch_size": cfg.batch_size,
        "space_args": cfg.space_kwargs,
        "subnets_per_step": 2 + cfg.num_random,
        "fp32_images_per_s": round(fp32_ips, 1),
        "qat_images_per_s": round(qat_ips, 1),
        "last_loss": round(losses[-1], 4) if losses else None,
        "subnet_matches_supernet": bool(same),
        "prewarm_s": [round(warm_fp32, 1), round(warm_qat, 1)],
        "wall_s": round(time.time() - t_start, 1),
    }
    print(json.dumps(out, sort_keys=True))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""CPU training speed: memory format and the fused fake-quant node.

Prints one table (and, with ``--out``, writes JSON) of median seconds per training step,
measured in interleaved rounds so that machine load affects every variant alike:

* ``supernet fp32``: one sandwich step (largest, smallest, ``--num-random`` random subnets)
  with NCHW and with NHWC activations (``TrainConfig.channels_last``);
* ``supernet qat``: the same step in the quantized-for-all stage (NHWC);
* ``standalone``: one SGD step of the largest subnet as a plain ``nn.Module``, NCHW and under
  :func:`quant.training.channels_last_convs`;
* ``fake-quant op``: forward + backward of :func:`quant.functional.fake_quantize` on one activation of
  the largest subnet's size, against the same computation written as a chain of torch ops.

Example::

    python benchmarks/bench_train_speed.py --batch-size 256 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from quant.functional import fake_quantize, fake_quantize_op_chain  # noqa: E402
from quant.scheme import get_scheme  # noqa: E402
from quant.training import channels_last_convs  # noqa: E402
from supernet.data import EpochOrder  # noqa: E402
from supernet.train import TrainConfig, Trainer  # noqa: E402

SPACE_ARGS = '{"stages": 3, "depths": [1, 2, 3], "kernels": [3, 5], "expands": [2.0, 3.0, 4.0], "scale": 1.0}'


def _trainer(args: argparse.Namespace, channels_last: bool, work: Path) -> Trainer:
    cfg = TrainConfig(
        space="mobilenet",
        space_kwargs=json.loads(args.space_args),
        batch_size=args.batch_size,
        num_random=args.num_random,
        train_limit=args.batch_size * 4,
        test_limit=16,
        eval_every=0,
        checkpoint_every=0,
        epochs=1,
        bn_calib_batches=1,
        calib_batch_size=16,
        threads=args.threads,
        channels_last=channels_last,
        scheme=args.scheme,
    )
    return Trainer(cfg, work, progress=False, log=lambda s: None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space-args", default=SPACE_ARGS, help="mobilenet create_space arguments (JSON)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-random", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scheme", default="ort_cpu_avx2")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median is reported)")
    p.add_argument("--steps", type=int, default=2, help="timed steps per variant and round")
    p.add_argument("--out", help="also write the results as JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    with tempfile.TemporaryDirectory() as tmp:
        nchw, nhwc, qat = (
            _trainer(args, cl, Path(tmp) / name) for cl, name in ((False, "nchw"), (True, "nhwc"), (True, "qat"))
        )
        qat.net.enable_quantization(get_scheme(args.scheme), qat.calib[:1])
        qat._adopt_new_parameters()
        order = EpochOrder(nchw.train_data, args.batch_size, 0, 0)
        x, y = order.batch(0)

        def sandwich(tr: Trainer) -> Callable[[int], None]:
            def run(i: int) -> None:
                tr._train_step(x, y, tr.step_archs(i), 0.01)

            return run

        largest = nchw.net.subnet(nchw.net.largest()).train()
        opt = torch.optim.SGD(largest.parameters(), lr=0.01, momentum=0.9)

        def standalone(i: int) -> None:  # noqa: ARG001
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(largest(x), y).backward()
            opt.step()

        def standalone_nhwc(i: int) -> None:
            with channels_last_convs(largest):
                standalone(i)

        # one activation of the largest subnet's widest hidden layer
        with torch.no_grad():
            acts: list[torch.Tensor] = []
            hooks = [
                m.register_forward_hook(lambda m, a, o: acts.append(o))
                for m in largest.modules()
                if isinstance(m, torch.nn.BatchNorm2d)
            ]
            largest(x)
            for h in hooks:
                h.remove()
        act = max(acts, key=torch.Tensor.numel).contiguous(memory_format=torch.channels_last)
        dy = torch.randn_like(act)

        def fq(fused: bool) -> Callable[[int], None]:
            def run(i: int) -> None:  # noqa: ARG001
                a = act.detach().requires_grad_()
                s = torch.tensor(0.05, requires_grad=True)
                z = torch.tensor(128.0, requires_grad=True)
                fq_fn = fake_quantize if fused else fake_quantize_op_chain
                out = fq_fn(a, s, z, 0, 255, grad_factor=0.01)
                out.backward(dy)

            return run

        variants: dict[str, Callable[[int], None]] = {
            "supernet fp32, NCHW": sandwich(nchw),
            "supernet fp32, NHWC": sandwich(nhwc),
            "supernet qat, NHWC": sandwich(qat),
            "standalone largest, NCHW": standalone,
            "standalone largest, NHWC": standalone_nhwc,
            f"fake-quant op chain {tuple(act.shape)}": fq(False),
            f"fake-quant fused {tuple(act.shape)}": fq(True),
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        for fn in variants.values():  # warm-up (oneDNN primitive caches, lazy quantizers)
            fn(0)
        for r in range(args.rounds):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                for i in range(args.steps):
                    fn(1 + r * args.steps + i)
                times[name].append((time.perf_counter() - t0) / args.steps)

    rows = {k: statistics.median(v) for k, v in times.items()}
    pairs = [
        ("supernet fp32, NCHW", "supernet fp32, NHWC"),
        ("standalone largest, NCHW", "standalone largest, NHWC"),
        (f"fake-quant op chain {tuple(act.shape)}", f"fake-quant fused {tuple(act.shape)}"),
    ]
    speedup = {b: rows[a] / rows[b] for a, b in pairs}
    print(f"{'variant':<44} {'s/step':>9} {'img/s':>8} {'speed-up':>9}")
    for name, sec in rows.items():
        ips = f"{args.batch_size / sec:8.1f}" if not name.startswith("fake-quant") else f"{'':>8}"
        su = f"{speedup[name]:8.2f}x" if name in speedup else ""
        print(f"{name:<44} {sec:9.4f} {ips} {su:>9}")
    result: dict[str, Any] = {
        "batch_size": args.batch_size,
        "threads": args.threads,
        "rounds": args.rounds,
        "steps": args.steps,
        "seconds_per_step": rows,
        "speedup": speedup,
        "space_args": json.loads(args.space_args),
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

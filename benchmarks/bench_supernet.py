"""Supernet benchmarks and acceptance measurements.

Sub-commands (all print one JSON object; ``--out`` also writes it to a file):

``throughput``
    Images/s of one supernet training step (sandwich rule: largest + smallest + ``num_random``
    random subnets, in-place distillation) against training the largest subnet alone (the
    standalone ``space.build(largest)`` module, same batch, same optimizer). The sandwich rule's
    floor is about 4x (four forward/backward passes, the largest being the most expensive).

``accept --checkpoint DIR``
    INT8 (exported QDQ ONNX run by onnxruntime) and FP32 test accuracy of the largest and
    smallest subnets and of ``--random`` random subnets, without any retraining (BN recalibrated).

``rank --checkpoint DIR``
    Spearman's rho between the supernet-inherited accuracy of ``--n`` random subnets and the
    accuracy of the same architectures trained from scratch for the same number of epochs with
    the same recipe. Per-arch results are cached in ``--work`` so the (long) run can be resumed
    or split over processes (``--shard i/k``). Scratch results are keyed by architecture and
    training recipe (``--scratch-dir``), so two supernets trained with one recipe (say, one and
    two random subnets per step) are ranked against the same scratch runs.

Example::

    python benchmarks/bench_supernet.py throughput --space mobilenet --space-args '{"stages": 3}'
    python benchmarks/bench_supernet.py accept --checkpoint runs/c2 --random 20 --out accept.json
    python benchmarks/bench_supernet.py rank --checkpoint runs/c2 --n 10 --work runs/c2/rank
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hwnas.io import atomic_write_text, canonical_json  # noqa: E402
from quant.training import channels_last_convs  # noqa: E402
from supernet.data import EpochOrder, calibration_batches, load_data  # noqa: E402
from supernet.evaluate import evaluate_arch, torch_accuracy  # noqa: E402
from supernet.train import TrainConfig, Trainer, load_supernet  # noqa: E402


def _emit(result: dict[str, Any], out: str | None) -> None:
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")


# ----------------------------------------------------------------------------------------------
# throughput
# ----------------------------------------------------------------------------------------------
def throughput(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    device = torch.device(args.device)
    cfg = TrainConfig(
        space=args.space,
        space_kwargs=json.loads(args.space_args),
        batch_size=args.batch_size,
        num_random=args.num_random,
        train_limit=args.batch_size * (args.steps + args.warmup + 1),
        test_limit=16,
        eval_every=0,
        checkpoint_every=0,
        device=args.device,
        threads=args.threads,
        epochs=1,
        bn_calib_batches=1,
        calib_batch_size=16,
    )
    tmp = Path(args.work)
    trainer = Trainer(cfg, tmp, progress=False, log=lambda s: None)
    if args.qat:
        trainer.net.enable_quantization(cfg.scheme, trainer.calib[:1])
        trainer._adopt_new_parameters()
    order = EpochOrder(trainer.train_data, cfg.batch_size, cfg.seed, 0)
    trainer.net.train()

    def sandwich(i: int) -> None:
        x, y = order.batch(i)
        trainer._train_step(x.to(device), y.to(device), trainer.step_archs(i), 0.01)

    # the largest subnet alone: the standalone module, same recipe
    largest = trainer.net.largest()
    model = trainer.net.subnet(largest, quantized=bool(args.qat)).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def alone(i: int) -> None:
        x, y = order.batch(i)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x.to(device)), y.to(device), label_smoothing=0.1).backward()
        opt.step()

    def timed(fn: Any) -> float:
        for i in range(args.warmup):
            fn(i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(args.warmup, args.warmup + args.steps):
            fn(i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return args.steps * cfg.batch_size / (time.perf_counter() - t0)

    # interleave the two measurements so that machine load affects both alike; both in the
    # supernet's memory format (NHWC on CPU, see quant.training.channels_last_convs)
    with channels_last_convs(model, trainer.net.channels_last):
        s1, a1 = timed(sandwich), timed(alone)
        s2, a2 = timed(sandwich), timed(alone)
    sup, alo = (s1 + s2) / 2, (a1 + a2) / 2
    return {
        "space": args.space,
        "space_args": json.loads(args.space_args),
        "device": str(device),
        "threads": args.threads,
        "batch_size": cfg.batch_size,
        "steps": args.steps,
        "qat": bool(args.qat),
        "channels_last": trainer.net.channels_last,
        "subnets_per_step": 2 + cfg.num_random,
        "largest_params": trainer.net.num_parameters(largest),
        "supernet_images_per_s": round(sup, 2),
        "largest_alone_images_per_s": round(alo, 2),
        "slowdown_vs_largest_alone": round(alo / sup, 3),
    }


# ----------------------------------------------------------------------------------------------
# acceptance
# ----------------------------------------------------------------------------------------------
def _data_for(meta: dict[str, Any]):
    cfg = meta["config"]
    train = load_data(cfg["data"], "train", cfg.get("train_limit"))
    calib = calibration_batches(
        train, int(cfg.get("bn_calib_batches", 8)), int(cfg.get("calib_batch_size", 256)), int(cfg.get("seed", 0))
    )
    return train, calib


def accept(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    net, meta = load_supernet(args.checkpoint)
    _, calib = _data_for(meta)
    test = load_data(meta["config"]["data"], "test", args.test_limit)
    rows: list[dict[str, Any]] = []
    archs = [("largest", net.largest()), ("smallest", net.smallest())]
    rng = random.Random(args.seed)
    archs += [(f"random{i}", net.space.sample(rng)) for i in range(args.random)]
    t0 = time.time()
    for name, arch in archs:
        fp32 = evaluate_arch(net, arch, test, calib, precision="fp32")
        int8 = evaluate_arch(net, arch, test, calib, precision="int8", threads=args.threads)
        row = {
            "name": name,
            "arch_id": arch.id,
            "params": fp32["params"],
            "fp32": round(fp32["accuracy"], 3),
            "int8": round(int8["accuracy"], 3),
            "int8_minus_fp32": round(int8["accuracy"] - fp32["accuracy"], 3),
            "describe": net.space.describe(arch),
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    rand = [r for r in rows if r["name"].startswith("random")]
    gaps = [abs(r["int8_minus_fp32"]) for r in rand]
    return {
        "checkpoint": str(args.checkpoint),
        "space": net.space.name,
        "epochs": meta["state"]["epoch"],
        "config": meta["config"],
        "num_test": len(test),
        "eval_time_s": round(time.time() - t0, 1),
        "largest": rows[0],
        "smallest": rows[1],
        "random": rand,
        "random_max_abs_int8_fp32_gap": max(gaps) if gaps else None,
        "random_mean_abs_int8_fp32_gap": round(sum(gaps) / len(gaps), 3) if gaps else None,
        "random_within_0.5": sum(g <= 0.5 for g in gaps),
    }


# ----------------------------------------------------------------------------------------------
# ranking
# ----------------------------------------------------------------------------------------------
def train_from_scratch(
    space: Any, arch: Any, cfg: dict[str, Any], epochs: int, seed: int, log: Any = None, device: str = "cpu"
) -> dict[str, Any]:
    """Train ``space.build(arch)`` alone with the supernet's recipe (label-smoothed CE, SGD with
    Nesterov momentum, linear warm-up then cosine, flips), ``epochs`` epochs; test accuracy."""
    torch.manual_seed(seed)
    train = load_data(cfg["data"], "train", cfg.get("train_limit"))
    test = load_data(cfg["data"], "test", cfg.get("test_limit"))
    model = space.build(arch).train().to(device=device)
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg["lr"],
        momentum=cfg["momentum"],
        nesterov=cfg["nesterov"],
    )
    bs = int(cfg["batch_size"])
    spe = len(train) // bs
    total, warm = epochs * spe, int(round(cfg["warmup_epochs"] * spe))
    t0 = time.time()
    with channels_last_convs(model, torch.device(device).type == "cpu"):  # as the supernet trains
        for epoch in range(epochs):
            order = EpochOrder(train, bs, seed, epoch, flip=cfg.get("flip", True))
            for step in range(spe):
                t = epoch * spe + step
                lr = (
                    cfg["lr"] * (t + 1) / warm
                    if t < warm
                    else 0.5 * cfg["lr"] * (1 + math.cos(math.pi * (t - warm) / max(1, total - warm)))
                )
                for g in opt.param_groups:
                    g["lr"] = lr
                x, y = order.batch(step)
                x, y = x.to(device), y.to(device)
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y, label_smoothing=cfg["label_smoothing"]).backward()
                opt.step()
            if log:
                log(f"  scratch {arch.id} epoch {epoch + 1}/{epochs} {time.time() - t0:.0f}s")
    return {"scratch_acc": torch_accuracy(model.eval(), test), "scratch_time_s": round(time.time() - t0, 1)}


#: configuration keys that decide a from-scratch result (the supernet-only keys, e.g. num_random,
#: do not): a cached scratch result is reused only under the same recipe
SCRATCH_RECIPE_KEYS = (
    "data",
    "train_limit",
    "test_limit",
    "space",
    "space_kwargs",
    "seed",
    "batch_size",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "warmup_epochs",
    "label_smoothing",
    "flip",
)


def scratch_recipe(cfg: dict[str, Any], epochs: int, device: str) -> dict[str, Any]:
    """What a from-scratch run depends on: the training recipe, the epochs and the device type."""
    recipe = {k: cfg.get(k) for k in SCRATCH_RECIPE_KEYS}
    recipe.update(epochs=int(epochs), device=torch.device(device).type)
    return recipe


def scratch_file(folder: Path, arch_id: str, recipe: dict[str, Any]) -> Path:
    """Cache file of one architecture's scratch result under one recipe, so supernets trained with
    the same recipe (e.g. a different number of random subnets per step) share scratch runs."""
    tag = hashlib.sha1(canonical_json(recipe).encode()).hexdigest()[:10]
    return folder / f"{arch_id}.scratch-{tag}.json"


def rank(args: argparse.Namespace) -> dict[str, Any]:
    from scipy.stats import kendalltau, spearmanr

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    net, meta = load_supernet(args.checkpoint, device=args.device)
    cfg = meta["config"]
    epochs = args.epochs if args.epochs is not None else int(cfg["epochs"]) + int(cfg["qat_epochs"])
    rng = random.Random(args.seed)
    archs = [net.space.sample(rng) for _ in range(args.n)]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    k, of = (int(x) for x in args.shard.split("/"))
    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    if args.phase in ("all", "supernet"):
        if not meta["state"].get("finished"):
            raise SystemExit(f"{args.checkpoint}: the supernet has not finished training")
        _, calib = _data_for(meta)
        calib = [b.to(args.device) for b in calib]
        test = load_data(cfg["data"], "test", cfg.get("test_limit"))
        for i, arch in enumerate(archs):
            f = work / f"{arch.id}.supernet.json"
            if f.exists() or i % of != k:
                continue
            acc = evaluate_arch(net, arch, test, calib, precision="fp32")["accuracy"]
            f.write_text(json.dumps({"supernet_fp32": acc, "supernet_epochs": meta["state"]["epoch"]}))
            say(f"{arch.id}: supernet-inherited {acc:.2f}%")
    recipe = scratch_recipe(cfg, epochs, args.device)
    scratch_dir = Path(args.scratch_dir) if args.scratch_dir else work
    scratch_dir.mkdir(parents=True, exist_ok=True)
    if args.phase in ("all", "scratch"):
        for i, arch in enumerate(archs):
            f = scratch_file(scratch_dir, arch.id, recipe)
            if f.exists() or i % of != k:
                continue
            row = train_from_scratch(net.space, arch, cfg, epochs, int(cfg["seed"]), log=say, device=args.device)
            row.update(scratch_epochs=epochs, recipe=recipe)
            atomic_write_text(f, json.dumps(row))
            say(f"{arch.id}: from scratch {row['scratch_acc']:.2f}% in {row['scratch_time_s']:.0f}s")
    rows = []
    for a in archs:
        fs, fc = work / f"{a.id}.supernet.json", scratch_file(scratch_dir, a.id, recipe)
        if fs.exists() and fc.exists():
            scratch = {k2: v for k2, v in json.loads(fc.read_text()).items() if k2 != "recipe"}
            rows.append(
                {
                    "arch_id": a.id,
                    "describe": net.space.describe(a),
                    "params": net.num_parameters(a),
                    **json.loads(fs.read_text()),
                    **scratch,
                }
            )
    out: dict[str, Any] = {
        "checkpoint": str(args.checkpoint),
        "n": args.n,
        "done": len(rows),
        "scratch_epochs": epochs,
        "supernet_config": {
            k2: cfg[k2]
            for k2 in ("epochs", "qat_epochs", "train_limit", "batch_size", "lr", "num_random", "space_kwargs")
        },
        "scratch_recipe": recipe,
        "rows": rows,
    }
    if len(rows) >= 3:
        a = [r["supernet_fp32"] for r in rows]
        b = [r["scratch_acc"] for r in rows]
        out["spearman_rho"] = round(float(spearmanr(a, b).statistic), 4)
        out["kendall_tau"] = round(float(kendalltau(a, b).statistic), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput", help="supernet step vs largest subnet alone (images/s)")
    t.add_argument("--space", default="mobilenet")
    t.add_argument(
        "--space-args", default='{"stages": 3, "depths": [1, 2, 3], "kernels": [3, 5], "expands": [2.0, 3.0, 4.0]}'
    )
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--num-random", type=int, default=2)
    t.add_argument("--steps", type=int, default=10)
    t.add_argument("--warmup", type=int, default=3)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--device", default="cpu")
    t.add_argument("--qat", action="store_true", help="measure the quantized-for-all stage")
    t.add_argument("--work", default="/tmp/hwnas_bench_supernet")
    t.add_argument("--out")
    a = sub.add_parser("accept", help="INT8 / FP32 accuracy of largest, smallest and random subnets")
    a.add_argument("--checkpoint", required=True)
    a.add_argument("--random", type=int, default=20)
    a.add_argument("--seed", type=int, default=2024)
    a.add_argument("--test-limit", type=int)
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--out")
    r = sub.add_parser("rank", help="Spearman rho: supernet-inherited vs trained-from-scratch accuracy")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--n", type=int, default=10)
    r.add_argument("--epochs", type=int, help="scratch epochs (default: the supernet's FP32 + QAT epochs)")
    r.add_argument("--seed", type=int, default=99)
    r.add_argument("--work", required=True, help="folder for per-arch results (resumable)")
    r.add_argument(
        "--scratch-dir",
        help="folder for the from-scratch results (default: --work); results are keyed by "
        "architecture and training recipe, so supernets of one recipe can share it",
    )
    r.add_argument("--shard", default="0/1", help="i/k: this process handles archs i, i+k, ...")
    r.add_argument(
        "--phase",
        choices=("all", "supernet", "scratch"),
        default="all",
        help="supernet: inherited accuracies only; scratch: from-scratch training only",
    )
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--device", default="cpu", help="cpu or cuda: where the scratch training and FP32 evaluation run")
    r.add_argument("--out")
    args = p.parse_args(argv)
    result = {"throughput": throughput, "accept": accept, "rank": rank}[args.cmd](args)
    _emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

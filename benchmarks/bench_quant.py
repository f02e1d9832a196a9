"""INT8 quantization benchmark: FP32 / PTQ / QAT accuracy and latency on Fashion-MNIST networks
from several built-in spaces, our PTQ against onnxruntime's ``quantize_static``, and the INT8
speed-up of a ResNet-style network at 3×224×224.

Every quantized accuracy is measured on the exported INT8 ONNX model in onnxruntime (the artifact
that ships) and on the torch fake-quant model, with the fraction of test predictions on which they
agree. Latency: onnxruntime CPU, 1 intra-op thread, batch 1, by the hw_profiles harness (target
``cpu-ort-fp32``), the models of a comparison timed in rotating passes (``hw_profiles.compare_files``).

    python benchmarks/bench_quant.py                       # full run (tens of minutes on 2 cores)
    python benchmarks/bench_quant.py --quick               # a smoke run (small data, one space)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import quant
from hwnas.datasets import load_dataset
from hwnas.seeding import seed_everything
from quant.ort_baseline import ort_quantize_static
from quant.pipeline import run_pipeline
from quant.training import QAT_CONFIG, TrainConfig


def _log(msg: str) -> None:
    print(msg, flush=True)


def compare_latency(paths: list[Path], passes: int) -> list[float]:
    """Median latencies (ms) of ONNX files on ``cpu-ort-fp32`` (1 thread, batch 1), by the one
    harness, in ``passes`` rotating passes so that a slow spell of a shared machine hits all alike."""
    from hw_profiles import compare_files, create_engine, load_target

    engine = create_engine(load_target("cpu-ort-fp32"))
    try:
        return [c.median_ms for c in compare_files(engine, paths, passes)]
    finally:
        engine.close()


def pick_arch(space, seeds: int, workdir: Path, pick: int | None = None):  # noqa: ANN001, ANN201
    """The fastest (FP32 ORT latency at batch 1) of the first ``seeds`` samples of ``space``, or
    sample ``pick`` when given. The candidates are timed side by side in 5 rotating passes, so that a
    slow spell of a shared machine hits them all alike and the choice repeats from run to run."""
    if pick is not None:
        return pick, space.sample(pick)
    shape = (1, space.in_chans, space.resolution, space.resolution)
    archs = [space.sample(seed) for seed in range(seeds)]
    paths = [
        quant.export_fp32_onnx(space.build(a).eval(), workdir / f"pick_{seed}.onnx", shape)
        for seed, a in enumerate(archs)
    ]
    lat = compare_latency(paths, 5)
    seed = min(range(seeds), key=lambda i: lat[i])
    return seed, archs[seed]


def bench_space(name: str, args: argparse.Namespace, train, test, scheme: quant.QuantScheme, out: Path) -> dict:  # noqa: ANN001
    from spaces import create_space

    space = create_space(name, in_chans=1, num_classes=10, resolution=28)
    work = out / name
    work.mkdir(parents=True, exist_ok=True)
    seed, arch = pick_arch(space, args.arch_samples, work, args.pick)
    seed_everything(args.seed)
    model = space.build(arch)
    params = sum(p.numel() for p in model.parameters())
    _log(
        f"\n== {name}: sample {seed}, {params / 1e6:.2f} M parameters, arch id {arch.id if hasattr(arch, 'id') else ''}"
    )
    tx, ty = train.images[: args.train_limit], train.labels[: args.train_limit]
    fp32_cfg = TrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        weight_decay=5e-4,
        label_smoothing=0.1,
        seed=args.seed,
        bn_recalibration_batches=20,
    )
    qat_cfg = TrainConfig(
        epochs=args.qat_epochs,
        lr=args.qat_lr,
        batch_size=args.batch_size,
        weight_decay=0.0,
        seed=args.seed + 1,
        freeze_bn_after=0.0,
        distill=args.distill,
    )
    res = run_pipeline(
        model,
        tx,
        ty,
        test.images,
        test.labels,
        workdir=work,
        scheme=scheme,
        fp32_config=fp32_cfg,
        qat_config=qat_cfg,
        calib_samples=args.calib,
        bias_correction=not args.no_bias_correction,
        latency=lambda paths: compare_latency(list(paths), args.latency_passes),
        seed=args.seed,
        log=_log,
    )
    _log(res.table(f"{name} (sample {seed}, scheme {scheme.name})"))
    fp = res["fp32"]
    row = {"space": name, "sample": seed, "params": params, "seconds": res.seconds}
    for k, v in res.variants.items():
        row[k] = {
            "ort_acc": v.ort_acc,
            "torch_acc": v.torch_acc,
            "agreement": v.agreement,
            "latency_ms": v.latency_ms,
            "drop_vs_fp32": fp.ort_acc - v.ort_acc,
            "integer": v.integer_summary,
        }
    return row


def bench_resnet224(args: argparse.Namespace, scheme: quant.QuantScheme, out: Path) -> list[dict]:
    """INT8 vs FP32 latency of ResNet-style networks at 3×224×224 (random weights, calibrated)."""
    import timm

    rows = []
    shape = (1, 3, 224, 224)
    calib = torch.randn(8, 3, 224, 224)
    models = {"timm resnet18": timm.create_model("resnet18", num_classes=1000)}
    try:
        from spaces import create_space

        space = create_space("resnet", in_chans=3, num_classes=1000, resolution=224)
        models["spaces resnet (sample 0)"] = space.build(space.sample(0))
    except Exception as exc:  # noqa: BLE001 - the space is optional here
        _log(f"(spaces resnet at 224 unavailable: {exc})")
    for name, model in models.items():
        model.eval()
        work = out / "resnet224" / name.split()[0]
        fp32 = quant.export_fp32_onnx(model, work / "fp32.onnx", shape)
        q = quant.calibrate(quant.prepare(model, scheme), calib, batch_size=4)
        int8 = quant.export_onnx(q, work / "int8.onnx", shape)
        ort_int8 = ort_quantize_static(fp32, work / "ort_int8.onnx", calib.numpy(), batch_size=4)
        rep = quant.integer_op_report(int8)
        lat = compare_latency([fp32, int8, ort_int8], args.latency_passes_224)
        row = {
            "model": name,
            "fp32_ms": lat[0],
            "int8_ms": lat[1],
            "ort_int8_ms": lat[2],
            "speedup": lat[0] / lat[1],
            "ort_speedup": lat[0] / lat[2],
            "integer": rep.summary(),
        }
        rows.append(row)
        _log(
            f"{name:<26} FP32 {row['fp32_ms']:7.2f} ms | ours INT8 {row['int8_ms']:7.2f} ms ({row['speedup']:.2f}x) | "
            f"ORT quantize_static {row['ort_int8_ms']:7.2f} ms ({row['ort_speedup']:.2f}x) | {rep.summary()}"
        )
    return rows


VARIANTS = ("fp32", "ptq", "ort_ptq", "ort_ptq_rr", "qat")


def remeasure(folder: Path, passes: int) -> int:
    """Latency of each space's exported variants, timed side by side in rotating passes (so that no
    model always follows the same one); prints the medians, and ours (PTQ) against onnxruntime's
    quantize_static."""
    spaces = sorted(d for d in folder.iterdir() if (d / "fp32.onnx").exists()) if folder.is_dir() else []
    if not spaces:
        _log(f"error: {folder}: no space folders with fp32.onnx (run bench_quant.py --out {folder} first)")
        return 2
    _log(f"latency at 1×1×28×28, ORT 1 thread, median of {passes} rotating passes of the hw_profiles harness (ms)")
    for d in spaces:
        paths = {v: p for v in VARIANTS if (p := d / (f"{v}.onnx" if v == "fp32" else f"{v}.int8.onnx")).exists()}
        names = list(paths)
        mean = dict(zip(names, compare_latency([paths[v] for v in names], passes)))
        _log(f"{d.name}: " + " | ".join(f"{v} {ms:.3f}" for v, ms in mean.items()))
        for base in ("ort_ptq", "ort_ptq_rr"):
            if "ptq" in mean and base in mean:
                _log(f"  ours PTQ / {base}: {mean['ptq'] / mean[base]:.3f} (below 1: ours faster)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spaces", default="mobilenet,resnet,spaceevo")
    p.add_argument("--arch-samples", type=int, default=4, help="samples per space; the fastest in FP32 is used")
    p.add_argument(
        "--pick",
        type=int,
        default=None,
        metavar="N",
        help="use sample N of each space instead of the fastest (to repeat an earlier run's network)",
    )
    p.add_argument("--train-limit", type=int, default=20000, help="training images used (of 60k)")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--qat-epochs", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--qat-lr", type=float, default=0.002)
    p.add_argument(
        "--distill",
        type=float,
        default=QAT_CONFIG.distill,
        help="QAT loss weight of distilling the FP32 model (0: labels only)",
    )
    p.add_argument(
        "--no-bias-correction",
        action="store_true",
        help="PTQ without the empirical bias correction (quant.correct_bias)",
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--calib", type=int, default=2048)
    p.add_argument("--scheme", default="host", help="ort_cpu, ort_cpu_avx2, or host (picked for this CPU)")
    p.add_argument("--observer", default=None, help="activation observer override: minmax, percentile, mse")
    p.add_argument(
        "--latency-passes",
        type=int,
        default=5,
        help="rotating passes of the harness over the variants at 1x1x28x28 (a shared CPU needs several)",
    )
    p.add_argument("--latency-passes-224", type=int, default=3)
    p.add_argument(
        "--remeasure",
        metavar="DIR",
        default=None,
        help="only measure again the latency of the models a previous run left in DIR",
    )
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-224", action="store_true")
    p.add_argument("--out", default="runs/bench_quant")
    p.add_argument("--quick", action="store_true", help="smoke run: 4k images, 1 epoch, one space")
    args = p.parse_args(argv)
    if args.remeasure:
        return remeasure(Path(args.remeasure), args.latency_passes)
    if args.quick:
        args.spaces, args.train_limit, args.epochs, args.qat_epochs = "spaceevo", 4000, 1.0, 0.25
        args.arch_samples, args.latency_passes, args.latency_passes_224 = 1, 1, 1
    torch.set_num_threads(args.torch_threads)
    scheme = quant.host_ort_scheme() if args.scheme == "host" else quant.get_scheme(args.scheme)
    if args.observer:
        scheme = scheme.replace(activation_observer=args.observer)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from quant.scheme import cpu_flags

    simd = sorted(f for f in cpu_flags() if f in {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"})
    _log(
        f"CPU SIMD: {', '.join(simd) or 'unknown'}; onnxruntime {__import__('onnxruntime').__version__}, torch {torch.__version__}"
    )
    _log(
        f"scheme {scheme.name}: weights ±{scheme.weight_qmax} per channel, activations {scheme.activation_dtype} "
        f"({'symmetric' if scheme.activation_symmetric else 'asymmetric'}), observer {scheme.activation_observer}, "
        f"PTQ bias correction {'off' if args.no_bias_correction else 'on'}, QAT {scheme.qat_method}; "
        f"torch threads {args.torch_threads}, ORT 1 thread"
    )
    t0 = time.perf_counter()
    train, test = load_dataset("fashion_mnist", "train"), load_dataset("fashion_mnist", "test")
    results: dict = {"scheme": scheme.name, "args": vars(args), "spaces": [], "resnet224": []}
    for name in [s for s in args.spaces.split(",") if s]:
        results["spaces"].append(bench_space(name, args, train, test, scheme, out))
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    if not args.skip_224:
        _log("\n== ResNet-style networks at 3×224×224 (ORT, 1 thread, batch 1)")
        results["resnet224"] = bench_resnet224(args, scheme, out)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))

    _log("\n== Summary (ORT INT8 accuracy on the 10k Fashion-MNIST test set; latency at 1×1×28×28)")
    nan = {"ort_acc": float("nan"), "latency_ms": float("nan"), "drop_vs_fp32": float("nan"), "agreement": float("nan")}
    _log(
        f"{'space':<10} {'FP32':>6} {'PTQ':>6} {'QAT':>6} {'ORT':>6} {'ORT-rr':>6} | {'PTQ drop':>8} {'QAT drop':>8} | "
        f"{'agree PTQ':>9} {'agree QAT':>9} | {'FP32 ms':>7} {'PTQ ms':>7} {'QAT ms':>7} {'ORT ms':>7} {'ORT-rr':>7}"
    )
    for r in results["spaces"]:
        f, pq = r["fp32"], r["ptq"]
        qa, ob, orr = r.get("qat", nan), r.get("ort_ptq", nan), r.get("ort_ptq_rr", nan)
        _log(
            f"{r['space']:<10} {f['ort_acc']:6.2f} {pq['ort_acc']:6.2f} {qa['ort_acc']:6.2f} {ob['ort_acc']:6.2f} "
            f"{orr['ort_acc']:6.2f} | {pq['drop_vs_fp32']:8.2f} {qa['drop_vs_fp32']:8.2f} | "
            f"{pq['agreement']:8.2f}% {qa['agreement']:8.2f}% | {f['latency_ms']:7.3f} {pq['latency_ms']:7.3f} "
            f"{qa['latency_ms']:7.3f} {ob['latency_ms']:7.3f} {orr['latency_ms']:7.3f}"
        )
    _log(
        "ORT = onnxruntime quantize_static (QDQ, per-channel, MinMax, same FP32 model and calibration images); "
        "ORT-rr = the same with reduce_range (7-bit weights)."
    )
    for r in results["resnet224"]:
        _log(f"3×224×224 {r['model']}: INT8 speed-up {r['speedup']:.2f}x (ORT quantize_static {r['ort_speedup']:.2f}x)")
    _log(f"total {time.perf_counter() - t0:.0f} s; results in {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

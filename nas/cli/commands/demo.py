"""``nas demo``: run the pipeline end to end on this CPU with offline data."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on this CPU (offline)")
    p.add_argument("--space", default="mobilenet", help="built-in conv space to sample (default mobilenet)")
    p.add_argument("--n", type=int, default=4, help="number of architectures (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, metavar="DIR", help="keep every artifact here (default: a temp folder)")
    p.add_argument("--quick", action="store_true",
                   help="only the first stage (sample, build, export, run); skips profiling, search and INT8")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from hwnas.errors import ConfigError
    from nas.demo import demo_int8, demo_latency_table, demo_search, demo_supernet, run_demo

    if args.n < 1:
        raise ConfigError(f"--n must be at least 1, got {args.n}")
    workdir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="hwnas-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    console = Console()

    console.rule("1. search space → torch → ONNX → onnxruntime")
    console.print(f"{args.n} architectures from '{args.space}' (demo size) at 1×28×28 (Fashion-MNIST shape), CPU, 1 thread")
    rows = run_demo(args.space, n=args.n, seed=args.seed, out_dir=str(workdir / "onnx"))
    table = Table(title="sampled architectures")
    for col in ("arch id", "params", "ORT vs torch max |Δ|", "ORT FP32 median ms"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.arch_id, f"{r.params:,}", f"{r.max_abs_diff:.1e}", f"{r.ort_ms:.3f}")
    console.print(table)
    for r in rows:
        console.print(f"[cyan]{r.arch_id}[/cyan] {r.summary}", soft_wrap=True)
    worst = max(r.max_abs_diff for r in rows)
    if worst >= 1e-4:
        console.print(f"[red]export mismatch: max |Δ| {worst:.1e}[/red]")
        return 1
    console.print(f"all {len(rows)} exports match torch (max |Δ| {worst:.1e})")
    if args.quick:
        console.print(f"artifacts: {workdir}")
        return 0

    console.rule("2. INT8 latency lookup table on this CPU (cpu-ort-int8)")
    space, archs, predicted, check = demo_latency_table(args.space, args.n, args.seed, str(workdir))
    lat = Table(title="INT8 latency predicted from the block LUT (+ learned correction)")
    for col in ("arch id", "FP32 measured ms", "INT8 predicted ms"):
        lat.add_column(col)
    for r, ms in zip(rows, predicted):
        lat.add_row(r.arch_id, f"{r.ort_ms:.3f}", f"{ms:.3f}")
    console.print(lat)
    if check:
        chk = Table(title=f"prediction check: {len(check['networks'])} other networks measured end to end in INT8")
        for col in ("arch id", "predicted ms", "measured ms", "error"):
            chk.add_column(col)
        for net in check["networks"]:
            err = 100.0 * (net["predicted_ms"] - net["measured_ms"]) / net["measured_ms"]
            chk.add_row(net["arch_id"], f"{net['predicted_ms']:.3f}", f"{net['measured_ms']:.3f}", f"{err:+.1f} %")
        console.print(chk)
        console.print(f"within ±10 %: {check['within_10pct']:.0%} of {check['n']} (correction: {check['correction']}); "
                      "`nas lut validate` runs this check at scale")

    console.rule("3. search, measured honestly (NAS-Bench-201 table, CIFAR-10 accuracy)")
    bench = demo_search()
    st = Table(title=f"best accuracy after {bench['budget']} queries, {bench['seeds']} seeds")
    for col in ("searcher", "mean ± std", "RI vs random %"):
        st.add_column(col)
    for r in bench["results"]:
        st.add_row(r["searcher"], f"{r['mean']:.2f} ± {r['std']:.2f}", f"{r['ri']:+.3f}")
    console.print(st)

    console.rule("4. INT8 deployment of the fastest predicted arch (Fashion-MNIST)")
    fastest = min(range(len(archs)), key=lambda i: predicted[i])
    console.print(f"arch {archs[fastest].id}: train 2 epochs on 12k images, PTQ + QAT, export QDQ with the "
                  "model's own scales, run in onnxruntime")
    result = demo_int8(space, archs[fastest], str(workdir / "int8"), seed=args.seed, log=console.print)
    console.print(result.table(), soft_wrap=True, highlight=False)

    console.rule("5. quantized-for-all supernet: train once, deploy any subnet in INT8 (Fashion-MNIST)")
    console.print("a small mobilenet supernet: 2 sandwich epochs + 1 QAT epoch on 6k images, then subnets "
                  "extracted with the supernet's weights and learned scales, no retraining")
    sn = demo_supernet(str(workdir), seed=args.seed, log=lambda s: console.print(s, markup=False, highlight=False))
    tab = Table(title=f"subnets of one supernet ({sn['train_s']:.0f} s of training, {sn['scheme']}, "
                      f"{sn['test_images']} test images)")
    for col in ("subnet", "arch id", "params", "FP32 (torch) %", "INT8 (onnxruntime) %", "Δ"):
        tab.add_column(col)
    for r in sn["rows"]:
        tab.add_row(r["subnet"], r["arch_id"], f"{r['params']:,}", f"{r['fp32_acc']:.2f}", f"{r['int8_acc']:.2f}",
                    f"{r['int8_acc'] - r['fp32_acc']:+.2f}")
    console.print(tab)
    console.print("`nas train-supernet` and `nas eval-subnet` run this at full scale")
    console.print(f"artifacts: {workdir}")
    return 0

"""``nas demo``: run the pipeline end to end on this CPU with offline data."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on this CPU (offline)")
    p.add_argument("--space", default="mobilenet", help="built-in space to sample (default mobilenet)")
    p.add_argument("--n", type=int, default=4, help="number of architectures (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, metavar="DIR", help="keep the exported ONNX models and arch JSON here")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from hwnas.errors import ConfigError
    from nas.demo import run_demo

    if args.n < 1:
        raise ConfigError(f"--n must be at least 1, got {args.n}")
    console = Console()
    console.print(f"[bold]hwnas demo[/bold]: {args.n} architectures from '{args.space}' at 1×28×28 "
                  "(Fashion-MNIST shape) → torch → ONNX → onnxruntime (CPU, 1 thread)")
    rows = run_demo(args.space, n=args.n, seed=args.seed, out_dir=args.out)
    table = Table(title="sampled architectures")
    for col in ("arch id", "params", "ORT vs torch max |Δ|", "ORT FP32 median ms"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.arch_id, f"{r.params:,}", f"{r.max_abs_diff:.1e}", f"{r.ort_ms:.3f}")
    console.print(table)
    for r in rows:
        console.print(f"[cyan]{r.arch_id}[/cyan] {r.summary}", soft_wrap=True)
    worst = max(r.max_abs_diff for r in rows)
    console.print(f"all {len(rows)} exports match torch (max |Δ| {worst:.1e})" if worst < 1e-4
                  else f"[red]export mismatch: max |Δ| {worst:.1e}[/red]")
    return 0 if worst < 1e-4 else 1

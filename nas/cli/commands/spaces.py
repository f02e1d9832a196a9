"""``nas spaces list`` and ``nas spaces show``."""

from __future__ import annotations

import argparse
import json
from typing import Any, TypedDict

from nas.cli._common import add_space_arguments, print_json, space_from_args
from nas.cli._types import int_range


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spaces", help="list and inspect search spaces")
    ssub = p.add_subparsers(dest="spaces_command", metavar="ACTION")
    ssub.required = True

    lp = ssub.add_parser("list", help="list the registered spaces")
    lp.add_argument("--json", action="store_true", help="print one JSON object")
    lp.set_defaults(func=_list)

    sp = ssub.add_parser("show", help="decisions, size and sample archs of a space")
    add_space_arguments(sp, positional=True)
    sp.add_argument(
        "--sample", type=int_range(0, 10_000), default=3, metavar="N", help="number of sample archs (default 3)"
    )
    sp.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    sp.add_argument("--json", action="store_true", help="print one JSON object")
    sp.add_argument("--yaml", action="store_true", help="print the space's declarative YAML form")
    sp.set_defaults(func=_show)


class _SpaceRow(TypedDict):
    name: str
    size: int
    decisions: int
    input: list[int]
    description: str


def _list(args: argparse.Namespace) -> int:
    from spaces import create_space, list_spaces

    rows: list[_SpaceRow] = []
    for name in list_spaces():
        space = create_space(name)
        rows.append(
            {
                "name": name,
                "size": space.size(),
                "decisions": len(space.decisions()),
                "input": list(space.input_shape),
                "description": space.description,
            }
        )
    if args.json:
        print_json({"spaces": [{**r, "size": str(r["size"])} for r in rows]})
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="search spaces")
    for col in ("name", "size", "decisions", "default input", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            f"{r['size']:.3g}" if r["size"] > 10**6 else str(r["size"]),
            str(r["decisions"]),
            "×".join(map(str, r["input"])),
            r["description"],
        )
    Console().print(table)
    return 0


def _size(space: Any) -> tuple[int | None, str]:
    """The exact size and its text (in full up to 100 digits, else in scientific notation: Python cannot
    print an int of more than 4,300 digits, which a deep ``Repeat`` reaches); a constrained space
    too large to count gives ``(None, "at most ...")``."""
    from hwnas.errors import HwnasError
    from spaces._space import format_count

    try:
        size = space.size()
    except HwnasError:  # constraints over too many archs to count them
        return None, f"at most {format_count(space.size(ignore_constraints=True))} (constrained, too many to count)"
    return size, str(size) if size < 10**100 else format_count(size)


#: decisions listed in the table of ``spaces show`` (a space may have up to MAX_EXTENT of them)
_MAX_ROWS = 500


def _show(args: argparse.Namespace) -> int:
    space = space_from_args(args)
    if args.yaml:
        print(space.to_yaml(), end="")
        return 0
    samples = [space.sample(args.seed + i) for i in range(args.sample)]
    size, size_text = _size(space)
    if args.json:
        print_json(
            {
                "name": space.name,
                "size": size if size is not None and size < 2**53 else size_text,
                "input": list(space.input_shape),
                "num_classes": space.num_classes,
                "decisions": [
                    {"path": d.path, "kind": d.kind, "options": list(d.options), "default": d.default}
                    for d in space.decisions()
                ],
                "samples": [json.loads(a.to_json()) for a in samples],
                "sample_ids": [a.id for a in samples],
            }
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{space.name}[/bold]: {space.description}")
    console.print(
        f"input {'×'.join(map(str, space.input_shape))}, {space.num_classes} classes, "
        f"size {size_text} ({len(space.decisions())} decisions)"
    )
    table = Table()
    table.add_column("decision")
    table.add_column("kind")
    table.add_column("options")
    decisions = space.decisions()
    for d in decisions[:_MAX_ROWS]:
        table.add_row(d.path, d.kind, ", ".join(map(str, d.options)))
    console.print(table)
    if len(decisions) > _MAX_ROWS:
        console.print(f"... and {len(decisions) - _MAX_ROWS:,} more decisions (all of them: --json or --yaml)")
    for a in samples:
        console.print(f"[cyan]{a.id}[/cyan] {space.describe(a)}", soft_wrap=True)
    return 0

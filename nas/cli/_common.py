"""Helpers shared by CLI commands: space arguments, JSON output, arch files."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError

__all__ = ["add_space_arguments", "load_arch_file", "print_json", "space_from_args"]


def add_space_arguments(parser: argparse.ArgumentParser, *, required: bool = True, positional: bool = False) -> None:
    """``--space NAME|FILE.yaml`` (or positional NAME) plus the input-shape options."""
    if positional:
        parser.add_argument("space", metavar="SPACE", help="registered space name or a space YAML file")
    else:
        parser.add_argument("--space", required=required, metavar="SPACE",
                            help="registered space name (see `nas spaces list`) or a space YAML file")
    parser.add_argument("--in-chans", type=int, default=None, help="input channels (default: the space's)")
    parser.add_argument("--num-classes", type=int, default=None, help="number of classes (default: the space's)")
    parser.add_argument("--resolution", type=int, default=None, help="input resolution in pixels (default: the space's)")


def space_from_args(args: argparse.Namespace, **overrides: Any):
    """Create the space named by ``args.space`` with the shape options that were given."""
    from spaces import create_space

    kwargs = {k: v for k, v in (("in_chans", args.in_chans), ("num_classes", args.num_classes),
                                 ("resolution", args.resolution)) if v is not None}
    kwargs.update(overrides)
    for key, value in kwargs.items():
        if isinstance(value, int) and value < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be a positive integer, got {value}")
    name = args.space
    if name.endswith((".yaml", ".yml")) and kwargs:
        raise ConfigError(f"{name}: shape options do not apply to a YAML space (it states its own input)")
    return create_space(name, **kwargs)


def load_arch_file(path: str):
    """Read an arch from a JSON file (a flat object of decision values)."""
    from hwnas.io import read_json_file
    from spaces import Arch

    data = read_json_file(path)
    if isinstance(data, dict) and "arch" in data and isinstance(data["arch"], dict):
        data = data["arch"]
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: an arch file holds a JSON object of decision values")
    return Arch(data)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, sort_keys=False, default=str)
    sys.stdout.write("\n")


def ensure_parent(path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p

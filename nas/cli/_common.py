"""Helpers shared by CLI commands: space arguments, JSON output, arch files.

One space description across commands: every command that takes a space accepts a registered
name with ``--space-args JSON`` (and the input-shape options where the data does not fix them),
or a space YAML file (which states its own input). Commands that work on an artifact made for a
space (a supernet checkpoint, a LUT, an exported model) use that artifact's space when
``--space`` is not given, and refuse a different one (:func:`resolve_space_for`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError, first_line

__all__ = [
    "SHAPE_OPTIONS",
    "add_space_arguments",
    "check_resolution",
    "check_space_choice",
    "is_space_file",
    "load_arch_file",
    "parse_space_args",
    "print_json",
    "resolve_space_for",
    "space_for_lut",
    "space_from_args",
]

#: the factory arguments the shape options set (``--in-chans`` → ``in_chans`` ...)
SHAPE_OPTIONS = ("in_chans", "num_classes", "resolution")


def add_space_arguments(
    parser: argparse.ArgumentParser,
    *,
    required: bool = True,
    positional: bool = False,
    shape: bool = True,
    help: str | None = None,
) -> None:
    """``--space NAME|FILE.yaml`` (or positional SPACE), ``--space-args JSON`` and, with ``shape``,
    the input-shape options ``--in-chans`` / ``--num-classes`` / ``--resolution``."""
    text = help or "registered space name (see `nas spaces list`) or a space YAML file"
    if positional:
        parser.add_argument("space", metavar="SPACE", help=text)
    else:
        parser.add_argument("--space", required=required, metavar="SPACE", help=text)
    parser.add_argument(
        "--space-args",
        metavar="JSON",
        default=None,
        help='keyword arguments of a registered space, e.g. \'{"stages": 4, "kernels": [3, 5]}\' '
        "(not with a YAML file)",
    )
    if shape:
        from nas.cli._types import int_range

        parser.add_argument(
            "--in-chans", type=int_range(1, 4096), default=None, help="input channels (default: the space's)"
        )
        parser.add_argument(
            "--num-classes", type=int_range(1, 1_000_000), default=None, help="number of classes (default: the space's)"
        )
        parser.add_argument(
            "--resolution",
            type=int_range(1, 8192),
            default=None,
            help="input resolution in pixels (default: the space's)",
        )


def is_space_file(name: str) -> bool:
    """Whether ``--space`` names a YAML file rather than a registered space."""
    return name.endswith((".yaml", ".yml"))


def parse_space_args(text: str | None, option: str = "--space-args") -> dict[str, Any]:
    """The JSON object of ``--space-args`` (``{}`` when not given); one-line errors otherwise."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{option} is not valid JSON: {exc.msg} at column {exc.colno} of {text!r}") from None
    if not isinstance(value, dict):
        raise ConfigError(
            f"{option} must be a JSON object of space arguments, e.g. '{{\"stages\": 4}}', "
            f"got {type(value).__name__} {text!r}"
        )
    return value


def _given_kwargs(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(space_args, shape options given)`` of the parsed command line."""
    kwargs = parse_space_args(getattr(args, "space_args", None))
    shape = {k: getattr(args, k, None) for k in SHAPE_OPTIONS}
    shape = {k: v for k, v in shape.items() if v is not None}
    for key, value in shape.items():
        if isinstance(value, int) and value < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be a positive integer, got {value}")
        if key in kwargs and kwargs[key] != value:
            raise ConfigError(f"--{key.replace('_', '-')} {value} and --space-args {key}={kwargs[key]!r} disagree")
    return kwargs, shape


def _check_factory_args(name: str, kwargs: Mapping[str, Any]) -> None:
    import inspect

    from spaces import get_space_factory

    sig = inspect.signature(get_space_factory(name))
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return
    unknown = sorted(set(kwargs) - set(sig.parameters))
    if unknown:
        raise ConfigError(
            f"--space-args: space {name!r} takes no argument {unknown[0]!r} (arguments: {', '.join(sig.parameters)})"
        )


def check_space_choice(name: str, kwargs: Mapping[str, Any] | None) -> None:
    """Fail early, in one line, on a space choice that cannot work whatever the data: an unknown
    name, ``--space-args`` (``kwargs``; ``None`` when not given) with a YAML file, a YAML file that
    does not load, an unknown argument."""
    if is_space_file(name):
        if kwargs is not None:
            raise ConfigError(
                f"{name}: --space-args does not apply to a YAML space (it states its own decisions, input and classes)"
            )
        from spaces import load_space

        load_space(name)
        return
    _check_factory_args(name, kwargs or {})


def space_from_args(args: argparse.Namespace, *, defaults: Any = None, **overrides: Any):
    """The space ``args.space`` names: a YAML file, or a registered space created with
    ``--space-args`` and the shape options given (``overrides`` win over both).

    ``defaults``: a space whose input shape and classes a registered space takes where the
    command line does not set them (the checkpoint's or LUT's, so that ``--space mobilenet
    --space-args ...`` names the configuration that artifact was made for)."""
    from spaces import create_space

    name = args.space
    kwargs, shape = _given_kwargs(args)
    if is_space_file(name):
        given = [f"--{k.replace('_', '-')}" for k in shape]
        given += ["--space-args"] if getattr(args, "space_args", None) is not None else []
        given += [k for k in overrides]
        if given:
            verb = "does" if len(given) == 1 else "do"
            raise ConfigError(
                f"{name}: {', '.join(given)} {verb} not apply to a YAML space (it states its own "
                f"decisions, input and classes)"
            )
        return create_space(name)
    kwargs = {**kwargs, **shape, **overrides}
    _check_factory_args(name, kwargs)
    if defaults is not None:
        import inspect

        from spaces import get_space_factory

        params = inspect.signature(get_space_factory(name)).parameters
        for key in SHAPE_OPTIONS:
            if key not in kwargs and key in params:
                kwargs[key] = getattr(defaults, key)
    try:
        space = create_space(name, **kwargs)
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        first = first_line(exc)
        raise ConfigError(f"--space-args: space {name!r} rejects {json.dumps(kwargs, default=str)}: {first}") from None
    if "resolution" in shape or "resolution" in kwargs and "resolution" not in overrides:
        check_resolution(space, "--resolution" if "resolution" in shape else "--space-args resolution")
    return space


def check_resolution(space: Any, option: str = "--resolution") -> None:
    """Refuse an input resolution the space cannot take (:func:`spaces.resolution.check_resolution`:
    one of its blocks would downsample an input smaller than its stride)."""
    from spaces.resolution import check_resolution as check

    check(space, option)


def resolve_space_for(args: argparse.Namespace, reference: Any, what: str):
    """The space of a command working on an artifact made for ``reference`` (a checkpoint's,
    a LUT's or an exported model's space; ``what`` names the artifact in messages).

    Without ``--space`` it is ``reference`` itself; with ``--space`` (and ``--space-args`` / shape
    options, the shape defaulting to the reference's) the given space must be the same space
    (same :func:`spaces.space_hash`), else :class:`spaces.identity.SpaceMismatchError`, one line
    naming both hashes."""
    from spaces.identity import check_same_space

    if getattr(args, "space", None) is None:
        kwargs, shape = _given_kwargs(args)
        if kwargs or shape:
            raise ConfigError(
                f"--space-args and the shape options need --space (without it, {what}'s own space is used)"
            )
        return reference
    given = space_from_args(args, defaults=reference)
    check_same_space(reference, given, what=what, given_as=f"--space {args.space}")
    return reference


def space_for_lut(args: argparse.Namespace, lut: str | Path):
    """The space of a command working on a LUT: ``--space`` as given (the LUT's own configuration
    when only a registered name is given and the LUT recorded exactly one space of that name),
    or, without ``--space``, the one space the LUT recorded. The predictor then checks that the
    LUT was made for it (:class:`latency_lut.LatencyPredictor`)."""
    from latency_lut.db import open_lut
    from latency_lut.manifest import space_from_record

    with open_lut(lut, "r") as db:
        records = db.spaces()
    name = getattr(args, "space", None)
    if name is None:
        kwargs, shape = _given_kwargs(args)
        if kwargs or shape:
            raise ConfigError("--space-args and the shape options need --space")
        if len(records) == 1:
            return space_from_record(records[0], f"{lut}")
        if not records:
            raise ConfigError(f"{lut}: the LUT records no space; give --space")
        names = ", ".join(f"{r.get('name')} ({_record_hash(r)})" for r in records[:6])
        raise ConfigError(f"{lut}: the LUT records {len(records)} spaces ({names}); choose one with --space")
    kwargs, shape = _given_kwargs(args)
    if is_space_file(name) or kwargs or shape:
        return space_from_args(args)
    same_name = [r for r in records if r.get("name") == name]
    if len(same_name) == 1:
        return space_from_record(same_name[0], f"{lut}")
    if len(same_name) > 1:
        shapes = ", ".join(
            "x".join(map(str, r.get("input_shape", []))) + f" ({r.get('num_classes')} classes, {_record_hash(r)})"
            for r in same_name[:6]
        )
        raise ConfigError(
            f"{lut}: records several configurations of space {name!r} ({shapes}); "
            f"choose one with --space-args or the shape options, or give its YAML file"
        )
    return space_from_args(args)


def _record_hash(record: Mapping[str, Any]) -> str:
    return f"hash {record.get('hash') or 'unrecorded'}"


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

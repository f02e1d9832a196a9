"""The experiment configuration of ``nas run``: schema, defaults, validation, commented YAML.

A config is a YAML mapping of sections (``space``, ``data``, ``target``, ``lut``, ``evolve``,
``supernet``, ``search``, ``export``, ``report``) holding typed keys. :func:`load_config` fills every key
the file leaves out with its default and checks each value, so that a mistake is reported
before any work, in one line naming the key (``search.budget: expected an integer >= 1, got
'ten'``; ``unknown key search.budgt (did you mean budget?)``). :func:`default_config_text` is
the complete default configuration with a comment per key (``nas run --print-config``).

Latency budgets are milliseconds (``0.2``) or a share of the way from the space's fastest arch
to its largest subnet as the target's LUT predicts them (``"50%"``), so that one config means the
same thing on every host. With ``evolve.enabled`` the ``space`` section names the SpaceEvo
*hyper-space*, the ``evolve`` stage evolves a space out of it, and every later stage uses the
evolved space; ``"P%"`` budgets are then shares of the hyper-space's range, so that the evolution
and the searches work under the same milliseconds.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError, HwnasError

__all__ = [
    "SCHEMA",
    "STAGES",
    "Budget",
    "RunConfigError",
    "config_hash",
    "default_config",
    "default_config_text",
    "load_config",
    "parse_budget",
    "validate_config",
]

#: the pipeline's stages, in order
STAGES: tuple[str, ...] = ("lut", "evolve", "supernet", "search", "export", "report")


class RunConfigError(ConfigError):
    """A ``nas run`` configuration is malformed (one line naming the key)."""


# ------------------------------------------------------------------------------------------------
# value checkers: each returns the (normalised) value or raises ValueError(reason)
# ------------------------------------------------------------------------------------------------


def _int(minimum: int | None = None, optional: bool = False) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or (minimum is not None and v < minimum):
            raise ValueError(
                f"expected an integer{f' >= {minimum}' if minimum is not None else ''}{' or null' if optional else ''}"
            )
        return v

    return check


def _float(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    optional: bool = False,
) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v is None and optional:
            return None
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if ok:
            x = float(v)
            ok = (
                x == x
                and (lo is None or (x > lo if lo_open else x >= lo))
                and (hi is None or (x < hi if hi_open else x <= hi))
            )
        if not ok:
            rng = ""
            if lo is not None and hi is not None:
                rng = f" in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            elif lo is not None:
                rng = f" {'>' if lo_open else '>='} {lo:g}"
            raise ValueError(f"expected a number{rng}{' or null' if optional else ''}")
        return float(v)

    return check


def _epochs() -> Callable[[Any], Any]:
    """A number of epochs >= 0, possibly fractional; whole numbers come back as ints."""
    as_float = _float(0.0)

    def check(v: Any) -> Any:
        x = as_float(v)
        return int(x) if x.is_integer() else x

    return check


def _str(optional: bool = False, choices: tuple[str, ...] | None = None) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v is None and optional:
            return None
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"expected a non-empty string{' or null' if optional else ''}")
        if choices is not None and v not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return v

    return check


def _bool(v: Any) -> Any:
    if not isinstance(v, bool):
        raise ValueError("expected true or false")
    return v


def _mapping(v: Any) -> Any:
    if v is None:
        return {}
    if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
        raise ValueError("expected a mapping of names to values")
    return dict(v)


def _formats(v: Any) -> Any:
    if isinstance(v, str):
        v = [s.strip() for s in v.split(",") if s.strip()]
    if not isinstance(v, list) or not v or not all(isinstance(s, str) for s in v):
        raise ValueError("expected a list of export formats, e.g. [onnx-int8, onnx-fp32]")
    return list(v)


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


@dataclass(frozen=True)
class Budget:
    """One latency budget: ``ms`` milliseconds, or ``fraction`` of the way from the space's fastest
    arch to its largest subnet (resolved against the LUT by :meth:`resolve`)."""

    spec: Any
    ms: float | None = None
    fraction: float | None = None

    def resolve(self, fastest_ms: float, largest_ms: float) -> float:
        """The budget in milliseconds on a target whose fastest / largest archs take these times."""
        if self.ms is not None:
            return self.ms
        assert self.fraction is not None
        return fastest_ms + self.fraction * max(largest_ms - fastest_ms, 0.0)

    def __str__(self) -> str:
        return f"{self.ms:g} ms" if self.ms is not None else f"{self.fraction * 100:g}%"  # type: ignore[operator]


def parse_budget(v: Any) -> Budget:
    """``0.25`` (ms) or ``"40%"`` (of the way from the fastest arch to the largest subnet)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if not float(v) > 0:
            raise ValueError(f"a latency budget in ms must be positive, got {v!r}")
        return Budget(spec=v, ms=float(v))
    if isinstance(v, str):
        m = _PERCENT.match(v)
        if m:
            p = float(m.group(1))
            if not 0.0 <= p <= 100.0:
                raise ValueError(f"a percentage budget must lie in 0%..100%, got {v!r}")
            return Budget(spec=v, fraction=p / 100.0)
        try:
            ms = float(v.strip().removesuffix("ms").strip())
        except ValueError:
            pass
        else:
            return parse_budget(ms)
    raise ValueError(f'expected milliseconds (e.g. 0.2) or a percentage (e.g. "50%"), got {v!r}')


def _budgets(v: Any) -> Any:
    if not isinstance(v, list) or not v:
        raise ValueError('expected a non-empty list of latency budgets, e.g. ["25%", "50%", 0.3]')
    out = []
    for i, item in enumerate(v):
        try:
            parse_budget(item)
        except ValueError as exc:
            raise ValueError(f"item {i}: {exc}") from None
        out.append(item)
    return out


def _optional_budgets(v: Any) -> Any:
    return None if v is None else _budgets(v)


def _fraction_below_one(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
        raise ValueError(f"expected a number in [0, 1), got {v!r}")
    return float(v)


def _baselines(v: Any) -> Any:
    from nas.baselines import BASELINES

    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise ValueError(f"expected a list of baseline names ({', '.join(BASELINES)})")
    for s in v:
        if s not in BASELINES:
            raise ValueError(f"unknown baseline {s!r} (known: {', '.join(BASELINES)})")
    return list(v)


# ------------------------------------------------------------------------------------------------
# the schema: section -> key -> (default, checker, comment)
# ------------------------------------------------------------------------------------------------

_Key = tuple[Any, Callable[[Any], Any], str]

SCHEMA: dict[str, Any] = {
    "name": ("experiment", _str(), "a label for the report"),
    "seed": (0, _int(0), "seeds training, search and export: the same config and seed give the same results"),
    "space": {
        "name": (
            "resnet",
            _str(),
            "a registered space (`nas spaces list`) or a space YAML file (with evolve.enabled: the hyper-space)",
        ),
        "args": (
            {},
            _mapping,
            "keyword arguments of a registered space (in_chans, num_classes and resolution come from the data)",
        ),
    },
    "data": {
        "name": (
            "fashion-mnist",
            _str(),
            "fashion-mnist, digits, an ImageFolder folder (train/ and val/ or test/) "
            "or an .npz file (x_train, y_train, x_test, y_test)",
        ),
        "train_limit": (None, _int(2, optional=True), "train on the first N training images (null: all)"),
        "test_limit": (
            None,
            _int(1, optional=True),
            "verify the exported models on the first N test images (null: all)",
        ),
        "val_fraction": (
            0.1,
            _float(0.0, 1.0, lo_open=True, hi_open=True),
            "share of the training images held out of training: the searchers' validation set "
            "(the test set is only used on the exported models)",
        ),
    },
    "target": {
        "name": (
            "cpu-ort-int8",
            _str(),
            "where the models deploy: a built-in target (`nas profile --list-targets`) or a target YAML file",
        ),
        "fp32": (
            "cpu-ort-fp32",
            _str(optional=True),
            "the FP32 twin of the target, profiled too for the report's INT8 speed-up per op type (null: skip)",
        ),
    },
    "lut": {
        "path": (
            None,
            _str(optional=True),
            "reuse this LUT (measured on the target, e.g. with `nas profile` on the "
            "device) instead of profiling here; it is copied into the run",
        ),
        "networks": (10, _int(0), "whole networks measured to fit the LUT's correction"),
        "retry_passes": (3, _int(0), "passes that measure again blocks measured while the machine was busy"),
    },
    "evolve": {
        "enabled": (
            False,
            _bool,
            "evolve the search space itself before the supernet (SpaceEvo): space.name is then the "
            "hyper-space (spaceevo, or a YAML space with marked stages) and every later stage uses the evolved "
            "space (evolve/space.yaml)",
        ),
        "teacher": (
            None,
            _str(optional=True),
            "the block-wise distillation teacher, required when enabled: a trained QFA supernet "
            "(`nas train-supernet` folder or checkpoint.safetensors) on this data whose largest subnet has "
            "the hyper-space's stages and stage resolutions (a mobilenet or spaceevo supernet)",
        ),
        "budgets": (
            None,
            _optional_budgets,
            'latency budgets the Q-T score sums over, ms or "P%" (null: search.latency_budgets); with evolve '
            'enabled every "P%" budget, here and in search, is a share of the hyper-space\'s latency range',
        ),
        "epochs": (1, _epochs(), "FP32 block-wise distillation epochs of each candidate stage"),
        "qat_epochs": (0.5, _epochs(), "then LSQ+ fake-quantized epochs, so that the NSR reflects INT8 numerics"),
        "batch_size": (64, _int(1), "block-wise distillation batch size"),
        "train_limit": (None, _int(1, optional=True), "distil on the first N of the teacher's training images"),
        "num_random": (2, _int(0), "random sub-stages per distillation step besides the largest and the smallest"),
        "eval_samples": (16, _int(0), "random sub-stages whose NSR is measured per candidate stage"),
        "eval_images": (1024, _int(1), "held-out training images the NSR is measured on"),
        "population": (100, _int(1), "aging-evolution population (the paper: 500)"),
        "sample": (25, _int(1), "tournament sample size (the paper: 125)"),
        "cycles": (1000, _int(0), "evolution cycles, two children each (the paper: 5000)"),
        "samples": (100_000, _int(1), "subnets sampled per candidate space by the Q-T score"),
    },
    "supernet": {
        "checkpoint": (
            None,
            _str(optional=True),
            "reuse this trained supernet (`nas train-supernet` folder or "
            "checkpoint.safetensors) instead of training one; copied into "
            "the run",
        ),
        "epochs": (5, _int(0), "FP32 sandwich-rule epochs"),
        "qat_epochs": (1, _epochs(), "quantized-for-all (LSQ+ QAT) epochs after them (0.25: a quarter of one)"),
        "batch_size": (256, _int(1), "global batch size"),
        "lr": (0.2, _float(0.0, lo_open=True), "peak learning rate of the FP32 stage"),
        "qat_lr": (0.01, _float(0.0, lo_open=True), "initial learning rate of the QAT stage"),
        "weight_decay": (5e-5, _float(0.0), "weight decay of conv / linear weights"),
        "warmup_epochs": (1.0, _float(0.0), "linear warm-up epochs"),
        "schedule": (
            "cosine",
            _str(choices=("cosine", "onecycle")),
            "FP32 learning-rate schedule: warm-up then cosine, or one-cycle to lr (warmup_epochs unused)",
        ),
        "num_random": (2, _int(0), "random subnets per step besides the largest and the smallest"),
        "eval_every": (1, _int(0), "test the largest and smallest subnets every N epochs (0: after the last only)"),
        "threads": (None, _int(1, optional=True), "torch threads (null: every usable core)"),
    },
    "search": {
        "searcher": ("evolution", _str(), "random, evolution, mcts, smbo, bo, tpe, nsga2 or hhnas"),
        "budget": (50, _int(1), "distinct archs evaluated per latency budget"),
        "latency_budgets": (
            ["25%", "50%", "80%"],
            _budgets,
            'INT8 latency budgets: milliseconds (0.2) or "P%": P % of the way from the '
            "space's fastest arch to its largest subnet, as the target's LUT predicts them",
        ),
        "precision": (
            "fakequant",
            _str(choices=("fakequant", "fp32", "int8")),
            "numerics of the validation accuracy: fakequant (INT8 as deployed), fp32 or int8 (onnxruntime)",
        ),
        "val_limit": (None, _int(1, optional=True), "validate on N images of the validation split (null: all)"),
        "latency_margin": (
            0.05,
            _fraction_below_one,
            "guard band: search under budget x (1 - margin), so that "
            "the LUT's prediction error does not push a chosen arch over its budget as measured",
        ),
        "options": ({}, _mapping, "searcher options (as `nas search --set KEY=VALUE`)"),
    },
    "export": {
        "formats": (["onnx-int8", "onnx-fp32"], _formats, "onnx-int8, onnx-fp32, openvino, tensorrt"),
        "finetune_epochs": (0.0, _float(0.0), "QAT fine-tune of each chosen subnet before export"),
        "finetune_lr": (
            None,
            _float(0.0, 100.0, lo_open=True, optional=True),
            "peak learning rate of the fine-tune (null: 0.005)",
        ),
        "finetune_distill": (
            None,
            _float(0.0, 1.0, optional=True),
            "weight of distilling the subnet's FP32 version in the fine-tune (null: 0.5; 0: labels only)",
        ),
    },
    "report": {
        "random_subnets": (30, _int(0), "random subnets evaluated for the report's cloud (0: none)"),
        "baselines": (
            [],
            _baselines,
            "hand-picked networks trained with the supernet's FP32 epochs, quantized "
            "by onnxruntime (PTQ) and timed beside the exports: plain_cnn, resnet18, "
            "mobilenetv3_large_100 (training them takes a while)",
        ),
    },
}


def _is_key(entry: Any) -> bool:
    return isinstance(entry, tuple)


def default_config() -> dict[str, Any]:
    """The complete default configuration (a fresh copy)."""

    def build(schema: Mapping[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(e[0]) if _is_key(e) else build(e) for k, e in schema.items()}

    return build(SCHEMA)


def _yaml_value(v: Any) -> str:
    import yaml

    text = yaml.safe_dump(v, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return text.removesuffix("...").strip()


def default_config_text() -> str:
    """The default configuration as commented YAML (what ``nas run --print-config`` prints)."""
    lines = [
        "# hwnas experiment: `nas run THIS.yaml --out RUN_DIR` (rerun the same command to resume)",
        "# Every key is optional; a key left out takes the value shown here.",
    ]
    for key, entry in SCHEMA.items():
        if _is_key(entry):
            lines.append(f"{key}: {_yaml_value(entry[0])}  # {entry[2]}")
    for section, entries in SCHEMA.items():
        if _is_key(entries):
            continue
        lines.append("")
        lines.append(f"{section}:")
        for key, (default, _check, comment) in entries.items():
            lines.append(f"  {key}: {_yaml_value(default)}  # {comment}")
    return "\n".join(lines) + "\n"


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(known)})"


def validate_config(raw: Any, where: str = "config", base: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Defaults filled in and every value checked; raises :class:`RunConfigError` naming the key.
    ``base``: the folder that relative paths (LUT, checkpoint, space YAML, data folder) are relative to."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise RunConfigError(
            f"{where}: expected a mapping of sections (space, data, target, ...), got {type(raw).__name__}"
        )
    out = default_config()
    for key, value in raw.items():
        if not isinstance(key, str) or key not in SCHEMA:
            raise RunConfigError(f"{where}: unknown key {key!r}{_suggest(str(key), list(SCHEMA))}")
        entry = SCHEMA[key]
        if _is_key(entry):
            out[key] = _check(entry, value, f"{where}: {key}")
            continue
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise RunConfigError(
                f"{where}: {key}: expected a section (a mapping of {', '.join(entry)}), got {type(value).__name__}"
            )
        for sub, v in value.items():
            if not isinstance(sub, str) or sub not in entry:
                raise RunConfigError(f"{where}: unknown key {key}.{sub}{_suggest(str(sub), list(entry))}")
            out[key][sub] = _check(entry[sub], v, f"{where}: {key}.{sub}")
    if base is not None:
        _resolve_paths(out, Path(base))
    _cross_checks(out, where)
    return out


def _resolve_paths(cfg: dict[str, Any], base: Path) -> None:
    """Relative file paths of a config file are relative to the file's folder."""
    for section, key in (
        ("lut", "path"),
        ("supernet", "checkpoint"),
        ("evolve", "teacher"),
        ("space", "name"),
        ("data", "name"),
    ):
        value = cfg[section][key]
        if not isinstance(value, str) or Path(value).expanduser().is_absolute():
            continue
        if section == "space" and not value.endswith((".yaml", ".yml")):
            continue  # a registered space name
        if section == "data" and "/" not in value and os.sep not in value and not value.endswith(".npz"):
            continue  # a built-in data set name (a folder next to the config is written ./name)
        cfg[section][key] = str((base / value).resolve())


def _check(entry: _Key, value: Any, where: str) -> Any:
    try:
        return entry[1](value)
    except ValueError as exc:
        shown = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
        raise RunConfigError(f"{where}: {exc}, got {shown}") from None


def _cross_checks(cfg: dict[str, Any], where: str) -> None:
    """What one key alone cannot say: names that must exist, combinations that cannot work."""
    from hw_profiles import load_target
    from nas.export import formats as fmts
    from nas.search import list_searchers

    if (
        cfg["supernet"]["checkpoint"] is None
        and cfg["supernet"]["epochs"] + math.ceil(cfg["supernet"]["qat_epochs"]) < 1
    ):
        raise RunConfigError(f"{where}: supernet.epochs + supernet.qat_epochs must be at least 1")
    if (
        cfg["supernet"]["checkpoint"] is None
        and cfg["supernet"]["epochs"] == 0
        and 0 < cfg["supernet"]["qat_epochs"] < 1
    ):
        raise RunConfigError(f"{where}: supernet.qat_epochs below 1 needs FP32 epochs (supernet.epochs) before it")
    searchers = [s for s in list_searchers() if s != "darts"]
    if cfg["search"]["searcher"] not in searchers:
        name = cfg["search"]["searcher"]
        why = (
            "darts trains its own one-shot model of a cell space; it cannot search a supernet's space"
            if name == "darts"
            else f"unknown searcher{_suggest(name, searchers)}"
        )
        raise RunConfigError(f"{where}: search.searcher {name!r}: {why}")
    try:
        cfg["export"]["formats"] = list(fmts.parse_formats(cfg["export"]["formats"]))
    except ConfigError as exc:
        raise RunConfigError(f"{where}: export.formats: {str(exc).removeprefix('--format: ')}") from None
    for key in ("name", "fp32"):
        name = cfg["target"][key]
        if name is None:
            continue
        try:
            t = load_target(name)
        except HwnasError as exc:
            raise RunConfigError(f"{where}: target.{key}: {exc}") from None
        want = "int8" if key == "name" else "fp32"
        if t.precision != want:
            raise RunConfigError(f"{where}: target.{key}: {name!r} measures {t.precision}, not {want}")
    for section, key in (("lut", "path"), ("supernet", "checkpoint"), ("evolve", "teacher")):
        p = cfg[section][key]
        if p is not None and not Path(p).expanduser().exists():
            raise RunConfigError(f"{where}: {section}.{key}: {p}: no such file or folder")
    _evolve_checks(cfg["evolve"], where)
    if cfg["space"]["name"].endswith((".yaml", ".yml")):
        if cfg["space"]["args"]:
            raise RunConfigError(f"{where}: space.args: a YAML space takes no arguments")
        if not Path(cfg["space"]["name"]).expanduser().is_file():
            raise RunConfigError(f"{where}: space.name: {cfg['space']['name']}: no such file")
    else:
        from spaces import list_spaces

        if cfg["space"]["name"] not in list_spaces():
            raise RunConfigError(
                f"{where}: space.name: unknown space {cfg['space']['name']!r}"
                f"{_suggest(cfg['space']['name'], list_spaces())}"
            )


def _evolve_checks(e: dict[str, Any], where: str) -> None:
    if not e["enabled"]:
        return
    if e["teacher"] is None:
        raise RunConfigError(
            f"{where}: evolve.teacher: required when evolve.enabled is true (a trained QFA supernet on this "
            "data: `nas train-supernet` folder or checkpoint.safetensors)"
        )
    if e["sample"] > e["population"]:
        raise RunConfigError(f"{where}: evolve.sample {e['sample']} exceeds evolve.population {e['population']}")
    if e["epochs"] + e["qat_epochs"] <= 0:
        raise RunConfigError(f"{where}: evolve.epochs + evolve.qat_epochs must be positive")


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """``(config, where)`` from a YAML file, a mapping, or ``None`` (the defaults)."""
    if source is None:
        return validate_config({}, "defaults"), "defaults"
    if isinstance(source, Mapping):
        return validate_config(source, "config"), "config"
    from hwnas.io import load_yaml_file

    path = Path(source)
    if not path.exists():
        raise RunConfigError(f"{path}: no such config file (`nas run --print-config > {path.name}` writes one)")
    return validate_config(load_yaml_file(path, "run config"), str(path), base=path.resolve().parent), str(path)


def config_hash(obj: Any) -> str:
    """A short content hash of any JSON-able value (canonical JSON, sorted keys)."""
    from hwnas.io import json_safe

    text = json.dumps(json_safe(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]

"""Inference engines: one :class:`~hw_profiles.engines.base.Engine` subclass per library.

Engine modules import their library lazily, so listing engines or validating a target
imports none of onnxruntime, OpenVINO, TensorRT or torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from hw_profiles.engines.base import MODEL_FORMATS, Engine, OptionSpec, Runner, TensorSpec, random_input
from hw_profiles.engines.registry import ENGINES
from hw_profiles.errors import UnknownTargetError

if TYPE_CHECKING:  # pragma: no cover
    from hw_profiles.targets import Target

__all__ = [
    "MODEL_FORMATS",
    "Engine",
    "OptionSpec",
    "Runner",
    "TensorSpec",
    "check_target",
    "create_engine",
    "engine_class",
    "list_engines",
    "random_input",
]


def list_engines() -> list[str]:
    return sorted(ENGINES)


def engine_class(name: str) -> type[Engine]:
    try:
        module, cls = ENGINES[name]
    except KeyError:
        raise UnknownTargetError(f"unknown engine {name!r} (engines: {', '.join(sorted(ENGINES))})") from None
    return getattr(importlib.import_module(module), cls)


def check_target(target: Target, where: str | None = None) -> Target:
    """``target``, once its engine has accepted it (precision, device, options); raises
    :class:`~hw_profiles.errors.TargetConfigError` naming ``where`` (default: the target's
    source) otherwise. Imports the engine's module, not its library."""
    engine_class(target.engine).check_target(target, where or target.source or f"target {target.name!r}")
    return target


def create_engine(target: Target) -> Engine:
    """The engine for ``target`` (a :class:`~hw_profiles.targets.Target`), ready to load models.

    The engine checks the target first (:meth:`Engine.check_target`, also for targets made
    with :meth:`Target.replace`). Raises :class:`~hw_profiles.errors.EngineUnavailableError`
    (one line, with the reason) when the engine library or the hardware is missing.
    """
    return engine_class(target.engine)(target)

"""``nas run``: the whole pipeline as one resumable, reported experiment.

    import nas
    result = nas.run("experiment.yaml", "runs/exp1")   # LUT → supernet → search → export → report
    print(result["report"]["md"])

Each stage can be run alone on a run folder (the stages before it finished)::

    from nas.pipeline import Experiment
    exp = Experiment("experiment.yaml", "runs/exp1")
    exp.stage("lut"); exp.stage("supernet"); exp.stage("search")

``default_config_text()`` is the complete commented configuration (``nas run --print-config``);
``demo_config_path()`` the bundled config of ``nas demo``.
"""

from __future__ import annotations

from pathlib import Path

from hwnas.lazy import lazy_exports
from nas.pipeline.config import STAGES, RunConfigError, default_config, default_config_text, load_config

__all__ = [
    "STAGES",
    "Experiment",
    "RunConfigError",
    "RunResult",
    "StageChangedError",
    "default_config",
    "default_config_text",
    "demo_config_path",
    "load_config",
    "run",
    "write_report",
]

_LAZY = {
    "Experiment": "nas.pipeline.experiment",
    "RunResult": "nas.pipeline.experiment",
    "run": "nas.pipeline.experiment",
    "StageChangedError": "nas.pipeline.state",
    "write_report": "nas.pipeline.report",
}


def demo_config_path() -> Path:
    """The bundled configuration of ``nas demo`` (copy it to start your own)."""
    return Path(__file__).with_name("configs") / "demo.yaml"


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

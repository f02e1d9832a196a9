"""hwnas's public Python API: search spaces, (later) latency tables, searchers and export.

Everything is re-exported lazily so that ``import nas`` stays cheap (no torch until needed).
"""

from __future__ import annotations

from hwnas import HwnasError, __version__
from hwnas.lazy import lazy_exports

__all__ = [
    "Arch",
    "Constraint",
    "HwnasError",
    "Objective",
    "Space",
    "TabularEvaluator",
    "__version__",
    "create_searcher",
    "create_space",
    "export",
    "list_searchers",
    "list_spaces",
    "nb201_benchmark",
    "register_space",
    "run",
    "run_search",
]

_LAZY = {
    "Arch": "spaces",
    "Space": "spaces",
    "create_space": "spaces",
    "list_spaces": "spaces",
    "register_space": "spaces",
    "Constraint": "nas.search",
    "Objective": "nas.search",
    "TabularEvaluator": "nas.search",
    "export": "nas.export",
    "create_searcher": "nas.search",
    "list_searchers": "nas.search",
    "nb201_benchmark": "nas.search",
    "run_search": "nas.search",
    "run": "nas.pipeline",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

"""The package face: every lazily exported name is the documented object, never a submodule."""

from __future__ import annotations

import importlib
import types


def test_lazy_exports_are_not_shadowed_by_submodules():
    import latency_lut

    importlib.import_module("latency_lut.validation")  # a submodule import must not replace a name
    for name in latency_lut.__all__:
        assert not isinstance(getattr(latency_lut, name), types.ModuleType), name
    from latency_lut import validate

    assert callable(validate) and validate.__module__ == "latency_lut.validation"

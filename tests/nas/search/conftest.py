"""Fixtures for the searcher tests: the nb201 space and table, synthetic evaluators, PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nas.search.evaluators import default_nb201_csv
from tests.helpers import PostgresUnavailable, local_postgres


@pytest.fixture(scope="session")
def nb201_space():
    from spaces import create_space

    return create_space("nb201")


@pytest.fixture(scope="session")
def nb201_csv() -> Path:
    path = default_nb201_csv()
    if not path.is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {path} (set HWNAS_NB201_CSV)")
    return path


@pytest.fixture(scope="session")
def table(nb201_csv):
    from nas.search.evaluators import TabularEvaluator

    return TabularEvaluator(nb201_csv, metrics=["cifar10_test_acc", "pixel3_latency_ms"])


class SyntheticEvaluator:
    """A deterministic toy objective for any space: a hash of each decision value, plus a
    'latency' that grows with the encoding (so constraints and two objectives make sense)."""

    metrics = ("score", "latency")

    def __init__(self, space) -> None:
        self.space = space

    def evaluate(self, arch):
        import hashlib

        vec = self.space.encode(arch)
        h = int(hashlib.sha256(arch.to_json().encode()).hexdigest()[:8], 16) / 2**32
        score = float(vec.sum()) / max(len(vec), 1) + 0.3 * h
        latency = 1.0 + float(vec.sum()) / max(len(vec), 1) + 0.5 * (1 - h)
        return {"score": score, "latency": latency}


@pytest.fixture
def synthetic():
    return SyntheticEvaluator


# -- PostgreSQL -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL URL: ``$HWNAS_TEST_POSTGRES_URL``, else a throwaway server started here
    (:func:`tests.helpers.local_postgres`; skipped where none can start)."""
    url = os.environ.get("HWNAS_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        server = local_postgres()
        url = server.__enter__()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url
    finally:
        server.__exit__(None, None, None)

"""Suite-wide settings: the quiet gate's remembered probe level lives in a per-session folder,
so that tests neither read a level from earlier runs on this machine nor leave one behind; and the
parallel run (pytest-xdist, ``-n auto --dist loadscope --no-loadscope-reorder`` in
``pyproject.toml``):

* one worker per usable core, at most four (``-n 0`` runs the suite in this process);
* each worker computes on one thread (torch, OpenMP, and the subprocesses it starts), so that two
  workers on two cores do not oversubscribe them;
* a work unit (the tests one worker runs one after the other) is a test module (or a test class),
  so that module fixtures are built once; session fixtures are built once per worker that needs
  them. (``--dist loadgroup`` and ``xdist_group`` marks would merge units across modules, but
  xdist 3.8 marks a group by rewriting ``item._nodeid``, which pytest 9 no longer reads: the marks
  are ignored and every test becomes its own unit.)
* modules that hold ``slow`` tests start first (most slow tests first), so that no long module is
  left to run alone at the end.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

#: ``-n auto`` starts at most this many workers: every worker holds its own torch, data sets and
#: session fixtures, and many tests start processes of their own
MAX_AUTO_WORKERS = 4

#: what a worker computes with: one thread
_ONE_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    env = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if env:
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_AUTO_WORKERS, cores))


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # set before a worker reads its conftests
        for name in _ONE_THREAD_ENV:
            os.environ.setdefault(name, "1")
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        # execnet starts workers with SIGINT ignored, and an ignored signal stays ignored in every
        # process a worker starts: the interrupt tests and the kill campaign's Ctrl-C would not
        # reach their commands. A worker takes Ctrl-C as a plain Python process does.
        import signal

        signal.signal(signal.SIGINT, signal.default_int_handler)


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist: the modules with the most ``slow`` tests first (a module's tests stay together,
    in their order), the order in which ``--dist loadscope --no-loadscope-reorder`` hands them out."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    slow = Counter(_module(item) for item in items if item.get_closest_marker("slow"))
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        first.setdefault(_module(item), i)
    items.sort(key=lambda item: (-slow[_module(item)], first[_module(item)]))


@pytest.fixture(autouse=True, scope="session")
def _private_noise_cache(tmp_path_factory):
    old = os.environ.get("HWNAS_CACHE_DIR")
    os.environ["HWNAS_CACHE_DIR"] = str(tmp_path_factory.mktemp("hwnas-cache"))
    yield
    if old is None:
        os.environ.pop("HWNAS_CACHE_DIR", None)
    else:
        os.environ["HWNAS_CACHE_DIR"] = old


@pytest.fixture
def one_thread():
    """torch computes on one thread during the test (the number is restored after it): results
    that do not depend on the machine's core count, and no oversubscription of a shared CPU.
    Opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

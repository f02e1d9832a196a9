"""Fixtures for the searcher tests: the nb201 space and table, synthetic evaluators, PostgreSQL."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from nas.search.evaluators import default_nb201_csv


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
def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL URL: ``$HWNAS_TEST_POSTGRES_URL``, else a throwaway server started here."""
    url = os.environ.get("HWNAS_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    pytest.importorskip("psycopg2", reason="psycopg2 is needed for PostgreSQL storage")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found and HWNAS_TEST_POSTGRES_URL not set")
    run_as: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="hwnas-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the 'postgres' user
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip(
                "running as root without a 'postgres' user: cannot start PostgreSQL "
                "(install the postgresql package or set HWNAS_TEST_POSTGRES_URL)"
            )
        if shutil.which("runuser") is None:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip("running as root and runuser is missing: cannot start PostgreSQL")
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, user="postgres")
    data = base / "data"
    port = _free_port()
    log = base / "server.log"

    def pg(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*run_as, *cmd], capture_output=True, text=True, check=check, timeout=120)

    try:
        pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        pg(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "start",
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr.strip() or exc.stdout.strip()}")
    try:
        for _ in range(100):
            if pg(str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), check=False).returncode == 0:
                break
            time.sleep(0.1)
        pg(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "hwnas_test")
        yield f"postgresql://postgres@127.0.0.1:{port}/hwnas_test"
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)

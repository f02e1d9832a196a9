"""Helpers shared by test modules of several folders (test modules import these, never each other):
tiny spaces and training configurations that keep supernet tests fast on a CPU, and running the
real ``nas`` command."""

from __future__ import annotations

import contextlib
import copy
import functools
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TINY_MOBILENET = {
    "stages": 2,
    "depths": [1, 2],
    "kernels": [3, 5],
    "expands": [2.0, 3.0],
    "width_mults": [0.5, 1.0],
    "scale": 0.25,
}
TINY_SPACEEVO = {"block_types": ["mbv2", "resnet_se", "fused"], "kernels": [3, 5], "expands": [2.0, 4.0], "scale": 0.25}
TINY_RESNET = {"base_widths": [8, 16, 16, 32], "depths": [1, 2], "kernels": [3, 5]}

TINY_SPACES = {"mobilenet": TINY_MOBILENET, "spaceevo": TINY_SPACEEVO, "resnet": TINY_RESNET}

#: an onnxruntime FP32 target whose harness times a model once, briefly (no quiet gate): for tests
#: that need latencies, not good ones
FAST_ORT_FP32 = {
    "name": "test-fast-fp32",
    "engine": "onnxruntime",
    "precision": "fp32",
    "measure": {
        "warmup_runs": 2,
        "warmup_s": 0.0,
        "min_runs": 3,
        "min_time_s": 0.0,
        "rounds": 1,
        "max_rounds": 1,
        "quiet_gate": False,
    },
}


def tiny_space(name: str = "mobilenet", resolution: int = 28):
    from spaces import create_space

    return create_space(name, in_chans=1, num_classes=10, resolution=resolution, **TINY_SPACES[name])


@functools.cache
def _cached_net(name: str, kernel_transform: bool):
    from supernet.model import Supernet

    return Supernet(tiny_space(name), kernel_transform=kernel_transform, layout_samples=8)


def tiny_net(name: str = "mobilenet", kernel_transform: bool = True):
    """A fresh copy of a (cached) freshly initialised supernet over a tiny space."""
    return copy.deepcopy(_cached_net(name, kernel_transform))


def tiny_config(**overrides):
    from supernet.train import TrainConfig

    base = dict(
        space="mobilenet",
        space_kwargs=dict(TINY_MOBILENET),
        data="fashion-mnist",
        epochs=1,
        qat_epochs=1,
        batch_size=32,
        lr=0.05,
        qat_lr=0.01,
        warmup_epochs=0.5,
        train_limit=192,
        test_limit=128,
        bn_calib_batches=2,
        calib_batch_size=32,
        qat_calib_batches=1,
        checkpoint_every=0,
        threads=1,
        layout_samples=8,
        val_fraction=0.0,
    )  # step counts in these tests: every image trains
    base.update(overrides)
    return TrainConfig(**base)


def tiny_train_args(*args: str) -> list[str]:
    """``nas train-supernet`` arguments over the tiny MobileNet space, then ``args``."""
    return ["train-supernet", "--space", "mobilenet", "--space-args", json.dumps(TINY_MOBILENET), *args]


def nas_command() -> list[str]:
    """The ``nas`` command of this interpreter's environment (``python -m nas.cli`` without one)."""
    exe = Path(sys.executable).with_name("nas")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("nas")
    return [found] if found else [sys.executable, "-m", "nas.cli"]


def subprocess_env() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*nas_command(), *args], capture_output=True, text=True, timeout=timeout, env=subprocess_env(), cwd=str(REPO)
    )


def write_random_teacher(folder: Path, space_kwargs: dict, space: str = "spaceevo") -> Path:
    """An untrained supernet checkpoint of ``space`` (``space_kwargs``) on digits in ``folder``: a
    random block-wise distillation teacher, written once (kept when it exists); returns ``folder``."""
    from supernet.train import TrainConfig, Trainer

    if (folder / "checkpoint.safetensors").exists():
        return folder
    cfg = TrainConfig(
        space=space,
        space_kwargs=dict(space_kwargs),
        data="digits",
        epochs=1,
        batch_size=16,
        train_limit=160,
        test_limit=32,
        threads=1,
        layout_samples=4,
        val_fraction=0.25,
        bn_calib_batches=1,
        calib_batch_size=16,
    )
    Trainer(cfg, folder, progress=False, log=lambda s: None).save_checkpoint()
    return folder


# -- concurrency checks (issue 19): several `nas profile` processes on one LUT, several `nas search`
# workers on one study; used by the tests and by benchmarks/bench_concurrency.py -------------------

#: a process that reads a LUT while others write it, as `nas search --lut` or a LatencyPredictor does:
#: it holds one read-only connection open across the writes (opened once the LUT is whole), and opens
#: the LUT again and again beside it (argv[4] ``reopen``: without holding one, as repeated `nas lut`
#: commands do); every query's rows must be at least those of the one before. Until the file named by
#: argv[2] exists; then it writes its counts and errors as JSON to argv[3].
LUT_READER = """
import json, sys, time
from pathlib import Path
from latency_lut.db import open_lut

lut, stop, out = map(Path, sys.argv[1:4])
hold = sys.argv[4] == "hold"
counts = {"opens": 0, "queries": 0, "held_queries": 0, "not_ready": 0, "went_back": 0}
errors = {}
held = None
last = -1


def note(exc):
    key = f"{type(exc).__name__}: {exc}"
    errors[key] = errors.get(key, 0) + 1


def query(db):
    global last
    fps = db.fingerprints()
    for fp in fps:
        db.latencies(fp["fp_id"])
        for space in db.spaces():
            db.correction(fp["fp_id"], space["signature"])
    db.runs()
    n = len(db.rows())
    if n < last:
        counts["went_back"] += 1
    last = max(last, n)
    return n


ready = False  # the LUT was opened once: before, the writers are creating it (refusals expected)
while not stop.exists():
    try:
        if held is None and hold:
            held = open_lut(lut)
            ready = True
        if held is not None:
            query(held)
            counts["held_queries"] += 1
        with open_lut(lut) as db:
            ready = True
            counts["opens"] += 1
            query(db)
            counts["queries"] += 1
    except Exception as exc:
        if ready:
            note(exc)
        else:
            counts["not_ready"] += 1
            time.sleep(0.05)
    time.sleep(0.02)
final = {}
try:
    if held is not None:
        final["held_rows"] = len(held.rows())
        final["held_runs"] = len(held.runs())
        held.close()
    with open_lut(lut) as db:
        final["fresh_rows"] = len(db.rows())
        final["fresh_runs"] = len(db.runs())
except Exception as exc:
    note(exc)
out.write_text(json.dumps({"counts": counts, "errors": errors, "final": final}))
"""


def start_nas(args: list[str], tmpdir: Path | None = None) -> subprocess.Popen[str]:
    """The ``nas`` command with ``args``, started (one thread; ``$TMPDIR`` ``tmpdir`` when given)."""
    env = subprocess_env()
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.Popen(
        [*nas_command(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO)
    )


def start_lut_reader(lut: Path, stop: Path, out: Path, hold: bool = True) -> subprocess.Popen[str]:
    """:data:`LUT_READER` on ``lut`` until ``stop`` exists (holding a connection, or only reopening
    the LUT); its report goes to ``out``."""
    return subprocess.Popen(
        [sys.executable, "-c", LUT_READER, str(lut), str(stop), str(out), "hold" if hold else "reopen"],
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=str(REPO),
    )


def finished(procs: list[subprocess.Popen[str]], timeout: float) -> list[tuple[int, str, str]]:
    """``(returncode, stdout, stderr)`` of each process, waiting for all (killed past ``timeout``)."""
    deadline = time.monotonic() + timeout
    out = []
    for p in procs:
        try:
            o, e = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            o, e = p.communicate()
            e += "\n[killed: past the timeout]"
        out.append((p.returncode, o or "", e or ""))
    return out


def profile_keys(space, fp_info: dict, networks: int, seed: int = 0, batch: int = 1) -> tuple[set[str], set[str]]:
    """The block keys and calibration network ids a `nas profile` of ``space`` (``--networks``,
    ``--seed``) stores for a fingerprint whose record is ``fp_info``: what the LUT must hold."""
    from latency_lut.export import calibration_archs, profiled_parts
    from latency_lut.formats import UINT8_IO_FORMATS
    from latency_lut.keys import overhead_key, part_key, quantize_key

    calib = calibration_archs(space, networks, seed) if networks else []
    keys = {part_key(p, batch) for p in profiled_parts(space, None, seed, calib)}
    c, h, w = space.input_shape
    if fp_info.get("model_format") in UINT8_IO_FORMATS:
        keys.add(quantize_key(c, h, w, batch))
    keys.add(overhead_key(batch))
    return keys, {a.id for a in calib}


def lut_problems(
    lut: Path, space, targets: dict[str, int], networks: int, outputs: list[dict], seed: int = 0
) -> tuple[list[str], dict]:
    """What is wrong with ``lut`` after profilers of ``space`` wrote it at once (``targets``: target
    name → how many profilers ran for it; ``outputs``: their ``--json`` results): ``(problems,
    counts)``, no problem when every block key and calibration network of the space is stored
    exactly once per fingerprint (0 lost, 0 duplicated), the runs' ``measured`` counts add up to the
    rows and match what the profilers reported, every run finished and the file is whole."""
    import sqlite3
    from collections import Counter

    problems: list[str] = []
    con = sqlite3.connect(f"file:{lut}?mode=ro", uri=True)
    try:
        integrity = [r[0] for r in con.execute("PRAGMA integrity_check")]
        fps = {
            fp: (target, json.loads(info))
            for fp, target, info in con.execute("SELECT fp_id, target, info FROM fingerprints")
        }
        rows = list(con.execute("SELECT fp_id, block_key FROM latency"))
        nets = list(con.execute("SELECT fp_id, arch_id FROM networks"))
        runs = list(con.execute("SELECT run_id, fp_id, measured, status FROM runs"))
    finally:
        con.close()
    if integrity != ["ok"]:
        problems.append(f"integrity check: {'; '.join(integrity[:3])}")
    counts: dict = {"rows": len(rows), "networks": len(nets), "runs": len(runs), "lost": 0, "duplicated": 0}
    by_target = {target: fp for fp, (target, _) in fps.items()}
    if set(by_target) != set(targets):
        problems.append(f"fingerprints of targets {sorted(by_target)}, expected {sorted(targets)}")
    for target, fp in sorted(by_target.items()):
        keys, arch_ids = profile_keys(space, fps[fp][1], networks, seed)
        have = Counter(k for f, k in rows if f == fp)
        have_nets = Counter(a for f, a in nets if f == fp)
        lost = sorted(keys - set(have)) + sorted(arch_ids - set(have_nets))
        dup = [k for k, n in have.items() if n > 1] + [a for a, n in have_nets.items() if n > 1]
        extra = sorted(set(have) - keys) + sorted(set(have_nets) - arch_ids)
        counts["lost"] += len(lost)
        counts["duplicated"] += sum(n - 1 for n in have.values()) + sum(n - 1 for n in have_nets.values())
        if lost:
            problems.append(f"{target}: {len(lost)} block(s) or network(s) lost, e.g. {lost[0]}")
        if dup:
            problems.append(f"{target}: {len(dup)} key(s) stored twice, e.g. {dup[0]}")
        if extra:
            problems.append(f"{target}: {len(extra)} key(s) not of the space, e.g. {extra[0]}")
        mine = [r for r in runs if r[1] == fp]
        measured = sum(int(r[2] or 0) for r in mine)
        if measured != sum(have.values()):
            problems.append(f"{target}: the runs measured {measured} blocks, the LUT holds {sum(have.values())}")
        if len(mine) != targets.get(target, 0):
            problems.append(f"{target}: {len(mine)} run rows, {targets.get(target, 0)} profilers ran")
    unfinished = Counter(str(r[3]) for r in runs if r[3] != "finished")
    if unfinished:
        problems.append(f"runs not finished: {dict(unfinished)}")
    reported = sum(int(o.get("measured", 0)) for o in outputs)
    if reported != len(rows):
        problems.append(f"the profilers reported {reported} blocks measured, the LUT holds {len(rows)}")
    counts["reported_measured"] = reported
    return problems, counts


def study_problems(url: str, study: str, reports: list[dict], asked: int) -> tuple[list[str], dict]:
    """What is wrong with the study ``study`` at ``url`` after workers that each asked for
    ``--n-trials`` trials (``asked`` in all) reported ``reports`` (their ``--json``): ``(problems,
    counts)``, no problem when the study holds exactly ``asked`` COMPLETE trials numbered 0, 1, ...,
    the workers' trials are disjoint and together the study (0 lost), no trial is RUNNING, WAITING or
    failed, and no arch was evaluated twice (0 duplicated; a trial of an arch the study already
    held, or another worker was evaluating, is marked cached and reuses its values)."""
    import warnings
    from collections import Counter

    import optuna

    from nas.search.storage import make_storage
    from nas.search.study_worker import CACHED_ATTR

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trials = optuna.load_study(study_name=study, storage=make_storage(url)).trials
    problems: list[str] = []
    states = Counter(t.state.name for t in trials)
    numbers = sorted(t.number for t in trials)
    complete = {t.number for t in trials if t.state.name == "COMPLETE"}
    reported = [n for r in reports for n in r["trials"]]
    evaluated = Counter(
        tuple(sorted(t.params.items()))
        for t in trials
        if t.state.name == "COMPLETE" and not t.user_attrs.get(CACHED_ATTR)
    )
    twice = sum(n - 1 for n in evaluated.values())
    claimed_twice = len(reported) - len(set(reported))
    lost = max(0, asked - len(complete)) + len(set(reported) - complete)
    counts = {
        "trials": len(trials),
        "complete": len(complete),
        "cached": len(complete) - sum(evaluated.values()),
        "evaluated": sum(evaluated.values()),
        "lost": lost,
        "duplicated": twice + claimed_twice + max(0, len(complete) - asked),
    }
    if len(complete) != asked:
        problems.append(f"{len(complete)} COMPLETE trials, the workers asked for {asked}")
    if numbers != list(range(len(trials))):
        problems.append(f"trial numbers not 0..{len(trials) - 1}: {numbers}")
    left = {s: n for s, n in states.items() if s != "COMPLETE"}
    if left:
        problems.append(f"trials not COMPLETE: {left}")
    if claimed_twice:
        problems.append(f"{claimed_twice} trial(s) reported by two workers")
    if set(reported) != complete:
        problems.append(
            f"the workers reported {len(set(reported))} trials, the study completed {len(complete)} "
            f"(missing {sorted(complete - set(reported))[:5]}, not complete {sorted(set(reported) - complete)[:5]})"
        )
    if twice:
        problems.append(f"{twice} arch(s) evaluated twice")
    if sum(int(r["evaluated"]) for r in reports) != sum(evaluated.values()):
        problems.append(
            f"the workers evaluated {sum(int(r['evaluated']) for r in reports)} archs, "
            f"the study holds {sum(evaluated.values())} evaluated trials"
        )
    if len({r["worker"] for r in reports}) != len(reports):
        problems.append("two reports name the same worker")
    return problems, counts


# -- a throwaway PostgreSQL server (the postgres tests, benchmarks/bench_concurrency.py) ---------------
class PostgresUnavailable(Exception):
    """No local PostgreSQL server can be started here (the message says why)."""


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


@contextlib.contextmanager
def local_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (fsync off, trust authentication, as the
    ``postgres`` user when run as root) with a database ``hwnas_test``: yields its URL, stops it and
    removes its files after. :class:`PostgresUnavailable` where it cannot run here (no psycopg2, no
    binaries, root without a ``postgres`` user), RuntimeError when the server failed to start."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise PostgresUnavailable("psycopg2 is needed for PostgreSQL storage") from None
    bindir = _pg_bin()
    if bindir is None:
        raise PostgresUnavailable("PostgreSQL binaries (initdb, pg_ctl) not found and HWNAS_TEST_POSTGRES_URL not set")
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the 'postgres' user
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "running as root without a 'postgres' user: cannot start PostgreSQL "
                "(install the postgresql package or set HWNAS_TEST_POSTGRES_URL)"
            ) from None
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root and runuser is missing: cannot start PostgreSQL")
        run_as = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="hwnas-pg-"))
    if run_as:
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
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr.strip() or exc.stdout.strip()}") from None
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

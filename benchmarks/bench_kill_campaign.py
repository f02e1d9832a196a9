"""Kill campaign (issue 19): SIGKILL / SIGTERM / SIGINT every long-running command at random moments,
rerun it, and check that it ends as an uninterrupted run ends.

How to run (from the repository root; about an hour per command at 20 kills on two cores)::

    .venv/bin/python benchmarks/bench_kill_campaign.py [--kills N] [--commands a,b] [--work DIR]
                                                       [--json FILE] [--seed S] [--max-per-round K]
    .venv/bin/python benchmarks/bench_kill_campaign.py --kills 20 --commands run     # one command

It ends with a table per command (kills by signal, rounds, rounds resumed OK, units finished, and
the counts of redone, lost, corrupt, leftovers, differences from the uninterrupted run, tracebacks
and hangs) and PASS / FAIL; the test-scale version is ``tests/campaign/test_kill_resume.py``.

Commands (at toy scale: a 19-block YAML space, digits, a few archs; ``--commands`` picks some):

``profile``          ``nas profile`` of a tiny YAML space into a LUT (unit: a stored block)
``train-supernet``   ``nas train-supernet`` (``--resume`` once a checkpoint exists; unit: an epoch;
                     the final checkpoint must equal the uninterrupted run's bit for bit)
``search``           ``nas search`` on a SQLite study, one worker (unit: an evaluated arch)
``search-shared``    three ``nas search`` workers on one SQLite study, killed and restarted one at a
                     time while the others run (unit: an evaluated arch)
``run``              ``nas run`` of a tiny pipeline (the LUT given; units: epochs, evaluations, exports)
``spaceevo-quality`` block-wise distillation into a quality file (unit: a candidate stage)
``evolve-space``     SpaceEvo's evolution, state saved every cycle (unit: a cycle)
``export``           ``nas export``: not resumable (one unit); it must never leave a folder that looks
                     finished (``model.json``) with files that do not match it

Each command first runs once uninterrupted (the reference). Then rounds: a fresh output is started,
killed at a random moment (half of the kills uniform over the attempt's expected duration, the others
after a random number of further units and a random share of a unit's time, so that kills land in
the start-up and inside units alike; start-up and unit times are learnt from the reference and the
attempts that ran to their end, as the machine's load has them), rerun with the same command line,
killed again ... (at most ``--max-per-round`` kills) and finally run to the end; rounds repeat until
``--kills`` kills were sent. The signal is SIGKILL (half of the kills), SIGTERM or SIGINT.

Checked after every attempt: finished units are never lost and never redone (each unit keeps the
identity it was finished with: the LUT row's run and timestamp, the epoch's metrics line, the trial
of an arch, the candidate stage's row, the cycle's history); no file is half-written (every JSON /
JSON-lines / SQLite / checkpoint file reads whole). After each round: the result equals the
reference's (LUT keys, the checkpoint's tensors, the study's archs and best, the report, the quality
values, the evolved space, the export record, minus timings and measured latencies), no temporary
files or folders are left (a private ``$TMPDIR`` per command must end empty, no ``*.tmp`` or
write probes in the outputs), no LUT run stays ``running`` and no trial stays RUNNING or WAITING.

Prints a table per command and writes ``--json`` (default ``WORK/result.json``) after each
command; rerunning with the same ``--json`` skips the commands it already holds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "tests" / "latency_lut"))

from run_kill_acceptance import count_units, diff, nas_cmd, strip  # noqa: E402

from tests.helpers import TINY_MOBILENET, TINY_SPACEEVO, write_random_teacher  # noqa: E402

COMMANDS = (
    "profile",
    "train-supernet",
    "search",
    "search-shared",
    "run",
    "spaceevo-quality",
    "evolve-space",
    "export",
)
SIGNALS = (signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
#: file names in an output folder that only a writer in flight may leave
TEMP_PATTERNS = ("*.tmp", ".write-test-*", ".hwnas-write-test-*")
#: caches other programs keep in $TMPDIR on purpose (torch's inductor cache), not leftovers
TMP_CACHES = ("torchinductor_",)


# ------------------------------------------------------------------------------------------------
# small readers, all tolerant: they run while the command writes
# ------------------------------------------------------------------------------------------------
def query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows of a read-only query; [] when the file is absent or locked."""
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            return list(con.execute(sql, args))
        finally:
            con.close()
    except sqlite3.Error:
        return []


def sqlite_problem(db: Path) -> str | None:
    """Why the SQLite file ``db`` is damaged (``PRAGMA integrity_check``), None when it is whole."""
    if not db.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            res = con.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error as exc:
        return f"{db.name}: {exc}"
    return None if res == "ok" else f"{db.name}: {res}"


def json_problem(path: Path, lines: bool = False) -> str | None:
    """Why ``path`` is not whole JSON (or JSON lines, each ending in a newline), None when it is."""
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"{path.name}: {exc}"
    try:
        if lines:
            if text and not text.endswith("\n"):
                return f"{path.name}: the last line is cut off"
            for ln in text.splitlines():
                if ln.strip():
                    json.loads(ln)
        else:
            json.loads(text)
    except json.JSONDecodeError as exc:
        return f"{path.name}: not whole JSON ({exc.msg} at line {exc.lineno})"
    return None


def safetensors_meta(path: Path) -> dict[str, Any] | None:
    """The ``__metadata__`` of a safetensors file, reading its header only (None if unreadable)."""
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > 100_000_000:
                return None
            header = json.loads(fh.read(n))
        return header.get("__metadata__") or {}
    except (OSError, ValueError, struct.error):
        return None


def jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return out
    for ln in text.splitlines():
        try:
            rec = json.loads(ln)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def temp_files(folder: Path) -> list[str]:
    """Temporary files a writer in flight leaves in ``folder`` (recursively)."""
    if not folder.exists():
        return []
    found = {p for pat in TEMP_PATTERNS for p in folder.rglob(pat)}
    return sorted(str(p.relative_to(folder.parent)) for p in found)


def tmp_leftovers(tmp: Path, persistent: frozenset[str] = frozenset()) -> list[Path]:
    """What is left in a private ``$TMPDIR``, less torch's compile cache and the ``persistent`` names
    (what the uninterrupted reference run leaves there too: libraries' own files, not leftovers)."""
    if not tmp.exists():
        return []
    return sorted(p for p in tmp.iterdir() if not p.name.startswith(TMP_CACHES) and p.name not in persistent)


def clear_tmp(tmp: Path, persistent: frozenset[str] = frozenset()) -> None:
    for p in tmp_leftovers(tmp, persistent):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


_OWN_CODE = tuple(
    f"{REPO / pkg}{os.sep}" for pkg in ("hwnas", "nas", "spaces", "quant", "supernet", "latency_lut", "hw_profiles")
)


def _is_startup_interrupt(block: list[str]) -> bool:
    """A ``KeyboardInterrupt`` raised while the interpreter was still starting (importing ``site``,
    the standard library), before any line of hwnas ran: every Python program prints this one, and
    no handler of the command can exist yet, so it is not the command's traceback."""
    frames = [ln for ln in block if ln.lstrip().startswith('File "')]
    last = block[-1] if block else ""
    return last.startswith("KeyboardInterrupt") and not any(code in ln for ln in frames for code in _OWN_CODE)


def has_traceback(log: str) -> bool:
    """Whether ``log`` holds a traceback of the command's own. Not the command's: CPython's
    "Exception ignored in ..." reports of an interrupt swallowed inside its import machinery, and
    an interrupt of the interpreter's start-up (:func:`_is_startup_interrupt`)."""
    lines = log.splitlines()
    for i, ln in enumerate(lines):
        if not ln.startswith("Traceback (most recent call last)") or (
            i and lines[i - 1].startswith("Exception ignored")
        ):
            continue
        block = [ln]
        for nxt in lines[i + 1 :]:
            block.append(nxt)
            if nxt and not nxt.startswith((" ", "\t")):
                break  # the exception line ends the traceback
        if not _is_startup_interrupt(block):
            return True
    return False


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------
# the commands
# ------------------------------------------------------------------------------------------------
class Command:
    """One long-running command: its inputs, command line, units, checks and result."""

    name = ""
    unit = "unit"
    #: what :meth:`progress` counts (the kill moments are drawn in these)
    progress_unit = "units"
    resumable = True

    def __init__(self, bench: Bench) -> None:
        self.b = bench
        #: names an uninterrupted run leaves in $TMPDIR too (libraries' own files)
        self.persistent: frozenset[str] = frozenset()
        self.home = bench.work / self.name
        self.inputs = self.home / "inputs"

    def setup(self) -> None:
        """Inputs shared by the reference and the killed runs."""

    def argv(self, out: Path) -> list[str]:
        raise NotImplementedError

    def progress(self, out: Path) -> int:
        """Finished units so far (cheap: polled while the command runs)."""
        return len(self.units(out))

    def units(self, out: Path) -> dict[str, Any]:
        """Finished units and the identity each was finished with."""
        return {}

    def problems(self, out: Path) -> list[str]:
        """Half-written or damaged files (checked after every attempt)."""
        return []

    def leftovers(self, out: Path) -> list[str]:
        """What a finished run must not leave behind (besides the private $TMPDIR's content)."""
        return temp_files(out)

    def result(self, out: Path) -> Any:
        """What must equal the uninterrupted run's."""
        return None

    def redone(self, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
        return [k for k in before if k in after and after[k] != before[k]]

    def finished(self, rc: int | None, log: str) -> bool:
        """Whether an attempt that got no signal ran to its end (its exit code and output)."""
        return rc == 0


def _tiny_space_yaml(resolution: int) -> str:
    from lut_test_helpers import TINY_SPACE_YAML

    return TINY_SPACE_YAML.replace("resolution: 16", f"resolution: {resolution}")


class Profile(Command):
    name = "profile"
    unit = "block"

    def setup(self) -> None:
        from lut_test_helpers import write_fast_target

        self.inputs.mkdir(parents=True, exist_ok=True)
        self.space = self.inputs / "tiny.yaml"
        self.space.write_text(_tiny_space_yaml(8))
        self.target = write_fast_target(self.inputs, "int8", min_time=0.0, name="fast-int8")

    def argv(self, out: Path) -> list[str]:
        return [
            "profile",
            "--space",
            str(self.space),
            "--target",
            str(self.target),
            "--out",
            str(out / "lut.db"),
            "--networks",
            "0",
            "--retry-passes",
            "0",
            "--no-progress",
        ]

    def progress(self, out: Path) -> int:
        rows = query(out / "lut.db", "SELECT count(*) FROM latency")
        return int(rows[0][0]) if rows else 0

    def units(self, out: Path) -> dict[str, Any]:
        return {k: (r, t) for k, r, t in query(out / "lut.db", "SELECT block_key, run_id, timestamp FROM latency")}

    def problems(self, out: Path) -> list[str]:
        return [p for p in [sqlite_problem(out / "lut.db")] if p]

    def leftovers(self, out: Path) -> list[str]:
        running = [f"LUT run {r} still {s!r}" for r, s in query(out / "lut.db", "SELECT run_id, status FROM runs")]
        return temp_files(out) + [x for x in running if "'running'" in x]

    def result(self, out: Path) -> Any:
        return sorted(self.units(out))


class TrainSupernet(Command):
    name = "train-supernet"
    unit = "epoch"
    progress_unit = "checkpointed training steps"

    def args(self) -> list[str]:
        return [
            "--space",
            "mobilenet",
            "--space-args",
            json.dumps(TINY_MOBILENET),
            "--data",
            "digits",
            "--epochs",
            "1",
            "--qat-epochs",
            "1",
            "--batch-size",
            "32",
            "--train-limit",
            "256",
            "--test-limit",
            "64",
            "--bn-calib-batches",
            "1",
            "--checkpoint-every",
            "2",
            "--seed",
            "3",
            "--threads",
            "1",
            "--no-progress",
        ]

    def argv(self, out: Path) -> list[str]:
        if (out / "checkpoint.safetensors").exists():
            return ["train-supernet", "--out", str(out), "--resume", "--no-progress"]
        return ["train-supernet", *self.args(), "--out", str(out)]

    def progress(self, out: Path) -> int:
        meta = safetensors_meta(out / "checkpoint.safetensors")
        try:
            return int(json.loads(meta["hwnas_supernet"])["state"]["global_step"]) if meta else 0
        except (KeyError, TypeError, ValueError):
            return 0

    def units(self, out: Path) -> dict[str, Any]:
        lines = jsonl(out / "metrics.jsonl")
        epochs = Counter(r.get("epoch") for r in lines)
        # an epoch recorded twice was trained twice: its identity is the number of its lines
        return {f"epoch {e}": n for e, n in epochs.items()}

    def redone(self, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
        return [k for k, n in after.items() if n > 1 and before.get(k, 0) < n]

    def problems(self, out: Path) -> list[str]:
        found = [json_problem(out / "metrics.jsonl", lines=True)]
        ckpt = out / "checkpoint.safetensors"
        if ckpt.exists() and safetensors_meta(ckpt) is None:
            found.append("checkpoint.safetensors: unreadable header")
        return [p for p in found if p]

    def result(self, out: Path) -> Any:
        from safetensors import safe_open

        with safe_open(str(out / "checkpoint.safetensors"), framework="pt") as fh:
            tensors = {k: hashlib.sha256(fh.get_tensor(k).numpy().tobytes()).hexdigest()[:16] for k in fh.keys()}
        metrics = [
            {k: v for k, v in r.items() if not any(w in k for w in ("time", "per_s"))}
            for r in jsonl(out / "metrics.jsonl")
        ]
        return {"tensors": tensors, "metrics": metrics}


class Search(Command):
    name = "search"
    unit = "arch"
    budget = 12

    def argv(self, out: Path, seed: int = 0) -> list[str]:
        return [
            "search",
            "--space",
            "nb201",
            "--searcher",
            "random",
            "--seed",
            str(seed),
            "--budget",
            str(self.budget),
            "--storage",
            f"sqlite:///{out / 'study.db'}",
            "--study",
            "s",
            "--delay",
            "0.4",
            "--quiet",
            "--json",
            "--out",
            str(out / "result"),
        ]

    def _trials(self, out: Path) -> list[tuple[int, str, str, bool]]:
        """(number, state, params JSON, cached) of every trial of the study."""
        db = out / "study.db"
        rows = query(db, "SELECT trial_id, number, state FROM trials ORDER BY number")
        params: dict[int, dict[str, Any]] = {}
        for tid, name, value, dist in query(
            db, "SELECT trial_id, param_name, param_value, distribution_json FROM trial_params"
        ):
            try:
                choices = json.loads(dist)["attributes"]["choices"]
                params.setdefault(tid, {})[name] = choices[int(value)]
            except (ValueError, KeyError, IndexError, TypeError):
                params.setdefault(tid, {})[name] = value
        cached = {
            tid
            for tid, key, val in query(db, "SELECT trial_id, key, value_json FROM trial_user_attributes")
            if key == "hwnas:cached" and val == "true"
        }
        return [(n, st, json.dumps(params.get(tid, {}), sort_keys=True), tid in cached) for tid, n, st in rows]

    def progress(self, out: Path) -> int:
        return sum(1 for _, st, _, c in self._trials(out) if st == "COMPLETE" and not c)

    def units(self, out: Path) -> dict[str, Any]:
        evaluated = Counter(p for _, st, p, c in self._trials(out) if st == "COMPLETE" and not c)
        return dict(evaluated)  # identity: how often the arch was evaluated (more than once: redone)

    def redone(self, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
        return [k for k, n in after.items() if n > 1 and before.get(k, 0) < n]

    def problems(self, out: Path) -> list[str]:
        found = [sqlite_problem(out / "study.db")]
        found += [json_problem(p) for p in (out / "result").glob("*.json")] if (out / "result").exists() else []
        return [p for p in found if p]

    def leftovers(self, out: Path) -> list[str]:
        stuck = [f"trial {n} {st}" for n, st, _, _ in self._trials(out) if st in ("RUNNING", "WAITING")]
        return temp_files(out) + stuck

    def result(self, out: Path) -> Any:
        summary = json.loads((out / "result" / "summary.json").read_text(encoding="utf-8"))
        best = json.loads((out / "result" / "best.json").read_text(encoding="utf-8"))
        return {
            "archs": sorted(self.units(out)),
            "best": best,
            "summary": strip({k: v for k, v in summary.items() if k not in ("study", "files")}),
        }


class SearchShared(Search):
    """Three workers on one study; a kill stops one worker, which is restarted at once."""

    name = "search-shared"
    budget = 18
    workers = 3

    def argv(self, out: Path, seed: int = 0) -> list[str]:
        argv = super().argv(out, seed)
        i = argv.index("--out")
        return argv[:i] + argv[i + 2 :]

    def problems(self, out: Path) -> list[str]:
        return [p for p in [sqlite_problem(out / "study.db")] if p]

    def result(self, out: Path) -> Any:
        evaluated = self.units(out)
        return {"distinct archs evaluated": len(evaluated), "evaluated twice": sum(n > 1 for n in evaluated.values())}


class Run(Command):
    name = "run"
    unit = "unit"
    progress_unit = "checkpointed steps + evaluations + exports + report"

    def setup(self) -> None:
        """The LUT comes from ``nas profile`` (the profile campaign's command, run here once):
        latencies are never measured twice alike, so the reference and the killed runs share it."""
        from lut_test_helpers import write_fast_target

        self.inputs.mkdir(parents=True, exist_ok=True)
        space = self.inputs / "tiny.yaml"
        space.write_text(_tiny_space_yaml(8))
        target = write_fast_target(self.inputs, "int8", min_time=0.0, name="fast-int8")
        lut = self.inputs / "lut.db"
        if not lut.exists():
            res = self.b.run_once(
                [
                    "profile",
                    "--space",
                    str(space),
                    "--target",
                    str(target),
                    "--out",
                    str(lut),
                    "--networks",
                    "2",
                    "--retry-passes",
                    "0",
                    "--no-progress",
                ],
                self.home,
            )
            if res.returncode != 0:
                raise SystemExit(f"run: profiling the LUT failed: {res.stderr[-2000:]}")
        import yaml

        cfg = {
            "name": "kill-campaign",
            "seed": 0,
            "space": {"name": str(space)},
            "data": {"name": "digits", "train_limit": 256, "test_limit": 64, "val_fraction": 0.25},
            "target": {"name": str(target), "fp32": None},
            "lut": {"path": str(lut), "networks": 2, "retry_passes": 0},
            "supernet": {"epochs": 1, "qat_epochs": 1, "batch_size": 32, "num_random": 1, "threads": 1},
            "search": {"searcher": "random", "budget": 4, "latency_budgets": [10.0], "val_limit": 32},
            "export": {"formats": ["onnx-int8"]},
            "report": {"random_subnets": 2, "baselines": []},
        }
        self.config = self.inputs / "run.yaml"
        self.config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")

    def argv(self, out: Path) -> list[str]:
        return ["run", str(self.config), "--out", str(out / "run"), "--no-progress"]

    def progress(self, out: Path) -> int:
        run = out / "run"
        meta = safetensors_meta(run / "supernet" / "checkpoint.safetensors")
        try:
            steps = int(json.loads(meta["hwnas_supernet"])["state"]["global_step"]) if meta else 0
        except (KeyError, TypeError, ValueError):
            steps = 0
        evals = len(jsonl(run / "search" / "evals.jsonl"))
        exports = len(list((run / "export").glob("*/model.json")))
        return steps + evals + exports + int((run / "report" / "report.json").exists())

    def units(self, out: Path) -> dict[str, Any]:
        run = out / "run"
        found: dict[str, Any] = {}
        for r in jsonl(run / "supernet" / "metrics.jsonl"):
            key = f"epoch {r.get('epoch')}"
            found[key] = found.get(key, 0) + 1
        for r in jsonl(run / "search" / "evals.jsonl"):
            key = "eval " + json.dumps(
                {k: v for k, v in r.items() if k in ("key", "arch", "arch_id", "precision", "val_limit")},
                sort_keys=True,
            )
            found[key] = found.get(key, 0) + 1
        for p in (run / "export").glob("*/model.json"):
            found[f"export {p.parent.name}"] = p.stat().st_mtime_ns
        return found

    def redone(self, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
        out = []
        for k, v in after.items():
            if k.startswith("export "):
                if k in before and before[k] != v:
                    out.append(k)
            elif v > 1 and before.get(k, 0) < v:
                out.append(k)
        return out

    def problems(self, out: Path) -> list[str]:
        run = out / "run"
        found = [
            json_problem(run / "supernet" / "metrics.jsonl", lines=True),
            json_problem(run / "search" / "evals.jsonl", lines=True),
            json_problem(run / "report" / "report.json"),
            sqlite_problem(run / "lut" / "lut.db"),
        ]
        found += [json_problem(p) for p in run.rglob("*.json")] if run.exists() else []
        return sorted({p for p in found if p})

    def finished(self, rc: int | None, log: str) -> bool:
        """``nas run`` ends with exit 1 and ``verification failed for`` when an export missed a check but
        every stage finished (see ``nas/cli/commands/run.py``). At this toy scale (0.02 ms models, a LUT
        of two networks without a fitted correction, a loaded host) the measured latency is routinely
        more than the 10 % tolerance off the LUT's sum, a fact about the toy model, not about resuming:
        such an end counts as finished, and :meth:`result` leaves the latency verdicts out."""
        return rc == 0 or (rc == 1 and "nas run: verification failed for" in log)

    def result(self, out: Path) -> Any:
        report = strip(json.loads((out / "run" / "report" / "report.json").read_text(encoding="utf-8")))
        for e in report.get("exports", []):
            for k in RUN_LATENCY_VERDICTS:  # verdicts of a measured latency (strip leaves the latencies out)
                e.pop(k, None)
        return report

    def round_units(self, out: Path, logs: list[str]) -> dict[str, dict[str, int]]:
        """run_kill_acceptance's count of finished and redone units per stage (the LUT is given: copied)."""
        units = count_units(out / "run", logs)
        units.pop("lut", None)
        return units


#: report.json fields of an export that follow from its measured latency, which no two runs share
RUN_LATENCY_VERDICTS = ("passed", "within_10pct")


class Teacher:
    """A supernet checkpoint of the toy spaceevo hyper-space on digits (untrained: a random teacher,
    as tests/nas/spaceevo/test_blockkd.py's), made once in ``folder``."""

    @staticmethod
    def make(folder: Path) -> Path:
        return write_random_teacher(folder, TINY_SPACEEVO)


class SpaceEvoQuality(Command):
    name = "spaceevo-quality"
    unit = "candidate stage"

    def setup(self) -> None:
        self.teacher = Teacher.make(self.inputs / "teacher")

    def argv(self, out: Path) -> list[str]:
        return [
            "spaceevo-quality",
            "--teacher",
            str(self.teacher),
            "--space-args",
            json.dumps(TINY_SPACEEVO),
            "--stages",
            "2",
            "--windows",
            "w0",
            "--block-types",
            "mbv2,fused",
            "--epochs",
            "1",
            "--qat-epochs",
            "1",
            "--batch-size",
            "16",
            "--eval-samples",
            "2",
            "--eval-images",
            "32",
            "--threads",
            "1",
            "--no-progress",
            "--seed",
            "5",
            "--train-limit",
            "48",
            "--checkpoint-every",
            "2",
            "--out",
            str(out / "quality.db"),
        ]

    def units(self, out: Path) -> dict[str, Any]:
        rows = query(out / "quality.db", "SELECT stage, block_type, window, finished FROM candidates")
        return {f"stage{s} {bt} {w}": f for s, bt, w, f in rows}

    def problems(self, out: Path) -> list[str]:
        return [p for p in [sqlite_problem(out / "quality.db")] if p]

    def leftovers(self, out: Path) -> list[str]:
        work = out / "quality.db.work"
        left = [str(p.relative_to(out)) for p in work.rglob("*") if p.is_file()] if work.exists() else []
        return temp_files(out) + left

    def result(self, out: Path) -> Any:
        rows = query(
            out / "quality.db",
            "SELECT stage, block_type, window, choices, nsr, role FROM samples ORDER BY stage, block_type, window, choices",
        )
        return [list(r) for r in rows]


class EvolveSpace(Command):
    name = "evolve-space"
    unit = "cycle"

    def setup(self) -> None:
        from nas.spaceevo.quality import QualityStore
        from tests.nas.spaceevo.spaceevo_helpers import FP32_TARGET, TARGET, FakeQuality, small_hyper, write_lut

        self.inputs.mkdir(parents=True, exist_ok=True)
        self.target = TARGET
        hyper = small_hyper()
        self.lut = self.inputs / "lut.db"
        if not self.lut.exists():
            write_lut(self.lut, hyper.space, (TARGET, FP32_TARGET))
            fake = FakeQuality(hyper, n=10)
            with QualityStore(self.inputs / "lut.quality.db") as store:
                store.register_run("fake", {"hyperspace": hyper.name, "hash": hyper.hash})
                for spec in hyper.stages:
                    for bt in spec.block_types:
                        for win in spec.windows:
                            samples = fake.samples(spec.number, bt, win)
                            store.put("fake", spec.number, bt, win, [(c, v, "random") for c, v in samples])
        from tests.nas.spaceevo.spaceevo_helpers import BLOCK_TYPES

        self.space_args = json.dumps({"block_types": list(BLOCK_TYPES), "kernels": [3, 5], "expands": [3.0, 6.0]})

    def argv(self, out: Path) -> list[str]:
        return [
            "evolve-space",
            "--hyperspace",
            "spaceevo",
            "--space-args",
            self.space_args,
            "--data",
            "fashion-mnist",
            "--lut",
            str(self.lut),
            "--target",
            self.target,
            "--budgets",
            "1,2",
            "--out",
            str(out / "evolved.yaml"),
            "--population",
            "10",
            "--sample",
            "3",
            "--cycles",
            "40",
            "--samples",
            "2000",
            "--checkpoint-every",
            "1",
            "--no-progress",
        ]

    def _state(self, out: Path) -> dict[str, Any]:
        try:
            return json.loads((out / "evolved.state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def progress(self, out: Path) -> int:
        return int(self._state(out).get("cycle", 0) or 0)

    def units(self, out: Path) -> dict[str, Any]:
        hist = self._state(out).get("history") or []
        return {f"candidate {i}": json.dumps(h, sort_keys=True) for i, h in enumerate(hist)}

    def problems(self, out: Path) -> list[str]:
        found = [json_problem(out / n) for n in ("evolved.state.json", "evolved.report.json")]
        if (out / "evolved.yaml").exists():
            import yaml

            try:
                yaml.safe_load((out / "evolved.yaml").read_text(encoding="utf-8"))
            except yaml.YAMLError:
                found.append("evolved.yaml: not whole YAML")
        return [p for p in found if p]

    def result(self, out: Path) -> Any:
        report = json.loads((out / "evolved.report.json").read_text(encoding="utf-8"))
        report.pop("out", None)  # the output's own path
        return {"space": (out / "evolved.yaml").read_text(encoding="utf-8"), "report": strip(report)}


class Export(Command):
    name = "export"
    unit = "export"
    resumable = False

    def setup(self) -> None:
        from lut_test_helpers import write_fast_target

        self.inputs.mkdir(parents=True, exist_ok=True)
        self.target = write_fast_target(self.inputs, "int8", min_time=0.0, name="fast-int8")
        self.checkpoint = Teacher.make(self.inputs / "supernet")

    def argv(self, out: Path) -> list[str]:
        return [
            "export",
            "--checkpoint",
            str(self.checkpoint),
            "--arch",
            "largest",
            "--out",
            str(out / "export"),
            "--target",
            str(self.target),
            "--format",
            "onnx-int8",
            "--test-limit",
            "32",
            "--calib-batches",
            "1",
            "--json",
        ]

    def progress(self, out: Path) -> int:
        return int((out / "export" / "model.json").exists())

    def units(self, out: Path) -> dict[str, Any]:
        p = out / "export" / "model.json"
        return {"model.json": p.stat().st_mtime_ns} if p.exists() else {}

    def redone(self, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
        return []  # not resumable: a rerun redoes the export by design

    def problems(self, out: Path) -> list[str]:
        folder = out / "export"
        p = folder / "model.json"
        if not p.exists():
            return []
        bad = json_problem(p)
        if bad:
            return [bad]
        rec = json.loads(p.read_text(encoding="utf-8"))
        return [
            f"{rel}: does not match model.json's sha256"
            for rel, want in rec.get("sha256", {}).items()
            if not (folder / rel).is_file() or sha(folder / rel) != want
        ]

    def result(self, out: Path) -> Any:
        rec = json.loads((out / "export" / "model.json").read_text(encoding="utf-8"))
        volatile = ("sha256", "latency_ms", "latency_stats", "host", "versions")  # measured, or this machine's
        rec = {k: v for k, v in rec.items() if k not in volatile}
        rec["checks"] = {k: v for k, v in rec.get("checks", {}).items() if "latency" not in k and k != "passed"}
        return strip(rec)


REGISTRY: dict[str, type[Command]] = {
    c.name: c for c in (Profile, TrainSupernet, Search, SearchShared, Run, SpaceEvoQuality, EvolveSpace, Export)
}


# ------------------------------------------------------------------------------------------------
# the campaign
# ------------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    killed: bool
    signal: str | None
    rc: int | None
    seconds: float
    traceback: bool = False
    hung: bool = False
    log: str = ""


@dataclass
class Tally:
    command: str
    unit: str
    resumable: bool
    kills: Counter = field(default_factory=Counter)
    exits: Counter = field(default_factory=Counter)
    rounds: int = 0
    resumed_ok: int = 0
    attempts: int = 0
    units: int = 0
    redone: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    tracebacks: int = 0
    hangs: int = 0
    persistent_tmp: list[str] = field(default_factory=list)
    reference_s: float = 0.0
    seconds: float = 0.0

    def row(self) -> dict[str, Any]:
        return {
            "kills": sum(self.kills.values()),
            "by signal": dict(self.kills),
            "rounds": self.rounds,
            "resumed OK": self.resumed_ok,
            f"{self.unit}s finished": self.units,
            "redone": len(self.redone) if self.resumable else "n/a",
            "lost": len(self.lost),
            "corrupt": len(self.corrupt),
            "leftovers": len(self.leftovers),
            "differences": len(self.differences),
            "tracebacks": self.tracebacks,
            "hangs": self.hangs,
        }

    @property
    def ok(self) -> bool:
        return (
            not (self.redone if self.resumable else [])
            and not self.lost
            and not self.corrupt
            and not self.leftovers
            and not self.differences
            and not self.failures
            and not self.tracebacks
            and not self.hangs
            and self.resumed_ok == self.rounds
        )


class Bench:
    def __init__(self, work: Path, seed: int, kills: int, max_per_round: int, grace_s: float, timeout_s: float):
        self.work = work
        self.rng = random.Random(seed)
        self.kills = kills
        self.max_per_round = max_per_round
        self.grace_s = grace_s
        self.timeout_s = timeout_s
        #: per command: start-up and per-unit wall times (the kill moments are drawn from them)
        self.est: dict[str, dict[str, float]] = {}

    def env(self, home: Path) -> dict[str, str]:
        tmp = home / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        cache = home / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(tmp), "HWNAS_CACHE_DIR": str(cache), "COLUMNS": "200"}
        env.setdefault("OMP_NUM_THREADS", "1")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        return env

    def run_once(self, argv: list[str], home: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*nas_cmd(), *argv], capture_output=True, text=True, env=self.env(home), timeout=self.timeout_s
        )

    # -- one process ------------------------------------------------------------------------------
    def attempt(
        self,
        cmd: Command,
        argv: list[str],
        out: Path,
        log_path: Path,
        kill: tuple[int, float, int] | None,
    ) -> Outcome:
        """Run ``nas ARGV``; with ``kill = (units, delay, signal)``: once ``units`` units are
        finished, wait ``delay`` seconds more, then send the signal."""
        start = time.monotonic()
        p0 = last = cmd.progress(out)
        first_s: float | None = None
        last_s: float | None = None
        with open(log_path, "w", encoding="utf-8") as fh:
            proc = subprocess.Popen([*nas_cmd(), *argv], stdout=fh, stderr=subprocess.STDOUT, env=self.env(cmd.home))
            sent: int | None = None
            reached_at: float | None = None
            hung = False
            while proc.poll() is None:
                now = time.monotonic()
                progress = cmd.progress(out)
                if progress > last:
                    first_s = now - start if first_s is None else first_s
                    last, last_s = progress, now - start
                if now - start > self.timeout_s:
                    proc.kill()
                    proc.wait()
                    raise SystemExit(f"{cmd.name}: an attempt ran past {self.timeout_s:.0f} s (log {log_path})")
                if kill is not None and sent is None:
                    units, delay, sig = kill
                    if reached_at is None and progress >= units:
                        reached_at = now
                    if reached_at is not None and now - reached_at >= delay:
                        proc.send_signal(sig)
                        sent = sig
                        try:
                            proc.wait(timeout=self.grace_s if sig != signal.SIGKILL else 60)
                        except subprocess.TimeoutExpired:
                            hung = True
                            proc.kill()
                            proc.wait()
                        break
                time.sleep(0.05)
        log = log_path.read_text(encoding="utf-8", errors="replace")
        seconds = time.monotonic() - start
        if sent is None and cmd.finished(proc.returncode, log):
            self._learn(cmd.name, seconds, first_s, last_s, cmd.progress(out) - p0)
        return Outcome(
            killed=sent is not None,
            signal=signal.Signals(sent).name if sent is not None else None,
            rc=proc.returncode,
            seconds=round(seconds, 2),
            traceback=has_traceback(log),
            hung=hung,
            log=log,
        )

    def _learn(self, name: str, seconds: float, first_s: float | None, last_s: float | None, done: int) -> None:
        """Update the start-up (until the first unit), per-unit and tail (after the last unit: outputs,
        reports) times of ``name`` from an attempt that ran to its end, as this machine's load has them."""
        if first_s is None or last_s is None:
            return
        new = {"startup": first_s, "tail": max(0.0, seconds - last_s)}
        if done >= 2:
            new["unit"] = max(0.02, (last_s - first_s) / (done - 1))
        est = self.est.get(name)
        if est is None:
            self.est[name] = {"unit": max(0.02, first_s / 4), **new}
            return
        for k, v in new.items():
            est[k] = (est[k] + v) / 2

    def kill_plan(self, cmd: Command, out: Path, total: int, workers: int = 1) -> tuple[int, float, int]:
        """A random moment, half of the time uniform over the attempt's expected duration (start-up and
        the remaining units), else after a random number of further units and a random share of a
        unit's time (of the start-up and the first unit when no further unit is awaited). The
        start-up and unit times are the reference's, updated by every attempt that ran to its end."""
        est = self.est[cmd.name]
        unit = est["unit"] / workers
        done = cmd.progress(out)
        remaining = max(1, total - done)
        sig = self.rng.choice(SIGNALS)
        if self.rng.random() < 0.5:
            return done, self.rng.uniform(0, est["startup"] + unit * remaining + 0.5 * est["tail"]), sig
        more = self.rng.randrange(remaining)
        return done + more, self.rng.uniform(0, unit if more else est["startup"] + unit), sig

    # -- one command ------------------------------------------------------------------------------
    def reference(self, cmd: Command) -> tuple[Path, int]:
        """The uninterrupted run: its folder and its number of progress steps (its times: ``self.est``)."""
        out = cmd.home / "reference"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        log = out.parent / "reference.log"
        res = self.attempt(cmd, cmd.argv(out), out, log, None)
        if not cmd.finished(res.rc, res.log):
            raise SystemExit(f"{cmd.name}: the reference run failed (rc {res.rc}): {res.log[-3000:]}")
        total = max(1, cmd.progress(out))
        self.est.setdefault(cmd.name, {"startup": res.seconds / 2, "unit": res.seconds / 2 / total, "tail": 0.0})
        return out, total

    def campaign(self, name: str) -> Tally:
        cmd = REGISTRY[name](self)
        cmd.home.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        cmd.setup()
        tally = Tally(name, cmd.unit, cmd.resumable)
        self.est.pop(name, None)
        ref_out, total = self.reference(cmd)
        est = self.est[name]
        tally.reference_s = round(time.monotonic() - t0, 1)
        reference = cmd.result(ref_out) if name != "search-shared" else None
        cmd.persistent = frozenset(p.name for p in tmp_leftovers(cmd.home / "tmp"))
        tally.persistent_tmp = sorted(cmd.persistent)
        print(
            f"[{name}] reference: {total} progress steps ({cmd.progress_unit}), start-up {est['startup']:.1f} s, "
            f"{est['unit']:.2f} s per step, {est['tail']:.1f} s after the last",
            flush=True,
        )
        while sum(tally.kills.values()) < self.kills:
            tally.rounds += 1
            out = cmd.home / f"round{tally.rounds}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            if isinstance(cmd, SearchShared):
                ok = self.shared_round(cmd, out, total, tally)
            else:
                ok = self.round(cmd, out, total, tally, reference)
            tally.resumed_ok += int(ok)
            print(
                f"[{name}] round {tally.rounds}: {'OK' if ok else 'FAILED'}; kills so far "
                f"{sum(tally.kills.values())}/{self.kills}",
                flush=True,
            )
            if not ok and len(tally.failures) > 5:
                break
        tally.seconds = round(time.monotonic() - t0, 1)
        return tally

    def _note_exit(self, tally: Tally, res: Outcome, where: str) -> None:
        tally.attempts += 1
        if res.killed:
            tally.kills[res.signal] += 1
            tally.exits[f"{res.signal} -> {res.rc}"] += 1
        if res.traceback:
            tally.tracebacks += 1
            tally.failures.append(f"{where}: traceback after {res.signal or 'no signal'}: {res.log[-1500:]}")
        if res.hung:
            tally.hangs += 1
            tally.failures.append(f"{where}: still running {self.grace_s:.0f} s after {res.signal}")

    def round(
        self,
        cmd: Command,
        out: Path,
        total: int,
        tally: Tally,
        reference: Any,
    ) -> bool:
        logs: list[str] = []
        kills = 0
        problems_before = len(tally.failures) + len(tally.corrupt) + len(tally.redone) + len(tally.lost)
        while True:
            before = cmd.units(out)
            kill = None
            if kills < self.max_per_round and sum(tally.kills.values()) < self.kills:
                kill = self.kill_plan(cmd, out, total)
            where = f"round {tally.rounds} attempt {len(logs) + 1}"
            res = self.attempt(cmd, cmd.argv(out), out, out.parent / f"{out.name}-attempt{len(logs) + 1}.log", kill)
            logs.append(res.log)
            self._note_exit(tally, res, where)
            after = cmd.units(out)
            if cmd.resumable:
                tally.redone += [f"{where}: {k}" for k in cmd.redone(before, after)]
                tally.lost += [f"{where}: {k}" for k in before if k not in after]
            tally.corrupt += [f"{where}: {p}" for p in cmd.problems(out)]
            if res.killed:
                kills += 1
                continue
            if not cmd.finished(res.rc, res.log):
                tally.failures.append(f"{where}: exit {res.rc} without a kill: {res.log[-2000:]}")
                return False
            break
        tally.units += len(cmd.units(out)) if cmd.resumable else 1
        tally.leftovers += [f"round {tally.rounds}: {x}" for x in cmd.leftovers(out)]
        tmp = cmd.home / "tmp"
        tally.leftovers += [f"round {tally.rounds}: $TMPDIR/{p.name}" for p in tmp_leftovers(tmp, cmd.persistent)]
        clear_tmp(tmp, cmd.persistent)  # counted: cleared so that the next round starts clean
        if isinstance(cmd, Run):
            units = cmd.round_units(out, logs)
            tally.redone += [
                f"round {tally.rounds}: {s}: {u['redone']} redone" for s, u in units.items() if u["redone"]
            ]
        differences = diff(cmd.result(out), reference)
        tally.differences += [f"round {tally.rounds}: {d}" for d in differences[:10]]
        after = len(tally.failures) + len(tally.corrupt) + len(tally.redone) + len(tally.lost)
        return (
            not differences
            and after == problems_before
            and not any(x.startswith(f"round {tally.rounds}:") for x in tally.leftovers)
        )

    def shared_round(self, cmd: SearchShared, out: Path, total: int, tally: Tally) -> bool:
        """``cmd.workers`` workers with seeds 1..W; kills hit a random live worker, restarted at once."""
        problems_before = len(tally.failures) + len(tally.corrupt) + len(tally.redone) + len(tally.lost)
        procs: dict[int, tuple[subprocess.Popen, Any, Path]] = {}
        n_logs = 0

        def start(w: int) -> None:
            nonlocal n_logs
            n_logs += 1
            log = out.parent / f"{out.name}-w{w}-{n_logs}.log"
            fh = open(log, "w", encoding="utf-8")  # noqa: SIM115 - closed when the worker ends
            p = subprocess.Popen(
                [*nas_cmd(), *cmd.argv(out, seed=w)], stdout=fh, stderr=subprocess.STDOUT, env=self.env(cmd.home)
            )
            procs[w] = (p, fh, log)

        def reap(w: int, sig: str | None, hung: bool = False) -> None:
            p, fh, log = procs.pop(w)
            fh.close()
            text = log.read_text(encoding="utf-8", errors="replace")
            res = Outcome(sig is not None, sig, p.returncode, 0.0, has_traceback(text), hung, text)
            self._note_exit(tally, res, f"round {tally.rounds} worker {w}")
            if sig is None and p.returncode != 0:
                tally.failures.append(f"round {tally.rounds} worker {w}: exit {p.returncode}: {text[-2000:]}")

        for w in range(1, cmd.workers + 1):
            start(w)
        kills = 0
        started = time.monotonic()
        while procs:
            if time.monotonic() - started > self.timeout_s:
                for p, _, _ in procs.values():
                    p.kill()
                raise SystemExit(f"{cmd.name}: a round ran past {self.timeout_s:.0f} s")
            for w in [w for w, (p, _, _) in procs.items() if p.poll() is not None]:
                reap(w, None)
            if not procs:
                break
            if kills < self.max_per_round and sum(tally.kills.values()) < self.kills:
                units, delay, sig = self.kill_plan(cmd, out, total, workers=cmd.workers)
                deadline = None
                while procs and all(p.poll() is None for p, _, _ in procs.values()):
                    if deadline is None and cmd.progress(out) >= units:
                        deadline = time.monotonic() + delay
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    time.sleep(0.05)
                live = [w for w, (p, _, _) in procs.items() if p.poll() is None]
                if deadline is None or not live:
                    continue
                w = self.rng.choice(live)
                before = cmd.units(out)
                p = procs[w][0]
                p.send_signal(sig)
                hung = False
                try:
                    p.wait(timeout=self.grace_s if sig != signal.SIGKILL else 60)
                except subprocess.TimeoutExpired:
                    hung = True
                    p.kill()
                    p.wait()
                reap(w, signal.Signals(sig).name, hung)
                kills += 1
                after = cmd.units(out)
                tally.redone += [f"round {tally.rounds} kill {kills}: {k}" for k in cmd.redone(before, after)]
                tally.lost += [f"round {tally.rounds} kill {kills}: {k}" for k in before if k not in after]
                tally.corrupt += [f"round {tally.rounds} kill {kills}: {x}" for x in cmd.problems(out)]
                start(w)
            else:
                time.sleep(0.1)
        evaluated = cmd.units(out)
        tally.units += len(evaluated)
        tally.redone += [f"round {tally.rounds}: {k} evaluated {n} times" for k, n in evaluated.items() if n > 1]
        if len(evaluated) != cmd.budget:
            tally.differences.append(f"round {tally.rounds}: {len(evaluated)} archs evaluated, budget {cmd.budget}")
        tally.leftovers += [f"round {tally.rounds}: {x}" for x in cmd.leftovers(out)]
        tmp = cmd.home / "tmp"
        tally.leftovers += [f"round {tally.rounds}: $TMPDIR/{p.name}" for p in tmp_leftovers(tmp, cmd.persistent)]
        clear_tmp(tmp, cmd.persistent)  # counted: cleared so that the next round starts clean
        after = len(tally.failures) + len(tally.corrupt) + len(tally.redone) + len(tally.lost)
        return (
            after == problems_before
            and len(evaluated) == cmd.budget
            and not any(x.startswith(f"round {tally.rounds}:") for x in tally.leftovers)
        )


def print_table(tallies: list[dict[str, Any]]) -> None:
    cols = [
        "command",
        "kills",
        "rounds",
        "resumed OK",
        "units",
        "redone",
        "lost",
        "corrupt",
        "leftovers",
        "differences",
        "tracebacks",
        "hangs",
    ]
    print()
    print(" | ".join(cols))
    print(" | ".join("---" for _ in cols))
    for t in tallies:
        row = t["row"]
        units = next(v for k, v in row.items() if k.endswith("s finished"))
        by = ", ".join(f"{k.replace('SIG', '')} {v}" for k, v in sorted(row["by signal"].items()))
        kills = f"{row['kills']} ({by})"
        cells = [t["command"], kills, row["rounds"], row["resumed OK"], f"{units} {t['unit']}s", row["redone"]]
        cells += [row[c] for c in cols[6:]]
        print(" | ".join(str(c) for c in cells))
    print()
    for t in tallies:
        exits = ", ".join(f"{k}: {v}" for k, v in sorted(t["exits"].items()))
        print(f"{t['command']}: exit codes after a signal: {exits or '-'}; {t['seconds']:.0f} s")
        if t.get("persistent_tmp"):
            print(f"  left in $TMPDIR by the uninterrupted run too (not counted): {', '.join(t['persistent_tmp'])}")
        for key in ("redone", "lost", "corrupt", "leftovers", "differences", "failures"):
            for x in t[key][:5]:
                print(f"  {key}: {x[:400]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20, help="kills per command (default 20)")
    ap.add_argument("--commands", default=",".join(COMMANDS), help=f"comma-separated, of {', '.join(COMMANDS)}")
    ap.add_argument("--work", default="runs/kill_campaign", help="work folder (default runs/kill_campaign)")
    ap.add_argument("--json", default=None, help="result file (default WORK/result.json); its commands are skipped")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments and signals")
    ap.add_argument("--max-per-round", type=int, default=6, help="kills before a run is let finish (default 6)")
    ap.add_argument("--grace", type=float, default=300.0, help="seconds a SIGTERM / SIGINT may take (default 300)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per attempt (default 3600)")
    args = ap.parse_args(argv)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # a background job: the commands must see SIGINT
        signal.signal(signal.SIGINT, signal.default_int_handler)
    names = [c.strip() for c in args.commands.split(",") if c.strip()]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        ap.error(f"unknown command {unknown[0]!r} (of {', '.join(COMMANDS)})")
    if args.kills < 1:
        ap.error("--kills must be >= 1")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    result_path = Path(args.json) if args.json else work / "result.json"
    results: dict[str, Any] = {}
    if result_path.exists():
        results = json.loads(result_path.read_text(encoding="utf-8"))
    bench = Bench(work, args.seed, args.kills, args.max_per_round, args.grace, args.timeout)
    for name in names:
        if name in results.get("commands", {}):
            print(f"[{name}] already in {result_path}: skipped", flush=True)
            continue
        tally = bench.campaign(name)
        rec = {k: dict(v) if isinstance(v, Counter) else v for k, v in vars(tally).items()}
        rec["row"] = tally.row()
        rec["ok"] = tally.ok
        results.setdefault("commands", {})[name] = rec
        results["kills_per_command"] = args.kills
        tmp = result_path.with_name(f".{result_path.name}.tmp")
        tmp.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, result_path)
    done = [results["commands"][n] for n in names if n in results.get("commands", {})]
    print_table(done)
    ok = all(t["ok"] for t in done)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

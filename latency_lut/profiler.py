"""Measure every block of a space (or of an exported folder) on a target into a LUT.

Device side: with an exported folder (``nas profile DIR --target T --out lut.db``) this
module needs numpy, onnx and the engine only, never torch. The one-step mode
(:func:`profile_space`) exports blocks on the fly and so needs torch.

Resumable: each block's row is committed as soon as it is measured; a rerun (after a
crash or a SIGKILL) skips every block the LUT already holds for the target's fingerprint,
so no block is measured twice across runs. Several profilers may share one LUT: a block
another writer finished in the meantime is skipped, and another writer's rows are never
overwritten. Within a run, models the harness flagged as measured while the machine was
busy are measured again in later passes (``retry_passes``); a re-measurement replaces the
run's own row only when it is lower. Whole networks (for the learned correction) are measured
``1 + retry_passes`` times at points spread over the pass through the blocks, keeping the lowest.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from hw_profiles import Fingerprint, Stats, create_engine, load_target
from hw_profiles.errors import MeasurementError
from hw_profiles.harness import QuietGate
from latency_lut.correction import fit_correction
from latency_lut.db import LatencyDB, open_lut
from latency_lut.errors import LUTError, ManifestError
from latency_lut.formats import UINT8_IO_FORMATS, model_filename
from latency_lut.keys import block_family
from latency_lut.manifest import load_manifest
from latency_lut.progress import progress_bar
from latency_lut.workdir import sigterm_as_interrupt, work_folder

#: passes over the models measured while the machine was busy (see :func:`profile_folder`)
DEFAULT_RETRY_PASSES = 3

__all__ = [
    "DEFAULT_RETRY_PASSES",
    "BlockJob",
    "MeasuringEngine",
    "NetworkJob",
    "ProfileResult",
    "Profiler",
    "fit_and_store_correction",
    "profile_folder",
    "profile_space",
    "raw_sum",
    "schedule",
]


@dataclass(frozen=True)
class BlockJob:
    """One block (or pseudo-block) to measure into the LUT's row ``key``."""

    key: str
    op: str
    family: str
    path: Callable[[], str]  # produces the model file (exporting it when needed)
    cleanup: bool = False  # delete the file after measuring


@dataclass(frozen=True)
class NetworkJob:
    """One whole network to measure (for the learned correction): ``arch`` made of the blocks ``keys``."""

    arch_id: str
    arch: dict[str, Any]
    keys: list[str]
    path: Callable[[], str]  # produces the model file (exporting it when needed)
    cleanup: bool = False  # delete the file after measuring

    @property
    def key(self) -> str:
        return f"network {self.arch_id}"


Job = BlockJob | NetworkJob


class MeasuringEngine(Protocol):
    """What the profiler needs of a :class:`hw_profiles.Engine`: it measures a model file. An
    engine may also have a quiet gate (``gate()``, ``noise_report()``), which the profiler uses
    when it is there."""

    def measure_file(self, path: str) -> Stats: ...


def _file_at(path: str | os.PathLike[str]) -> Callable[[], str]:
    """A job's ``path`` for a model file that exists already."""
    return functools.partial(os.fspath, path)


@dataclass
class ProfileResult:
    lut: str
    target: str
    fingerprint: str
    total: int
    measured: int
    skipped: int
    networks: int
    failed: list[str] = field(default_factory=list)
    correction: dict[str, Any] | None = None
    elapsed_s: float = 0.0
    remeasured: int = 0  # repeated measurements: of models measured while busy, and whole networks' later ones
    improved: int = 0  # of those, how many gave a lower estimate (stored)
    unstable: int = 0  # models still flagged busy after every retry pass
    calibration: dict[str, Any] | None = None  # the host's noise model and the measurement effort (see _effort)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def raw_sum(lat: dict[str, float], keys: Iterable[str], extras: Iterable[str], overhead: str | None) -> float:
    """The raw block-sum prediction of one network (see :mod:`latency_lut.correction`)."""
    keys = list(keys) + list(extras)
    total = sum(lat[k] for k in keys)
    if overhead is not None and overhead in lat:
        total -= (len(keys) - 1) * lat[overhead]
    return total


def fit_and_store_correction(
    db: LatencyDB, fp_id: str, space_sig: str, extras: list[str], overhead: str | None
) -> dict | None:
    """Fit the correction on the calibration networks the LUT holds for (fp, space) and store it."""
    nets = db.networks(fp_id, space_sig)
    lat = db.latencies(fp_id)
    usable = [n for n in nets if all(k in lat for k in n["keys"] + extras)]
    if not usable:
        return None
    raw = [raw_sum(lat, n["keys"], extras, overhead) for n in usable]
    model = fit_correction(raw, [len(n["keys"]) for n in usable], [n["median_ms"] for n in usable])
    db.set_correction(fp_id, space_sig, model)
    return model


def _pseudo_keys(fmt: str, entries: list[dict[str, Any]]) -> tuple[list[str], str | None]:
    extras = [e["key"] for e in entries if e.get("role") == "quantize" and fmt in UINT8_IO_FORMATS]
    overhead = next((e["key"] for e in entries if e.get("role") == "overhead"), None)
    return extras, overhead


def schedule(blocks: Sequence[BlockJob], networks: Sequence[NetworkJob], rounds: int) -> list[tuple[Job, bool]]:
    """The order of one pass: the blocks in order, with each network's ``rounds`` measurements
    spread evenly among them (round r of every network before round r + 1 of any); ``(job, first
    measurement of it?)``."""
    out: list[tuple[Job, bool]] = [(b, True) for b in blocks]
    visits: list[tuple[Job, bool]] = [(net, r == 0) for r in range(max(rounds, 1)) for net in networks]
    for k in reversed(range(len(visits))):  # from the back, so earlier positions stay valid
        at = (k + 1) * len(blocks) // (len(visits) + 1)
        out.insert(at, visits[k])
    return out


@dataclass
class _NetworkVisits:
    """A network's measurements within one pass: its model file is exported at the first one and
    kept until the last one (``left`` to go); ``busy`` while no measurement of it was quiet."""

    job: NetworkJob
    left: int
    path: str | None = None
    busy: bool = True
    measured: bool = False


class Profiler:
    """Measures blocks and whole networks on ``engine`` into the LUT ``db`` for the fingerprint
    ``fp`` and the space ``space_sig``, one run of the LUT per :meth:`run`.

    Models measured while the machine was busy (the harness flags them busy) are stored at
    once, so that a crash loses nothing, and measured again in up to ``retry_passes`` later
    passes, minutes apart: a busy spell on a shared machine can outlast any wait for a single
    model, and a later quiet moment gives the lower, truer estimate. Whole networks are measured
    ``1 + retry_passes`` times, keeping the lowest, at points spread evenly over the pass through
    the blocks (:func:`schedule`), as ``nas lut validate --passes`` measures its networks in passes
    minutes apart: measured back to back, all of a network's measurements could fall into one slow
    spell, and the correction would learn that spell.
    """

    def __init__(
        self,
        engine: MeasuringEngine,
        db: LatencyDB,
        fp: Fingerprint,
        space_sig: str,
        *,
        target: str,
        source: str,
        retry_passes: int = DEFAULT_RETRY_PASSES,
        progress: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.db = db
        self.fp = fp
        self.space_sig = space_sig
        self.target = target
        self.source = source
        self.retry_passes = retry_passes
        self.progress = progress
        self.log: Callable[[str], None] = log or (lambda msg: None)

    # -- one run ------------------------------------------------------------------------------

    def run(self, blocks: Sequence[BlockJob], networks: Sequence[NetworkJob] = ()) -> ProfileResult:
        """Measure every block the LUT lacks for the fingerprint, and every network it lacks for
        the space; blocks and networks the LUT holds already are skipped."""
        start = time.monotonic()
        db, fp = self.db, self.fp
        done = db.done_keys(fp.id)
        have_nets = {n["arch_id"] for n in db.networks(fp.id, self.space_sig)}
        todo_blocks = [b for b in blocks if b.key not in done]
        todo_nets = [n for n in networks if n.arch_id not in have_nets]
        total = len(blocks) + len(networks)
        skipped = total - len(todo_blocks) - len(todo_nets)
        self.result = ProfileResult(
            lut=str(db.path),
            target=self.target,
            fingerprint=fp.id,
            total=total,
            measured=0,
            skipped=skipped,
            networks=0,
        )
        if skipped:
            self.log(f"{skipped} of {total} models already in {db.path} for fingerprint {fp.id}: not measured again")
        self.run_id = db.begin_run(fp.id, self.source)
        gate_of = getattr(self.engine, "gate", None)
        self.gate: QuietGate | None = gate_of() if todo_blocks + todo_nets and gate_of is not None else None
        if self.gate is not None:  # calibrate the noise model now, and say so
            from latency_lut.report import format_calibration

            self.log(f"host noise model: {format_calibration(self._noise_report())}")
        self.pending: list[tuple[Job, str]] = []  # measured while busy: measured again in later passes
        self.effort: list[Stats] = []  # first-pass statistics of the blocks, for the calibration record
        self.level_at: dict[str, float] = {}  # block key -> the gate's quiet level when it was measured
        rounds = 1 + self.retry_passes
        self.visits = {n.key: _NetworkVisits(n, rounds) for n in todo_nets}
        status = "failed"
        try:
            self._first_pass(schedule(todo_blocks, todo_nets, rounds))
            self._queue_late_blocks(todo_blocks)
            self._retry_passes()
            self.result.unstable = len(self.pending)
            status = "finished"
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see latency_lut.workdir.sigterm_as_interrupt)
            status = "interrupted"
            raise
        finally:
            self._end(status)
        self.result.elapsed_s = time.monotonic() - start
        return self.result

    def _first_pass(self, order: list[tuple[Job, bool]]) -> None:
        bar = progress_bar(len(order), "models", enabled=self.progress)
        try:
            for job, first in order:
                if isinstance(job, BlockJob):
                    self._block(job)
                else:
                    self._network(self.visits[job.key], first)
                bar.advance(note=job.key)
        finally:
            bar.close()

    def _measure(self, job: Job, path: str) -> Stats | None:
        try:
            stats = self.engine.measure_file(path)
        except MeasurementError as exc:
            self.result.failed.append(f"{job.key}: {exc}")
            self.log(f"warning: {exc}")
            return None
        return stats

    def _block(self, job: BlockJob) -> None:
        """A block's measurement in the first pass: stored at once, queued again when busy."""
        db, result = self.db, self.result
        if db.has(self.fp.id, job.key):  # another writer finished it meanwhile
            result.skipped += 1
            return
        path = job.path()
        stats = self._measure(job, path)
        if stats is None:
            _cleanup(job, path)
            return
        if self.gate is not None:
            self.level_at[job.key] = self.gate.baseline
        stored = db.insert(self.fp.id, job.key, job.op, job.family, stats, self.run_id)
        result.measured += stored
        result.skipped += not stored
        self.effort.append(stats)
        if stored and stats.busy:
            self.pending.append((job, path))
        else:
            _cleanup(job, path)

    def _network(self, visit: _NetworkVisits, first: bool) -> None:
        """One of a network's measurements in the first pass: the first is stored, later ones
        replace it when lower; after the last one the network is queued again while still busy."""
        if visit.left <= 0:  # its first measurement failed, or another writer had it
            return
        job, db, result = visit.job, self.db, self.result
        if visit.path is None:
            visit.path = job.path()
        stats = self._measure(job, visit.path)
        visit.left -= 1
        if stats is None:
            if first:
                visit.left = 0
        else:
            if first:
                if db.insert_network(self.fp.id, self.space_sig, job.arch_id, job.arch, job.keys, stats, self.run_id):
                    result.networks += 1
                else:
                    visit.left = 0  # another writer measured it
            else:
                result.remeasured += 1
                result.improved += db.improve_network(self.fp.id, self.space_sig, job.arch_id, stats, self.run_id)
            visit.busy = visit.busy and stats.busy
            visit.measured = True
        if visit.left <= 0:  # its last measurement in this pass
            if visit.measured and visit.busy and stats is not None:
                self.pending.append((job, visit.path))
            else:
                _cleanup(job, visit.path)

    def _queue_late_blocks(self, blocks: list[BlockJob]) -> None:
        """The gate's quiet level fell during the pass (it started inside a disturbed spell):
        blocks measured against the higher level are measured again."""
        gate = self.gate
        if gate is None or not self.retry_passes:
            return
        limit = gate.baseline * (1.0 + gate.tolerance)
        queued = {job.key for job, _ in self.pending}
        late = [b for b in blocks if self.level_at.get(b.key, 0.0) > limit and b.key not in queued]
        if late:
            self.log(
                f"{len(late)} blocks were measured before the machine's quiet level was known "
                f"({max(self.level_at[b.key] for b in late):.4f} ms probe, now {gate.baseline:.4f} ms): measuring "
                "them again"
            )
            self.pending.extend((b, b.path()) for b in late)

    def _retry_passes(self) -> None:
        """Measure the models still flagged busy again, pass after pass; a lower estimate replaces the row."""
        db, result = self.db, self.result
        for attempt in range(self.retry_passes):
            if not self.pending:
                break
            self.log(
                f"measuring again {len(self.pending)} models that were measured while the machine was busy "
                f"(pass {attempt + 1} of {self.retry_passes})"
            )
            bar = progress_bar(len(self.pending), "re-measured", enabled=self.progress)
            still: list[tuple[Job, str]] = []
            try:
                for job, path in self.pending:
                    stats = self._measure(job, path)
                    if stats is not None:
                        if isinstance(job, BlockJob):
                            improved = db.improve(self.fp.id, job.key, stats, self.run_id)
                        else:
                            improved = db.improve_network(self.fp.id, self.space_sig, job.arch_id, stats, self.run_id)
                        result.remeasured += 1
                        result.improved += improved
                    if stats is None or not stats.busy:
                        _cleanup(job, path)
                    else:
                        still.append((job, path))
                    bar.advance(note=job.key)
            finally:
                bar.close()
            self.pending = still

    def _end(self, status: str) -> None:
        """Remove what the run exported and still holds, and record the run's end and calibration."""
        for job, path in self.pending:
            _cleanup(job, path)
        for visit in self.visits.values():
            if visit.left > 0 and visit.path is not None:  # interrupted between its measurements
                _cleanup(visit.job, visit.path)
        try:
            self.result.calibration = self._calibration()
            self.db.set_run_calibration(self.run_id, self.result.calibration)
            self.db.end_run(self.run_id, self.result.measured, status)
        except Exception:
            if status == "finished":
                raise
            # already failing: keep the first error (the run row stays 'running'; the next run on this host
            # marks it interrupted)

    def _noise_report(self) -> dict[str, Any] | None:
        report = getattr(self.engine, "noise_report", None)
        return report() if report is not None else None

    def _calibration(self) -> dict[str, Any]:
        """The run's calibration record: the engine's noise model (when it has a quiet gate) and how
        much measuring the blocks took: rounds per block, share flagged busy, confidence intervals."""
        record: dict[str, Any] = dict(self._noise_report() or {})
        stats = self.effort
        n = len(stats)
        cis = sorted(s.ci_rel for s in stats if math.isfinite(getattr(s, "ci_rel", math.inf)))
        record.update(
            {
                "blocks_measured": n,
                "rounds_mean": round(sum(s.rounds for s in stats) / n, 2) if n else None,
                "busy_share": round(sum(bool(getattr(s, "busy", False)) for s in stats) / n, 4) if n else None,
                "ci_rel_median": round(cis[len(cis) // 2], 4) if cis else None,
                "ci_rel_p90": round(cis[int(0.9 * (len(cis) - 1))], 4) if cis else None,
                "batched_share": round(sum(getattr(s, "batch", 1) > 1 for s in stats) / n, 4) if n else None,
                "still_busy_after_retries": self.result.unstable,
            }
        )
        return record


def _cleanup(job: Job, path: str) -> None:
    if job.cleanup and os.path.exists(path):
        os.remove(path)


def profile_folder(
    folder: str | os.PathLike[str],
    target: Any,
    out: str | os.PathLike[str],
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    retry_passes: int = DEFAULT_RETRY_PASSES,
) -> ProfileResult:
    """Measure every model of an exported block folder on ``target`` into the LUT ``out``.

    Models the harness flags as measured while the machine was busy are stored at once and
    measured again in up to ``retry_passes`` later passes; a lower estimate replaces the row."""
    with sigterm_as_interrupt():
        return _profile_folder(folder, target, out, _RunOptions(progress, log, retry_passes))


class _RunOptions(NamedTuple):
    """How :func:`profile_folder` and :func:`profile_space` run their :class:`Profiler`."""

    progress: bool
    log: Callable[[str], None] | None
    retry_passes: int


def _profile_folder(
    folder: str | os.PathLike[str], target: Any, out: str | os.PathLike[str], opts: _RunOptions
) -> ProfileResult:
    manifest = load_manifest(folder)
    target = load_target(target)
    engine = create_engine(target)
    try:
        fmt = engine.model_format()
        if manifest.batch != target.batch:
            raise ManifestError(
                f"{manifest.root}: models were exported for batch {manifest.batch}, "
                f"target {target.name!r} measures batch {target.batch}"
            )
        if fmt not in manifest.formats:
            raise ManifestError(
                f"{manifest.root}: target {target.name!r} measures {fmt!r} models, the folder has "
                f"{', '.join(manifest.formats)} (export again with --formats {','.join(manifest.formats + [fmt])})"
            )
        fp = engine.fingerprint(fmt)
        blocks: list[BlockJob] = []
        for entry in manifest.extras + manifest.blocks:
            path = manifest.path(entry, fmt)
            if path is None:
                continue
            if not path.is_file():
                raise ManifestError(f"{manifest.root}: {entry['key']}: model file {path.name} is missing")
            op = entry.get("op", "?")
            blocks.append(BlockJob(entry["key"], op, block_family(op, entry.get("params", {})), _file_at(path)))
        networks: list[NetworkJob] = []
        for net in manifest.networks:
            path = manifest.path(net, fmt)
            if path is None or not path.is_file():
                continue
            networks.append(NetworkJob(net["arch_id"], net["arch"], net["keys"], _file_at(path)))
        extras, overhead = _pseudo_keys(fmt, manifest.extras)
        source = lambda sig: f"folder {manifest.root}"
        return _profile_into(
            out, engine, fp, manifest.space, blocks, networks, extras, overhead, target.name, source, opts
        )
    finally:
        engine.close()


def profile_space(
    space: Any,
    target: Any,
    out: str | os.PathLike[str],
    archs: int | None = None,
    seed: int = 0,
    networks: int = 10,
    work_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    retry_passes: int = DEFAULT_RETRY_PASSES,
) -> ProfileResult:
    """One step on this machine: export each block when its turn comes, measure it, store it.

    ``archs``: only the blocks of that many sampled archs (default: every block of the
    space); ``networks``: whole networks measured for the learned correction (their blocks
    are profiled too). Needs torch (the export side).
    """
    from hwnas.io import prepare_out_dir

    target = load_target(target)
    if work_dir:
        prepare_out_dir(work_dir, "--work")
    with sigterm_as_interrupt(), ExitStack() as stack:
        # the exported models go to a work folder that a SIGTERM removes, and the next profiler
        # removes after a SIGKILL (latency_lut.workdir)
        tmp = Path(work_dir) if work_dir else stack.enter_context(work_folder("hwnas-profile-"))
        opts = _RunOptions(progress, log, retry_passes)
        return _profile_space(space, target, out, archs, seed, networks, tmp, opts)


def _profile_space(
    space: Any,
    target: Any,
    out: str | os.PathLike[str],
    archs: int | None,
    seed: int,
    networks: int,
    tmp: Path,
    opts: _RunOptions,
) -> ProfileResult:
    from latency_lut.export import (
        calibration_archs,
        extra_models,
        network_keys,
        network_models,
        part_models,
        profiled_parts,
    )
    from latency_lut.keys import is_merge, part_key
    from latency_lut.manifest import space_record

    engine = create_engine(target)
    try:
        fmt = engine.model_format()
        batch = target.batch
        fp = engine.fingerprint(fmt)
        record = space_record(space)
        calib = calibration_archs(space, networks, seed) if networks else []
        blocks = profiled_parts(space, archs, seed, calib)  # blocks, and the merges of a graph space
        jobs: list[BlockJob] = []
        for extra in extra_models(space, [fmt], batch):
            data = extra["models"].get(fmt)
            if data is None:
                continue
            p = tmp / model_filename(extra["key"], fmt)
            p.write_bytes(data)
            jobs.append(BlockJob(extra["key"], extra["op"], extra["op"], _file_at(p)))

        def block_path(b: Any, key: str) -> Callable[[], str]:
            def make() -> str:
                p = tmp / model_filename(key, fmt)
                p.write_bytes(part_models(b, [fmt], batch)[fmt])
                return str(p)

            return make

        for b in blocks:
            key = part_key(b, batch)
            op, family = (b.mode, b.mode) if is_merge(b) else (b.op, block_family(b.op, b.kwargs))
            jobs.append(BlockJob(key, op, family, block_path(b, key), cleanup=True))

        def net_path(arch: Any) -> Callable[[], str]:
            def make() -> str:
                p = tmp / model_filename(f"network-{arch.id}", fmt)
                p.write_bytes(network_models(space, arch, [fmt], batch)[fmt])
                return str(p)

            return make

        nets = [
            NetworkJob(arch.id, dict(arch), network_keys(space, arch, batch), net_path(arch), cleanup=True)
            for arch in calib
        ]
        extras = [j.key for j in jobs if j.op == "quantize"]
        overhead = next((j.key for j in jobs if j.op == "overhead"), None)
        source = lambda sig: f"space {sig}"
        return _profile_into(out, engine, fp, record, jobs, nets, extras, overhead, target.name, source, opts)
    finally:
        engine.close()


def _profile_into(
    out: str | os.PathLike[str],
    engine: MeasuringEngine,
    fp: Fingerprint,
    space: dict[str, Any],
    blocks: list[BlockJob],
    networks: list[NetworkJob],
    extras: list[str],
    overhead: str | None,
    target: str,
    source: Callable[[str], str],
    opts: _RunOptions,
) -> ProfileResult:
    """One run of a :class:`Profiler` into the LUT ``out`` (``source`` names the run from the
    space's signature), then the correction fitted on the networks it holds."""
    with open_lut(out, "w") as db:
        db.register_fingerprint(fp)
        sig = db.register_space(space)
        profiler = Profiler(
            engine,
            db,
            fp,
            sig,
            target=target,
            source=source(sig),
            retry_passes=opts.retry_passes,
            progress=opts.progress,
            log=opts.log,
        )
        result = profiler.run(blocks, networks)
        result.correction = fit_and_store_correction(db, fp.id, sig, extras, overhead)
    return result


def check_out_path(out: str | os.PathLike[str], option: str = "--out") -> None:
    """Fail early, in one line, on an output LUT path that cannot be written: a folder, a folder
    in the way that is a file, a folder that cannot be created or written."""
    from hwnas.io import OutputPathError, prepare_out_file

    if Path(out).is_dir():
        raise LUTError(f"{out}: is a folder; {option} names the LUT file (e.g. lut.db)")
    try:
        prepare_out_file(out, option)
    except OutputPathError as exc:
        raise LUTError(str(exc)) from None

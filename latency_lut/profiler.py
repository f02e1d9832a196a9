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
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw_profiles import create_engine, load_target
from hw_profiles.errors import MeasurementError
from latency_lut.correction import fit_correction
from latency_lut.db import open_lut
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
    "Job",
    "ProfileResult",
    "fit_and_store_correction",
    "profile_folder",
    "profile_space",
    "raw_sum",
]


@dataclass
class Job:
    """One model to measure: a block (or pseudo-block) or a whole network."""

    key: str
    op: str
    family: str
    path: Callable[[], str]  # produces the model file (exporting it when needed)
    network: dict[str, Any] | None = None  # {"arch_id", "arch", "keys"} for whole networks
    cleanup: bool = False  # delete the file after measuring


def _file_at(path: str | os.PathLike[str]) -> Callable[[], str]:
    """A :attr:`Job.path` for a model file that exists already."""
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
    db: Any, fp_id: str, space_sig: str, extras: list[str], overhead: str | None
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


def _interleave(blocks: list[Job], networks: list[Job], rounds: int) -> list[tuple[Job, bool]]:
    """The blocks in order, with each network's ``rounds`` measurements spread evenly among them
    (round r of every network before round r + 1 of any); ``(job, first measurement?)``."""
    out: list[tuple[Job, bool]] = [(b, True) for b in blocks]
    visits = [(net, r == 0) for r in range(max(rounds, 1)) for net in networks]
    for k in reversed(range(len(visits))):  # from the back, so earlier positions stay valid
        at = (k + 1) * len(blocks) // (len(visits) + 1)
        out.insert(at, visits[k])
    return out


def _run(
    engine: Any,
    target: Any,
    db: Any,
    fp: Any,
    jobs: list[Job],
    space_sig: str,
    source: str,
    show_progress: bool,
    log: Callable[[str], None],
    retry_passes: int = DEFAULT_RETRY_PASSES,
) -> ProfileResult:
    start = time.monotonic()
    done = db.done_keys(fp.id)
    have_nets = {n["arch_id"] for n in db.networks(fp.id, space_sig)}
    todo = [
        j
        for j in jobs
        if (j.network is None and j.key not in done)
        or (j.network is not None and j.network["arch_id"] not in have_nets)
    ]
    skipped = len(jobs) - len(todo)
    result = ProfileResult(
        lut=str(db.path),
        target=target.name,
        fingerprint=fp.id,
        total=len(jobs),
        measured=0,
        skipped=skipped,
        networks=0,
    )
    if skipped:
        log(f"{skipped} of {len(jobs)} models already in {db.path} for fingerprint {fp.id}: not measured again")
    run_id = db.begin_run(fp.id, source)
    if todo and hasattr(engine, "gate") and engine.gate() is not None:  # calibrate the noise model now, and say so
        from latency_lut.report import format_calibration

        log(f"host noise model: {format_calibration(engine.noise_report())}")
    # Models measured while the machine was busy (the harness flags them unstable) are stored at
    # once, so that a crash loses nothing, and measured again in later passes, minutes apart: a
    # busy spell on a shared machine can outlast any wait for a single model, and a later quiet
    # moment gives the lower, truer estimate.
    # Whole networks are measured 1 + retry_passes times, keeping the lowest, at points spread
    # evenly over the pass through the blocks: as `nas lut validate --passes` measures its
    # networks in passes minutes apart. Measured back to back, all of a network's measurements
    # could fall into one slow spell, and the correction would learn that spell.
    pending: list[tuple[Job, str]] = []
    effort: list[Any] = []  # first-pass statistics of the blocks, for the calibration record
    gate = engine.gate() if todo and hasattr(engine, "gate") else None
    level_at: dict[str, float] = {}  # block key -> the gate's quiet level when it was measured
    networks = {j.key: j for j in todo if j.network is not None}
    schedule = _interleave([j for j in todo if j.network is None], list(networks.values()), 1 + retry_passes)
    net_paths: dict[str, str] = {}  # network key -> its exported model, kept between its measurements
    net_left = {key: 1 + retry_passes for key in networks}  # measurements still to take in this pass
    net_busy: dict[str, bool] = {}  # network key -> no quiet measurement of it yet

    def measure(job: Job, path: str) -> Any | None:
        try:
            return engine.measure_file(path)
        except MeasurementError as exc:
            result.failed.append(f"{job.key}: {exc}")
            log(f"warning: {exc}")
            return None

    def cleanup(job: Job, path: str) -> None:
        if job.cleanup and os.path.exists(path):
            os.remove(path)

    bar = progress_bar(len(schedule), "models", enabled=show_progress)
    status = "failed"
    try:
        for job, first in schedule:
            n = job.network
            if n is None and db.has(fp.id, job.key):  # another writer finished it meanwhile
                result.skipped += 1
                bar.advance(note=job.key)
                continue
            if n is not None and net_left[job.key] <= 0:  # its first measurement failed, or another writer had it
                bar.advance(note=job.key)
                continue
            if n is not None and job.key not in net_paths:
                net_paths[job.key] = job.path()
            path = net_paths[job.key] if n is not None else job.path()
            stats = measure(job, path)
            if stats is not None and gate is not None:
                level_at[job.key] = gate.baseline
            if n is None:
                stored = stats is not None and db.insert(fp.id, job.key, job.op, job.family, stats, run_id)
                result.measured += stored
                result.skipped += stats is not None and not stored
                if stats is not None:
                    effort.append(stats)
                if stored and stats is not None and stats.busy:
                    pending.append((job, path))
                else:
                    cleanup(job, path)
            else:
                net_left[job.key] -= 1
                if stats is not None and first:
                    if db.insert_network(fp.id, space_sig, n["arch_id"], n["arch"], n["keys"], stats, run_id):
                        result.networks += 1
                    else:
                        net_left[job.key] = 0  # another writer measured it
                elif stats is not None:
                    result.remeasured += 1
                    result.improved += db.improve_network(fp.id, space_sig, n["arch_id"], stats, run_id)
                if stats is not None:
                    net_busy[job.key] = net_busy.get(job.key, True) and stats.busy
                if stats is None and first:
                    net_left[job.key] = 0
                if net_left[job.key] <= 0:  # its last measurement in this pass
                    if net_busy.get(job.key) and stats is not None:
                        pending.append((job, path))
                    else:
                        cleanup(job, path)
            bar.advance(note=job.key)
        bar.close()
        if gate is not None and retry_passes:
            # the gate's quiet level fell during the pass (it started inside a disturbed spell):
            # blocks measured against the higher level are measured again
            limit = gate.baseline * (1.0 + gate.tolerance)
            queued = {job.key for job, _ in pending}
            late = [j for j in todo if j.network is None and level_at.get(j.key, 0.0) > limit and j.key not in queued]
            if late:
                log(
                    f"{len(late)} blocks were measured before the machine's quiet level was known "
                    f"({max(level_at[j.key] for j in late):.4f} ms probe, now {gate.baseline:.4f} ms): measuring "
                    "them again"
                )
                pending.extend((j, j.path()) for j in late)
        for attempt in range(retry_passes):
            if not pending:
                break
            log(
                f"measuring again {len(pending)} models that were measured while the machine was busy "
                f"(pass {attempt + 1} of {retry_passes})"
            )
            bar = progress_bar(len(pending), "re-measured", enabled=show_progress)
            still: list[tuple[Job, str]] = []
            for job, path in pending:
                stats = measure(job, path)
                if stats is not None:
                    n = job.network
                    improved = (
                        db.improve(fp.id, job.key, stats, run_id)
                        if n is None
                        else db.improve_network(fp.id, space_sig, n["arch_id"], stats, run_id)
                    )
                    result.remeasured += 1
                    result.improved += improved
                if stats is None or not stats.busy:
                    cleanup(job, path)
                else:
                    still.append((job, path))
                bar.advance(note=job.key)
            bar.close()
            pending = still
        result.unstable = len(pending)
        status = "finished"
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see latency_lut.workdir.sigterm_as_interrupt)
        status = "interrupted"
        raise
    finally:
        bar.close()
        for job, path in pending:
            cleanup(job, path)
        for key, path in net_paths.items():
            if net_left[key] > 0:  # interrupted between its measurements
                cleanup(networks[key], path)
        try:
            result.calibration = _effort(engine, effort, result)
            if hasattr(db, "set_run_calibration"):
                db.set_run_calibration(run_id, result.calibration)
            db.end_run(run_id, result.measured, status)
        except Exception:
            if status == "finished":
                raise
            # already failing: keep the first error (the run row stays 'running'; the next run on this host
            # marks it interrupted)
    result.elapsed_s = time.monotonic() - start
    return result


def _effort(engine: Any, stats: list[Any], result: ProfileResult) -> dict[str, Any]:
    """The run's calibration record: the engine's noise model (when it has a quiet gate) and how
    much measuring the blocks took: rounds per block, share flagged busy, confidence intervals."""
    noise = engine.noise_report() if hasattr(engine, "noise_report") else None
    record: dict[str, Any] = dict(noise or {})
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
            "still_busy_after_retries": result.unstable,
        }
    )
    return record


def _finish(db: Any, fp: Any, space_sig: str, extras: list[str], overhead: str | None, result: ProfileResult) -> None:
    result.correction = fit_and_store_correction(db, fp.id, space_sig, extras, overhead)


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
        return _profile_folder(folder, target, out, progress, log, retry_passes)


def _profile_folder(
    folder: str | os.PathLike[str],
    target: Any,
    out: str | os.PathLike[str],
    progress: bool,
    log: Callable[[str], None] | None,
    retry_passes: int,
) -> ProfileResult:
    log = log or (lambda msg: None)
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
        space = manifest.space
        jobs: list[Job] = []
        for entry in manifest.extras + manifest.blocks:
            path = manifest.path(entry, fmt)
            if path is None:
                continue
            if not path.is_file():
                raise ManifestError(f"{manifest.root}: {entry['key']}: model file {path.name} is missing")
            jobs.append(
                Job(
                    entry["key"],
                    entry.get("op", "?"),
                    block_family(entry.get("op", "?"), entry.get("params", {})),
                    _file_at(path),
                )
            )
        for net in manifest.networks:
            path = manifest.path(net, fmt)
            if path is None or not path.is_file():
                continue
            jobs.append(
                Job(
                    f"network {net['arch_id']}",
                    "network",
                    "network",
                    _file_at(path),
                    network={"arch_id": net["arch_id"], "arch": net["arch"], "keys": net["keys"]},
                )
            )
        extras, overhead = _pseudo_keys(fmt, manifest.extras)
        with open_lut(out, "w") as db:
            db.register_fingerprint(fp)
            sig = db.register_space(space)
            result = _run(engine, target, db, fp, jobs, sig, f"folder {manifest.root}", progress, log, retry_passes)
            _finish(db, fp, sig, extras, overhead, result)
        return result
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
        return _profile_space(space, target, out, archs, seed, networks, tmp, progress, log, retry_passes)


def _profile_space(
    space: Any,
    target: Any,
    out: str | os.PathLike[str],
    archs: int | None,
    seed: int,
    networks: int,
    tmp: Path,
    progress: bool,
    log: Callable[[str], None] | None,
    retry_passes: int,
) -> ProfileResult:
    from latency_lut.export import block_models, calibration_archs, extra_models, network_models, space_blocks
    from latency_lut.keys import block_key
    from latency_lut.manifest import space_record

    log = log or (lambda msg: None)
    engine = create_engine(target)
    try:
        fmt = engine.model_format()
        batch = target.batch
        fp = engine.fingerprint(fmt)
        record = space_record(space)
        calib = calibration_archs(space, networks, seed) if networks else []
        blocks = space_blocks(space, archs, seed)
        seen = {b.signature() for b in blocks}
        for arch in calib:
            for b in space.blocks(arch):
                if b.signature() not in seen:
                    seen.add(b.signature())
                    blocks.append(b)
        jobs: list[Job] = []
        for extra in extra_models(space, [fmt], batch):
            data = extra["models"].get(fmt)
            if data is None:
                continue
            p = tmp / model_filename(extra["key"], fmt)
            p.write_bytes(data)
            jobs.append(Job(extra["key"], extra["op"], extra["op"], _file_at(p)))

        def block_path(b: Any, key: str) -> Callable[[], str]:
            def make() -> str:
                p = tmp / model_filename(key, fmt)
                p.write_bytes(block_models(b, [fmt], batch)[fmt])
                return str(p)

            return make

        for b in blocks:
            key = block_key(b, batch)
            jobs.append(Job(key, b.op, block_family(b.op, b.kwargs), block_path(b, key), cleanup=True))

        def net_path(arch: Any) -> Callable[[], str]:
            def make() -> str:
                p = tmp / model_filename(f"network-{arch.id}", fmt)
                p.write_bytes(network_models(space, arch, [fmt], batch)[fmt])
                return str(p)

            return make

        for arch in calib:
            keys = [block_key(b, batch) for b in space.blocks(arch)]
            jobs.append(
                Job(
                    f"network {arch.id}",
                    "network",
                    "network",
                    net_path(arch),
                    cleanup=True,
                    network={"arch_id": arch.id, "arch": dict(arch), "keys": keys},
                )
            )
        extras = [j.key for j in jobs if j.op == "quantize"]
        overhead = next((j.key for j in jobs if j.op == "overhead"), None)
        with open_lut(out, "w") as db:
            db.register_fingerprint(fp)
            sig = db.register_space(record)
            result = _run(engine, target, db, fp, jobs, sig, f"space {sig}", progress, log, retry_passes)
            _finish(db, fp, sig, extras, overhead, result)
        return result
    finally:
        engine.close()


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

"""Vectorised latency prediction from a LUT (numpy only; no torch).

A space's blocks are compiled once into an index: every distinct block key gets an id and
a latency slot. In a graph space (cells) the parts are the edges' and nodes' op blocks and the
merges (:mod:`latency_lut.parts`); a free part (an identity edge) has no slot. An architecture becomes a row of block ids (padded with a zero-latency
slot), so scoring many architectures is one gather and one sum over an
``(n_archs, max_blocks)`` integer matrix, plus the fitted correction: millions of
architectures per second once encoded. Encoding an arch walks the space once
(``space.blocks``) and is cached by arch id.

    >>> pred = LatencyPredictor.for_target("lut.db", "cpu-ort-int8", space)
    >>> ms = pred.predict(archs)                  # numpy array, milliseconds
    >>> idx, n = pred.encode(archs); ms = pred.predict_indices(idx, n)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from latency_lut.correction import apply_correction
from latency_lut.db import LatencyDB, open_lut
from latency_lut.errors import FingerprintMismatchError, LUTError, MissingBlockError
from latency_lut.formats import UINT8_IO_FORMATS
from latency_lut.keys import overhead_key, part_key, quantize_key
from latency_lut.manifest import match_space_record, record_hash, space_record
from latency_lut.parts import network_parts, space_parts
from spaces.identity import SpaceMismatchError, space_label

__all__ = ["LUTSpaceMismatchError", "LatencyPredictor"]

_SHOWN_MISSING = 3  # missing block keys named in a message (then a count)


class LUTSpaceMismatchError(LUTError, SpaceMismatchError):
    """The LUT was made for another space than the one to predict (both hashes in the message)."""


class LatencyPredictor:
    """Predicts whole-network latency on one target fingerprint for one space.

    ``lut``: a LUT path or an open :class:`LatencyDB`; ``fingerprint``: a fingerprint id or
    a target name held in the LUT (it may be omitted when the LUT holds one fingerprint);
    ``correction``: apply the learned correction when the LUT has one for this space.

    The LUT must have been made for ``space`` (it records the hash of every space profiled into
    it): else :class:`LUTSpaceMismatchError`, one line naming both hashes and, when the LUT lacks
    blocks of ``space``, the first of them and their count. ``allow_other_space=True`` accepts
    a LUT of another space that holds every block of ``space`` (e.g. a sub-space of the space
    profiled), without the learned correction (fitted on the other space's networks).
    """

    def __init__(
        self,
        lut: str | os.PathLike[str] | LatencyDB,
        space: Any,
        fingerprint: str | None = None,
        batch: int = 1,
        correction: bool = True,
        stat: str = "median_ms",
        allow_other_space: bool = False,
    ) -> None:
        self.db = lut if isinstance(lut, LatencyDB) else open_lut(lut, "r")
        self.space = space
        self.batch = int(batch)
        self.fp = self._select(fingerprint)
        self.fp_id = self.fp["fp_id"]
        self.target = self.fp["target"]
        self.record = space_record(space)
        lut_spaces = self.db.spaces()
        match = match_space_record(lut_spaces, self.record)
        if match is not None:  # networks and corrections are stored under the LUT's own signature
            self.record["signature"] = match["signature"]
        #: whether the LUT recorded this space (False: another space's LUT covering every block)
        self.same_space = match is not None or not lut_spaces
        lat = self.db.latencies(self.fp_id, stat)
        self._lat = lat
        c, h, w = space.input_shape
        fmt = self.fp["info"].get("model_format")
        self.extras = [quantize_key(c, h, w, self.batch)] if fmt in UINT8_IO_FORMATS else []
        ov = overhead_key(self.batch)
        self.overhead_ms = float(lat[ov]) if ov in lat else 0.0
        missing_extra = [k for k in self.extras if k not in lat]
        if missing_extra:
            raise MissingBlockError(
                f"{self.db.path}: pseudo-block {missing_extra[0]!r} (the network input "
                f"quantization) has no measurement for target {self.target!r}"
            )
        self.extras_ms = float(sum(lat[k] for k in self.extras))
        self.correction = (
            self.db.correction(self.fp_id, self.record["signature"]) if correction and self.same_space else None
        )
        # the index: block keys of every block the space can contain
        import numpy as np

        self._np = np
        self.keys: list[str] = []
        self.paths: list[str] = []
        self._id: dict[str, int] = {}
        for b in space_parts(space):  # blocks, and the merges of a graph space's cells
            self._add(part_key(b, self.batch), b.path)
        self._cache: dict[str, tuple[int, ...]] = {}
        self._refresh()
        if not self.same_space:
            self._check_other_space(lut_spaces, allow_other_space)

    # -- construction helpers --------------------------------------------------------------
    @classmethod
    def for_target(
        cls,
        lut: str | os.PathLike[str] | LatencyDB,
        target: Any,
        space: Any,
        correction: bool = True,
        allow_other_space: bool = False,
    ) -> LatencyPredictor:
        """The predictor for ``target`` as measured *on this machine*: the target's fingerprint
        is computed here and must be in the LUT (else a one-line FingerprintMismatchError)."""
        from hw_profiles import load_target, target_fingerprint

        target = load_target(target)
        fp = target_fingerprint(target)
        db = lut if isinstance(lut, LatencyDB) else open_lut(lut, "r")
        db.require_fingerprint(fp)
        return cls(
            db, space, fingerprint=fp.id, batch=target.batch, correction=correction, allow_other_space=allow_other_space
        )

    def _select(self, wanted: str | None) -> dict[str, Any]:
        fps = self.db.fingerprints()
        if not fps:
            raise FingerprintMismatchError(f"{self.db.path}: the LUT holds no measurements yet")
        if wanted is None:
            if len(fps) == 1:
                return fps[0]
            names = ", ".join(f"{f['target']} ({f['fp_id']})" for f in fps)
            raise FingerprintMismatchError(f"{self.db.path}: holds several targets, name one of: {names}")
        hits = [f for f in fps if f["fp_id"] == wanted] or [f for f in fps if f["target"] == wanted]
        if len(hits) == 1:
            return hits[0]
        names = ", ".join(f"{f['target']} ({f['fp_id']})" for f in fps)
        if not hits:
            raise FingerprintMismatchError(f"{self.db.path}: no measurements for {wanted!r}; the LUT holds {names}")
        raise FingerprintMismatchError(
            f"{self.db.path}: {wanted!r} names several fingerprints ({names}); give a fingerprint id"
        )

    def _add(self, key: str, path: str) -> int:
        i = self._id.get(key)
        if i is None:
            i = len(self.keys)
            self._id[key] = i
            self.keys.append(key)
            self.paths.append(path)
            self._dirty = True
        return i

    def _refresh(self) -> None:
        np = self._np
        vec = np.full(len(self.keys) + 1, np.nan, dtype=np.float64)
        for i, k in enumerate(self.keys):
            v = self._lat.get(k)
            if v is not None:
                vec[i] = v
        self.pad = len(self.keys)
        vec[self.pad] = 0.0
        self._vec = vec
        self._dirty = False

    # -- encoding --------------------------------------------------------------------------
    def arch_ids(self, arch: Mapping[str, Any]) -> tuple[int, ...]:
        """Block ids of one arch (cached by arch id)."""
        aid = getattr(arch, "id", None)
        if aid is not None and aid in self._cache:
            return self._cache[aid]
        ids = tuple(self._add(part_key(b, self.batch), b.path) for b in network_parts(self.space, arch))
        if aid is not None:
            self._cache[aid] = ids
        return ids

    def encode(self, archs: Iterable[Mapping[str, Any]]) -> tuple[Any, Any]:
        """``(idx, n)``: an int32 ``(n_archs, max_blocks)`` matrix of block ids padded with the
        zero slot, and the number of blocks of each arch."""
        np = self._np
        rows = [self.arch_ids(a) for a in archs]
        if self._dirty:  # an arch brought a block enumerate_blocks() did not list
            self._refresh()
        width = max((len(r) for r in rows), default=0)
        idx = np.full((len(rows), width), self.pad, dtype=np.int32)
        for i, r in enumerate(rows):
            idx[i, : len(r)] = r
        return idx, np.fromiter((len(r) for r in rows), dtype=np.int32, count=len(rows))

    # -- prediction ------------------------------------------------------------------------
    def raw_indices(self, idx: Any, n: Any | None = None) -> Any:
        """Raw block-sum latency (ms) of encoded archs (see :mod:`latency_lut.correction`)."""
        np = self._np
        if self._dirty:
            self._refresh()
        idx = np.asarray(idx)
        if n is None:
            n = (idx != self.pad).sum(axis=1)
        total = self._vec[idx].sum(axis=1)
        if np.isnan(total).any():
            self._raise_missing(idx, total)
        models = np.asarray(n) + len(self.extras)
        return total + self.extras_ms - (models - 1) * self.overhead_ms

    def predict_indices(self, idx: Any, n: Any | None = None) -> Any:
        """Predicted latency (ms) of encoded archs, the learned correction applied."""
        np = self._np
        if n is None:
            n = (np.asarray(idx) != self.pad).sum(axis=1)
        return apply_correction(self.correction, self.raw_indices(idx, n), n)

    def predict(self, archs: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> Any:
        """Predicted latency (ms) of each arch (a numpy array; a float for a single arch)."""
        if isinstance(archs, Mapping):
            return float(self.predict([archs])[0])
        idx, n = self.encode(archs)
        return self.predict_indices(idx, n)

    def breakdown(self, arch: Mapping[str, Any]) -> list[tuple[str, str, float]]:
        """``(path, key, ms)`` per block of ``arch`` (NaN where the LUT lacks the block)."""
        ids = self.arch_ids(arch)
        if self._dirty:
            self._refresh()
        return [(self.paths[i], self.keys[i], float(self._vec[i])) for i in ids]

    def missing_keys(self) -> list[str]:
        """Block keys of the space the LUT has no measurement for."""
        if self._dirty:
            self._refresh()
        return [k for k, v in zip(self.keys, self._vec[:-1]) if v != v]

    def _check_other_space(self, lut_spaces: list[dict[str, Any]], allow: bool) -> None:
        """The LUT recorded other spaces only: refuse it (naming the blocks it lacks, if any)."""
        missing = self.missing_keys()
        if allow and not missing:
            return
        made_for = ", ".join(space_label(r.get("name"), record_hash(r)) for r in lut_spaces[:3])
        if len(lut_spaces) > 3:
            made_for += f" and {len(lut_spaces) - 3} more"
        head = (
            f"{self.db.path}: the LUT was made for space {made_for}, not for space "
            f"{space_label(self.space.name, self.record.get('hash'))}"
        )
        if missing:
            shown = ", ".join(missing[:_SHOWN_MISSING]) + (", ..." if len(missing) > _SHOWN_MISSING else "")
            raise LUTSpaceMismatchError(
                f"{head}: it lacks {len(missing)} of its {len(self.keys)} blocks on target {self.target!r} ({shown})"
            )
        raise LUTSpaceMismatchError(
            f"{head} (it holds all {len(self.keys)} of its blocks: profile this space into "
            f"it with `nas profile --space ... --out {self.db.path}`, which measures only "
            f"its calibration networks)"
        )

    def _raise_missing(self, idx: Any, total: Any) -> None:
        np = self._np
        row = int(np.flatnonzero(np.isnan(total))[0])
        bad = next(int(i) for i in idx[row] if self._vec[int(i)] != self._vec[int(i)])
        raise MissingBlockError(
            f"{self.db.path}: block {self.keys[bad]!r} (at {self.paths[bad]}) has no measurement for target "
            f"{self.target!r} (fingerprint {self.fp_id}); profile it with `nas profile --space {self.space.name} "
            f"--target {self.target} --out {self.db.path}`"
        )

    def close(self) -> None:
        self.db.close()

"""Vectorised prediction: exact sums, index matrices, corrections, missing blocks, throughput."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hw_profiles import Fingerprint, Stats
from latency_lut.db import open_lut
from latency_lut.errors import FingerprintMismatchError, MissingBlockError
from latency_lut.keys import block_key, overhead_key, quantize_key
from latency_lut.manifest import space_record
from latency_lut.predictor import LatencyPredictor

FP = Fingerprint(
    {
        "engine": "onnxruntime",
        "engine_version": "x",
        "precision": "int8",
        "threads": 1,
        "model_format": "int8",
        "cpu": {"model": "synthetic"},
    },
    "synthetic-int8",
)


def _synthetic_lut(path, space, skip: set[str] = frozenset(), correction=None):
    """Every block of ``space`` with latency = 0.01 × (its index + 1); overhead 0.005, quantize 0.002."""
    c, h, w = space.input_shape
    with open_lut(path, "w") as db:
        db.register_fingerprint(FP)
        db.register_space(space_record(space))
        run = db.begin_run(FP.id, "synthetic")
        lat = {}
        for i, b in enumerate(space.enumerate_blocks()):
            k = block_key(b)
            lat[k] = 0.01 * (i + 1)
            if k not in skip:
                db.insert(FP.id, k, b.op, b.op, Stats(lat[k], lat[k], 0, lat[k], 1, 0, 1, True), run)
        for k, v in ((overhead_key(), 0.005), (quantize_key(c, h, w), 0.002)):
            db.insert(FP.id, k, "pseudo", "pseudo", Stats(v, v, 0, v, 1, 0, 1, True), run)
            lat[k] = v
        if correction:
            db.set_correction(FP.id, space_record(space)["signature"], correction)
    return lat


def _expected(space, arch, lat):
    keys = [block_key(b) for b in space.blocks(arch)]
    c, h, w = space.input_shape
    return sum(lat[k] for k in keys) + lat[quantize_key(c, h, w)] - len(keys) * lat[overhead_key()]


def test_prediction_is_the_block_sum(tmp_path, tiny_space):
    lat = _synthetic_lut(tmp_path / "lut.db", tiny_space)
    pred = LatencyPredictor(tmp_path / "lut.db", tiny_space)
    archs = [tiny_space.sample(i) for i in range(20)]
    got = pred.predict(archs)
    assert got == pytest.approx([_expected(tiny_space, a, lat) for a in archs])
    assert pred.predict(archs[0]) == pytest.approx(got[0])
    idx, n = pred.encode(archs)
    assert idx.shape[0] == 20 and (n == [len(tiny_space.blocks(a)) for a in archs]).all()
    assert pred.predict_indices(idx, n) == pytest.approx(got)
    assert [k for _, k, _ in pred.breakdown(archs[0])] == [block_key(b) for b in tiny_space.blocks(archs[0])]
    assert pred.missing_keys() == []


def test_correction_is_applied(tmp_path, tiny_space):
    lat = _synthetic_lut(
        tmp_path / "lut.db", tiny_space, correction={"model": "affine", "coef": [2.0, 0.5], "loo_rel_err": 0.0}
    )
    pred = LatencyPredictor(tmp_path / "lut.db", tiny_space)
    arch = tiny_space.sample(3)
    assert pred.predict(arch) == pytest.approx(2.0 * _expected(tiny_space, arch, lat) + 0.5)
    raw = LatencyPredictor(tmp_path / "lut.db", tiny_space, correction=False)
    assert raw.predict(arch) == pytest.approx(_expected(tiny_space, arch, lat))


def test_missing_block_is_a_one_line_error(tmp_path, tiny_space):
    arch = tiny_space.sample(0)
    gone = block_key(tiny_space.blocks(arch)[1])
    _synthetic_lut(tmp_path / "lut.db", tiny_space, skip={gone})
    pred = LatencyPredictor(tmp_path / "lut.db", tiny_space)
    assert pred.missing_keys() == [gone]
    with pytest.raises(MissingBlockError) as info:
        pred.predict([tiny_space.sample(5), arch])
    assert gone in str(info.value) and "\n" not in str(info.value)


def test_fingerprint_selection(tmp_path, tiny_space):
    _synthetic_lut(tmp_path / "lut.db", tiny_space)
    assert LatencyPredictor(tmp_path / "lut.db", tiny_space, fingerprint="synthetic-int8").fp_id == FP.id
    assert LatencyPredictor(tmp_path / "lut.db", tiny_space, fingerprint=FP.id).target == "synthetic-int8"
    with pytest.raises(FingerprintMismatchError, match="no measurements for 'other'"):
        LatencyPredictor(tmp_path / "lut.db", tiny_space, fingerprint="other")
    # the LUT was not measured on this machine's cpu-ort-int8: a one-line error
    with pytest.raises(FingerprintMismatchError) as info:
        LatencyPredictor.for_target(tmp_path / "lut.db", "cpu-ort-int8", tiny_space)
    assert "synthetic-int8" in str(info.value) and "\n" not in str(info.value)


def test_scoring_throughput(tmp_path):
    """Scoring encoded archs is array work: well over 100,000 archs per second."""
    from spaces import create_space

    space = create_space("spaceevo", in_chans=1, num_classes=10, resolution=28)
    _synthetic_lut(tmp_path / "lut.db", space)
    pred = LatencyPredictor(tmp_path / "lut.db", space)
    idx, n = pred.encode([space.sample(i) for i in range(50)])
    big_idx, big_n = np.tile(idx, (2000, 1)), np.tile(n, 2000)  # 100,000 archs
    pred.predict_indices(big_idx[:10], big_n[:10])
    start = time.perf_counter()
    out = pred.predict_indices(big_idx, big_n)
    rate = len(out) / (time.perf_counter() - start)
    assert out.shape == (100_000,) and np.isfinite(out).all()
    assert rate > 100_000, f"{rate:.0f} archs/s"

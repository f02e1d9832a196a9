"""Vectorised prediction: exact sums, index matrices, corrections, missing blocks, throughput."""

from __future__ import annotations

import numpy as np
import pytest
from lut_test_helpers import SYNTHETIC_FP as FP
from lut_test_helpers import synthetic_lut

from latency_lut.errors import FingerprintMismatchError, MissingBlockError
from latency_lut.keys import block_key, overhead_key, quantize_key
from latency_lut.predictor import LatencyPredictor


def _expected(space, arch, lat):
    keys = [block_key(b) for b in space.blocks(arch)]
    c, h, w = space.input_shape
    return sum(lat[k] for k in keys) + lat[quantize_key(c, h, w)] - len(keys) * lat[overhead_key()]


def test_prediction_is_the_block_sum(tmp_path, tiny_space):
    _, lat = synthetic_lut(tmp_path / "lut.db", tiny_space)
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
    _, lat = synthetic_lut(
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
    synthetic_lut(tmp_path / "lut.db", tiny_space, skip={gone})
    pred = LatencyPredictor(tmp_path / "lut.db", tiny_space)
    assert pred.missing_keys() == [gone]
    with pytest.raises(MissingBlockError) as info:
        pred.predict([tiny_space.sample(5), arch])
    assert gone in str(info.value) and "\n" not in str(info.value)


def test_fingerprint_selection(tmp_path, tiny_space):
    synthetic_lut(tmp_path / "lut.db", tiny_space)
    assert LatencyPredictor(tmp_path / "lut.db", tiny_space, fingerprint="synthetic-int8").fp_id == FP.id
    assert LatencyPredictor(tmp_path / "lut.db", tiny_space, fingerprint=FP.id).target == "synthetic-int8"
    with pytest.raises(FingerprintMismatchError, match="no measurements for 'other'"):
        LatencyPredictor(tmp_path / "lut.db", tiny_space, fingerprint="other")
    # the LUT was not measured on this machine's cpu-ort-int8: a one-line error
    with pytest.raises(FingerprintMismatchError) as info:
        LatencyPredictor.for_target(tmp_path / "lut.db", "cpu-ort-int8", tiny_space)
    assert "synthetic-int8" in str(info.value) and "\n" not in str(info.value)


def test_scoring_encoded_archs_in_bulk(tmp_path):
    """Scoring encoded archs is array work: 100,000 at once give each arch's own prediction (the
    rate is measured by benchmarks/bench_lut.py, not asserted here)."""
    from spaces import create_space

    space = create_space("spaceevo", in_chans=1, num_classes=10, resolution=28)
    synthetic_lut(tmp_path / "lut.db", space)
    pred = LatencyPredictor(tmp_path / "lut.db", space)
    archs = [space.sample(i) for i in range(50)]
    idx, n = pred.encode(archs)
    big_idx, big_n = np.tile(idx, (2000, 1)), np.tile(n, 2000)  # 100,000 archs
    out = pred.predict_indices(big_idx, big_n)
    assert out.shape == (100_000,) and np.isfinite(out).all()
    np.testing.assert_allclose(out[:50], [pred.predict(a) for a in archs], rtol=1e-9)
    np.testing.assert_array_equal(out[50:100], out[:50])

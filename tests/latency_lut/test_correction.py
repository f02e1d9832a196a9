"""The learned correction and the agreement metrics."""

from __future__ import annotations

import numpy as np
import pytest

from latency_lut.correction import apply_correction, fit_correction
from latency_lut.metrics import agreement, kendall_tau


def test_correction_recovers_an_affine_relation():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.5, 3.0, 12)
    n = rng.integers(8, 20, 12)
    y = 1.25 * raw + 0.1
    model = fit_correction(raw, n, y)
    assert model["model"] in ("affine", "affine_n")
    assert model["loo_rel_err"] < 1e-6 < model["raw_rel_err"]
    assert np.allclose(apply_correction(model, raw, n), y)


def test_no_correction_when_the_raw_sum_is_right():
    raw = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    model = fit_correction(raw, [5] * 5, raw)
    assert model["model"] == "none"
    assert np.allclose(apply_correction(model, raw, 5), raw)
    assert np.allclose(apply_correction(None, raw, 5), raw)


def test_too_few_networks_only_allow_simple_models():
    model = fit_correction([1.0, 2.0, 3.0], [5, 6, 7], [1.5, 3.0, 4.5])
    assert model["model"] == "scale" and model["coef"] == pytest.approx([1.5])


def test_agreement_and_kendall():
    m = [1.0, 2.0, 3.0, 4.0]
    p = [1.04, 2.3, 2.9, 4.0]
    a = agreement(p, m)
    assert a["n"] == 4 and a["within_5pct"] == 0.75 and a["within_10pct"] == 0.75
    assert a["kendall_tau"] == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    from scipy.stats import kendalltau

    rng = np.random.default_rng(1)
    x, y = rng.random(30), rng.random(30)
    assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y)[0])


def test_pooled_validation_shards_agree_like_one_run():
    from latency_lut.validation import pool

    rng = np.random.default_rng(3)
    nets = [
        {"predicted_ms": float(p), "raw_ms": float(p * 0.9), "measured_ms": float(p * f)}
        for p, f in zip(rng.uniform(1, 5, 40), rng.uniform(0.9, 1.1, 40))
    ]
    pooled = pool([{"networks": nets[:15]}, {"networks": nets[15:]}])
    measured = [x["measured_ms"] for x in nets]
    assert pooled | {"raw": None} == agreement([x["predicted_ms"] for x in nets], measured) | {"raw": None}
    assert pooled["raw"] == agreement([x["raw_ms"] for x in nets], measured) and pooled["n"] == 40

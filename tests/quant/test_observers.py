from __future__ import annotations

import pytest
import torch

from hwnas.errors import UnknownNameError
from quant.functional import fake_quantize, qparams_from_range
from quant.observers import MinMaxObserver, MSEObserver, PercentileObserver, create_observer, weight_scales


def _mse(x: torch.Tensor, lo: float, hi: float) -> float:
    s, z = qparams_from_range(lo, hi, 0, 255, symmetric=False)
    return float(((fake_quantize(x, s, z, 0, 255) - x) ** 2).mean())


def test_minmax_tracks_extremes_over_batches() -> None:
    obs = MinMaxObserver()
    obs(torch.tensor([0.5, 2.0]))
    obs(torch.tensor([-1.0, 1.0]))
    assert obs.compute_range(0, 255, False) == (-1.0, 2.0)
    obs.reset()
    assert not obs.has_data


def test_sample_is_bounded_uniform_and_seeded() -> None:
    a, b = PercentileObserver(max_samples=1000), PercentileObserver(max_samples=1000)
    for obs in (a, b):
        obs(torch.zeros(3000))
        obs(torch.ones(1000))  # a quarter of everything seen
    assert a.samples.numel() == 1000 and int(a.seen) == 4000
    assert 0.2 < float(a.samples.mean()) < 0.3
    assert torch.equal(a.samples, b.samples)


def test_percentile_clips_rare_outliers() -> None:
    x = torch.rand(100_000)
    x[:5] = 1000.0
    obs = PercentileObserver(99.9)
    obs(x)
    lo, hi = obs.compute_range(0, 255, False)
    assert lo == 0.0 and 0.9 < hi < 1.1


def test_mse_range_is_never_worse_than_minmax() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50_000, generator=g) ** 3
    mse, mm = MSEObserver(), MinMaxObserver()
    mse(x)
    mm(x)
    assert _mse(x, *mse.compute_range(0, 255, False)) < _mse(x, *mm.compute_range(0, 255, False))
    u = torch.rand(100_000, generator=g) * 2 - 1  # uniform: no clipping pays, the search keeps ~the full range
    mse.reset()
    mse(u)
    lo, hi = mse.compute_range(0, 255, False)
    assert lo < -0.95 and hi > 0.95


def test_symmetric_ranges_are_symmetric() -> None:
    x = torch.randn(10_000) + 1.0
    for obs in (PercentileObserver(99.0), MSEObserver()):
        obs(x)
        lo, hi = obs.compute_range(-128, 127, True)
        assert lo == pytest.approx(-hi) and hi > 0


def test_constant_zero_input_gives_zero_range() -> None:
    for name in ("minmax", "percentile", "mse"):
        obs = create_observer(name)
        obs(torch.zeros(100))
        assert obs.compute_range(0, 255, False) == (0.0, 0.0)


def test_unknown_observer_name() -> None:
    with pytest.raises(UnknownNameError, match="unknown observer 'kl'"):
        create_observer("kl")


def test_weight_scales_per_channel_with_dead_channels() -> None:
    w = torch.randn(4, 3, 3, 3)
    w[1] = 0.0
    s = weight_scales(w)
    assert s.shape == (4,)
    assert torch.allclose(s[[0, 2, 3]], w[[0, 2, 3]].abs().amax((1, 2, 3)) / 127)
    assert float(s[1]) == pytest.approx(float(s[[0, 2, 3]].mean()))  # finite, sensible fallback
    assert torch.all(weight_scales(torch.zeros(3, 2)) == 1.0)


def test_mse_weight_scales_do_not_exceed_minmax_and_reduce_error() -> None:
    w = torch.randn(8, 64) ** 3
    s_mm, s_mse = weight_scales(w, method="minmax"), weight_scales(w, method="mse")
    assert torch.all(s_mse <= s_mm + 1e-9)

    def err(s: torch.Tensor) -> float:
        return float(((torch.clamp(torch.round(w / s[:, None]), -127, 127) * s[:, None] - w) ** 2).sum())

    assert err(s_mse) <= err(s_mm)
